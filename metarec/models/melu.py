"""The MeLU network (Lee et al., KDD 2019): feature embeddings and a small decision MLP.

Each user feature (gender, age, occupation, zip prefix) and item feature (release decade) has
its own embedding table of dimension ``embedding_dim`` (32); the multi-hot genres are embedded
by a linear map divided by the number of genres (the mean of the genre embeddings). The
embeddings are concatenated and fed to the *decision layers* ``64 -> 64 -> 1`` with ReLU.

MeLU adapts only the decision layers per user (variables whose path contains ``"decision"``;
``MeLUNetwork.ADAPT``); the embeddings are learned in the outer loop only.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from metarec.models.baselines import _SpecModel
from metarec.models.spec import FeatureSpec


@keras.saving.register_keras_serializable(package="metarec")
class MeLUNetwork(_SpecModel):
    """User and item feature embeddings followed by the MeLU decision MLP.

    Parameters
    ----------
    spec : FeatureSpec
        Vocabulary sizes from a fitted :class:`metarec.data.FeatureEncoder`.
    embedding_dim : int
        Size of each feature embedding (32 in the paper).
    hidden_units : tuple of int
        Decision layer widths (``(64, 64)`` in the paper).

    Call
    ----
    inputs : dict with ``user_features`` int32 ``[N, Fu]``, ``item_features`` int32
        ``[N, Fi]`` and ``item_genres`` float32 ``[N, G]``. Returns predictions ``[N]``.

    Examples
    --------
    >>> net = MeLUNetwork(encoder.spec)                     # doctest: +SKIP
    >>> net(encoder.transform(ratings.head(5))).shape        # (5,)  # doctest: +SKIP
    """

    #: Regex (on ``variable.path``) of the per-user parameters: the decision layers, as MeLU
    #: adapts them (the leading ``/`` skips the model's own name in the path).
    ADAPT: str = "/decision"
    _hyper = ("embedding_dim", "hidden_units")

    def __init__(self, spec: FeatureSpec, embedding_dim: int = 32,
                 hidden_units: tuple[int, ...] = (64, 64), **kwargs):
        super().__init__(**kwargs)
        self.spec = spec
        self.embedding_dim = embedding_dim
        self.hidden_units = tuple(hidden_units)
        self.user_embeddings = [
            layers.Embedding(n, embedding_dim, name=f"user_feature_{i}")
            for i, n in enumerate(spec.user_feature_sizes)
        ]
        self.item_embeddings = [
            layers.Embedding(n, embedding_dim, name=f"item_feature_{i}")
            for i, n in enumerate(spec.item_feature_sizes)
        ]
        self.genre_embedding = layers.Dense(embedding_dim, use_bias=False, name="genre_embedding")
        self.decision = [
            layers.Dense(u, activation="relu", name=f"decision_{i}")
            for i, u in enumerate(self.hidden_units)
        ]
        self.decision_out = layers.Dense(1, name="decision_out")

    def build(self, input_shape=None):
        n_fields = len(self.spec.user_feature_sizes) + len(self.spec.item_feature_sizes) + 1
        for emb in self.user_embeddings + self.item_embeddings:
            emb.build((None,))
        self.genre_embedding.build((None, self.spec.n_genres))
        width = n_fields * self.embedding_dim
        for dense in self.decision:
            dense.build((None, width))
            width = dense.units
        self.decision_out.build((None, width))
        self.built = True

    def embed(self, inputs):
        """Concatenated feature embeddings, ``[N, (Fu + Fi + 1) * embedding_dim]``."""
        uf, itf, genres = inputs["user_features"], inputs["item_features"], inputs["item_genres"]
        parts = [emb(uf[:, i]) for i, emb in enumerate(self.user_embeddings)]
        parts += [emb(itf[:, i]) for i, emb in enumerate(self.item_embeddings)]
        # Mean of the genre embeddings; max(.,1) keeps items without a genre finite.
        n_genres = ops.maximum(ops.sum(genres, axis=-1, keepdims=True), 1.0)
        parts.append(self.genre_embedding(genres) / n_genres)
        return ops.concatenate(parts, axis=-1)

    def call(self, inputs):
        h = self.embed(inputs)
        for dense in self.decision:
            h = dense(h)
        return ops.squeeze(self.decision_out(h), axis=-1)
