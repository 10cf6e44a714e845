"""Wide & Deep (Cheng et al., "Wide & Deep Learning for Recommender Systems", DLRS 2016).

A baseline of the MeLU paper. The prediction is ``mu + wide + deep``:

* **wide** -- a linear model over one-hot user features (gender, age, occupation, zip prefix),
  the one-hot release decade, the genre multi-hot and two feature crosses, *gender x genre*
  and *age x genre* (one weight per (gender, genre) and (age, genre) pair). It memorises
  simple co-occurrences such as "women of 18-24 like romances".
* **deep** -- embeddings of the same user and item features, the mean genre embedding and an
  item id embedding, concatenated and fed to ReLU layers ``decision_0 .. `` (default
  ``64 -> 32``) and a linear ``decision_out``. It generalises to unseen combinations.

Both parts are trained jointly (the paper's joint training). Feature layers are named after
their field (``wide_gender``, ``deep_age``, ...), never ``user_*``: they are shared by all users
with that feature value, not per-user parameters.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers, ops

from metarec.data.dataset import USER_FEATURES
from metarec.data.features import ITEM_FEATURES, FeatureSpec
from metarec.models.baselines import _SpecModel
from metarec.models.mf import IdEmbedding
from metarec.models.spec import spec_from_config

__all__ = ["WideAndDeep"]

# Crossed with the genres in the wide part: positions in ``user_features``.
_CROSSED = {"gender": USER_FEATURES.index("gender"), "age": USER_FEATURES.index("age")}


@keras.saving.register_keras_serializable(package="metarec")
class WideAndDeep(_SpecModel):
    """Wide linear model with feature crosses plus a deep MLP on embeddings (Cheng et al.).

    Parameters
    ----------
    spec : FeatureSpec
        Vocabulary sizes from a fitted :class:`metarec.data.FeatureEncoder`.
    embedding_dim : int
        Size of every deep embedding (features, genres, item id).
    hidden_units : tuple of int
        Widths of the deep ReLU layers.
    global_mean : float
        Initial value of the shared intercept ``mu``.

    Call
    ----
    inputs : dict with ``item_id`` int32 ``[N]``, ``user_features`` int32 ``[N, 4]``,
        ``item_features`` int32 ``[N, 1]`` and ``item_genres`` float32 ``[N, G]``.
        Returns predictions ``[N]``.

    Notes
    -----
    ``ADAPT = "/decision"``: the model has no user id, so a user is personalised through the
    deep part's decision layers -- the same variables, and the same budget, as MeLU adapts.
    A comparison with MeLU then isolates the architecture and how the initial weights were
    learned. The wide weights are population statistics of feature values and stay shared.

    Examples
    --------
    >>> model = WideAndDeep(encoder.spec)                             # doctest: +SKIP
    >>> model.build()                                                 # doctest: +SKIP
    >>> model(encoder.transform(ratings.head(5))).shape               # doctest: +SKIP
    TensorShape([5])
    """

    #: Regex (on ``variable.path``) of the per-user parameters fine-tuned on a support set.
    ADAPT: str = "/decision"
    _hyper = ("embedding_dim", "hidden_units", "global_mean")

    def __init__(self, spec: FeatureSpec, embedding_dim: int = 8,
                 hidden_units: tuple[int, ...] = (64, 32), global_mean: float = 3.5,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.spec = spec_from_config(spec)
        self.embedding_dim = int(embedding_dim)
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.global_mean = float(global_mean)
        if len(self.spec.user_feature_sizes) != len(USER_FEATURES):
            raise ValueError(f"WideAndDeep expects {len(USER_FEATURES)} user features "
                             f"{USER_FEATURES}, the spec has {self.spec.user_feature_sizes}.")
        user_fields = list(zip(USER_FEATURES, self.spec.user_feature_sizes, strict=True))
        item_fields = list(zip(ITEM_FEATURES, self.spec.item_feature_sizes, strict=True))
        g = self.spec.n_genres
        # Wide: one weight per feature value, genre, and crossed (value, genre) pair.
        self.wide_user = [layers.Embedding(n, 1, embeddings_initializer="zeros",
                                           name=f"wide_{f}") for f, n in user_fields]
        self.wide_item = [layers.Embedding(n, 1, embeddings_initializer="zeros",
                                           name=f"wide_{f}") for f, n in item_fields]
        self.wide_genres = layers.Dense(1, use_bias=False, kernel_initializer="zeros",
                                        name="wide_genres")
        self.wide_crosses = [
            layers.Embedding(self.spec.user_feature_sizes[pos], g,
                             embeddings_initializer="zeros", name=f"wide_{f}_x_genre")
            for f, pos in _CROSSED.items()
        ]
        # Deep: embeddings -> decision MLP.
        d = self.embedding_dim
        self.deep_user = [layers.Embedding(n, d, name=f"deep_{f}") for f, n in user_fields]
        self.deep_item = [layers.Embedding(n, d, name=f"deep_{f}") for f, n in item_fields]
        self.deep_genres = layers.Dense(d, use_bias=False, name="deep_genres")
        self.item_embedding = IdEmbedding(self.spec.n_items, d, "random_normal",
                                          name="item_embedding")
        self.decision = [layers.Dense(u, activation="relu", name=f"decision_{i}")
                         for i, u in enumerate(self.hidden_units)]
        self.decision_out = layers.Dense(1, name="decision_out")

    def build(self, input_shape=None):
        self.mu = self.add_weight(shape=(), name="global_bias",
                                  initializer=keras.initializers.Constant(self.global_mean))
        for emb in self.wide_user + self.wide_item + self.wide_crosses:
            emb.build((None,))
        self.wide_genres.build((None, self.spec.n_genres))
        for emb in self.deep_user + self.deep_item:
            emb.build((None,))
        self.deep_genres.build((None, self.spec.n_genres))
        self.item_embedding.build((None,))
        width = (len(self.deep_user) + len(self.deep_item) + 2) * self.embedding_dim
        for dense in self.decision:
            dense.build((None, width))
            width = dense.units
        self.decision_out.build((None, width))
        self.built = True

    def wide(self, inputs) -> Any:
        """The wide part's output, ``[N]``."""
        uf = ops.cast(inputs["user_features"], "int32")
        itf = ops.cast(inputs["item_features"], "int32")
        genres = ops.cast(inputs["item_genres"], "float32")
        out = ops.squeeze(self.wide_genres(genres), -1)
        for i, emb in enumerate(self.wide_user):
            out = out + ops.squeeze(emb(uf[:, i]), -1)
        for i, emb in enumerate(self.wide_item):
            out = out + ops.squeeze(emb(itf[:, i]), -1)
        for pos, cross in zip(_CROSSED.values(), self.wide_crosses, strict=True):
            # Row of the user's feature value = one weight per genre; the item's genres pick.
            out = out + ops.sum(cross(uf[:, pos]) * genres, axis=-1)
        return out

    def deep(self, inputs) -> Any:
        """The deep part's output, ``[N]``."""
        uf = ops.cast(inputs["user_features"], "int32")
        itf = ops.cast(inputs["item_features"], "int32")
        genres = ops.cast(inputs["item_genres"], "float32")
        parts = [emb(uf[:, i]) for i, emb in enumerate(self.deep_user)]
        parts += [emb(itf[:, i]) for i, emb in enumerate(self.deep_item)]
        # Mean genre embedding; max(., 1) keeps items without a genre finite.
        n_genres = ops.maximum(ops.sum(genres, axis=-1, keepdims=True), 1.0)
        parts.append(self.deep_genres(genres) / n_genres)
        parts.append(self.item_embedding(inputs["item_id"]))
        h = ops.concatenate(parts, axis=-1)
        for dense in self.decision:
            h = dense(h)
        return ops.squeeze(self.decision_out(h), -1)

    def call(self, inputs):
        return self.mu + self.wide(inputs) + self.deep(inputs)
