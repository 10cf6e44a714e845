"""The MeLU network (Lee et al., KDD 2019): feature embeddings and a small decision MLP.

Each user feature (gender, age, occupation, zip prefix) and item feature (release decade) has
its own embedding table of dimension ``embedding_dim`` (32); the multi-hot genres are embedded
by a linear map divided by the number of genres (the mean of the genre embeddings). The
embeddings are concatenated and fed to the *decision layers* ``64 -> 64 -> 1`` with ReLU.

MeLU adapts only the decision layers per user (variables whose path contains ``"decision"``;
``MeLUNetwork.ADAPT``); the embeddings are learned in the outer loop only.

The output bias starts at ``global_mean`` (pass the mean training rating; the experiment runner
does). The paper does not say how the bias starts; at 0 a network with small learning rates
spends its whole budget climbing to the rating scale before it learns anything about users.

:class:`MeLUWithIds` adds user and item *id* embeddings next to the feature embeddings, so the
network can know a training item by its id as matrix factorisation does; new users and items use
the out-of-vocabulary row (id 0), the average known row plus a learned offset
(:class:`~metarec.models.mf.IdEmbedding`).
"""

from __future__ import annotations

import keras
from keras import layers, ops

from metarec.data.features import FeatureSpec
from metarec.models.baselines import _SpecModel
from metarec.models.mf import IdEmbedding


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
    global_mean : float
        Initial bias of the output layer: the mean training rating, so that the untrained
        network already predicts on the rating scale (default 0 keeps the Keras default).

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
    _hyper = ("embedding_dim", "hidden_units", "global_mean")

    def __init__(self, spec: FeatureSpec, embedding_dim: int = 32,
                 hidden_units: tuple[int, ...] = (64, 64), global_mean: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.spec = spec
        self.embedding_dim = embedding_dim
        self.hidden_units = tuple(hidden_units)
        self.global_mean = float(global_mean)
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
        self.decision_out = layers.Dense(
            1, name="decision_out",
            bias_initializer=keras.initializers.Constant(self.global_mean))

    def _n_fields(self) -> int:
        return len(self.spec.user_feature_sizes) + len(self.spec.item_feature_sizes) + 1

    def build(self, input_shape=None):
        n_fields = self._n_fields()
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


@keras.saving.register_keras_serializable(package="metarec")
class MeLUWithIds(MeLUNetwork):
    """The MeLU network with user and item id embeddings next to the feature embeddings.

    The input of the decision layers is ``[user features ; item features ; genres ; p_u ;
    q_i]``, where ``p_u`` and ``q_i`` are :class:`~metarec.models.mf.IdEmbedding` rows of size
    ``embedding_dim``. A new user or item (id 0) gets the average known row plus a learned
    offset, so before adaptation it is the average training user or item.

    Parameters
    ----------
    spec, embedding_dim, hidden_units, global_mean
        As :class:`MeLUNetwork`; ``spec.n_users`` and ``spec.n_items`` size the id tables.

    Call
    ----
    inputs : the :class:`MeLUNetwork` inputs plus ``user_id`` and ``item_id`` int32 ``[N]``.
        Returns predictions ``[N]``.

    Notes
    -----
    ``ADAPT = "/decision"`` as in MeLU; ``"/user_id"`` adapts only the user's own id row
    (the matrix-factorisation way of personalising), ``"all"`` every weight.

    Examples
    --------
    >>> net = MeLUWithIds(encoder.spec, global_mean=3.5)    # doctest: +SKIP
    >>> net(encoder.transform(ratings.head(5))).shape        # (5,)  # doctest: +SKIP
    """

    def __init__(self, spec: FeatureSpec, embedding_dim: int = 32,
                 hidden_units: tuple[int, ...] = (64, 64), global_mean: float = 0.0, **kwargs):
        super().__init__(spec, embedding_dim=embedding_dim, hidden_units=hidden_units,
                         global_mean=global_mean, **kwargs)
        init = keras.initializers.RandomNormal(stddev=0.05)
        self.user_id_embedding = IdEmbedding(spec.n_users, embedding_dim, init,
                                             name="user_id_embedding")
        self.item_id_embedding = IdEmbedding(spec.n_items, embedding_dim, init,
                                             name="item_id_embedding")

    def _n_fields(self) -> int:
        return super()._n_fields() + 2

    def build(self, input_shape=None):
        self.user_id_embedding.build((None,))
        self.item_id_embedding.build((None,))
        super().build(input_shape)

    def embed(self, inputs):
        """Feature embeddings and id embeddings, ``[N, (Fu + Fi + 3) * embedding_dim]``."""
        ids = [self.user_id_embedding(inputs["user_id"]), self.item_id_embedding(inputs["item_id"])]
        return ops.concatenate([super().embed(inputs), *ids], axis=-1)
