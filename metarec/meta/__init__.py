"""Meta-learners for recommendation, on any Keras model.

All learners share one API (:class:`MetaLearner`): ``compile``, ``fit`` (one
``train_step`` per meta-batch, on one device or under a ``tf.distribute`` strategy),
``evaluate``, ``adapt`` and ``save`` / :func:`load_learner`. A new learner class subclasses
:class:`MetaLearner` (or MAML) and is decorated with :func:`register_learner` so that
:func:`load_learner` finds it.

================== ========================================================================
``MAML``           second-order MAML (``first_order=True`` for the approximation)
``FOMAML``         first-order MAML
``MetaSGD``        MAML with learned per-parameter inner learning rates
``MeLU``           MAML adapting only the decision layers, with the paper's defaults
``Reptile``        Reptile, with meta step size
``FineTune``       conventional training plus per-user fine-tuning (the non-meta baseline)
``NeuralProcess``  a conditional neural process (TaNP-style FiLM modulation): no inner
                   loop, adaptation is one forward pass of a support-set encoder
================== ========================================================================
"""

from metarec.meta.adaptation import AdaptedModel
from metarec.meta.base import MetaLearner
from metarec.meta.finetune import FineTune
from metarec.meta.losses import masked_mse
from metarec.meta.maml import FOMAML, MAML, MeLU
from metarec.meta.metasgd import MetaSGD
from metarec.meta.neural_process import ConditionedModel, NeuralProcess
from metarec.meta.reptile import Reptile
from metarec.meta.saving import load_learner, register_learner

__all__ = [
    "AdaptedModel",
    "ConditionedModel",
    "FOMAML",
    "FineTune",
    "MAML",
    "MeLU",
    "MetaLearner",
    "MetaSGD",
    "NeuralProcess",
    "Reptile",
    "load_learner",
    "masked_mse",
    "register_learner",
]
