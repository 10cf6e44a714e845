r"""Matrix factorisation whose item embeddings are generated from item features (MetaEmb-style).

Pan et al. (SIGIR 2019, "Warm up cold-start advertisements") learn an *embedding generator*
that maps the features of a new item to an initial id embedding, trained with a meta-learning
objective so that the generated embedding is good both before and after a few updates on the
item's first ratings. :class:`FeatureEmbeddingMF` is that idea on top of biased MF:

.. math::

    \hat r_{ui} = \mu + b_u + b_i + \langle p_u, q_i \rangle, \qquad
    (q_i, b_i) = g(\text{genres}_i, e_{\text{decade}(i)}) + (o_i, c_i)

The generator :math:`g` is linear in the multi-hot genres and a learned decade embedding; the
per-item **offset** :math:`(o_i, c_i)` (variables ``item_offset`` and ``item_offset_bias``,
zero at initialisation) is what an item's own ratings adapt (``ADAPT = "/item_offset"``). A
brand-new item (id 0) starts with offset row 0, so its prediction comes from its features.

Meta-training as in MetaEmb needs items that *look new*: :func:`hide_item_ids` maps the item
ids of a :class:`~metarec.data.TaskSet` to 0, so the inner loop starts every training item at
the shared new-item offset and the outer loop trains the generator for that situation.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import layers, ops

from metarec.data.features import FeatureSpec
from metarec.data.tasks import Task, TaskSet
from metarec.models.baselines import _SpecModel
from metarec.models.mf import IdEmbedding
from metarec.models.spec import spec_from_config

__all__ = ["FeatureEmbeddingMF", "hide_item_ids"]


@keras.saving.register_keras_serializable(package="metarec")
class FeatureEmbeddingMF(_SpecModel):
    """Biased MF with feature-generated item embeddings plus an adaptable per-item offset.

    Parameters
    ----------
    spec : FeatureSpec
        Vocabulary sizes from a fitted :class:`metarec.data.FeatureEncoder` (uses ``n_users``,
        ``n_items``, ``n_genres`` and ``item_feature_sizes[0]``, the decade vocabulary).
    n_factors : int
        Latent dimension of ``p_u`` and ``q_i``.
    decade_dim : int
        Size of the decade embedding fed to the generator.
    global_mean : float
        Initial value of the trainable global mean ``mu``.
    factor_stddev : float
        Standard deviation of the normal initialisation of the user factors.

    Call
    ----
    inputs : dict with ``user_id`` int32 ``[N]``, ``item_id`` int32 ``[N]``, ``item_genres``
        float32 ``[N, G]`` and ``item_features`` int32 ``[N, 1]``. Returns predictions ``[N]``.

    Notes
    -----
    ``ADAPT = "/item_offset"`` selects ``item_offset`` ``[n_items, n_factors]`` and
    ``item_offset_bias`` ``[n_items]``: fine-tuning on an *item's* support set (item tasks,
    ``build_tasks(..., group_by="item_id")``) moves only that item's offset row.

    Examples
    --------
    >>> model = FeatureEmbeddingMF(encoder.spec, n_factors=16)         # doctest: +SKIP
    >>> model.build()                                                  # doctest: +SKIP
    >>> model(encoder.transform(ratings.head(5))).shape                # doctest: +SKIP
    TensorShape([5])
    """

    #: Regex (on ``variable.path``) of the per-item parameters fine-tuned on an item's ratings.
    ADAPT: str = "/item_offset"
    _hyper = ("n_factors", "decade_dim", "global_mean", "factor_stddev")

    def __init__(self, spec: FeatureSpec, n_factors: int = 16, decade_dim: int = 8,
                 global_mean: float = 3.5, factor_stddev: float = 0.05, **kwargs: Any):
        super().__init__(**kwargs)
        self.spec = spec_from_config(spec)
        if not self.spec.item_feature_sizes:
            raise ValueError("FeatureEmbeddingMF needs the decade item feature "
                             "(spec.item_feature_sizes is empty); fit the FeatureEncoder on a "
                             "dataset with an items table.")
        self.n_factors = int(n_factors)
        self.decade_dim = int(decade_dim)
        self.global_mean = float(global_mean)
        self.factor_stddev = float(factor_stddev)
        factor_init = keras.initializers.RandomNormal(stddev=self.factor_stddev)
        self.user_embedding = IdEmbedding(self.spec.n_users, self.n_factors, factor_init,
                                          name="user_embedding")
        self.user_bias = IdEmbedding(self.spec.n_users, 1, "zeros", name="user_bias")
        self.decade_embedding = layers.Embedding(
            int(self.spec.item_feature_sizes[0]), self.decade_dim,
            embeddings_initializer=keras.initializers.RandomNormal(stddev=0.05),
            name="decade_embedding")
        # One linear map to (q_i, b_i): last column is the generated item bias.
        self.generator = layers.Dense(
            self.n_factors + 1, name="generator",
            kernel_initializer=keras.initializers.RandomNormal(stddev=0.05))

    def build(self, input_shape=None):
        self.mu = self.add_weight(shape=(), name="global_bias",
                                  initializer=keras.initializers.Constant(self.global_mean))
        # Offsets start at zero: before adaptation an item *is* its generated embedding.
        self.item_offset = self.add_weight(shape=(self.spec.n_items, self.n_factors),
                                           name="item_offset", initializer="zeros")
        self.item_offset_bias = self.add_weight(shape=(self.spec.n_items,),
                                                name="item_offset_bias", initializer="zeros")
        self.user_embedding.build((None,))
        self.user_bias.build((None,))
        self.decade_embedding.build((None,))
        self.generator.build((None, self.spec.n_genres + self.decade_dim))
        self.built = True

    def generate(self, inputs):
        """The generated ``(q, b)`` of the rows' items from their features: ``[N, k]``, ``[N]``."""
        genres = ops.cast(inputs["item_genres"], "float32")
        decade = self.decade_embedding(ops.cast(inputs["item_features"][..., 0], "int32"))
        out = self.generator(ops.concatenate([genres, decade], axis=-1))
        return out[..., :-1], out[..., -1]

    def call(self, inputs):
        users = inputs["user_id"]
        items = ops.cast(inputs["item_id"], "int32")
        q_gen, b_gen = self.generate(inputs)
        q = q_gen + ops.take(self.item_offset, items, axis=0)
        b_i = b_gen + ops.take(self.item_offset_bias, items, axis=0)
        dot = ops.sum(self.user_embedding(users) * q, axis=-1)
        return self.mu + ops.squeeze(self.user_bias(users), -1) + b_i + dot


def hide_item_ids(tasks: TaskSet) -> TaskSet:
    """The same tasks with every ``item_id`` set to 0, so each item looks brand new.

    Meta-training on item tasks with hidden ids makes the inner loop start from the new-item
    offset (row 0), exactly the situation of a cold item at test time (MetaEmb's simulated
    cold start). Other features are unchanged.

    Parameters
    ----------
    tasks : TaskSet
        Tasks whose ``support_x``/``query_x`` hold ``item_id`` ``[S]``/``[Q]``.

    Returns
    -------
    TaskSet with the same padded sizes.

    Examples
    --------
    >>> cold = hide_item_ids(build_tasks(train, encoder, group_by="item_id"))  # doctest: +SKIP
    >>> int(cold[0].support_x["item_id"].max())                               # doctest: +SKIP
    0
    """
    def hidden(x: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if "item_id" not in x:
            raise ValueError("hide_item_ids: the tasks have no 'item_id' feature to hide.")
        return {**x, "item_id": np.zeros_like(x["item_id"])}

    return TaskSet([Task(t.user_id, hidden(t.support_x), t.support_y, hidden(t.query_x),
                         t.query_y, t.support_items, t.query_items, t.encoder_fingerprint)
                    for t in tasks],
                   tasks.support_length, tasks.query_length)
