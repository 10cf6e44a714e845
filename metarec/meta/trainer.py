"""Meta-training: the training step, its finiteness guard, and ``fit``'s epoch loop.

As in Keras's trainer, :meth:`Trainer.train_step` is one optimizer step on the meta-batch a
replica sees, and ``fit`` always runs it through ``strategy.run`` -- TensorFlow's default
strategy on one device, ``MirroredStrategy`` or ``MultiWorkerMirroredStrategy`` on several
(:mod:`metarec.distribute` chooses the strategy and feeds the replicas). There is one step, so
every guarantee holds on every device count: a non-finite meta-loss or gradient stops the step
before any weight or optimizer slot changes, and ``fit`` then raises ``FloatingPointError``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from metarec import distribute
from metarec._validate import check_int
from metarec.data.tasks import TaskSource
from metarec.metrics import NonFinitePredictionError

#: Tag of the in-graph finiteness check; ``fit`` recognises its error by it.
NONFINITE_TAG = "metarec: non-finite meta-loss or gradient, update not applied"


def finite_or_stop(loss: tf.Tensor, grads: list[Any]) -> list[Any]:
    """``grads`` unchanged, but the step fails before using them if any value is NaN or inf.

    ``check_numerics`` passes its input through and raises when a value is not finite; the
    optimizer update reads the checked gradients (under a strategy: the all-reduce does, so a
    failing check on any replica stops every replica), so a failing check stops the step
    before any weight or optimizer slot is written. Unlike a ``tf.cond`` around the update this
    leaves the update graph (and so the numbers of finite steps) exactly as it was, and keeps
    embedding gradients sparse (``IndexedSlices``).
    """
    with tf.control_dependencies([tf.debugging.check_numerics(loss, NONFINITE_TAG)]):
        out = []
        for g in grads:
            if isinstance(g, tf.IndexedSlices):
                values = tf.debugging.check_numerics(g.values, NONFINITE_TAG)
                out.append(tf.IndexedSlices(values, g.indices, g.dense_shape))
            else:
                out.append(tf.debugging.check_numerics(g, NONFINITE_TAG))
    return out


def apply_if_finite(optimizer: keras.optimizers.Optimizer, loss: tf.Tensor,
                    grads: list[Any], variables: list[Any]) -> tf.Tensor:
    """The XLA variant of the guard: apply the update under ``tf.cond`` only if all is finite.

    Under ``jit_compile`` ``check_numerics`` does not check, so the update is made conditional
    instead; the optimizer's slots are created first (no variable may be created in a branch).
    Returns whether the update was applied (a boolean tensor).
    """
    values = [g.values if isinstance(g, tf.IndexedSlices) else g for g in grads]
    finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(loss))]
                           + [tf.reduce_all(tf.math.is_finite(v)) for v in values])
    if not optimizer.built:
        optimizer.build(variables)

    def apply() -> tf.Tensor:
        optimizer.apply(grads, variables)
        return tf.constant(True)

    return tf.cond(finite, apply, lambda: tf.constant(False))


def set_monitor_mode(callback: Any) -> None:
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


class Trainer:
    """Meta-training (mixed into :class:`~metarec.meta.MetaLearner`)."""

    # ------------------------------------------------------------------ one step
    def _replica_share(self, batch: tuple[Any, ...]) -> tf.Tensor:
        """What a replica's chunk weighs in the meta-loss: its number of tasks.

        The meta-loss is a mean over tasks, so chunk ``r`` contributes ``T_r / T`` of it
        (:mod:`metarec.distribute`). FineTune, whose loss is a mean over rating rows, counts rows.
        """
        return tf.cast(tf.shape(batch[1])[0], tf.float32)

    def train_step(self, batch: tuple[Any, ...]) -> tf.Tensor:
        """One outer-loop update from a meta-batch: meta-gradient, finiteness guard, optimizer.

        Runs in a replica context (``strategy.run``; :meth:`make_train_function` compiles
        that). ``batch`` is :meth:`~metarec.meta.checks.InputChecks.prepare`'s tensors, or under
        a ``tf.distribute`` strategy this replica's chunk of them. Returns the meta-loss
        weighted by the replica's share of the meta-batch (on one device the share is 1: the
        meta-loss itself), so that the replicas' values sum to the meta-loss of the whole
        batch. The update is applied only if the loss and every gradient are finite;
        otherwise the step fails with an error tagged :data:`NONFINITE_TAG` (under XLA: returns
        NaN) and nothing changes.

        Override it to change what one step does (e.g. clip the meta-gradient); keep the
        guard (:func:`finite_or_stop`) in front of ``optimizer.apply``.
        """
        ctx = tf.distribute.get_replica_context()
        if ctx is None:
            raise RuntimeError(f"{self.display_name}.train_step runs in a replica context: call "
                               "it through strategy.run, as make_train_function() does.")
        # Under a tf.distribute strategy (even with one replica) every replica weighs its
        # chunk; the optimizer all-reduces (sums) the weighted gradients.
        replicated = tf.distribute.has_strategy()
        if replicated:
            local = self._replica_share(batch)
            weight = local / ctx.all_reduce(tf.distribute.ReduceOp.SUM, local)
        variables, extra_variables = self.model.trainable_variables, self.extra_variables
        theta, extra, nt = self._values()
        loss, grads, extra_grads = self._meta_loss_and_grads(theta, extra, nt, batch)
        pairs = [(g, v) for g, v in zip(grads, variables, strict=True) if g is not None]
        pairs += [(g, v) for g, v in zip(extra_grads, extra_variables, strict=True)
                  if g is not None]
        grads, variables = [g for g, _ in pairs], [v for _, v in pairs]
        if self.jit_compile and not replicated:  # XLA compiles check_numerics to a no-op
            applied = apply_if_finite(self.optimizer, loss, grads, variables)
            return tf.where(applied, loss, tf.constant(np.nan, loss.dtype))
        grads = finite_or_stop(loss, grads)
        if replicated:
            # The weighted chunk gradients sum to the whole batch's gradient (embedding
            # gradients all-reduced as the dense tensors they are).
            grads = [tf.convert_to_tensor(g) * tf.cast(weight, g.dtype) for g in grads]
        self.optimizer.apply(grads, variables)
        return tf.cast(loss, tf.float32) * weight if replicated else loss

    def make_train_function(self, strategy: tf.distribute.Strategy | None = None) -> Callable:
        """The compiled training step: :meth:`train_step` on every replica of ``strategy``.

        ``strategy`` defaults to TensorFlow's current one (the default strategy: one device).
        The function takes :meth:`~metarec.meta.checks.InputChecks.prepare`'s tensors (one
        device) or a distributed meta-batch (:func:`metarec.distribute.distribute_batches`) and
        returns the batch's meta-loss. It is compiled once per strategy, and again after a
        hyper-parameter changes.

        Examples
        --------
        >>> step = learner.make_train_function()                      # doctest: +SKIP
        >>> loss = float(step(learner.prepare(tasks.batch(range(32)))))  # doctest: +SKIP
        """
        strategy = strategy if strategy is not None else tf.distribute.get_strategy()
        key = ("train", strategy)
        if key not in self._compiled:
            replicated = not distribute.is_default_strategy(strategy)

            def train_function(batch):
                per_replica = strategy.run(self.train_step, args=(batch,))
                return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

            # XLA on one device only; distributed inputs vary in shape from step to step.
            self._compiled[key] = tf.function(
                train_function, jit_compile=self.jit_compile and not replicated,
                reduce_retracing=True if replicated else self.vectorize)
        return self._compiled[key]

    # ------------------------------------------------------------------ variables
    def build(self, tasks: TaskSource, strategy: tf.distribute.Strategy | None = None) -> None:
        """Create the variables before training, on the first tasks of ``tasks``.

        Builds the model and the learner's own variables (Meta-SGD's rates). Under a
        ``tf.distribute`` strategy (``strategy``, the active scope's, or the one that created
        the model's variables) this happens inside its scope, the variables are checked to be
        mirrored, and the optimizer's slots are created too (no variable may be created inside
        a replica's step). ``fit`` calls it; call it to set or inspect weights first.
        """
        strategy = distribute.resolve_strategy(strategy, self.model.trainable_variables)
        with strategy.scope():
            if self.optimizer is None:
                self.compile()
            self.check_batch(tasks.batch(np.arange(min(len(tasks), 2))))
            if distribute.is_default_strategy(strategy):
                return  # the optimizer builds itself for the variables that get gradients
            variables = list(self.model.trainable_variables) + self.extra_variables
            distribute.check_created_in_scope(
                strategy, variables + list(self.model.non_trainable_variables), self.optimizer,
                self.display_name)
            if not self.optimizer.built:
                self.optimizer.build(variables)

    def _build_optimizer(self, tasks: TaskSource) -> None:
        """Create the optimizer's slots before the first step (one device).

        A ``tf.function`` that creates variables on its first call is traced twice; built
        here, the training step is traced once per input signature (issue 21: one trace less
        per fresh learner, the largest part of a short tuning trial). The slots start at the
        same values as when the step creates them, so the numbers do not change
        (``tests/meta/test_trace_counts.py``).
        """
        if self.optimizer.built:
            return
        first = tasks.batch(np.arange(min(len(tasks), 2)))
        self._build({k: v[0] for k, v in first.support_x.items()})
        self.optimizer.build(list(self.model.trainable_variables) + self.extra_variables)

    # ------------------------------------------------------------------ the epoch loop
    def fit(
        self,
        tasks: TaskSource,
        epochs: int = 1,
        batch_size: int = 32,
        validation_tasks: Any = None,
        callbacks: Sequence[keras.callbacks.Callback] | None = None,
        verbose: int = 1,
        shuffle: bool = True,
        validation_batch_size: int = 256,
        strategy: tf.distribute.Strategy | None = None,
        bucket: bool = False,
        validation_diverged: str = "raise",
    ) -> keras.callbacks.History:
        """Meta-train on ``tasks``; returns a Keras ``History`` (``history.history``).

        ``tasks`` is a :class:`~metarec.data.TaskSet` or a
        :class:`~metarec.data.pipeline.TaskStream` (any :class:`~metarec.data.TaskSource`).
        Each epoch visits every task once in meta-batches of ``batch_size``. The logged
        ``loss`` is the meta-loss (query loss after adaptation for MAML-type learners). With
        ``validation_tasks`` (a TaskSet), ``val_mae``/``val_rmse``/``val_ndcg@k`` are logged after
        every epoch, so ``keras.callbacks.EarlyStopping(monitor="val_mae")`` works. A progress bar
        shows the running meta-loss when ``verbose=1``.

        Every step is :meth:`train_step`, run by ``strategy.run``. ``strategy`` (or the
        ``tf.distribute`` strategy whose scope is active, or the one that created the model's
        variables) trains data-parallel: each meta-batch is split over the replicas
        (:mod:`metarec.distribute`); without one, TensorFlow's default strategy runs it on one
        device. ``bucket=True`` groups a TaskSet's tasks by support size so that each meta-batch
        pads to its own longest support set (:mod:`metarec.data.buckets`; same losses, less
        padding).

        A non-finite meta-loss or gradient raises ``FloatingPointError`` without applying that
        step; callbacks' ``on_train_end`` still runs (``KeepBestWeights`` restores).

        ``validation_diverged``: what an epoch whose validation predictions are NaN does (the
        training loss was finite, but adapting to some validation user diverges). ``"raise"``
        (default): ``metarec.metrics.NonFinitePredictionError``. ``"worst"``: the epoch scores
        ``val_mae = val_rmse = inf`` (nDCG NaN), so early stopping counts it as no improvement
        and ``KeepBestWeights`` never keeps it; ``val_diverged`` (1.0 or 0.0) is logged every
        epoch. What a practitioner's early stopping does; the fair studies' runs use it.
        """
        where = f"{self.display_name}.fit"
        epochs = check_int(where, "epochs", epochs, 1)
        batch_size = check_int(where, "batch_size", batch_size, 1)
        validation_batch_size = check_int(where, "validation_batch_size",
                                          validation_batch_size, 1)
        verbose = check_int(where, "verbose", verbose, 0, 2)
        if validation_diverged not in ("raise", "worst"):
            raise ValueError(f"{where}: validation_diverged must be 'raise' or 'worst', got "
                             f"{validation_diverged!r}.")
        self.check_tasks(tasks, where, stream=True)
        if validation_tasks is not None:
            self.check_tasks(validation_tasks, where, "validation_tasks")
        strategy = distribute.resolve_strategy(strategy, self.model.trainable_variables)
        replicated = not distribute.is_default_strategy(strategy)
        replicas = int(strategy.num_replicas_in_sync)
        if batch_size < replicas:
            raise ValueError(f"{where}: batch_size={batch_size} is smaller than the {replicas} "
                             "replicas; every replica needs at least one task.")
        if len(tasks) < replicas:
            # Every meta-batch would be dropped (a replica without a task): nothing trained.
            raise ValueError(f"{where}: {len(tasks)} task(s) cannot feed the {replicas} "
                             "replicas (every meta-batch would be dropped and nothing trained); "
                             f"train on at least {replicas} tasks or on fewer replicas "
                             "(--devices, or the default strategy).")
        if self.optimizer is None:
            with strategy.scope():
                self.compile()
        if replicated:
            self.build(tasks, strategy)
        else:
            self._build_optimizer(tasks)
        train_function = self.make_train_function(strategy)
        steps = distribute.steps_per_epoch(len(tasks), batch_size, replicas)
        cb = keras.callbacks.CallbackList(
            list(callbacks or []), add_history=True, add_progbar=verbose != 0,
            model=self.model, verbose=verbose, epochs=epochs, steps=steps,
        )
        for callback in callbacks or []:
            set_monitor_mode(callback)
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
                for i, batch in enumerate(self._epoch(tasks, strategy, replicated, batch_size,
                                                      shuffle, self.seed + epoch, bucket)):
                    cb.on_train_batch_begin(i)
                    try:
                        loss = float(train_function(batch if replicated
                                                    else self.prepare(batch)))
                    except tf.errors.InvalidArgumentError as err:
                        if NONFINITE_TAG not in str(err):
                            raise
                        loss = float("nan")
                    if not np.isfinite(loss):
                        self.optimizer.iterations.assign(iterations)
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
                    logs.update(self._validation_logs(validation_tasks, validation_batch_size,
                                                      validation_diverged))
                cb.on_epoch_end(epoch, logs)
                if getattr(self.model, "stop_training", False):
                    break
        finally:
            # Also on the way out of an error: callbacks that restore weights (KeepBestWeights)
            # and close progress bars must run.
            cb.on_train_end(logs)
        self.history = next(c for c in cb.callbacks if isinstance(c, keras.callbacks.History))
        return self.history

    def _validation_logs(self, tasks: Any, batch_size: int, diverged: str) -> dict[str, float]:
        """``val_*`` metrics of one epoch, with ``fit``'s ``validation_diverged`` policy."""
        try:
            val = {f"val_{k}": v for k, v in self.evaluate(tasks, batch_size=batch_size).items()}
        except NonFinitePredictionError:
            if diverged == "raise":
                raise
            # The names evaluate() returns (default ks), all "worst": errors infinite,
            # rankings undefined.
            val = {"val_mae": float("inf"), "val_rmse": float("inf"),
                   "val_ndcg@1": float("nan"), "val_ndcg@3": float("nan"),
                   "val_diverged": 1.0}
            return val
        if diverged == "worst":
            val["val_diverged"] = 0.0
        return val

    def _epoch(self, tasks: TaskSource, strategy: tf.distribute.Strategy, replicated: bool,
               batch_size: int, shuffle: bool, seed: int, bucket: bool):
        """One epoch's meta-batches: TaskBatches on one device, per-replica chunks otherwise."""
        def batches():
            return tasks.training_batches(batch_size, shuffle=shuffle, seed=seed, bucket=bucket)

        if not replicated:
            return batches()

        def checked():
            for batch in batches():
                self.check_batch(batch)
                yield batch

        return distribute.distribute_batches(strategy, checked, tasks.batch([0]))
