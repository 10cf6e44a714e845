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
        Compile the steps with XLA (one device only). Off by default: on CPU, XLA ran the
        vectorized MAML step of the MeLU network about 100x *slower* than the default graph in
        our measurements (meta-batch 32); it is meant for accelerators. Why (issue 21): under
        XLA, ``tf.vectorized_map`` wraps its loop in an inner ``tf.function``; the training
        step's gradient through it needs values of that inner function (pfor's reduction and
        concat axes) as compile-time constants, so XLA marks *every* input of the step (the
        batch and the weights) as a constant and compiles a new program at every step (not a
        shape problem: the TaskSet pads all batches alike). Evaluation under XLA compiles once.

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
