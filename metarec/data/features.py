"""Integer encoding of ids and side information for the models.

:class:`FeatureEncoder` learns its vocabularies from the **training ratings only**: a user, an
item or a category value that does not occur among the users/items of those ratings maps to id
0, the out-of-vocabulary (OOV) bucket. New users and new items of a cold-start split therefore
arrive with id 0 but with their real side information, unless a feature value was never seen
in training either.

Encoded features, one row per rating (``N`` rows):

===================  ==============  ===================================================
key                  dtype, shape    content
===================  ==============  ===================================================
``user_id``          int32 [N]       1..n_users-1 for training users, 0 otherwise
``item_id``          int32 [N]       1..n_items-1 for training items, 0 otherwise
``user_features``    int32 [N, 4]    gender, age, occupation, zip_prefix (0 = unseen)
``item_features``    int32 [N, 1]    release decade (0 = unseen or unknown year)
``item_genres``      float32 [N, G]  genre multi-hot (all genres of the dataset)
===================  ==============  ===================================================

Vocabulary ids are assigned in sorted order of the values, so two encoders fitted on the same
ratings are identical.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from metarec.data.dataset import USER_FEATURES, RatingsDataset

__all__ = ["FeatureEncoder", "FeatureSpec", "ITEM_FEATURES"]

#: Item feature columns of ``item_features`` (derived from ``items.year``).
ITEM_FEATURES: tuple[str, ...] = ("decade",)


@dataclass
class FeatureSpec:
    """Vocabulary sizes a model needs to build its embedding tables.

    Attributes
    ----------
    n_users, n_items : int
        Id vocabulary sizes, including the OOV id 0.
    user_feature_sizes : list of int
        Vocabulary size (incl. OOV) of gender, age, occupation, zip_prefix.
    item_feature_sizes : list of int
        Vocabulary size (incl. OOV) of the release decade.
    n_genres : int
        Width ``G`` of ``item_genres``.

    Examples
    --------
    >>> spec = FeatureSpec(944, 1683, [3, 8, 22, 11], [9], 19)
    >>> FeatureSpec.from_dict(spec.to_dict()) == spec
    True
    """

    n_users: int
    n_items: int
    user_feature_sizes: list[int]
    item_feature_sizes: list[int]
    n_genres: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of the fields."""
        return {k: (list(v) if isinstance(v, (list, tuple)) else v)
                for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(n_users=int(data["n_users"]), n_items=int(data["n_items"]),
                   user_feature_sizes=[int(v) for v in data["user_feature_sizes"]],
                   item_feature_sizes=[int(v) for v in data["item_feature_sizes"]],
                   n_genres=int(data["n_genres"]))


def _decade(year: pd.Series) -> pd.Series:
    """Release decade (1995 -> 1990) as Int64; <NA> stays <NA>."""
    return (year.astype("Int64") // 10) * 10


def _codes(values: pd.Series | np.ndarray, vocab: Sequence[Any]) -> np.ndarray:
    """Map values to 1 + position in ``vocab``; values not in it (or missing) map to 0."""
    array = np.asarray(values)
    if array.dtype.kind in "iu":  # ids and ages: integer index, much faster than object
        index = pd.Index(np.asarray(list(vocab), dtype=np.int64))
        pos = index.get_indexer(array.astype(np.int64))
    else:
        index = pd.Index(list(vocab), dtype=object)
        pos = index.get_indexer(pd.Index(np.asarray(values, dtype=object)))
    return (pos + 1).astype(np.int32)  # get_indexer gives -1 for unknown values -> 0


def _to_python(value: Any) -> Any:
    """numpy scalars -> Python scalars, so vocabularies are JSON-able and compare equal."""
    return value.item() if isinstance(value, np.generic) else value


class FeatureEncoder:
    """Encode ratings into the integer/multi-hot features the models consume.

    Fit on the training ratings, then transform any ratings of the same dataset (training,
    validation, cold-start parts): ids and categories unseen in training become 0.

    Attributes
    ----------
    user_vocab, item_vocab : list of int
        Raw ids with an embedding (``user_vocab[k]`` has id ``k + 1``).
    user_feature_vocabs : dict of str to list
        Sorted values of each user feature seen in training.
    item_feature_vocabs : dict of str to list
        Sorted decades seen in training.
    genres : list of str
        Genre columns of the multi-hot.

    Examples
    --------
    >>> from metarec.data import make_synthetic
    >>> ds = make_synthetic(n_users=60, n_items=50, ratings_per_user=(5, 30), seed=0)
    >>> train = ds.ratings[ds.ratings["user_id"] <= 40]
    >>> enc = FeatureEncoder().fit(ds, train)
    >>> x = enc.transform(ds.ratings)
    >>> x["user_features"].shape == (ds.n_ratings, 4)
    True
    >>> int(x["user_id"][ds.ratings["user_id"].to_numpy() > 40].max())   # unseen users -> OOV
    0
    """

    def __init__(self) -> None:
        self.user_vocab: list[int] = []
        self.item_vocab: list[int] = []
        self.user_feature_vocabs: dict[str, list[Any]] = {}
        self.item_feature_vocabs: dict[str, list[Any]] = {}
        self.genres: list[str] = []
        # Lookup tables for every user/item of the dataset (also those unseen in training,
        # whose side information is still known): raw id -> encoded row.
        self._user_ids = np.zeros(0, dtype=np.int64)
        self._user_table = np.zeros((0, len(USER_FEATURES)), dtype=np.int32)
        self._item_ids = np.zeros(0, dtype=np.int64)
        self._item_table = np.zeros((0, len(ITEM_FEATURES)), dtype=np.int32)
        self._genre_table = np.zeros((0, 0), dtype=np.float32)
        self._fitted = False

    # ------------------------------------------------------------------------------------------
    def fit(self, dataset: RatingsDataset, ratings: pd.DataFrame) -> FeatureEncoder:
        """Learn vocabularies from the users and items that occur in ``ratings``.

        Parameters
        ----------
        dataset : RatingsDataset
            Provides the user and item tables (side information of every user/item).
        ratings : DataFrame
            The training ratings (columns ``user_id``, ``item_id``).

        Returns
        -------
        FeatureEncoder
            ``self``, fitted.
        """
        self._fingerprint = None  # refitting changes what the ids mean
        _require_columns(ratings, ("user_id", "item_id"), "fit")
        if len(ratings) == 0:
            raise ValueError("FeatureEncoder.fit got no ratings; pass the training ratings "
                             "(e.g. ColdStartSplit.train).")
        train_users = np.unique(ratings["user_id"].to_numpy(np.int64))
        train_items = np.unique(ratings["item_id"].to_numpy(np.int64))
        users = dataset.users[dataset.users["user_id"].isin(train_users)]
        items = dataset.items[dataset.items["item_id"].isin(train_items)]
        self.user_vocab = [int(u) for u in train_users]
        self.item_vocab = [int(i) for i in train_items]
        self.user_feature_vocabs = {
            f: [_to_python(v) for v in sorted(users[f].dropna().unique())] for f in USER_FEATURES
        }
        self.item_feature_vocabs = {
            "decade": [int(v) for v in sorted(_decade(items["year"]).dropna().unique())]
        }
        self.genres = list(dataset.genres)
        self._build_tables(dataset.users, dataset.items)
        return self

    def _build_tables(self, users: pd.DataFrame, items: pd.DataFrame) -> None:
        self._user_ids = users["user_id"].to_numpy(np.int64)
        self._user_table = np.stack(
            [_codes(users[f], self.user_feature_vocabs[f]) for f in USER_FEATURES], axis=1
        ).astype(np.int32).reshape(len(users), len(USER_FEATURES))
        self._item_ids = items["item_id"].to_numpy(np.int64)
        decade = _decade(items["year"]).astype(object).where(items["year"].notna(), None)
        self._item_table = _codes(decade, self.item_feature_vocabs["decade"]).reshape(-1, 1)
        self._genre_table = items[self.genres].to_numpy(np.float32).reshape(
            len(items), len(self.genres))
        self._fitted = True

    # ------------------------------------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        return self._fitted

    @property
    def spec(self) -> FeatureSpec:
        """Vocabulary sizes (each includes the OOV id 0)."""
        self._check_fitted()
        return FeatureSpec(
            n_users=len(self.user_vocab) + 1,
            n_items=len(self.item_vocab) + 1,
            user_feature_sizes=[len(self.user_feature_vocabs[f]) + 1 for f in USER_FEATURES],
            item_feature_sizes=[len(self.item_feature_vocabs[f]) + 1 for f in ITEM_FEATURES],
            n_genres=len(self.genres),
        )

    def transform(self, ratings: pd.DataFrame) -> dict[str, np.ndarray]:
        """Encode one row per rating; see the module docstring for the keys.

        Parameters
        ----------
        ratings : DataFrame
            Columns ``user_id`` and ``item_id`` (others ignored), ``N`` rows.

        Returns
        -------
        dict of str to ndarray
            ``user_id`` [N], ``item_id`` [N], ``user_features`` [N, 4],
            ``item_features`` [N, 1], ``item_genres`` [N, G].
        """
        _require_columns(ratings, ("user_id", "item_id"), "transform")
        return self.encode(ratings["user_id"].to_numpy(np.int64),
                           ratings["item_id"].to_numpy(np.int64))

    def encode(self, user_ids: np.ndarray | Sequence[int],
               item_ids: np.ndarray | Sequence[int]) -> dict[str, np.ndarray]:
        """Encode aligned arrays of raw user and item ids (e.g. every candidate item of a user).

        Users/items unknown to the dataset get all-zero features (OOV) and no genre.
        """
        self._check_fitted()
        users = np.asarray(user_ids, dtype=np.int64).reshape(-1)
        items = np.asarray(item_ids, dtype=np.int64).reshape(-1)
        if users.shape != items.shape:
            raise ValueError(f"user_ids and item_ids must have the same length, got "
                             f"{users.shape[0]} and {items.shape[0]}.")
        user_rows = pd.Index(self._user_ids).get_indexer(users)
        item_rows = pd.Index(self._item_ids).get_indexer(items)
        return {
            "user_id": _codes(users, self.user_vocab),
            "item_id": _codes(items, self.item_vocab),
            "user_features": _take(self._user_table, user_rows),
            "item_features": _take(self._item_table, item_rows),
            "item_genres": _take(self._genre_table, item_rows),
        }

    # ------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict holding vocabularies and the lookup tables (for saving models)."""
        self._check_fitted()
        return {
            "version": 1,
            "user_vocab": list(self.user_vocab),
            "item_vocab": list(self.item_vocab),
            "user_feature_vocabs": {k: list(v) for k, v in self.user_feature_vocabs.items()},
            "item_feature_vocabs": {k: list(v) for k, v in self.item_feature_vocabs.items()},
            "genres": list(self.genres),
            "user_ids": self._user_ids.tolist(),
            "user_table": self._user_table.tolist(),
            "item_ids": self._item_ids.tolist(),
            "item_table": self._item_table.tolist(),
            # Multi-hot rows stored as lists of genre positions: compact and exact.
            "item_genre_positions": [np.flatnonzero(row).tolist() for row in self._genre_table],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureEncoder:
        """Rebuild an encoder from :meth:`to_dict` output (also after a JSON round trip)."""
        enc = cls()
        enc.user_vocab = [int(v) for v in data["user_vocab"]]
        enc.item_vocab = [int(v) for v in data["item_vocab"]]
        enc.user_feature_vocabs = {k: list(v) for k, v in data["user_feature_vocabs"].items()}
        enc.item_feature_vocabs = {k: list(v) for k, v in data["item_feature_vocabs"].items()}
        enc.genres = list(data["genres"])
        enc._user_ids = np.asarray(data["user_ids"], dtype=np.int64)
        enc._user_table = np.asarray(data["user_table"], dtype=np.int32).reshape(
            len(enc._user_ids), len(USER_FEATURES))
        enc._item_ids = np.asarray(data["item_ids"], dtype=np.int64)
        enc._item_table = np.asarray(data["item_table"], dtype=np.int32).reshape(
            len(enc._item_ids), len(ITEM_FEATURES))
        genres = np.zeros((len(enc._item_ids), len(enc.genres)), dtype=np.float32)
        for row, positions in enumerate(data["item_genre_positions"]):
            genres[row, positions] = 1.0
        enc._genre_table = genres
        enc._fitted = True
        return enc

    @property
    def fingerprint(self) -> str:
        """A short hash of the vocabularies and the genre list: what encoded ids mean.

        Two encoders with the same fingerprint encode every rating the same way. Task sets
        (:func:`~metarec.data.build_tasks`) and learners remember it, so tasks of another
        encoder are refused with a clear message instead of a raw TensorFlow error.

        Examples
        --------
        >>> enc.fingerprint                                     # doctest: +SKIP
        'c0ffee12ab34'
        """
        self._check_fitted()
        cached = getattr(self, "_fingerprint", None)
        if cached is None:
            import hashlib

            data = {"user_vocab": self.user_vocab, "item_vocab": self.item_vocab,
                    "user_feature_vocabs": self.user_feature_vocabs,
                    "item_feature_vocabs": self.item_feature_vocabs, "genres": self.genres}
            text = json.dumps(data, sort_keys=True, default=_to_python)
            cached = self._fingerprint = hashlib.sha256(text.encode()).hexdigest()[:12]
        return cached

    def to_json(self) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> FeatureEncoder:
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))

    def __repr__(self) -> str:
        if not self._fitted:
            return "FeatureEncoder(unfitted)"
        return f"FeatureEncoder({self.spec})"

    def _check_fitted(self) -> None:
        if not self._fitted:
            raise RuntimeError("This FeatureEncoder is not fitted; call "
                               "encoder.fit(dataset, train_ratings) first.")


def _take(table: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Rows of ``table``; row -1 (unknown id) gives zeros."""
    padded = np.concatenate([table, np.zeros((1, *table.shape[1:]), dtype=table.dtype)])
    return padded[np.where(rows < 0, len(table), rows)]


def _require_columns(ratings: pd.DataFrame, columns: Sequence[str], where: str) -> None:
    missing = [c for c in columns if c not in ratings.columns]
    if missing:
        raise ValueError(f"FeatureEncoder.{where}: ratings lack the column(s) {missing}; pass a "
                         f"ratings DataFrame with columns user_id, item_id, rating.")
