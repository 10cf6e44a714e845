"""``MetaLearner``: the base class of every meta-learner, assembled from one module per idea.

* :mod:`metarec.meta.core`: hyper-parameters, which variables adapt, the inner loop;
* :mod:`metarec.meta.trainer`: ``train_step`` (with its finiteness guard) and ``fit``;
* :mod:`metarec.meta.evaluation`: ``test_step``, ``predict_curve``, ``evaluate``,
  ``evaluate_steps``;
* :mod:`metarec.meta.adaptation`: ``adapt`` to one new user, :class:`~metarec.meta.AdaptedModel`;
* :mod:`metarec.meta.saving`: ``save``, :func:`~metarec.meta.load_learner`,
  :func:`~metarec.meta.register_learner`;
* :mod:`metarec.meta.losses`: :func:`~metarec.meta.masked_mse`;
* :mod:`metarec.meta.checks`: input checks with messages that name the fix, ``prepare``.

A subclass writes ``_meta_loss_and_grads`` (what one outer
step computes, see ``metarec/meta/maml.py``); everything else is shared. The names this
module exported before the split (``MetaLearner``, ``AdaptedModel``, ``AdaptSpec``,
``load_learner``, ``masked_mse``, ``register_learner``) still import from here.
"""

from __future__ import annotations

from metarec.meta.adaptation import AdaptedModel, Adapter
from metarec.meta.checks import InputChecks
from metarec.meta.core import AdaptSpec, LearnerCore
from metarec.meta.evaluation import Evaluator
from metarec.meta.losses import masked_mse
from metarec.meta.saving import Saveable, load_learner, register_learner
from metarec.meta.trainer import Trainer

__all__ = ["AdaptSpec", "AdaptedModel", "MetaLearner", "load_learner", "masked_mse",
           "register_learner"]


class MetaLearner(Trainer, Evaluator, Adapter, Saveable, InputChecks, LearnerCore):
    """Base class of all meta-learners: ``compile``, ``fit``, ``evaluate``, ``adapt``, ``save``.

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
        Compile the steps with XLA (one device only). Off by default (graph mode's numbers are
        the book's). XLA used to recompile the training step at every step (about 190x slower
        on CPU, issue 21): under XLA ``tf.vectorized_map`` wrapped its loop in an inner
        ``tf.function`` whose gradient needed values as compile-time constants, making every
        input a constant. The learner now builds it inline under ``jit_compile``, so one
        program serves each input shape (a run compiles one per meta-batch shape: the full
        batch and a last smaller one). When it helps: in
        ``python -m benchmarks.throughput --xla --quick`` (MeLU network, meta-batch 32, 2 CPU
        cores, measured under load from other jobs) a training step ran 1.35-1.8x faster
        under XLA on both MovieLens 100K and synthetic tasks (MAML 1 and 5 steps, first-order
        MAML, Meta-SGD, Reptile, MeLU), but the first call (tracing and compiling) took 2-3x
        longer, 4-10 s more per compiled function. XLA pays for long runs (hundreds of
        meta-batches per compiled shape), not for short runs such as one tuning trial of a
        fresh learner; its losses match graph mode's to float32 rounding, not bit for bit,
        which is why graph mode stays the default.

    Notes
    -----
    The methods come from :class:`~metarec.meta.core.LearnerCore` (configuration, variables,
    inner loop, ``meta_gradients``), :class:`~metarec.meta.checks.InputChecks`
    (``prepare``, ``check_tasks``), :class:`~metarec.meta.trainer.Trainer`
    (``train_step``, ``make_train_function``, ``fit``),
    :class:`~metarec.meta.evaluation.Evaluator` (``test_step``, ``predict_query``,
    ``predict_curve``, ``evaluate``, ``evaluate_steps``),
    :class:`~metarec.meta.adaptation.Adapter` (``adapt``) and
    :class:`~metarec.meta.saving.Saveable` (``save``). Setting a hyper-parameter that compiled
    functions capture (``inner_lr``, ``inner_steps``, ``vectorize``, ``jit_compile``,
    ``first_order``) drops them, so the next call uses the new value.
    """
