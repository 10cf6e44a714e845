r"""Item-kNN with baseline estimates (Koren's kNN-baseline): the classic neighbourhood reference.

A conventional recommender that needs no training loop and no per-user adaptation: it serves a
new user as soon as their ratings are in its rating table. Chapter 8 uses it as a reference
next to the fair grid (:mod:`metarec.experiments.references`).

The computation is that of Surprise's ``KNNBaseline`` (Hug, 2020; the reference implementation
of Koren, 2010, formula 3 of section 2.2), which this class wraps: Surprise is a dependency of
metarec, and :class:`KNNBaseline` only adds a DataFrame interface, vectorised calls, checks with
clear messages and a deterministic row order. ``tests/test_references.py`` checks it against a
hand computation of the formulas below.

**Baselines** (alternating least squares, ``n_epochs`` rounds, items first):

.. math::

    b_i \leftarrow \frac{\sum_{u \in R(i)} (r_{ui} - \mu - b_u)}{\lambda_i + |R(i)|}, \qquad
    b_u \leftarrow \frac{\sum_{i \in R(u)} (r_{ui} - \mu - b_i)}{\lambda_u + |R(u)|},

starting from :math:`b_u = b_i = 0`, with :math:`\mu` the mean training rating,
``reg_items`` :math:`= \lambda_i` (default 10) and ``reg_users`` :math:`= \lambda_u`
(default 15). The baseline estimate is :math:`b_{ui} = \mu + b_u + b_i`.

**Similarity** (``similarity="pearson_baseline"``, item-based): with :math:`U_{ij}` the users
who rated both items and :math:`e_{ui} = r_{ui} - b_{ui}` the residuals,

.. math::

    \rho_{ij} = \frac{\sum_{u \in U_{ij}} e_{ui} e_{uj}}
                     {\sqrt{\sum_{u \in U_{ij}} e_{ui}^2 \, \sum_{u \in U_{ij}} e_{uj}^2}},
    \qquad
    s_{ij} = \frac{|U_{ij}| - 1}{|U_{ij}| - 1 + \text{shrinkage}} \, \rho_{ij}

(shrinkage default 100: a similarity backed by few common users is pulled toward 0; fewer than
two common users give 0). ``similarity="msd"`` uses Surprise's mean-squared-difference
similarity :math:`1 / (\text{msd}_{ij} + 1)` instead (no shrinkage).

**Prediction** for user :math:`u` and item :math:`i`: :math:`N^k_u(i)` are the ``k`` items
rated by :math:`u` most similar to :math:`i` (default 40); only those with
:math:`s_{ij} > 0` count,

.. math::

    \hat r_{ui} = b_{ui} + \frac{\sum_{j \in N^k_u(i),\, s_{ij} > 0} s_{ij}\,(r_{uj} - b_{uj})}
                              {\sum_{j \in N^k_u(i),\, s_{ij} > 0} s_{ij}},

clipped to the rating scale. **Fallbacks**: with fewer than ``min_k`` positive neighbours
(default 1) the neighbour term is 0 and the prediction is the baseline :math:`b_{ui}`; an
item without any rating in the table (a new item nobody has rated yet) has :math:`b_i = 0` and
a user without any rating :math:`b_u = 0`, so such pairs get :math:`\mu + b_u` or
:math:`\mu + b_i` (:math:`\mu` for both unknown).

With ``user_based=True`` the roles of users and items swap (user-kNN).

Examples
--------
>>> import pandas as pd
>>> ratings = pd.DataFrame({"user_id": [1, 1, 2, 2, 3], "item_id": [10, 20, 10, 20, 10],
...                         "rating": [5.0, 4.0, 4.0, 3.0, 2.0]})
>>> knn = KNNBaseline(k=2, shrinkage=0).fit(ratings)
>>> knn.predict([3, 9], [20, 20]).shape  # user 9 is unknown: baseline mu + b_i
(2,)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from metarec._validate import RATING_COLUMNS, check_int, rating_frame

__all__ = ["KNNBaseline", "SIMILARITIES"]

#: Similarity measures this wrapper accepts (Surprise's names).
SIMILARITIES = ("pearson_baseline", "msd")


def _import_surprise() -> Any:
    try:
        import surprise
    except ImportError as err:  # a dependency of metarec: only a broken install lands here
        raise ImportError("KNNBaseline needs the scikit-surprise package, a dependency of "
                          "metarec: install it with `pip install scikit-surprise` (or "
                          "reinstall metarec).") from err
    return surprise


def _check_number(where: str, name: str, value: Any, low: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"{where}: {name} must be a number >= {low}, got {value!r}.")
    if not math.isfinite(float(value)) or value < low:
        raise ValueError(f"{where}: {name} must be a finite number >= {low}, got {value}.")
    return float(value)


class KNNBaseline:
    """Item-kNN with baseline estimates (module docstring for the formulas).

    Parameters
    ----------
    k : int
        Largest number of neighbours per prediction (default 40).
    min_k : int
        Fewest positive neighbours for the neighbour term; fewer give the baseline (default 1).
    similarity : {"pearson_baseline", "msd"}
        Similarity between items (default the shrunk Pearson-baseline correlation).
    shrinkage : float
        Shrinkage of the Pearson-baseline similarity in common raters (default 100; 0: none).
    reg_items, reg_users : float
        Regularisation :math:`\\lambda_i`, :math:`\\lambda_u` of the ALS baselines (10, 15).
    n_epochs : int
        ALS rounds of the baselines (default 10).
    user_based : bool
        ``True`` for user-kNN (neighbours are users who rated the item).

    Attributes
    ----------
    global_mean : float
        :math:`\\mu` (this and the attributes below are set by :meth:`fit`).
    user_bias, item_bias : pandas Series
        :math:`b_u` and :math:`b_i`, indexed by raw user and item id.
    rating_scale : tuple of float
        ``(low, high)`` that predictions are clipped to.
    """

    def __init__(self, k: int = 40, min_k: int = 1, similarity: str = "pearson_baseline",
                 shrinkage: float = 100.0, reg_items: float = 10.0, reg_users: float = 15.0,
                 n_epochs: int = 10, user_based: bool = False):
        where = "KNNBaseline"
        self.k = check_int(where, "k", k, 1)
        self.min_k = check_int(where, "min_k", min_k, 0)
        if self.min_k > self.k:
            raise ValueError(f"{where}: min_k={min_k} > k={k} would never use a neighbour; use "
                             "min_k <= k.")
        if similarity not in SIMILARITIES:
            raise ValueError(f"{where}: unknown similarity {similarity!r}; choose from "
                             f"{', '.join(SIMILARITIES)}.")
        self.similarity = similarity
        self.shrinkage = _check_number(where, "shrinkage", shrinkage, 0.0)
        self.reg_items = _check_number(where, "reg_items", reg_items, 0.0)
        self.reg_users = _check_number(where, "reg_users", reg_users, 0.0)
        self.n_epochs = check_int(where, "n_epochs", n_epochs, 1)
        if not isinstance(user_based, (bool, np.bool_)):
            raise TypeError(f"{where}: user_based must be True or False, got {user_based!r}.")
        self.user_based = bool(user_based)
        self._algo: Any = None

    def __repr__(self) -> str:
        state = "fitted" if self._algo is not None else "not fitted"
        return (f"KNNBaseline(k={self.k}, min_k={self.min_k}, similarity={self.similarity!r}, "
                f"shrinkage={self.shrinkage:g}, {'user' if self.user_based else 'item'}-based, "
                f"{state})")

    # ------------------------------------------------------------------ fitting
    def fit(self, ratings: pd.DataFrame,
            rating_scale: tuple[float, float] | None = None) -> KNNBaseline:
        """Compute the baselines and the similarity matrix from ``ratings``; returns ``self``.

        Parameters
        ----------
        ratings : DataFrame
            Columns ``user_id``, ``item_id``, ``rating``; one row per (user, item) pair.
        rating_scale : (low, high), optional
            Bounds predictions are clipped to (default: the lowest and highest rating).

        Notes
        -----
        The rows are sorted by (user, item) first, so the result does not depend on the row
        order (Surprise breaks ties between equally similar neighbours by position).
        Memory: the similarity matrix is dense, ``n_items x n_items`` float64 (22 MB for the
        1,682 items of ML-100K, 110 MB for ML-1M).
        """
        frame = self._check_ratings(ratings)
        y = frame["rating"].to_numpy(np.float64)
        if rating_scale is None:
            rating_scale = (float(y.min()), float(y.max()))
        low, high = (float(v) for v in rating_scale)
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"KNNBaseline.fit: rating_scale must be (low, high) with finite "
                             f"low < high, got {rating_scale!r}.")
        surprise = _import_surprise()
        frame = frame.sort_values(["user_id", "item_id"], kind="stable")
        data = surprise.Dataset.load_from_df(frame[list(RATING_COLUMNS)],
                                             surprise.Reader(rating_scale=(low, high)))
        trainset = data.build_full_trainset()
        sim_options = {"name": self.similarity, "user_based": self.user_based}
        if self.similarity == "pearson_baseline":
            sim_options["shrinkage"] = self.shrinkage
        bsl_options = {"method": "als", "reg_i": self.reg_items, "reg_u": self.reg_users,
                       "n_epochs": self.n_epochs}
        algo = surprise.KNNBaseline(k=self.k, min_k=self.min_k, sim_options=sim_options,
                                    bsl_options=bsl_options, verbose=False)
        with np.errstate(divide="ignore", invalid="ignore"):
            algo.fit(trainset)
        # A pair whose common raters all sit exactly on their baselines has 0/0: no evidence of
        # similarity, so 0 (Surprise would leave NaN there, which poisons predictions).
        algo.sim = np.nan_to_num(algo.sim, nan=0.0, posinf=0.0, neginf=0.0)
        self._algo = algo
        self.rating_scale = (low, high)
        self.global_mean = float(trainset.global_mean)
        users = [trainset.to_raw_uid(u) for u in trainset.all_users()]
        items = [trainset.to_raw_iid(i) for i in trainset.all_items()]
        self.user_bias = pd.Series(np.asarray(algo.bu, dtype=np.float64), index=users,
                                   name="user_bias")
        self.item_bias = pd.Series(np.asarray(algo.bi, dtype=np.float64), index=items,
                                   name="item_bias")
        return self

    @staticmethod
    def _check_ratings(ratings: pd.DataFrame) -> pd.DataFrame:
        where = "KNNBaseline.fit"
        frame = rating_frame(where, ratings, "the training ratings, e.g. ColdStartSplit.train")
        dup = frame.duplicated(["user_id", "item_id"], keep=False)
        if dup.any():
            user, item = frame.loc[dup, ["user_id", "item_id"]].iloc[0]
            raise ValueError(f"{where}: {int(frame.duplicated(['user_id', 'item_id']).sum())} "
                             f"(user, item) pair(s) are rated more than once (first: user "
                             f"{user}, item {item}); keep one rating per pair, e.g. "
                             "ratings.drop_duplicates(['user_id', 'item_id'], keep='last').")
        return frame

    # --------------------------------------------------------------- prediction
    def _fitted(self, where: str) -> Any:
        if self._algo is None:
            raise RuntimeError(f"KNNBaseline.{where}: call fit(ratings) first.")
        return self._algo

    @staticmethod
    def _pairs(where: str, users: Sequence[Any] | np.ndarray,
               items: Sequence[Any] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        u, i = np.asarray(users).reshape(-1), np.asarray(items).reshape(-1)
        if len(u) != len(i):
            raise ValueError(f"KNNBaseline.{where}: users and items must have the same length "
                             f"(one pair per prediction), got {len(u)} and {len(i)}.")
        return u, i

    def baseline(self, users: Sequence[Any] | np.ndarray,
                 items: Sequence[Any] | np.ndarray) -> np.ndarray:
        """Baseline estimates :math:`\\mu + b_u + b_i` (0 bias for an unknown id), ``[N]``."""
        self._fitted("baseline")
        u, i = self._pairs("baseline", users, items)
        bu = self.user_bias.reindex(u).fillna(0.0).to_numpy()
        bi = self.item_bias.reindex(i).fillna(0.0).to_numpy()
        return self.global_mean + bu + bi

    def predict(self, users: Sequence[Any] | np.ndarray, items: Sequence[Any] | np.ndarray,
                clip: bool = True) -> np.ndarray:
        """Predicted ratings of the (user, item) pairs, float64 ``[N]``.

        ``users`` and ``items`` hold raw ids (as in the fitted DataFrame), one pair per
        prediction. Unknown users or items fall back to the baseline (module docstring);
        ``clip`` clips to :attr:`rating_scale`.
        """
        algo = self._fitted("predict")
        u, i = self._pairs("predict", users, items)
        trainset = algo.trainset
        out = np.empty(len(u), dtype=np.float64)
        for n, (raw_u, raw_i) in enumerate(zip(u.tolist(), i.tolist(), strict=True)):
            # Surprise's estimate() on inner ids; an unknown raw id gets an id it never knew,
            # which estimate() turns into the baseline (the same as Surprise's predict()).
            try:
                iu = trainset.to_inner_uid(raw_u)
            except ValueError:
                iu = "UKN__" + str(raw_u)
            try:
                ii = trainset.to_inner_iid(raw_i)
            except ValueError:
                ii = "UKN__" + str(raw_i)
            est = algo.estimate(iu, ii)
            out[n] = est[0] if isinstance(est, tuple) else est
        if clip:
            np.clip(out, *self.rating_scale, out=out)
        return out

    def neighbours_used(self, users: Sequence[Any] | np.ndarray,
                        items: Sequence[Any] | np.ndarray) -> np.ndarray:
        """Number of positive-similarity neighbours behind each prediction, int ``[N]``.

        0 means the prediction is the baseline (unknown user or item, or no neighbour).
        """
        algo = self._fitted("neighbours_used")
        u, i = self._pairs("neighbours_used", users, items)
        trainset = algo.trainset
        out = np.zeros(len(u), dtype=np.int64)
        for n, (raw_u, raw_i) in enumerate(zip(u.tolist(), i.tolist(), strict=True)):
            try:
                iu, ii = trainset.to_inner_uid(raw_u), trainset.to_inner_iid(raw_i)
            except ValueError:
                continue
            est = algo.estimate(iu, ii)
            out[n] = est[1]["actual_k"] if isinstance(est, tuple) else 0
        return out
