"""Meta-learners for recommendation, on any Keras model.

All learners share one API (:class:`MetaLearner`): ``compile``, ``fit``, ``evaluate``,
``adapt`` and ``save`` / :func:`load_learner`.

============== =====================================================================
``MAML``       second-order MAML (``first_order=True`` for the approximation)
``FOMAML``     first-order MAML
``MetaSGD``    MAML with learned per-parameter inner learning rates
``MeLU``       MAML adapting only the decision layers, with the paper's defaults
``Reptile``    Reptile, with meta step size
``FineTune``   conventional training plus per-user fine-tuning (the non-meta baseline)
============== =====================================================================
"""

from metarec.meta.base import AdaptedModel, MetaLearner, load_learner, masked_mse
from metarec.meta.finetune import FineTune
from metarec.meta.maml import FOMAML, MAML, MeLU
from metarec.meta.metasgd import MetaSGD
from metarec.meta.reptile import Reptile

__all__ = [
    "AdaptedModel",
    "FOMAML",
    "FineTune",
    "MAML",
    "MeLU",
    "MetaLearner",
    "MetaSGD",
    "Reptile",
    "load_learner",
    "masked_mse",
]
