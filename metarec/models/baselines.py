r"""Non-personalised baselines: the global mean and the (shrunk) item mean, plus popularity lists.

Both models carry one adaptable scalar, ``user_offset`` (initialised to 0), so that the fair
protocol of :mod:`metarec.models` applies to them too: fine-tuning on a user's support set with
``inner_steps`` steps of size ``inner_lr`` learns how much this user rates above or below the
baseline (the user bias of a biased baseline predictor). With ``inner_steps=0`` they are the
plain baselines. Their other parameters are set in closed form with ``fit_closed_form`` (or
trained by gradient descent like any other model, e.g. by ``FineTune.fit``).

Shrinkage: the item mean of an item with ``n_i`` ratings is pulled toward the global mean
``mu`` as :math:`\mu + \sum_u (r_{ui} - \mu) / (n_i + \lambda)`, so an item rated once is
not ranked first for its single 5-star rating; ``lambda = 0`` gives the plain item mean. Items
without training ratings (id 0, new items) get ``mu``.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pandas as pd
from keras import ops

from metarec.data.features import FeatureSpec
from metarec.data.tasks import Task, TaskSet
from metarec.models.spec import spec_from_config, spec_to_config

__all__ = ["GlobalMean", "ItemMean", "popular_items"]

Ratings = pd.DataFrame | TaskSet | Task | np.ndarray


def _rows_of(inputs: dict[str, Any]) -> Any:
    """A float zero per row, ``[N]``: the shape every prediction broadcasts to."""
    key = "item_id" if "item_id" in inputs else next(iter(inputs))
    x = ops.cast(inputs[key], "float32")
    return ops.zeros_like(x if len(x.shape) == 1 else x[:, 0])


def _task_ratings(data: TaskSet | Task) -> tuple[np.ndarray, np.ndarray]:
    """Encoded item ids and ratings of all support and query rows of the tasks."""
    tasks = [data] if isinstance(data, Task) else list(data)
    if not tasks:
        raise ValueError("fit_closed_form got an empty TaskSet; pass the training tasks.")
    items = np.concatenate([np.r_[t.support_x["item_id"], t.query_x["item_id"]] for t in tasks])
    y = np.concatenate([np.r_[t.support_y, t.query_y] for t in tasks])
    return items.astype(np.int64), y.astype(np.float64)


def _ratings_array(data: Ratings) -> np.ndarray:
    if isinstance(data, (TaskSet, Task)):
        return _task_ratings(data)[1]
    if isinstance(data, pd.DataFrame):
        if "rating" not in data.columns:
            raise ValueError("fit_closed_form: the DataFrame has no 'rating' column; pass the "
                             "training ratings (e.g. ColdStartSplit.train).")
        return data["rating"].to_numpy(np.float64)
    return np.asarray(data, dtype=np.float64).reshape(-1)


def _check_nonempty(y: np.ndarray) -> None:
    if len(y) == 0:
        raise ValueError("fit_closed_form got no ratings; pass the training ratings.")
    if not np.all(np.isfinite(y)):
        raise ValueError("fit_closed_form: the ratings contain NaN or infinity; clean them first.")


class _SpecModel(keras.Model):
    """Shared ``get_config``/``from_config`` of the models built from a ``FeatureSpec``."""

    _hyper: tuple[str, ...] = ()

    def get_config(self):
        config = super().get_config()
        config["spec"] = spec_to_config(self.spec)
        for name in self._hyper:
            value = getattr(self, name)
            config[name] = list(value) if isinstance(value, tuple) else value
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["spec"] = spec_from_config(config["spec"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="metarec")
class GlobalMean(_SpecModel):
    """Predict the global mean rating plus an adaptable per-user offset: ``mu + user_offset``.

    Parameters
    ----------
    spec : FeatureSpec
        Vocabulary sizes (unused by the computation; kept so every model is built alike).
    global_mean : float
        Initial ``mu``; :meth:`fit_closed_form` sets it to the mean training rating.

    Call
    ----
    inputs : feature dict with ``item_id`` ``[N]`` (only its length is used). Returns ``[N]``.

    Notes
    -----
    ``ADAPT = "/user_"`` selects the scalar ``user_offset``: with the fair protocol the model
    becomes ``mu`` plus the user's mean deviation, estimated by a few gradient steps.

    Examples
    --------
    >>> model = GlobalMean(encoder.spec)                   # doctest: +SKIP
    >>> model.build()                                      # doctest: +SKIP
    >>> model.fit_closed_form(split.train)                 # doctest: +SKIP
    >>> model(encoder.transform(split.train.head(3)))      # [mu, mu, mu]  # doctest: +SKIP
    """

    #: Regex (on ``variable.path``) of the per-user parameters fine-tuned on a support set.
    ADAPT: str = "/user_"
    _hyper = ("global_mean",)

    def __init__(self, spec: FeatureSpec, global_mean: float = 3.5, **kwargs: Any):
        super().__init__(**kwargs)
        self.spec = spec_from_config(spec)
        self.global_mean = float(global_mean)

    def build(self, input_shape=None):
        self.mu = self.add_weight(shape=(), name="global_bias",
                                  initializer=keras.initializers.Constant(self.global_mean))
        self.user_offset = self.add_weight(shape=(), name="user_offset", initializer="zeros")
        self.built = True

    def call(self, inputs):
        return _rows_of(inputs) + self.mu + self.user_offset

    def fit_closed_form(self, ratings: Ratings) -> GlobalMean:
        """Set ``mu`` to the mean rating and ``user_offset`` to 0; returns ``self``.

        Parameters
        ----------
        ratings : DataFrame (column ``rating``), TaskSet, Task or array of ratings
            The training ratings; for tasks, support and query rows are pooled (as
            ``FineTune.fit`` pools them).
        """
        y = _ratings_array(ratings)
        _check_nonempty(y)
        if not self.built:
            self.build()
        self.mu.assign(float(y.mean()))
        self.user_offset.assign(0.0)
        return self


@keras.saving.register_keras_serializable(package="metarec")
class ItemMean(_SpecModel):
    """Item popularity baseline: the shrunk item mean plus a per-user offset.

    ``prediction = mu + item_bias[item_id] + user_offset`` where, after
    :meth:`fit_closed_form`, ``mu + item_bias[i]`` is the item's mean rating shrunk toward the
    global mean (module docstring) and ``item_bias[0] = 0`` (new items get ``mu``).

    Parameters
    ----------
    spec : FeatureSpec
        ``spec.n_items`` sizes the item bias table.
    shrinkage : float
        ``lambda`` of the shrinkage, in pseudo-ratings at the global mean (0: plain mean).
    global_mean : float
        Initial ``mu`` (before :meth:`fit_closed_form`).

    Call
    ----
    inputs : feature dict with ``item_id`` int32 ``[N]``. Returns ``[N]``.

    Notes
    -----
    ``ADAPT = "/user_"`` selects the scalar ``user_offset`` (see :class:`GlobalMean`); the
    item table is shared by all users.

    Examples
    --------
    >>> model = ItemMean(encoder.spec, shrinkage=5.0)      # doctest: +SKIP
    >>> model.fit_closed_form(split.train, encoder)        # doctest: +SKIP
    >>> model(encoder.transform(split.train.head(3)))      # shrunk item means  # doctest: +SKIP
    """

    #: Regex (on ``variable.path``) of the per-user parameters fine-tuned on a support set.
    ADAPT: str = "/user_"
    _hyper = ("shrinkage", "global_mean")

    def __init__(self, spec: FeatureSpec, shrinkage: float = 5.0, global_mean: float = 3.5,
                 **kwargs: Any):
        super().__init__(**kwargs)
        if shrinkage < 0:
            raise ValueError(f"shrinkage must be >= 0 (0 = plain item mean), got {shrinkage}.")
        self.spec = spec_from_config(spec)
        self.shrinkage = float(shrinkage)
        self.global_mean = float(global_mean)

    def build(self, input_shape=None):
        self.mu = self.add_weight(shape=(), name="global_bias",
                                  initializer=keras.initializers.Constant(self.global_mean))
        self.item_bias = self.add_weight(shape=(self.spec.n_items,), name="item_bias",
                                         initializer="zeros")
        self.user_offset = self.add_weight(shape=(), name="user_offset", initializer="zeros")
        self.built = True

    def call(self, inputs):
        items = ops.cast(inputs["item_id"], "int32")
        return ops.take(self.item_bias, items, axis=0) + self.mu + self.user_offset

    def fit_closed_form(self, ratings: pd.DataFrame | TaskSet | Task, encoder: Any = None,
                        shrinkage: float | None = None) -> ItemMean:
        """Set ``mu`` and the item biases from the training ratings; returns ``self``.

        Parameters
        ----------
        ratings : DataFrame or TaskSet or Task
            Training ratings. A DataFrame (columns ``item_id``, ``rating``) needs ``encoder``
            to map raw item ids to the model's ids; tasks are already encoded (support and
            query rows are pooled).
        encoder : FeatureEncoder, optional
            The encoder whose spec built the model (required for a DataFrame).
        shrinkage : float, optional
            Overrides ``self.shrinkage`` for this fit.

        Raises
        ------
        ValueError
            No ratings, NaN ratings, a DataFrame without encoder, or item ids outside the
            model's table.
        """
        lam = self.shrinkage if shrinkage is None else float(shrinkage)
        if lam < 0:
            raise ValueError(f"shrinkage must be >= 0, got {lam}.")
        if isinstance(ratings, pd.DataFrame):
            if encoder is None:
                raise ValueError("ItemMean.fit_closed_form needs the FeatureEncoder to encode a "
                                 "DataFrame: fit_closed_form(train_ratings, encoder).")
            for col in ("user_id", "item_id", "rating"):
                if col not in ratings.columns:
                    raise ValueError(f"fit_closed_form: the ratings lack the column {col!r}.")
            items = encoder.transform(ratings)["item_id"].astype(np.int64)
            y = ratings["rating"].to_numpy(np.float64)
        else:
            items, y = _task_ratings(ratings)
        _check_nonempty(y)
        n_items = self.spec.n_items
        if items.max() >= n_items:
            raise ValueError(f"Item id {int(items.max())} does not fit the model's item table "
                             f"({n_items} rows): build the model from the spec of the encoder "
                             "that encoded these ratings.")
        mu = y.mean()
        sums = np.bincount(items, weights=y - mu, minlength=n_items)
        counts = np.bincount(items, minlength=n_items).astype(np.float64)
        bias = np.divide(sums, counts + lam, out=np.zeros(n_items), where=(counts + lam) > 0)
        bias[0] = 0.0  # id 0 = items unseen in training (and rows that fell into it): mu
        if not self.built:
            self.build()
        self.mu.assign(float(mu))
        self.item_bias.assign(bias.astype(np.float32))
        self.user_offset.assign(0.0)
        return self


def popular_items(ratings: pd.DataFrame, k: int = 10, min_count: int = 1, by: str = "count",
                  shrinkage: float = 5.0) -> np.ndarray:
    """The ``k`` most popular raw item ids, most popular first (a "popularity list").

    Parameters
    ----------
    ratings : DataFrame
        Columns ``item_id`` and ``rating`` (the training ratings).
    k : int
        Length of the list (fewer if fewer items qualify).
    min_count : int
        Only items with at least this many ratings qualify.
    by : {"count", "mean"}
        ``"count"``: most-rated first (popularity in the usual sense). ``"mean"``: highest
        shrunk mean first, ``(sum of ratings + shrinkage * mu) / (n_i + shrinkage)``, i.e. the
        ranking of :class:`ItemMean`. Ties are broken by the other criterion, then by item id.
    shrinkage : float
        ``lambda`` for ``by="mean"``.

    Returns
    -------
    ndarray of int64, ``[min(k, qualifying items)]``

    Examples
    --------
    >>> r = pd.DataFrame({"item_id": [1, 1, 2, 3, 3, 3], "rating": [5, 4, 5, 2, 3, 2]})
    >>> popular_items(r, k=2).tolist()
    [3, 1]
    >>> popular_items(r, k=3, by="mean", shrinkage=0.0).tolist()
    [2, 1, 3]
    """
    if by not in ("count", "mean"):
        raise ValueError(f"by must be 'count' or 'mean', got {by!r}.")
    if k < 1 or min_count < 1 or shrinkage < 0:
        raise ValueError(f"Need k >= 1, min_count >= 1 and shrinkage >= 0; got k={k}, "
                         f"min_count={min_count}, shrinkage={shrinkage}.")
    for col in ("item_id", "rating"):
        if col not in ratings.columns:
            raise ValueError(f"popular_items: the ratings lack the column {col!r}.")
    if len(ratings) == 0:
        return np.zeros(0, dtype=np.int64)
    mu = float(ratings["rating"].mean())
    stats = ratings.groupby("item_id")["rating"].agg(["count", "sum"])
    stats = stats[stats["count"] >= min_count]
    stats["shrunk"] = (stats["sum"] + shrinkage * mu) / (stats["count"] + shrinkage)
    stats["item"] = stats.index.to_numpy(np.int64)
    keys = ["count", "shrunk"] if by == "count" else ["shrunk", "count"]
    ranked = stats.sort_values(keys + ["item"], ascending=[False, False, True], kind="stable")
    return ranked["item"].to_numpy(np.int64)[:k]
