"""The shared machinery of every meta-learner: variables, inner loop, fit, evaluate, save.

A meta-learner wraps any built Keras model and calls it *statelessly*:
``model.stateless_call(trainable_values, non_trainable_values, x)`` runs the model with weights
given as tensors. That is what lets one model hold a different set of "fast weights" per task:

* the **inner loop** adapts the selected variables (``adapt=``) to one task's support set with
  a few gradient steps, ``theta_i = theta - alpha * grad L_support_i(theta)``;
* the **outer loop** updates the initial weights ``theta`` from the adapted weights' loss on
  the query sets (MAML family) or from the adapted weights themselves (Reptile).

A meta-batch of tasks is processed as tensors with :func:`tf.vectorized_map` over the task axis
(no Python loop over tasks in the compiled step); padding rows carry mask 0 and do not count.
Subclasses implement :meth:`MetaLearner._meta_loss_and_grads` (what one outer step computes);
the rest of the API -- ``compile``, ``fit``, ``evaluate``, ``adapt``, ``save`` -- is shared.
"""

from __future__ import annotations

import inspect
import json
import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from metarec._validate import check_int, check_positive
from metarec.data.tasks import Task, TaskBatch, TaskSet
from metarec.metrics import summarize, task_metrics

AdaptSpec = str | Callable[[Any], bool] | Sequence[Any]

_REGISTRY: dict[str, type[MetaLearner]] = {}

# Retracing notices (one trace per padded task size is expected here) are not for readers.
tf.get_logger().setLevel(logging.ERROR)


def register_learner(cls: type[MetaLearner]) -> type[MetaLearner]:
    """Class decorator: make a learner class loadable by :func:`load_learner`."""
    _REGISTRY[cls.__name__] = cls
    return cls


def _dense(g: Any) -> tf.Tensor:
    # Embedding gradients arrive as IndexedSlices; per-task fast weights need dense tensors.
    return tf.convert_to_tensor(g)


#: Tag of the in-graph finiteness check; ``fit`` recognises its error by it.
_NONFINITE_TAG = "metarec: non-finite meta-loss or gradient, update not applied"


def _finite_or_stop(loss: tf.Tensor, grads: list[Any]) -> list[Any]:
    """``grads`` unchanged, but the step fails before using them if any value is NaN or inf.

    ``check_numerics`` passes its input through and raises when a value is not finite; the
    optimizer update reads the checked gradients, so a failing check stops the step before
    any weight or optimizer slot is written. Unlike a ``tf.cond`` around the update this
    leaves the update graph (and so the numbers of finite steps) exactly as it was, and keeps
    embedding gradients sparse (``IndexedSlices``).
    """
    with tf.control_dependencies([tf.debugging.check_numerics(loss, _NONFINITE_TAG)]):
        out = []
        for g in grads:
            if isinstance(g, tf.IndexedSlices):
                values = tf.debugging.check_numerics(g.values, _NONFINITE_TAG)
                out.append(tf.IndexedSlices(values, g.indices, g.dense_shape))
            else:
                out.append(tf.debugging.check_numerics(g, _NONFINITE_TAG))
    return out


def _apply_if_finite(optimizer: keras.optimizers.Optimizer, loss: tf.Tensor,
                     pairs: list[tuple[Any, Any]]) -> None:
    """The XLA variant of the guard: apply the update under ``tf.cond`` only if all is finite.

    Under ``jit_compile`` ``check_numerics`` does not check, so the update is made conditional
    instead; the optimizer's slots are created first (no variable may be created in a branch).
    """
    grads, variables = [g for g, _ in pairs], [v for _, v in pairs]
    values = [g.values if isinstance(g, tf.IndexedSlices) else g for g in grads]
    finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(loss))]
                           + [tf.reduce_all(tf.math.is_finite(v)) for v in values])
    if not optimizer.built:
        optimizer.build(variables)

    def apply() -> tf.Tensor:
        optimizer.apply(grads, variables)
        return tf.constant(True)

    tf.cond(finite, apply, lambda: tf.constant(False))


def _check_adapt_spec(where: str, spec: Any) -> None:
    """Refuse an ``adapt=`` value of the wrong type or an invalid regular expression early."""
    if isinstance(spec, str):
        try:
            re.compile(spec)
        except re.error as err:
            raise ValueError(f"{where}: adapt={spec!r} is not a valid regular expression "
                             f"({err}); pass 'all', a regex searched in variable paths, a "
                             "callable or a list of the model's variables.") from None
    elif not callable(spec) and not (isinstance(spec, Sequence)
                                     and all(hasattr(v, "path") for v in spec)):
        raise TypeError(f"{where}: adapt must be 'all', a regular expression, a callable "
                        f"variable -> bool, or a list of the model's variables; got {spec!r}.")


def _check_ks(where: str, ks: Any) -> tuple[int, ...]:
    if isinstance(ks, int | str) or not isinstance(ks, Sequence) or not ks:
        raise TypeError(f"{where}: ks must be a non-empty sequence of cut-offs such as (1, 3), "
                        f"got {ks!r}.")
    return tuple(check_int(where, "every k of ks", k, 1) for k in ks)


def masked_mse(pred: tf.Tensor, y: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Mean squared error over the real (mask 1) rows; 0 when there is none. Shapes ``[N]``."""
    # Tasks store float32; a float64 model (for numerical checks) gets its own precision.
    y, mask = tf.cast(y, pred.dtype), tf.cast(mask, pred.dtype)
    return tf.reduce_sum(mask * tf.square(pred - y)) / tf.maximum(tf.reduce_sum(mask), 1.0)


def _set_monitor_mode(callback: Any) -> None:
    """Tell Keras monitors (EarlyStopping, ...) that nDCG rises and errors fall.

    Keras cannot infer the direction of ``val_mae`` or ``val_ndcg@3`` itself ("auto" mode).
    """
    monitor = getattr(callback, "monitor", None)
    if not isinstance(monitor, str) or getattr(callback, "mode", None) != "auto":
        return
    name = monitor.removeprefix("val_")
    if name in ("loss", "mae", "rmse"):
        callback.mode = "min"
    elif name.startswith("ndcg@"):
        callback.mode = "max"


class AdaptedModel:
    """A model personalised to one task: the meta-learned weights after inner-loop adaptation.

    Returned by :meth:`MetaLearner.adapt`; ``predict(x)`` gives ratings ``[N]`` for feature
    dict ``x`` (``[N, ...]`` per key).
    """

    def __init__(self, learner: MetaLearner, fast: list[tf.Tensor], frozen: list[tf.Tensor]):
        self.learner = learner
        self.fast_weights = fast
        self.frozen_weights = frozen

    def predict(self, x: dict[str, np.ndarray]) -> np.ndarray:
        x = {k: tf.convert_to_tensor(v) for k, v in x.items()}
        values = self.learner._merge(self.fast_weights, self.frozen_weights)
        nt = [tf.convert_to_tensor(v) for v in self.learner.model.non_trainable_variables]
        pred, _ = self.learner._forward(values, nt, x, training=False)
        return pred.numpy()


class MetaLearner:
    """Base class of all meta-learners (see the module docstring).

    Parameters
    ----------
    model : keras.Model
        Any Keras model mapping a feature dict ``{key: [N, ...]}`` to ratings ``[N]`` (or
        ``[N, 1]``). It is built on first use if needed.
    inner_lr : float
        Step size ``alpha`` of the inner-loop gradient steps.
    inner_steps : int
        Number of inner-loop steps, in training and (by default) at evaluation.
    adapt : "all", regex, callable or list of variables
        Which trainable variables the inner loop adapts: all, those whose ``path`` matches the
        regular expression, those for which the callable returns True, or the listed ones.
        The others are shared by all tasks and learned in the outer loop only (ANIL/MeLU).
    seed : int
        Seeds the task order of every epoch.
    vectorize : bool
        Process a meta-batch with ``tf.vectorized_map`` (True) or an unrolled per-task loop.
    jit_compile : bool
        Compile the steps with XLA. Off by default: on CPU, XLA ran the vectorized MAML step
        of the MeLU network about 100x *slower* than the default graph in our measurements
        (meta-batch 32); it is meant for accelerators.
    """

    #: Short display name used in messages and tables.
    display_name = "meta-learner"

    def __init__(
        self,
        model: keras.Model,
        inner_lr: float = 0.01,
        inner_steps: int = 1,
        adapt: AdaptSpec = "all",
        seed: int = 0,
        vectorize: bool = True,
        jit_compile: bool = False,
    ):
        where = self.display_name
        if not isinstance(model, keras.Model):
            raise TypeError(f"{where}: model must be a keras.Model (e.g. "
                            f"metarec.models.build_model('mf', encoder.spec)), got "
                            f"{type(model).__name__}.")
        self.model = model
        self.inner_lr = check_positive(where, "inner_lr", inner_lr,
                                       "(the inner-loop step size)")
        self.inner_steps = check_int(where, "inner_steps", inner_steps, 0)
        _check_adapt_spec(where, adapt)
        self.adapt_spec = adapt
        self.seed = check_int(where, "seed", seed, 0)
        #: Fingerprint of the FeatureEncoder of the first tasks seen (see _check_tasks).
        self.encoder_fingerprint: str | None = None
        self.vectorize = bool(vectorize)
        self.jit_compile = bool(jit_compile)
        self.optimizer: keras.optimizers.Optimizer | None = None
        self.history: keras.callbacks.History | None = None
        self._adapt_idx: list[int] | None = None
        self._compiled: dict[Any, Callable] = {}
        self._checked = False
        self._call_takes_training = "training" in inspect.signature(model.call).parameters

    # ------------------------------------------------------------------ configuration
    def get_config(self) -> dict[str, Any]:
        """Hyper-parameters, JSON-able (used by :meth:`save`)."""
        if callable(self.adapt_spec) or not isinstance(self.adapt_spec, str):
            adapt = "__selected__"
        else:
            adapt = self.adapt_spec
        return {
            "inner_lr": self.inner_lr,
            "inner_steps": self.inner_steps,
            "adapt": adapt,
            "seed": self.seed,
            "vectorize": self.vectorize,
            "jit_compile": self.jit_compile,
        }

    def __repr__(self) -> str:
        cfg = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({self.model.name}, {cfg})"

    def compile(self, optimizer: keras.optimizers.Optimizer | str | None = None) -> MetaLearner:
        """Set the outer-loop optimizer (default: Adam with learning rate 1e-3)."""
        if optimizer is None:
            optimizer = keras.optimizers.Adam(1e-3)
        self.optimizer = keras.optimizers.get(optimizer)
        self._compiled.clear()
        return self

    # ------------------------------------------------------------------ variables
    def _build(self, x: dict[str, Any]) -> None:
        """Build the model on rows ``x`` (``[N, ...]``) and check its input and output shapes."""
        if not self._checked:
            self._check_model_on(x)
        if self._adapt_idx is None:
            self._adapt_idx = self._select(self.adapt_spec)
            self._build_extra()

    def _select(self, spec: AdaptSpec) -> list[int]:
        variables = self.model.trainable_variables
        if isinstance(spec, str) and spec == "all":
            chosen = list(range(len(variables)))
        elif isinstance(spec, str):
            pattern = re.compile(spec)
            chosen = [i for i, v in enumerate(variables) if pattern.search(v.path)]
        elif callable(spec):
            chosen = [i for i, v in enumerate(variables) if spec(v)]
        else:
            ids = {id(v) for v in spec}
            chosen = [i for i, v in enumerate(variables) if id(v) in ids]
            foreign = [v.path for v in spec if id(v) not in {id(w) for w in variables}]
            if foreign:
                raise ValueError(
                    f"{self.display_name}: adapt lists {len(foreign)} variable(s) that are not "
                    f"trainable variables of model {self.model.name!r}: {', '.join(foreign)}. "
                    "Pass variables of this model (e.g. model.trainable_variables[:2]) or a "
                    "regular expression.")
        if not chosen:
            paths = ", ".join(v.path for v in variables)
            raise ValueError(
                f"{self.display_name}: adapt={spec!r} selects no trainable variable of model "
                f"{self.model.name!r}. Its variables are: {paths}."
            )
        return chosen

    def _build_extra(self) -> None:
        """Create learner-owned variables (Meta-SGD's learning rates)."""

    @property
    def adapted_variables(self) -> list[Any]:
        """The model variables the inner loop adapts."""
        if self._adapt_idx is None:
            raise RuntimeError("The learner is not built yet: call fit, evaluate or adapt first.")
        return [self.model.trainable_variables[i] for i in self._adapt_idx]

    @property
    def extra_variables(self) -> list[tf.Variable]:
        """Outer-loop variables owned by the learner, not the model (empty for MAML)."""
        return []

    def _split(self, values: Sequence[tf.Tensor]) -> tuple[list[tf.Tensor], list[tf.Tensor]]:
        adapt = set(self._adapt_idx or [])
        fast = [values[i] for i in self._adapt_idx]
        frozen = [v for i, v in enumerate(values) if i not in adapt]
        return fast, frozen

    def _merge(self, fast: Sequence[tf.Tensor], frozen: Sequence[tf.Tensor]) -> list[tf.Tensor]:
        fast_it, frozen_it = iter(fast), iter(frozen)
        adapt = set(self._adapt_idx)
        n = len(fast) + len(frozen)
        return [next(fast_it) if i in adapt else next(frozen_it) for i in range(n)]

    # ------------------------------------------------------------------ pure functions
    def _forward(self, values, non_trainable, x, training: bool = True):
        # stateless_call hands kwargs straight to call(): pass `training` only if accepted.
        kwargs = {"training": training} if self._call_takes_training else {}
        pred, non_trainable = self.model.stateless_call(values, non_trainable, x, **kwargs)
        if len(pred.shape) == 2 and pred.shape[-1] == 1:
            pred = tf.squeeze(pred, -1)
        return pred, non_trainable

    def _task_loss(self, fast, frozen, nt, x, y, mask, training=True):
        pred, nt = self._forward(self._merge(fast, frozen), nt, x, training)
        return masked_mse(pred, y, mask), nt

    def _inner_update(self, fast: list[tf.Tensor], grads: list[tf.Tensor]) -> list[tf.Tensor]:
        """One inner step; Meta-SGD overrides it with learned per-parameter rates."""
        return [w - self.inner_lr * g for w, g in zip(fast, grads, strict=True)]

    def _adapt_task(self, fast, frozen, nt, x, y, mask, steps, *, create_graph: bool,
                    training: bool = True):
        """``steps`` gradient steps on one task's support loss; returns the fast weights.

        With ``create_graph`` the steps stay differentiable (second-order MAML); without it
        the inner gradients are treated as constants (first-order MAML, evaluation).
        """
        for _ in range(steps):
            with tf.GradientTape() as tape:
                tape.watch(fast)
                loss, nt = self._task_loss(fast, frozen, nt, x, y, mask, training)
            grads = [_dense(g) if g is not None else tf.zeros_like(w)
                     for g, w in zip(tape.gradient(loss, fast), fast, strict=True)]
            if not create_graph:
                grads = [tf.stop_gradient(g) for g in grads]
            fast = self._inner_update(fast, grads)
        return fast, nt

    def _map_tasks(self, fn: Callable, elems: Any) -> Any:
        """Apply ``fn`` to each task of a batch: vectorized, or as an unrolled loop."""
        if self.vectorize:
            return tf.vectorized_map(fn, elems)
        n = tf.nest.flatten(elems)[0].shape[0]
        outs = [fn(tf.nest.map_structure(lambda t, i=i: t[i], elems)) for i in range(n)]
        return tf.nest.map_structure(lambda *xs: tf.stack(xs), *outs)

    # ------------------------------------------------------------------ outer step
    def _meta_loss_and_grads(self, theta, extra, nt, batch):
        """Return ``(meta_loss, grads for theta, grads for extra)`` for one meta-batch."""
        raise NotImplementedError

    def _train_step_fn(self):
        key = "train"
        if key not in self._compiled:
            def step(batch):
                variables = self.model.trainable_variables
                theta = [tf.convert_to_tensor(v) for v in variables]
                extra = [tf.convert_to_tensor(v) for v in self.extra_variables]
                nt = [tf.convert_to_tensor(v) for v in self.model.non_trainable_variables]
                loss, grads, extra_grads = self._meta_loss_and_grads(theta, extra, nt, batch)
                pairs = [(g, v) for g, v in zip(grads, variables, strict=True) if g is not None]
                pairs += [(g, v) for g, v in zip(extra_grads, self.extra_variables, strict=True)
                          if g is not None]
                if self.jit_compile:  # XLA compiles check_numerics to a no-op
                    _apply_if_finite(self.optimizer, loss, pairs)
                    return loss
                # A non-finite loss or gradient stops the step before any weight changes.
                grads_ = _finite_or_stop(loss, [g for g, _ in pairs])
                self.optimizer.apply(grads_, [v for _, v in pairs])
                return loss
            self._compiled[key] = tf.function(step, jit_compile=self.jit_compile,
                                              reduce_retracing=self.vectorize)
        return self._compiled[key]

    def meta_gradients(self, batch: TaskBatch) -> tuple[tf.Tensor, list[tf.Tensor | None]]:
        """The meta-loss and its gradients for the model's trainable variables (no update).

        For tests and teaching: the same computation as one training step, without applying
        it. Returns ``(loss, grads)`` with ``grads`` aligned with
        ``model.trainable_variables``.
        """
        tensors = self._prepare(batch)
        theta = [tf.convert_to_tensor(v) for v in self.model.trainable_variables]
        extra = [tf.convert_to_tensor(v) for v in self.extra_variables]
        nt = [tf.convert_to_tensor(v) for v in self.model.non_trainable_variables]
        if "meta_gradients" not in self._compiled:
            self._compiled["meta_gradients"] = tf.function(self._meta_loss_and_grads,
                                                           reduce_retracing=self.vectorize)
        loss, grads, _ = self._compiled["meta_gradients"](theta, extra, nt, tensors)
        return loss, grads

    # ------------------------------------------------------------------ input checks
    def _prepare(self, batch: TaskBatch) -> tuple[Any, ...]:
        empty = np.flatnonzero(batch.support_mask.sum(axis=1) == 0)
        if len(empty) and self.inner_steps > 0:
            users = batch.user_ids[empty][:10].tolist()
            raise ValueError(
                f"{self.display_name}: the support set of {len(empty)} task(s) is empty or all "
                f"padding (users {users}); there is nothing to adapt on. Build tasks with "
                "min_ratings > n_query, or drop these users."
            )
        self._build({k: v[0] for k, v in batch.support_x.items()})
        return tuple(
            tf.nest.map_structure(tf.convert_to_tensor, part) for part in batch.as_tuple()
        )

    def _check_model_on(self, x: dict[str, Any]) -> None:
        sample = {k: np.asarray(v) for k, v in x.items()}
        try:
            out = self.model(sample)
        except Exception as err:  # the model's own message is kept below
            shapes = {k: tuple(v.shape) for k, v in sample.items()}
            raise ValueError(
                f"{self.display_name}: the task features {shapes} do not fit model "
                f"{self.model.name!r}: {err}. Build the model from the FeatureSpec of the same "
                "FeatureEncoder that encoded these tasks."
            ) from err
        n = len(next(iter(sample.values())))
        if tuple(out.shape) not in ((n,), (n, 1)):
            raise ValueError(
                f"{self.display_name}: model {self.model.name!r} returned shape "
                f"{tuple(out.shape)} for {n} ratings; a recommender must return one rating per "
                f"row, shape ({n},) or ({n}, 1)."
            )
        self._checked = True

    def _check_tasks(self, tasks: Any, where: str, name: str = "tasks") -> None:
        """A non-empty TaskSet encoded by the same FeatureEncoder as the earlier tasks."""
        from metarec.data.pipeline import TaskStream

        if isinstance(tasks, TaskStream) and name == "tasks" and where.endswith(".fit"):
            if len(tasks) == 0:
                raise ValueError(f"{where}: the TaskStream is empty.")
            return  # streamed tasks: built from one encoder's arrays, checked by the stream
        if not isinstance(tasks, TaskSet):
            hint = (" (a TaskBatch: pass the TaskSet it came from)"
                    if isinstance(tasks, TaskBatch) else "")
            raise TypeError(f"{where}: {name} must be a TaskSet (from build_tasks or "
                            f"scenario_tasks), got {type(tasks).__name__}{hint}.")
        if len(tasks) == 0:
            label = "" if name == "tasks" else f" {name}"
            raise ValueError(f"{where}: the TaskSet{label} is empty; check the filters of "
                             "build_tasks (min_ratings, max_ratings, support_size).")
        fingerprint = tasks.encoder_fingerprint
        if fingerprint is None:
            return  # hand-built tasks: nothing to compare
        if self.encoder_fingerprint is None:
            self.encoder_fingerprint = fingerprint
        elif fingerprint != self.encoder_fingerprint:
            raise ValueError(
                f"{where}: {name} were encoded by another FeatureEncoder (fingerprint "
                f"{fingerprint}) than the tasks this learner was trained or evaluated on "
                f"({self.encoder_fingerprint}); their ids and features mean other things to "
                "the model. Build them with the encoder of the training data (the one whose "
                f"encoder.fingerprint is {self.encoder_fingerprint!r}).")

    # ------------------------------------------------------------------ training loop
    def fit(
        self,
        tasks: TaskSet,
        epochs: int = 1,
        batch_size: int = 32,
        validation_tasks: TaskSet | None = None,
        callbacks: Sequence[keras.callbacks.Callback] | None = None,
        verbose: int = 1,
        shuffle: bool = True,
        validation_batch_size: int = 256,
        strategy: tf.distribute.Strategy | None = None,
        bucket: bool = False,
    ) -> keras.callbacks.History:
        """Meta-train on ``tasks``; returns a Keras ``History`` (``history.history``).

        Each epoch visits every task once in meta-batches of ``batch_size``. The logged
        ``loss`` is the meta-loss (query loss after adaptation for MAML-type learners). With
        ``validation_tasks``, ``val_mae``/``val_rmse``/``val_ndcg@k`` are logged after every
        epoch, so ``keras.callbacks.EarlyStopping(monitor="val_mae")`` works. A progress bar
        shows the running meta-loss when ``verbose=1``.

        ``strategy`` (or the ``tf.distribute`` strategy whose scope is active) trains
        data-parallel: each meta-batch is split over the replicas (:mod:`metarec.distribute`).
        ``bucket=True`` groups tasks by support size so that each meta-batch pads to its own
        longest support set (:mod:`metarec.data.buckets`; same losses, less padding).
        """
        where = f"{self.display_name}.fit"
        epochs = check_int(where, "epochs", epochs, 1)
        batch_size = check_int(where, "batch_size", batch_size, 1)
        validation_batch_size = check_int(where, "validation_batch_size",
                                          validation_batch_size, 1)
        verbose = check_int(where, "verbose", verbose, 0, 2)
        self._check_tasks(tasks, where)
        if validation_tasks is not None:
            self._check_tasks(validation_tasks, where, "validation_tasks")
        if self.optimizer is None:
            self.compile()
        trainer = _distributed_trainer(self, strategy, tasks, bucket)
        steps = (int(np.ceil(len(tasks) / batch_size)) if trainer is None
                 else trainer.steps_per_epoch(tasks, batch_size))
        cb = keras.callbacks.CallbackList(
            list(callbacks or []), add_history=True, add_progbar=verbose != 0,
            model=self.model, verbose=verbose, epochs=epochs, steps=steps,
        )
        for callback in callbacks or []:
            _set_monitor_mode(callback)
        step_fn = self._train_step_fn() if trainer is None else trainer.step
        self.model.stop_training = False
        cb.on_train_begin()
        logs: dict[str, float] = {}
        # The step counter advances even in a step the finiteness check stops (it does not
        # read the gradients): remember it, so a stopped step leaves the optimizer unchanged.
        iterations = int(self.optimizer.iterations.numpy())
        try:
            for epoch in range(epochs):
                cb.on_epoch_begin(epoch)
                losses = []
                batches = _epoch_batches(trainer, tasks, batch_size, shuffle, self.seed + epoch,
                                         bucket)
                for i, batch in enumerate(batches):
                    cb.on_train_batch_begin(i)
                    try:
                        loss = float(step_fn(self._prepare(batch) if trainer is None
                                             else batch))
                    except tf.errors.InvalidArgumentError as err:
                        if _NONFINITE_TAG not in str(err):
                            raise
                        self.optimizer.iterations.assign(iterations)
                        loss = float("nan")
                    if not np.isfinite(loss):
                        raise FloatingPointError(
                            f"{self.display_name}: the meta-loss or its gradient became NaN or "
                            f"infinite at epoch {epoch + 1}, step {i + 1}; that step was not "
                            "applied, so the model keeps its last finite weights. Lower the "
                            f"outer learning rate or inner_lr (now {self.inner_lr}), or check "
                            "the ratings for NaN."
                        )
                    iterations += 1
                    losses.append(loss)
                    cb.on_train_batch_end(i, {"loss": loss})
                logs = {"loss": float(np.mean(losses))}
                if validation_tasks is not None:
                    val = self.evaluate(validation_tasks, batch_size=validation_batch_size)
                    logs.update({f"val_{k}": v for k, v in val.items()})
                cb.on_epoch_end(epoch, logs)
                if getattr(self.model, "stop_training", False):
                    break
        finally:
            # Also on the way out of an error: callbacks that restore weights (KeepBestWeights)
            # and close progress bars must run.
            cb.on_train_end(logs)
        self.history = next(c for c in cb.callbacks if isinstance(c, keras.callbacks.History))
        return self.history

    def _replica_share(self, batch: tuple[Any, ...]) -> tf.Tensor:
        """What a replica's chunk weighs in the meta-loss: its number of tasks.

        The meta-loss is a mean over tasks, so chunk ``r`` contributes ``T_r / T`` of it
        (:mod:`metarec.distribute`). FineTune, whose loss is a mean over rating rows, counts rows.
        """
        return tf.cast(tf.shape(batch[1])[0], tf.float32)

    # ------------------------------------------------------------------ evaluation
    def _per_task_fn(self, key: Any, one_task: Callable) -> Callable:
        """Compile ``one_task(fast0, frozen, nt, (sx, sy, sm, qx))`` mapped over a batch's tasks.

        Shared by prediction and the adaptation curve: both start every task from the current
        weights, split into adapted (``fast0``) and frozen ones.
        """
        if key not in self._compiled:
            def batch_fn(batch):
                sx, sy, sm, qx, _, _ = batch
                theta = [tf.convert_to_tensor(v) for v in self.model.trainable_variables]
                nt = [tf.convert_to_tensor(v) for v in self.model.non_trainable_variables]
                fast0, frozen = self._split(theta)
                return self._map_tasks(lambda task: one_task(fast0, frozen, nt, task),
                                       (sx, sy, sm, qx))
            self._compiled[key] = tf.function(batch_fn, jit_compile=self.jit_compile,
                                              reduce_retracing=self.vectorize)
        return self._compiled[key]

    def _predict_fn(self, steps: int):
        def one(fast0, frozen, nt, task):
            sx, sy, sm, qx = task
            fast, nt = self._adapt_task(list(fast0), frozen, nt, sx, sy, sm, steps,
                                        create_graph=False, training=False)
            pred, _ = self._forward(self._merge(fast, frozen), nt, qx, training=False)
            return pred

        return self._per_task_fn(("predict", steps), one)

    def _predict_curve_fn(self, max_steps: int):
        def one(fast0, frozen, nt, task):
            sx, sy, sm, qx = task
            fast, preds = list(fast0), []
            for k in range(max_steps + 1):
                if k > 0:  # one more inner step from the previous weights
                    fast, _ = self._adapt_task(fast, frozen, nt, sx, sy, sm, 1,
                                               create_graph=False, training=False)
                pred, _ = self._forward(self._merge(fast, frozen), nt, qx, training=False)
                preds.append(pred)
            return tf.stack(preds)  # [K + 1, Q]

        return self._per_task_fn(("curve", max_steps), one)

    def evaluate_steps(self, tasks: TaskSet, max_steps: int, batch_size: int = 256,
                       ks: Sequence[int] = (1, 3), per_task: bool = False,
                       diverged: str = "raise",
                       clip: tuple[float, float] | None = None) -> pd.DataFrame:
        """Metrics after 0, 1, ..., ``max_steps`` inner steps, computed in one pass.

        The adaptation curve: the same as calling :meth:`evaluate` with ``steps=k`` for every
        ``k`` (same step rule and rate), at the cost of one ``evaluate(steps=max_steps)``.
        Returns one row per step count (column ``steps``), or with ``per_task`` one row per
        (step count, task) with ``user_id``.

        ``diverged``: what to do when adaptation makes a task's predictions NaN or infinite
        (a too-large inner learning rate after many steps): ``"raise"`` a ``ValueError``, or
        ``"nan"``: that task's metrics are NaN at that step count (and the step count's
        average is NaN), so a curve can show where adaptation breaks down; or ``"fallback"``:
        that task is scored with its un-adapted (0-step) predictions, as a guarded service
        would serve it. The per-task table flags such rows in column ``diverged``.

        ``clip=(low, high)`` clips predictions to the rating scale before scoring (infinite
        predictions become the nearest bound; NaN stays NaN).
        """
        if diverged not in ("raise", "nan", "fallback"):
            raise ValueError(f"evaluate_steps: diverged must be 'raise', 'nan' or 'fallback', "
                             f"got {diverged!r}.")
        where = f"{self.display_name}.evaluate_steps"
        self._check_tasks(tasks, where)
        max_steps = check_int(where, "max_steps", max_steps, 0)
        batch_size = check_int(where, "batch_size", batch_size, 1)
        ks = _check_ks(where, ks)
        if clip is not None and not (len(clip) == 2 and float(clip[0]) < float(clip[1])):
            raise ValueError(f"{where}: clip must be (low, high) with low < high, got {clip!r}.")
        frames = []
        for batch in tasks.batches(batch_size, shuffle=False):
            preds = self._predict_curve_fn(max_steps)(self._prepare(batch)).numpy()
            if clip is not None:
                preds = np.clip(preds, clip[0], clip[1])  # NaN stays NaN
            for k in range(max_steps + 1):
                pred = preds[:, k]
                bad = ~np.isfinite(np.where(batch.query_mask > 0, pred, 0.0)).all(axis=1)
                if bad.any() and diverged == "raise":
                    raise ValueError(
                        f"{self.display_name}: predictions of {int(bad.sum())} task(s) became "
                        f"NaN or infinite after {k} inner steps (inner_lr={self.inner_lr}); "
                        "lower inner_lr or the number of steps, or pass diverged='nan'.")
                fallback = bad if diverged == "fallback" else np.zeros_like(bad)
                pred = np.where(bad[:, None], np.where(fallback[:, None], preds[:, 0], 0.0), pred)
                metrics = task_metrics(batch.query_y, pred, batch.query_mask, ks=tuple(ks))
                lost = bad & ~fallback
                frame = pd.DataFrame({k_: np.where(lost, np.nan, np.asarray(v, dtype=float))
                                      for k_, v in metrics.items()})
                frame["diverged"] = bad
                frame.insert(0, "steps", k)
                frame.insert(1, "user_id", batch.user_ids)
                frames.append(frame)
        table = pd.concat(frames, ignore_index=True)
        if per_task:
            return table.sort_values("steps", kind="stable").reset_index(drop=True)
        rows = []
        for k, part in table.groupby("steps", sort=True):
            # A diverged task makes the step count's average NaN (not a silent, kinder mean).
            summary = {c: float(part[c].mean(skipna=False)) for c in part.columns
                       if c not in ("steps", "user_id")}
            rows.append({"steps": int(k), **summary})
        return pd.DataFrame(rows)

    def predict_query(self, batch: TaskBatch, steps: int | None = None) -> np.ndarray:
        """Adapt to each task's support set, then predict its query set: ``[T, Q]``."""
        if steps is not None:
            steps = check_int(f"{self.display_name}.predict_query", "steps", steps, 0)
        steps = self.inner_steps if steps is None else steps
        tensors = self._prepare(batch)
        return self._predict_fn(steps)(tensors).numpy()

    def evaluate(
        self,
        tasks: TaskSet,
        steps: int | None = None,
        batch_size: int = 256,
        ks: Sequence[int] = (1, 3),
        per_task: bool = False,
    ) -> dict[str, float] | pd.DataFrame:
        """Adapt on each support set with ``steps`` inner steps and score the query sets.

        Returns the task-averaged metrics (``mae``, ``rmse``, ``ndcg@k``; definitions in
        :mod:`metarec.metrics`), or one row per task (with ``user_id``) if ``per_task``.
        """
        where = f"{self.display_name}.evaluate"
        self._check_tasks(tasks, where)
        if steps is not None:
            steps = check_int(where, "steps", steps, 0)
        batch_size = check_int(where, "batch_size", batch_size, 1)
        ks = _check_ks(where, ks)
        frames = []
        for batch in tasks.batches(batch_size, shuffle=False):
            pred = self.predict_query(batch, steps)
            metrics = task_metrics(batch.query_y, pred, batch.query_mask, ks=tuple(ks))
            frame = pd.DataFrame({k: np.asarray(v) for k, v in metrics.items()})
            frame.insert(0, "user_id", batch.user_ids)
            frame.insert(1, "n_support", batch.support_mask.sum(axis=1).astype(int))
            frames.append(frame)
        table = pd.concat(frames, ignore_index=True)
        if per_task:
            return table
        return summarize({k: table[k].to_numpy() for k in table.columns
                          if k not in ("user_id", "n_support")})

    # ------------------------------------------------------------------ one new user
    def adapt(self, support: Task | tuple[dict[str, np.ndarray], np.ndarray],
              steps: int | None = None) -> AdaptedModel:
        """Personalise the model to one user from their support ratings.

        ``support`` is a :class:`Task` (its support set is used) or ``(x, y)`` with feature
        dict ``x`` (``[S, ...]``) and ratings ``y`` (``[S]``). Returns an :class:`AdaptedModel`.
        """
        where = f"{self.display_name}.adapt"
        if isinstance(support, Task):
            if support.encoder_fingerprint is not None:
                self._check_tasks(TaskSet([support]), where, "support")
            x, y = support.support_x, support.support_y
        elif isinstance(support, tuple | list) and len(support) == 2 \
                and isinstance(support[0], dict):
            x, y = support
        else:
            raise TypeError(f"{where}: support must be a Task or a pair (x, y) of a feature "
                            f"dict and ratings, got {type(support).__name__}.")
        y = np.asarray(y, np.float32)
        if y.ndim != 1:
            raise ValueError(f"{where}: the support ratings y must be 1-D [S], got shape "
                             f"{y.shape}.")
        if len(y) == 0:
            raise ValueError(f"{where}: the support set is empty; give at "
                             "least one rating (or use the un-adapted model for a new user).")
        if not np.isfinite(y).all():
            raise ValueError(f"{where}: the support ratings contain NaN or infinite values; "
                             "drop or fix those ratings.")
        rows = {k: np.shape(v)[0] if np.ndim(v) else None for k, v in x.items()}
        if any(n != len(y) for n in rows.values()):
            raise ValueError(f"{where}: every feature of x needs one row per rating "
                             f"({len(y)} ratings), got rows {rows}.")
        if steps is not None:
            steps = check_int(where, "steps", steps, 0)
        self._build(x)
        steps = self.inner_steps if steps is None else steps
        theta = [tf.convert_to_tensor(v) for v in self.model.trainable_variables]
        nt = [tf.convert_to_tensor(v) for v in self.model.non_trainable_variables]
        fast, frozen = self._split(theta)
        xt = {k: tf.convert_to_tensor(v) for k, v in x.items()}
        fast, _ = self._adapt_task(fast, frozen, nt, xt, tf.constant(y),
                                   tf.ones_like(tf.constant(y)), steps, create_graph=False,
                                   training=False)
        return AdaptedModel(self, fast, frozen)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Save model, hyper-parameters and learner variables into folder ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        config = self.get_config()
        if config["adapt"] == "__selected__":
            # Indices into model.trainable_variables: paths can change when a model that
            # creates its variables lazily is reloaded, the variable order does not.
            config["adapt"] = list(self._adapt_idx)
        self.model.save(path / "model.keras")
        extras = {f"extra_{i}": np.asarray(v) for i, v in enumerate(self.extra_variables)}
        np.savez(path / "learner_variables.npz", **extras)
        (path / "learner.json").write_text(
            json.dumps({"class": type(self).__name__, "config": config,
                        "encoder_fingerprint": self.encoder_fingerprint}, indent=2)
        )
        return path


def _distributed_trainer(learner: MetaLearner, strategy: Any, tasks: TaskSet, bucket: bool):
    """The :class:`metarec.distribute.DistributedTrainer` of ``fit``, or None on one device."""
    from metarec.distribute import DistributedTrainer, resolve_strategy

    strategy = resolve_strategy(strategy, learner)
    if strategy is None:
        return None
    trainer = DistributedTrainer(learner, strategy, bucket=bucket)
    trainer.build(tasks)
    return trainer


def _epoch_batches(trainer: Any, tasks: TaskSet, batch_size: int, shuffle: bool, seed: int,
                   bucket: bool):
    """One epoch's meta-batches: distributed, bucketed by support size, or plain."""
    if trainer is not None:
        return trainer.batches(tasks, batch_size, shuffle=shuffle, seed=seed)
    if bucket and isinstance(tasks, TaskSet):  # a TaskStream buckets its own batches
        from metarec.data.buckets import bucketed_batches

        # Lengths rounded up to a multiple of 8: a handful of shapes, so few retraces.
        return bucketed_batches(tasks, batch_size, shuffle=shuffle, seed=seed, multiple=8)
    return tasks.batches(batch_size, shuffle=shuffle, seed=seed)


def load_learner(path: str | Path) -> MetaLearner:
    """Load a learner saved with :meth:`MetaLearner.save`; predictions are identical.

    A damaged save (missing or unreadable file, bad JSON, unknown class, truncated archive,
    variables that do not fit) raises one :class:`ValueError` or :class:`FileNotFoundError`
    naming the file and what is wrong with it.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a folder holding a saved learner; save one "
                                "with learner.save(path) and pass that folder.")
    meta_path = path / "learner.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"{path} holds no saved learner (learner.json is missing); "
                                "save one with learner.save(path).")
    try:
        meta = json.loads(meta_path.read_text())
        cls_name, config = meta["class"], dict(meta["config"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{meta_path} is damaged ({type(err).__name__}: {err}); it must be the "
                         "JSON written by learner.save with keys 'class' and 'config'. Save "
                         "the learner again.") from None
    import metarec.models  # noqa: F401  (registers the package's Keras model classes)

    if cls_name not in _REGISTRY:
        raise ValueError(f"{meta_path} names the learner class {cls_name!r}, which is not "
                         f"registered; known: {sorted(_REGISTRY)}. Import the module that "
                         "defines it (decorated with @register_learner) before loading.")
    cls = _REGISTRY[cls_name]
    model_path = path / "model.keras"
    if not model_path.exists():
        raise FileNotFoundError(f"{model_path} is missing, so the saved learner in {path} is "
                                "incomplete; save the learner again.")
    try:
        model = keras.saving.load_model(model_path)
    except Exception as err:  # Keras raises many types for a damaged archive
        raise ValueError(f"{model_path} exists but cannot be loaded as a Keras model "
                         f"({type(err).__name__}: {str(err)[:300]}); the file is truncated or "
                         "damaged, or a custom model class is not imported. Save the learner "
                         "again.") from None
    try:
        if isinstance(config.get("adapt"), list):
            config["adapt"] = [model.trainable_variables[i] for i in config["adapt"]]
        learner = cls(model, **config)
        learner._adapt_idx = learner._select(learner.adapt_spec)
    except (TypeError, ValueError, IndexError) as err:
        raise ValueError(f"{meta_path} holds a configuration that does not fit {cls_name} or "
                         f"its model ({err}); save the learner again.") from None
    learner._build_extra()
    learner.encoder_fingerprint = meta.get("encoder_fingerprint")
    extras_path = path / "learner_variables.npz"
    if not extras_path.exists():
        raise FileNotFoundError(f"{extras_path} is missing, so the saved learner in {path} is "
                                "incomplete; save the learner again.")
    try:
        with np.load(extras_path) as extras:
            for i, var in enumerate(learner.extra_variables):
                var.assign(extras[f"extra_{i}"])
    except Exception as err:  # zipfile, KeyError, shape mismatch: all mean a damaged file
        raise ValueError(f"{extras_path} exists but does not hold the learner's "
                         f"{len(learner.extra_variables)} variable(s) ({type(err).__name__}: "
                         f"{err}); it is truncated or damaged. Save the learner again.") from None
    return learner
