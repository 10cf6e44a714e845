"""Base recommenders: Keras models that all consume the batched task tensors of the data layer.

Every model is built from a :class:`~metarec.data.FeatureSpec`, takes the feature dict of
:meth:`metarec.data.FeatureEncoder.transform` (``user_id`` ``[N]``, ``item_id`` ``[N]``,
``user_features`` ``[N, 4]``, ``item_features`` ``[N, 1]``, ``item_genres`` ``[N, G]``) and
returns ratings ``[N]``. Every model works under ``stateless_call`` and ``tf.vectorized_map``,
so any meta-learner of :mod:`metarec.meta` can hold one set of weights per task.

================  ====================  ==========================================================
name              class                 ``ADAPT`` (per-user parameters)
================  ====================  ==========================================================
``global_mean``   :class:`GlobalMean`   ``/user_``: the scalar ``user_offset``
``item_mean``     :class:`ItemMean`     ``/user_``: the scalar ``user_offset``
``user_linear``   :class:`UserLinear`   ``/user_``: the user's regression weights and bias
``mf``            :class:`BiasedMF`     ``/user_``: user factors and user bias
``neumf``         :class:`NeuMF`        ``/user_``: user embeddings of both towers
``wide_deep``     :class:`WideAndDeep`  ``/decision``: the deep decision layers (as MeLU)
``melu``          :class:`MeLUNetwork`  ``/decision``: the decision layers (MeLU)
``melu_ids``      :class:`MeLUWithIds`  ``/decision``: as ``melu``; also has id embeddings
================  ====================  ==========================================================

``ADAPT`` is a regular expression searched in ``variable.path``; it starts with ``/`` so that it
never matches the model's own name, the first component of every path (``user_linear/...``).

Cold users and items, and the fair protocol
-------------------------------------------
New users and items encode to id 0. The id embeddings (:class:`~metarec.models.mf.IdEmbedding`)
map id 0 to the average known row plus a row-0 offset that starts at zero, so before adaptation
a new user is the average training user. Every baseline then uses a new user's support set the
same way the meta-learners do:

1. train conventionally on the training ratings (``metarec.meta.FineTune(model, ...).fit``
   pools the support and query ratings of the training tasks);
2. for each test user, fine-tune the ``ADAPT`` variables on the support set with the *same*
   ``inner_lr`` and ``inner_steps`` as the meta-learners, then predict the query set
   (``FineTune.evaluate`` does exactly this; ``steps=0`` gives the un-personalised model).

Inside the per-task inner loop embedding gradients are dense (each task holds its own copy of
the adapted tables), so keep id tables moderate (a few thousand rows by 16-32 dimensions).

Examples
--------
>>> from metarec.meta import FineTune                                   # doctest: +SKIP
>>> model = build_model("mf", encoder.spec)                             # doctest: +SKIP
>>> learner = FineTune(model, inner_lr=0.1, inner_steps=5, adapt=model.ADAPT)  # doctest: +SKIP
>>> learner.fit(tasks["train"], epochs=10)                              # doctest: +SKIP
>>> learner.evaluate(tasks["user_cold"])                                # doctest: +SKIP
"""

from metarec.models.baselines import GlobalMean, ItemMean, popular_items
from metarec.models.linear import UserLinear, fit_user_ridge, item_design, ridge_predict_tasks
from metarec.models.melu import MeLUNetwork, MeLUWithIds
from metarec.models.metaemb import FeatureEmbeddingMF, hide_item_ids
from metarec.models.mf import BiasedMF, IdEmbedding
from metarec.models.neumf import NeuMF
from metarec.models.registry import MODELS, build_model
from metarec.models.wide_deep import WideAndDeep

__all__ = [
    "MODELS",
    "BiasedMF",
    "FeatureEmbeddingMF",
    "GlobalMean",
    "IdEmbedding",
    "ItemMean",
    "MeLUNetwork",
    "MeLUWithIds",
    "NeuMF",
    "UserLinear",
    "WideAndDeep",
    "build_model",
    "fit_user_ridge",
    "hide_item_ids",
    "item_design",
    "popular_items",
    "ridge_predict_tasks",
]
