"""Neural matrix factorisation, NeuMF (He et al., "Neural Collaborative Filtering", WWW 2017).

Two towers on user and item id embeddings, fused by a final linear layer:

* **GMF** (generalised MF): ``p_u (.) q_i``, the element-wise product of ``gmf_dim``-sized
  embeddings;
* **MLP**: ``[p'_u ; q'_i]`` through ReLU layers ``decision_0 .. decision_{L-1}`` (default
  ``32 -> 16 -> 8``);
* **NeuMF layer** ``decision_out``: a linear map of ``[GMF ; MLP]`` to the rating.

The paper predicts implicit feedback with a sigmoid and log loss; here the output is linear and
trained on explicit ratings with MSE (its bias starts at ``global_mean``), the usual adaptation
for rating prediction. Separate embeddings for the two towers follow the paper.

Cold users and items use :class:`metarec.models.mf.IdEmbedding`: id 0 is the average known
row plus a learned offset (row 0, initialised to zero).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers, ops

from metarec.data.features import FeatureSpec
from metarec.models.baselines import _SpecModel
from metarec.models.mf import IdEmbedding
from metarec.models.spec import spec_from_config

__all__ = ["NeuMF"]


@keras.saving.register_keras_serializable(package="metarec")
class NeuMF(_SpecModel):
    """GMF and MLP towers on id embeddings, fused by a linear output (He et al., 2017).

    Parameters
    ----------
    spec : FeatureSpec
        ``n_users`` and ``n_items`` size the id embeddings.
    gmf_dim : int
        Embedding size of the GMF tower.
    mlp_dim : int
        Embedding size of each side of the MLP tower.
    hidden_units : tuple of int
        Widths of the MLP tower's ReLU layers (the paper's tower pyramid, halving).
    global_mean : float
        Initial bias of the output layer.

    Call
    ----
    inputs : dict with ``user_id`` int32 ``[N]`` and ``item_id`` int32 ``[N]``.
        Returns predictions ``[N]``.

    Notes
    -----
    ``ADAPT = "/user_"`` selects ``user_gmf_embedding`` and ``user_mlp_embedding``: in
    collaborative filtering a user *is* their embedding, and the towers are shared functions of
    it. Adapting the shared MLP on 10-20 ratings would instead re-learn the interaction
    function for one user; use ``adapt="/decision"`` for that MeLU-style variant.

    Examples
    --------
    >>> model = NeuMF(encoder.spec)                                   # doctest: +SKIP
    >>> model.build()                                                 # doctest: +SKIP
    >>> model(encoder.transform(ratings.head(5))).shape               # doctest: +SKIP
    TensorShape([5])
    """

    #: Regex (on ``variable.path``) of the per-user parameters fine-tuned on a support set.
    ADAPT: str = "/user_"
    _hyper = ("gmf_dim", "mlp_dim", "hidden_units", "global_mean")

    def __init__(self, spec: FeatureSpec, gmf_dim: int = 8, mlp_dim: int = 16,
                 hidden_units: tuple[int, ...] = (32, 16, 8), global_mean: float = 3.5,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.spec = spec_from_config(spec)
        self.gmf_dim = int(gmf_dim)
        self.mlp_dim = int(mlp_dim)
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.global_mean = float(global_mean)
        init = keras.initializers.RandomNormal(stddev=0.05)
        self.user_gmf_embedding = IdEmbedding(self.spec.n_users, self.gmf_dim, init,
                                              name="user_gmf_embedding")
        self.item_gmf_embedding = IdEmbedding(self.spec.n_items, self.gmf_dim, init,
                                              name="item_gmf_embedding")
        self.user_mlp_embedding = IdEmbedding(self.spec.n_users, self.mlp_dim, init,
                                              name="user_mlp_embedding")
        self.item_mlp_embedding = IdEmbedding(self.spec.n_items, self.mlp_dim, init,
                                              name="item_mlp_embedding")
        self.decision = [layers.Dense(u, activation="relu", name=f"decision_{i}")
                         for i, u in enumerate(self.hidden_units)]
        self.decision_out = layers.Dense(
            1, name="decision_out",
            bias_initializer=keras.initializers.Constant(self.global_mean))

    def build(self, input_shape=None):
        for emb in (self.user_gmf_embedding, self.item_gmf_embedding, self.user_mlp_embedding,
                    self.item_mlp_embedding):
            emb.build((None,))
        width = 2 * self.mlp_dim
        for dense in self.decision:
            dense.build((None, width))
            width = dense.units
        self.decision_out.build((None, self.gmf_dim + width))
        self.built = True

    def call(self, inputs):
        users, items = inputs["user_id"], inputs["item_id"]
        gmf = self.user_gmf_embedding(users) * self.item_gmf_embedding(items)
        h = ops.concatenate([self.user_mlp_embedding(users), self.item_mlp_embedding(items)],
                            axis=-1)
        for dense in self.decision:
            h = dense(h)
        return ops.squeeze(self.decision_out(ops.concatenate([gmf, h], axis=-1)), axis=-1)
