"""Cold-start scenarios: which users and items the meta-learner may see during training.

:func:`cold_start_split` follows the MeLU evaluation design (Lee et al., KDD 2019): items are
*existing* or *new* by release year, users are *existing* or *new* by a seeded random draw, and
each combination is a scenario.

Rules (all seeded by ``seed``; the same seed gives the same split):

1. **Items.** An item is *new* if its release year is ``>= new_item_year`` and *existing*
   otherwise; items with an unknown year count as existing. ``new_item_year`` is an option;
   its default goes by ``dataset.name``: ml-1m 1998, ml-100k 1997, synthetic 1997 (about the
   newest 20% of items). A custom copy read by
   :func:`~metarec.data.load_movielens_folder` keeps its format's name and so gets
   that format's default; any other name needs ``new_item_year``.
2. **Users.** Only users with at least one rating are split; users of ``dataset.users``
   without any rating (e.g. in a partial copy) are in no part and listed in
   ``unrated_users``. A random ``new_user_fraction`` of the rated users (rounded) is *new*,
   the rest *existing*. (On the official MovieLens releases every user has ratings, so this
   changes nothing there.)
3. **Validation.** A random ``validation_fraction`` of the existing users (rounded) are
   *validation users*; the others are *meta-train users*.
4. **Warm hold-out.** A meta-train user with ``n`` ratings on existing items is *warm-eligible*
   if ``min_ratings + warm_query <= n <= max_ratings``: after holding out ``warm_query`` ratings
   they still have ``>= min_ratings`` training ratings (so they remain a training task) and
   their support + query fits the ``max_ratings`` bound of :func:`~metarec.data.build_tasks`.
   For each eligible user, ``warm_query`` ratings on existing items are drawn at random and
   held out.

Parts (DataFrames with the ratings columns; the index is the row label in ``dataset.ratings``):

==================  ========================================================================
``train``           meta-train users x existing items, minus the warm hold-out
``validation``      validation users x existing items (early stopping; users unseen in
                    training)
``warm_support``    the ``train`` rows of the warm-eligible users (their known history)
``warm_query``      the held-out ratings (never in ``train``)
``user_cold``       new users x existing items
``item_cold``       meta-train users x new items
``user_item_cold``  new users x new items
``unused``          validation users x new items (no scenario uses them)
==================  ========================================================================

Every rating of the dataset is in exactly one of ``train``, ``warm_query``, ``validation``,
``user_cold``, ``item_cold``, ``user_item_cold``, ``unused``; ``warm_support`` is a subset of
``train``. No new user and no new item ever appears in ``train`` or ``validation``. The split
does not apply the MeLU ``min_ratings..max_ratings`` filter to the parts:
:func:`~metarec.data.build_tasks` does when it turns a part into tasks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from metarec._validate import check_int
from metarec.data.dataset import RatingsDataset

__all__ = ["ColdStartSplit", "DEFAULT_NEW_ITEM_YEAR", "PARTS", "cold_start_split",
           "scenario_tasks"]

#: Release year from which items count as new, per dataset name.
DEFAULT_NEW_ITEM_YEAR: dict[str, int] = {"ml-1m": 1998, "ml-100k": 1997, "synthetic": 1997}

#: Names of the parts of a :class:`ColdStartSplit`, in the order of :meth:`summary`.
PARTS: tuple[str, ...] = ("train", "validation", "warm_support", "warm_query", "user_cold",
                          "item_cold", "user_item_cold", "unused")

_DESCRIPTIONS = {
    "train": "meta-train users x existing items (minus warm_query)",
    "validation": "validation users x existing items",
    "warm_support": "warm users' training ratings (subset of train)",
    "warm_query": "held-out ratings of warm users",
    "user_cold": "new users x existing items",
    "item_cold": "meta-train users x new items",
    "user_item_cold": "new users x new items",
    "unused": "validation users x new items",
}


@dataclass(repr=False, eq=False)
class ColdStartSplit:
    """Users, items and rating parts of the cold-start scenarios (see the module docstring).

    Attributes
    ----------
    dataset : RatingsDataset
        The dataset that was split.
    existing_users, new_users, meta_train_users, validation_users : int64 arrays
        Sorted raw user ids. ``meta_train_users`` and ``validation_users`` partition
        ``existing_users``. Only users with at least one rating.
    unrated_users : int64 array
        Sorted ids of the users of ``dataset.users`` without any rating (in no part).
    warm_users : int64 array
        Sorted ids of the warm-eligible meta-train users.
    existing_items, new_items : int64 arrays
        Sorted raw item ids.
    train, validation, warm_support, warm_query, user_cold, item_cold, user_item_cold, unused
        DataFrames of ratings.
    new_item_year, seed, min_ratings, max_ratings, n_warm_query : int
        The parameters used.
    """

    dataset: RatingsDataset
    existing_users: np.ndarray
    new_users: np.ndarray
    meta_train_users: np.ndarray
    validation_users: np.ndarray
    unrated_users: np.ndarray
    warm_users: np.ndarray
    existing_items: np.ndarray
    new_items: np.ndarray
    train: pd.DataFrame
    validation: pd.DataFrame
    warm_support: pd.DataFrame
    warm_query: pd.DataFrame
    user_cold: pd.DataFrame
    item_cold: pd.DataFrame
    user_item_cold: pd.DataFrame
    unused: pd.DataFrame
    new_item_year: int
    seed: int
    min_ratings: int
    max_ratings: int
    n_warm_query: int

    @property
    def parts(self) -> dict[str, pd.DataFrame]:
        """Part name -> ratings DataFrame, in :data:`PARTS` order."""
        return {name: getattr(self, name) for name in PARTS}

    def summary(self) -> pd.DataFrame:
        """Ratings, users and items per part.

        Returns
        -------
        DataFrame indexed by part name, columns ``ratings``, ``users``, ``items``,
        ``task_users`` (users with ``min_ratings..max_ratings`` ratings in the part, i.e. the
        tasks :func:`~metarec.data.build_tasks` makes with default bounds; for the warm parts
        support + query count) and ``description``.
        """
        warm_counts = pd.concat([self.warm_support, self.warm_query])["user_id"].value_counts()
        rows = []
        for name, frame in self.parts.items():
            counts = (warm_counts[warm_counts.index.isin(frame["user_id"].unique())]
                      if name.startswith("warm") else frame["user_id"].value_counts())
            rows.append({
                "part": name,
                "ratings": len(frame),
                "users": frame["user_id"].nunique(),
                "items": frame["item_id"].nunique(),
                "task_users": int(counts.between(self.min_ratings, self.max_ratings).sum()),
                "description": _DESCRIPTIONS[name],
            })
        return pd.DataFrame(rows).set_index("part")

    def __repr__(self) -> str:
        unrated = (f" ({len(self.unrated_users)} users without ratings left out)"
                   if len(self.unrated_users) else "")
        return (f"ColdStartSplit({self.dataset.name}: {len(self.existing_users)} existing / "
                f"{len(self.new_users)} new users{unrated}, {len(self.existing_items)} existing / "
                f"{len(self.new_items)} new items (year >= {self.new_item_year}), "
                f"train {len(self.train)} ratings, seed={self.seed})")


def cold_start_split(
    dataset: RatingsDataset,
    *,
    new_item_year: int | None = None,
    new_user_fraction: float = 0.2,
    validation_fraction: float = 0.1,
    warm_query: int = 10,
    min_ratings: int = 13,
    max_ratings: int = 100,
    seed: int = 0,
) -> ColdStartSplit:
    """Split a dataset into the warm, user-cold, item-cold and user-item-cold scenarios.

    Parameters
    ----------
    dataset : RatingsDataset
    new_item_year : int, optional
        Items released in or after this year are new. Default from
        :data:`DEFAULT_NEW_ITEM_YEAR` by ``dataset.name`` (a custom MovieLens copy has its
        format's name); required for other dataset names.
    new_user_fraction : float in [0, 1)
        Fraction of the users with at least one rating drawn as new users.
    validation_fraction : float in [0, 1)
        Fraction of existing users held out for validation (early stopping).
    warm_query : int
        Held-out ratings per warm-eligible meta-train user (0 disables the warm scenario).
    min_ratings, max_ratings : int
        MeLU bounds; they define warm eligibility (rule 4) and the ``task_users`` summary.
    seed : int
        Seeds the user split, the validation split and the warm hold-out (independent streams).

    Returns
    -------
    ColdStartSplit

    Examples
    --------
    >>> from metarec.data import make_synthetic
    >>> split = cold_start_split(make_synthetic(n_users=200, n_items=100, seed=0), seed=0)
    >>> len(split.new_users)
    40
    >>> bool(split.train["user_id"].isin(split.new_users).any())
    False
    """
    if new_item_year is None:
        if dataset.name not in DEFAULT_NEW_ITEM_YEAR:
            known = ", ".join(f"{k} {v}" for k, v in DEFAULT_NEW_ITEM_YEAR.items())
            raise ValueError(f"No default new_item_year for dataset {dataset.name!r} (defaults: "
                             f"{known}); pass new_item_year=..., e.g. "
                             f"cold_start_split(dataset, new_item_year=1998) (items released in "
                             f"or after that year are new).")
        new_item_year = DEFAULT_NEW_ITEM_YEAR[dataset.name]
    for label, value in (("new_user_fraction", new_user_fraction),
                         ("validation_fraction", validation_fraction)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{label} must be in [0, 1), got {value}.")
    if warm_query < 0 or min_ratings < 1 or max_ratings < min_ratings:
        raise ValueError(f"Need warm_query >= 0 and 1 <= min_ratings <= max_ratings; got "
                         f"warm_query={warm_query}, min_ratings={min_ratings}, "
                         f"max_ratings={max_ratings}.")
    check_int("cold_start_split", "seed", seed, 0)
    user_rng, validation_rng, warm_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)
    )

    # Rule 1: items by release year (unknown year -> existing).
    years = dataset.items["year"].astype("Int64")
    is_new_item = (years >= new_item_year).fillna(False).to_numpy(bool)
    item_ids = dataset.items["item_id"].to_numpy(np.int64)
    new_items, existing_items = np.sort(item_ids[is_new_item]), np.sort(item_ids[~is_new_item])

    # Rules 2-3: users with ratings only (a user without any would be an empty "new user").
    # Sorted first so that the draw does not depend on table order.
    all_users = np.sort(dataset.users["user_id"].to_numpy(np.int64))
    rated = np.isin(all_users, dataset.ratings["user_id"].to_numpy(np.int64))
    users, unrated_users = all_users[rated], all_users[~rated]
    permuted = users[user_rng.permutation(len(users))]
    n_new = int(round(new_user_fraction * len(users)))
    new_users, existing_users = np.sort(permuted[:n_new]), np.sort(permuted[n_new:])
    permuted = existing_users[validation_rng.permutation(len(existing_users))]
    n_val = int(round(validation_fraction * len(existing_users)))
    validation_users, meta_train_users = np.sort(permuted[:n_val]), np.sort(permuted[n_val:])

    ratings = dataset.ratings
    user_col = ratings["user_id"].to_numpy(np.int64)
    new_item_row = np.isin(ratings["item_id"].to_numpy(np.int64), new_items)
    new_user_row = np.isin(user_col, new_users)
    val_user_row = np.isin(user_col, validation_users)
    train_user_row = ~new_user_row & ~val_user_row

    # Rule 4: warm hold-out among meta-train users' ratings on existing items.
    pool = train_user_row & ~new_item_row
    keys = warm_rng.random(len(ratings))  # one key per rating: independent of eligibility
    pool_idx = np.flatnonzero(pool)
    counts = pd.Series(user_col[pool_idx]).value_counts()
    eligible = counts.index[counts.between(min_ratings + warm_query, max_ratings)].to_numpy()
    warm_users = np.sort(eligible.astype(np.int64)) if warm_query > 0 else np.zeros(0, np.int64)
    candidates = pool_idx[np.isin(user_col[pool_idx], warm_users)]
    order = candidates[np.lexsort((keys[candidates], user_col[candidates]))]
    rank = pd.Series(user_col[order]).groupby(user_col[order]).cumcount().to_numpy()
    is_query = np.zeros(len(ratings), dtype=bool)
    is_query[order[rank < warm_query]] = True

    def part(mask: np.ndarray) -> pd.DataFrame:
        return ratings[mask]

    train = part(pool & ~is_query)
    return ColdStartSplit(
        dataset=dataset,
        existing_users=existing_users, new_users=new_users,
        meta_train_users=meta_train_users, validation_users=validation_users,
        unrated_users=unrated_users, warm_users=warm_users,
        existing_items=existing_items, new_items=new_items,
        train=train,
        validation=part(val_user_row & ~new_item_row),
        warm_support=train[train["user_id"].isin(warm_users)],
        warm_query=part(is_query),
        user_cold=part(new_user_row & ~new_item_row),
        item_cold=part(train_user_row & new_item_row),
        user_item_cold=part(new_user_row & new_item_row),
        unused=part(val_user_row & new_item_row),
        new_item_year=int(new_item_year), seed=int(seed), min_ratings=int(min_ratings),
        max_ratings=int(max_ratings), n_warm_query=int(warm_query),
    )


def scenario_tasks(split: ColdStartSplit, encoder: Any, **task_kwargs: Any) -> dict[str, Any]:
    """Few-shot tasks of every scenario, built with :func:`metarec.data.tasks.build_tasks`.

    Parameters
    ----------
    split : ColdStartSplit
    encoder : FeatureEncoder
        Fitted on ``split.train``.
    **task_kwargs
        Passed to every ``build_tasks`` call (``n_query``, ``max_support``, ``seed``, ...).
        ``min_ratings``/``max_ratings`` default to the split's.

    Returns
    -------
    dict of str to TaskSet
        ``train``, ``validation``, ``warm`` (support = ``warm_support``, query =
        ``warm_query``), ``user_cold``, ``item_cold``, ``user_item_cold``.

    Examples
    --------
    >>> tasks = scenario_tasks(split, FeatureEncoder().fit(ds, split.train))  # doctest: +SKIP
    >>> len(tasks["user_cold"])                                               # doctest: +SKIP
    """
    from metarec.data.tasks import build_tasks  # lazy: tasks may import this module

    if "query_ratings" in task_kwargs:
        raise TypeError("scenario_tasks sets query_ratings itself (warm_query for 'warm').")
    kwargs = {"min_ratings": split.min_ratings, "max_ratings": split.max_ratings, **task_kwargs}
    return {
        "train": build_tasks(split.train, encoder, **kwargs),
        "validation": build_tasks(split.validation, encoder, **kwargs),
        "warm": build_tasks(split.warm_support, encoder, query_ratings=split.warm_query,
                            **kwargs),
        "user_cold": build_tasks(split.user_cold, encoder, **kwargs),
        "item_cold": build_tasks(split.item_cold, encoder, **kwargs),
        "user_item_cold": build_tasks(split.user_item_cold, encoder, **kwargs),
    }
