"""The in-memory form of every dataset: :class:`RatingsDataset`.

MovieLens 100K, MovieLens 1M and the synthetic generator all return the same three tables, so
splits, feature encoding, tasks and models never need to know where the data came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["RatingsDataset", "USER_FEATURES", "QUANTILES", "dataset_stats"]

#: User feature columns, in the order the feature encoder stacks them.
USER_FEATURES: tuple[str, ...] = ("gender", "age", "occupation", "zip_prefix")

#: Quantiles reported by :func:`dataset_stats` (name -> probability).
QUANTILES: dict[str, float] = {
    "min": 0.0, "10%": 0.1, "25%": 0.25, "50%": 0.5, "75%": 0.75, "90%": 0.9, "max": 1.0,
}

_RATING_DTYPES = {"user_id": "int64", "item_id": "int64", "rating": "float32",
                  "timestamp": "int64"}


@dataclass(repr=False, eq=False)
class RatingsDataset:
    """Explicit ratings plus user and item side information.

    Attributes
    ----------
    name : str
        ``"ml-100k"``, ``"ml-1m"`` or ``"synthetic"``.
    ratings : DataFrame, one row per rating [N]
        ``user_id`` (int64), ``item_id`` (int64), ``rating`` (float32, 1..5),
        ``timestamp`` (int64, Unix seconds). Sorted by user, then time, then item.
    users : DataFrame, one row per user, index 0..n-1
        ``user_id`` (int64), ``gender`` ("M"/"F"), ``age`` (int64, ml-1m age codes
        1, 18, 25, 35, 45, 50, 56), ``occupation`` (str), ``zip_prefix`` (str, first
        character of the zip code).
    items : DataFrame, one row per item, index 0..m-1
        ``item_id`` (int64), ``title`` (str), ``year`` (Int64, release year, ``<NA>`` when
        unknown), then one int8 column (0/1) per genre, named as in ``genres``.
    genres : list of str
        Genre column names of ``items``, in order.
    truth : SyntheticTruth or None
        Ground truth of a synthetic dataset (``None`` for MovieLens).
    source : str or None
        ``None`` for the verified official release (and synthetic data); the folder of a
        custom copy read without checksum verification by
        :func:`~metarec.data.load_movielens_folder`. ``name`` stays the format
        (``"ml-1m"``) so that format defaults (e.g. the new-item year) apply; check
        ``custom`` before comparing results with the official release.

    Examples
    --------
    >>> from metarec.data import make_synthetic
    >>> ds = make_synthetic(n_users=50, n_items=40, seed=0)
    >>> ds.n_users, ds.n_items
    (50, 40)
    >>> list(ds.ratings.columns)
    ['user_id', 'item_id', 'rating', 'timestamp']
    """

    name: str
    ratings: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame
    genres: list[str]
    truth: Any = None
    source: str | None = None

    @property
    def custom(self) -> bool:
        """True for a custom copy (not checksum-verified); see ``source``."""
        return self.source is not None

    @property
    def n_users(self) -> int:
        """Rows of the user table."""
        return int(len(self.users))

    @property
    def n_items(self) -> int:
        """Rows of the item table."""
        return int(len(self.items))

    @property
    def n_ratings(self) -> int:
        """Rows of the ratings table."""
        return int(len(self.ratings))

    def __repr__(self) -> str:
        # The dataclass default would print three DataFrames.
        custom = f", custom copy of {self.source}" if self.custom else ""
        return (f"RatingsDataset({self.name!r}: {self.n_users} users, {self.n_items} items, "
                f"{self.n_ratings} ratings, {len(self.genres)} genres{custom})")

    def stats(self, min_ratings: int = 13, max_ratings: int = 100) -> dict[str, Any]:
        """Summary statistics; see :func:`dataset_stats`."""
        return dataset_stats(self, min_ratings=min_ratings, max_ratings=max_ratings)

    def validate(self) -> RatingsDataset:
        """Check the column contract; raise ``ValueError`` naming the offending column.

        Returns ``self`` so that loaders can end with ``return dataset.validate()``.
        """
        for col, dtype in _RATING_DTYPES.items():
            if col not in self.ratings.columns:
                raise ValueError(f"{self.name}: ratings lack the column {col!r}.")
            if str(self.ratings[col].dtype) != dtype:
                raise ValueError(f"{self.name}: ratings[{col!r}] has dtype "
                                 f"{self.ratings[col].dtype}, expected {dtype}.")
        for col in ("user_id", *USER_FEATURES):
            if col not in self.users.columns:
                raise ValueError(f"{self.name}: users lack the column {col!r}.")
        for col in ("item_id", "title", "year", *self.genres):
            if col not in self.items.columns:
                raise ValueError(f"{self.name}: items lack the column {col!r}.")
        if not self.users["user_id"].is_unique or not self.items["item_id"].is_unique:
            raise ValueError(f"{self.name}: duplicate user or item ids.")
        unknown_users = ~self.ratings["user_id"].isin(self.users["user_id"])
        unknown_items = ~self.ratings["item_id"].isin(self.items["item_id"])
        if unknown_users.any() or unknown_items.any():
            raise ValueError(f"{self.name}: {int(unknown_users.sum())} ratings of unknown users "
                             f"and {int(unknown_items.sum())} of unknown items.")
        return self


def dataset_stats(
    dataset: RatingsDataset, min_ratings: int = 13, max_ratings: int = 100
) -> dict[str, Any]:
    """Size, sparsity and rating-count distributions of a dataset.

    Parameters
    ----------
    dataset : RatingsDataset
    min_ratings, max_ratings : int
        Bounds of the MeLU protocol (users with ``min_ratings..max_ratings`` ratings are kept).

    Returns
    -------
    dict
        ``users``, ``items``, ``ratings`` (ints; sizes of the three tables), ``sparsity``
        (``1 - ratings / (users * items)``), ``mean_rating``, ``rating_counts`` (rating value
        -> count), ``ratings_per_user`` and ``ratings_per_item`` (quantile name in
        :data:`QUANTILES` -> value, linear interpolation; users/items of the tables without a
        rating count as 0), ``melu_users`` (users kept by the MeLU protocol), ``melu_bounds``.

    Examples
    --------
    >>> from metarec.data import make_synthetic
    >>> stats = dataset_stats(make_synthetic(n_users=50, n_items=40, seed=0))
    >>> stats["users"], stats["items"]
    (50, 40)
    """
    ratings = dataset.ratings
    per_user = (ratings.groupby("user_id").size()
                .reindex(dataset.users["user_id"], fill_value=0).to_numpy())
    per_item = (ratings.groupby("item_id").size()
                .reindex(dataset.items["item_id"], fill_value=0).to_numpy())
    n_cells = dataset.n_users * dataset.n_items

    def quantiles(counts: np.ndarray) -> dict[str, float]:
        if len(counts) == 0:
            return {k: float("nan") for k in QUANTILES}
        values = np.quantile(counts, list(QUANTILES.values()))
        return {k: float(v) for k, v in zip(QUANTILES, values, strict=True)}

    values, counts = np.unique(ratings["rating"].to_numpy(), return_counts=True)
    return {
        "name": dataset.name,
        "users": dataset.n_users,
        "items": dataset.n_items,
        "ratings": dataset.n_ratings,
        "sparsity": 1.0 - dataset.n_ratings / n_cells if n_cells else float("nan"),
        "mean_rating": float(ratings["rating"].mean()) if len(ratings) else float("nan"),
        "rating_counts": {float(v): int(c) for v, c in zip(values, counts, strict=True)},
        "ratings_per_user": quantiles(per_user),
        "ratings_per_item": quantiles(per_item),
        "melu_users": int(((per_user >= min_ratings) & (per_user <= max_ratings)).sum()),
        "melu_bounds": (min_ratings, max_ratings),
    }
