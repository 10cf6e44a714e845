"""The learner core: hyper-parameters, which variables adapt, and the inner loop.

A meta-learner wraps any built Keras model and calls it *statelessly*:
``model.stateless_call(trainable_values, non_trainable_values, x)`` runs the model with weights
given as tensors. That is what lets one model hold a different set of "fast weights" per task:

* the **inner loop** adapts the selected variables (``adapt=``) to one task's support set with
  a few gradient steps, ``theta_i = theta - alpha * grad L_support_i(theta)``
  (``LearnerCore._adapt_task``);
* the **outer loop** updates the initial weights ``theta`` from the adapted weights' loss on
  the query sets (MAML family) or from the adapted weights themselves (Reptile): what one outer
  step computes is ``LearnerCore._meta_loss_and_grads``, the one method a subclass writes.

A meta-batch of tasks is processed as tensors with :func:`tf.vectorized_map` over the task axis
(no Python loop over tasks in the compiled step); padding rows carry mask 0 and do not count.

Hyper-parameters that compiled functions capture (``inner_lr``, ``inner_steps``,
``vectorize``, ``jit_compile``, MAML's ``first_order``) may be changed at any time: setting one
checks the value and drops the compiled functions, so the next call traces them again with the
new value (never a silently stale one). ``adapt`` is fixed once the learner is built (it
decides which variables are fast weights, and Meta-SGD's rates follow it).
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

import keras
import tensorflow as tf

from metarec._validate import check_int, check_positive
from metarec.data.tasks import TaskBatch
from metarec.meta import checks
from metarec.meta.losses import masked_mse

AdaptSpec = str | Callable[[Any], bool] | Sequence[Any]

# Retracing notices (one trace per padded task size is expected here) are not for readers.
tf.get_logger().setLevel(logging.ERROR)


def dense(g: Any) -> tf.Tensor:
    """A gradient as a dense tensor (embedding gradients arrive as ``IndexedSlices``)."""
    return tf.convert_to_tensor(g)


def _vectorized_map_inline(fn: Callable, elems: Any) -> Any:
    """``tf.vectorized_map`` without its inner ``tf.function`` (for ``jit_compile`` only).

    Under XLA, ``vectorized_map`` wraps the vectorized loop in a ``tf.function``; the gradient
    through that call needs values computed inside it (pfor's reduction and concat axes) as
    compile-time constants, so XLA made every input of the training step a constant and
    compiled a new program at every step (issue 21). Built inline, those axes fold to
    constants and one program serves every meta-batch of a shape.
    """
    from tensorflow.python.ops.parallel_for import control_flow_ops as pfor_ops

    saved = pfor_ops._is_under_xla_context
    pfor_ops._is_under_xla_context = lambda: False
    try:
        return tf.vectorized_map(fn, elems)
    finally:
        pfor_ops._is_under_xla_context = saved


class TracedHyperParameter:
    """A hyper-parameter that compiled functions capture: setting it drops them.

    ``check(where, value)`` validates (and converts) a new value; the learner's compiled
    functions are then dropped, so the next call traces them with the new value.
    """

    def __init__(self, check: Callable[[str, Any], Any], doc: str):
        self.check, self.__doc__ = check, doc

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, learner: Any, owner: type | None = None) -> Any:
        return self if learner is None else learner.__dict__[self.name]

    def __set__(self, learner: Any, value: Any) -> None:
        learner.__dict__[self.name] = self.check(learner.display_name, value)
        learner._retrace()

    def __repr__(self) -> str:
        return f"TracedHyperParameter({self.name!r})"


class LearnerCore:
    """Configuration, variable selection and the inner loop of :class:`~metarec.meta.MetaLearner`
    (whose docstring lists the parameters)."""

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
        if not isinstance(model, keras.Model):
            raise TypeError(f"{self.display_name}: model must be a keras.Model (e.g. "
                            f"metarec.models.build_model('mf', encoder.spec)), got "
                            f"{type(model).__name__}.")
        self._compiled: dict[Any, Callable] = {}
        self._adapt_idx: list[int] | None = None
        self.model = model
        self.inner_lr = inner_lr
        self.inner_steps = inner_steps
        self.adapt_spec = adapt
        self.seed = check_int(self.display_name, "seed", seed, 0)
        self.vectorize = vectorize
        self.jit_compile = jit_compile
        #: Fingerprint of the FeatureEncoder of the first tasks seen (see check_tasks).
        self.encoder_fingerprint: str | None = None
        self.optimizer: keras.optimizers.Optimizer | None = None
        self.history: keras.callbacks.History | None = None
        self._checked = False
        self._call_takes_training = "training" in inspect.signature(model.call).parameters

    # ------------------------------------------------------------------ hyper-parameters
    inner_lr = TracedHyperParameter(
        lambda where, v: check_positive(where, "inner_lr", v, "(the inner-loop step size)"),
        "Inner-loop step size; for Meta-SGD only the initial value of its learned rates.")
    inner_steps = TracedHyperParameter(
        lambda where, v: check_int(where, "inner_steps", v, 0),
        "Inner-loop steps in training and, by default, at evaluation.")
    vectorize = TracedHyperParameter(
        lambda where, v: bool(v),
        "Map the tasks of a meta-batch with ``tf.vectorized_map`` (else an unrolled loop).")
    jit_compile = TracedHyperParameter(lambda where, v: bool(v),
                                       "Compile the steps with XLA (one device only).")

    def _retrace(self) -> None:
        """Drop the compiled functions: they captured the hyper-parameters' old values."""
        self._compiled.clear()

    @property
    def adapt_spec(self) -> AdaptSpec:
        """The ``adapt=`` argument: which variables the inner loop adapts."""
        return self._adapt_spec

    @adapt_spec.setter
    def adapt_spec(self, spec: AdaptSpec) -> None:
        if self._adapt_idx is not None:
            raise AttributeError(
                f"{self.display_name}: adapt cannot change once the learner is built (its "
                "fast weights, and Meta-SGD's rates, are chosen then); create a new learner "
                "on the same model with the other adapt=.")
        checks.check_adapt_spec(self.display_name, spec)
        self._adapt_spec = spec

    def get_config(self) -> dict[str, Any]:
        """Hyper-parameters, JSON-able (used by ``save``)."""
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

    def compile(self, optimizer: keras.optimizers.Optimizer | str | None = None) -> LearnerCore:
        """Set the outer-loop optimizer (default: Adam with learning rate 1e-3)."""
        if optimizer is None:
            optimizer = keras.optimizers.Adam(1e-3)
        self.optimizer = keras.optimizers.get(optimizer)
        self._retrace()
        return self

    # ------------------------------------------------------------------ variables
    def _build(self, x: dict[str, Any]) -> None:
        """Build the model on rows ``x`` (``[N, ...]``) and check its input and output shapes."""
        if not self._checked:
            checks.check_model_on(self, x)
            self._checked = True
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

    def _values(self) -> tuple[list[tf.Tensor], list[tf.Tensor], list[tf.Tensor]]:
        """The current values: model trainable, learner extra and model non-trainable."""
        theta = [tf.convert_to_tensor(v) for v in self.model.trainable_variables]
        extra = [tf.convert_to_tensor(v) for v in self.extra_variables]
        nt = [tf.convert_to_tensor(v) for v in self.model.non_trainable_variables]
        return theta, extra, nt

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

    def _inner_update(self, fast: list[tf.Tensor], grads: list[tf.Tensor],
                      extra: Sequence[tf.Tensor]) -> list[tf.Tensor]:
        """One inner step. ``extra``: the learner's extra values (Meta-SGD's rates)."""
        return [w - self.inner_lr * g for w, g in zip(fast, grads, strict=True)]

    def _adapt_task(self, fast, frozen, nt, x, y, mask, steps, *, create_graph: bool,
                    training: bool = True, extra: Sequence[tf.Tensor] = ()):
        """``steps`` gradient steps on one task's support loss; returns the fast weights.

        With ``create_graph`` the steps stay differentiable (second-order MAML); without it
        the inner gradients are treated as constants (first-order MAML, evaluation).
        ``extra`` are the learner's extra values, passed to ``_inner_update`` (watched
        tensors in a training step, so that Meta-SGD's rates get gradients).
        """
        for _ in range(steps):
            with tf.GradientTape() as tape:
                tape.watch(fast)
                loss, nt = self._task_loss(fast, frozen, nt, x, y, mask, training)
            grads = [dense(g) if g is not None else tf.zeros_like(w)
                     for g, w in zip(tape.gradient(loss, fast), fast, strict=True)]
            if not create_graph:
                grads = [tf.stop_gradient(g) for g in grads]
            fast = self._inner_update(fast, grads, extra)
        return fast, nt

    def _map_tasks(self, fn: Callable, elems: Any) -> Any:
        """Apply ``fn`` to each task of a batch: vectorized, or as an unrolled loop."""
        if self.vectorize and self.jit_compile:
            return _vectorized_map_inline(fn, elems)
        if self.vectorize:
            return tf.vectorized_map(fn, elems)
        n = tf.nest.flatten(elems)[0].shape[0]
        outs = [fn(tf.nest.map_structure(lambda t, i=i: t[i], elems)) for i in range(n)]
        return tf.nest.map_structure(lambda *xs: tf.stack(xs), *outs)

    # ------------------------------------------------------------------ outer step
    def _meta_loss_and_grads(self, theta, extra, nt, batch):
        """Return ``(meta_loss, grads for theta, grads for extra)`` for one meta-batch.

        ``theta``, ``extra``, ``nt``: the current values of the model's trainable variables,
        the learner's extra variables and the model's non-trainable variables;
        ``batch``: :meth:`~metarec.meta.checks.InputChecks.prepare`'s tensors (or one
        replica's chunk of them).
        """
        raise NotImplementedError

    def meta_gradients(self, batch: TaskBatch) -> tuple[tf.Tensor, list[tf.Tensor | None]]:
        """The meta-loss and its gradients for the model's trainable variables (no update).

        For tests and teaching: the same computation as one training step, without applying
        it. Returns ``(loss, grads)`` with ``grads`` aligned with
        ``model.trainable_variables``.
        """
        tensors = self.prepare(batch)
        theta, extra, nt = self._values()
        if "meta_gradients" not in self._compiled:
            self._compiled["meta_gradients"] = tf.function(self._meta_loss_and_grads,
                                                           reduce_retracing=self.vectorize)
        loss, grads, _ = self._compiled["meta_gradients"](theta, extra, nt, tensors)
        return loss, grads
