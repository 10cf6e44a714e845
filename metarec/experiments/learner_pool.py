"""Reuse compiled learners across the trials of a study: the same numbers, a fraction of the time.

A tuning trial builds a fresh learner, and every fresh learner traces its own ``tf.function``
graphs: the training step, the per-epoch validation prediction and the 0..10-step adaptation
curve. On MovieLens 100K with one CPU thread, tracing took about three quarters of a trial's
wall time (the MeLU network under MAML: 3.9 s for the training step, 0.7 s for validation and
4.2 s for the curve, against 4.3 s of training and 0.15 s of evaluation; matrix factorisation,
fine-tuned: 1.1 + 5.7 + 7.4 s of tracing against about 2 s of work; ``python -m
benchmarks.tuning_trial``).

Within one cell the graphs depend only on what the trial's structural hyper-parameters fix:
the adapted variables and the inner steps (a neural process: the size of its representation).
The learning rates are *values* in the graphs: the outer rate lives in the optimizer's
``learning_rate`` variable, and :class:`LearnerPool` makes the inner rate a variable too. So a
learner of an earlier trial with the same structure is reset to exactly the state
:meth:`~metarec.experiments.methods.Method.build` gives a fresh one (the seed's initial
weights, fresh optimizer slots, the new rates, Meta-SGD's rates refilled, a neural process's
encoder and FiLM maps back to their seeded start) and trained again, with its compiled graphs.
``tests/experiments/test_fair_tuning.py`` checks that a reused learner gives bit-identical
validation curves to a freshly built one.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from metarec.experiments.methods import Method
from metarec.meta import MetaLearner, MetaSGD


@dataclass
class _Entry:
    learner: MetaLearner
    weights: list[np.ndarray]  # every model weight as built (trainable and not)
    inner_rate: tf.Variable | None  # the inner step size read by the graphs (None: Meta-SGD)
    extra: list[np.ndarray] | None = None  # the learner's own variables as first built


def _structure(method: Method, seed: int, global_mean: float | None) -> tuple:
    """What the compiled graphs of ``method``'s learner depend on (all but the two rates)."""
    return (method.model, method.learner, method.adapt, method.inner_steps,
            repr(sorted(method.model_kwargs.items())),
            repr(sorted(method.learner_kwargs.items())), seed, global_mean)


class LearnerPool:
    """Hand out learners for :func:`~metarec.experiments.training.train_method`, reusing graphs.

    ``pool.get(method, spec, seed, global_mean)`` returns a learner in the state
    ``method.build(spec, seed=seed, global_mean=global_mean)`` would return: the first time a
    structure is seen it is that call; later the kept learner, reset. The pool keeps at most
    ``size`` learners (least recently used dropped first). One pool serves one study: the
    learners of a pool must not be used elsewhere while the pool lives.

    Example
    -------
    >>> pool = LearnerPool()
    >>> learner = pool.get(method, data.encoder.spec, 0, data.train_mean)  # doctest: +SKIP
    >>> train_method(method, data, 0, learner=learner)                     # doctest: +SKIP
    """

    def __init__(self, size: int = 12):
        if size < 1:
            raise ValueError(f"LearnerPool size must be >= 1, got {size}.")
        self.size = size
        self._entries: OrderedDict[tuple, _Entry] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, method: Method, spec: Any, seed: int,
            global_mean: float | None = None) -> MetaLearner:
        """A learner for ``method`` in its freshly built state (see the class docstring)."""
        if method.paper_optimizer:  # the learner class picks its optimizer: not pooled
            return method.build(spec, seed=seed, global_mean=global_mean)
        key = _structure(method, seed, global_mean)
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            learner = method.build(spec, seed=seed, global_mean=global_mean)
            entry = _Entry(learner, [np.array(v.numpy()) for v in learner.model.weights],
                           _rate_variable(learner))
            _record_extra_when_built(entry)
            self._entries[key] = entry
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        else:
            self.hits += 1
            self._entries.move_to_end(key)
            _reset(entry, method, seed)
        return entry.learner


def _rate_variable(learner: MetaLearner) -> tf.Variable | None:
    """Make the learner's inner step size a variable its graphs read (before any tracing)."""
    if isinstance(learner, MetaSGD):
        return None  # its step sizes are variables already (learning_rates)
    if type(learner)._inner_update is not MetaLearner._inner_update:
        raise TypeError(f"LearnerPool cannot reuse {type(learner).__name__}: it has its own "
                        "inner update; build a fresh learner per trial for it.")
    rate = tf.Variable(learner.inner_lr, dtype=tf.float32, trainable=False, name="inner_lr")

    def inner_update(fast: list[tf.Tensor], grads: list[tf.Tensor],
                     extra: Any = ()) -> list[tf.Tensor]:
        # MetaLearner._inner_update with the rate read from the variable: the same float32
        # product as with the Python float, which the graph would embed as a constant.
        return [w - rate * g for w, g in zip(fast, grads, strict=True)]

    learner._inner_update = inner_update
    return rate


def _record_extra_when_built(entry: _Entry) -> None:
    """Keep the initial values of the learner's own variables (created on first use)."""
    learner = entry.learner
    build_extra = learner._build_extra

    def build_and_record() -> None:
        build_extra()
        entry.extra = [np.array(v.numpy()) for v in learner.extra_variables]

    learner._build_extra = build_and_record


def _reset(entry: _Entry, method: Method, seed: int) -> None:
    """Put a used learner back into the state of a fresh ``method.build(..., seed=seed)``."""
    learner = entry.learner
    keras.utils.set_random_seed(seed)  # as build() does: the same global random state
    for var, value in zip(learner.model.weights, entry.weights, strict=True):
        var.assign(value)
    if entry.inner_rate is not None:
        entry.inner_rate.assign(method.inner_lr)
    # Setting ``learner.inner_lr`` would drop the compiled functions (they may have captured
    # the old value); these read the rate from ``inner_rate`` (or Meta-SGD's variables), so
    # only the attribute that messages and get_config show is updated, bypassing that guard.
    learner.__dict__["inner_lr"] = float(method.inner_lr)
    if isinstance(learner, MetaSGD) and learner.extra_variables:
        for alpha in learner.extra_variables:  # as MetaSGD._build_extra fills them
            alpha.assign(tf.fill(alpha.shape, tf.constant(method.inner_lr, alpha.dtype)))
    elif entry.extra is not None:  # e.g. a neural process's encoder: back to its seeded start
        for var, value in zip(learner.extra_variables, entry.extra, strict=True):
            var.assign(value)
    optimizer = learner.optimizer
    for var in optimizer.variables:  # iterations and slots start at zero in a new optimizer
        var.assign(tf.zeros(var.shape, var.dtype))
    optimizer.learning_rate = float(method.outer_lr)  # as Method.build compiles it
    learner.history = None


__all__ = ["LearnerPool"]
