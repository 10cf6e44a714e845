"""Few-shot tasks: one task per user, with a support set and a query set.

Recommendation for a user is a regression task: learn the user's mapping from item features
to ratings. A *task* holds a few of the user's ratings to adapt on (the **support set**) and
other ratings to evaluate the adapted model on (the **query set**).

Protocol (MeLU, Lee et al. 2019), the default of :func:`build_tasks`:

1. keep users with ``min_ratings`` (13) to ``max_ratings`` (100) ratings;
2. for each kept user, ``n_query`` (10) ratings drawn at random form the query set;
3. the remaining ratings form the support set (optionally capped at ``max_support`` or fixed
   to exactly ``support_size`` ratings, drawn at random).

Tasks of different sizes are batched as padded arrays with masks, so a meta-batch of 32 users is
one set of tensors of shape ``[T, S, ...]`` (support) and ``[T, Q, ...]`` (query).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from metarec._validate import check_int

Features = dict[str, np.ndarray]


class _Encoder(Protocol):
    def transform(self, ratings: pd.DataFrame) -> Features: ...


@dataclass
class Task:
    """One user's few-shot task.

    Attributes
    ----------
    user_id : int
        The raw user id of the dataset.
    support_x, query_x : dict of arrays
        Encoded features, one row per rating: ``[S, ...]`` and ``[Q, ...]``.
    support_y, query_y : array of float32
        Ratings, ``[S]`` and ``[Q]``.
    support_items, query_items : array of int64
        Raw item ids of the rows (to show titles, build top-k lists).
    encoder_fingerprint : str or None
        :attr:`~metarec.data.FeatureEncoder.fingerprint` of the encoder that encoded the
        features (None for tasks built by hand): learners refuse tasks of another encoder
        with a clear message.
    """

    user_id: int
    support_x: Features
    support_y: np.ndarray
    query_x: Features
    query_y: np.ndarray
    support_items: np.ndarray
    query_items: np.ndarray
    encoder_fingerprint: str | None = None

    @property
    def n_support(self) -> int:
        return int(len(self.support_y))

    @property
    def n_query(self) -> int:
        return int(len(self.query_y))


@dataclass
class TaskBatch:
    """A batch of ``T`` tasks as padded arrays.

    ``support_x[k]`` has shape ``[T, S, ...]``, ``support_y`` and ``support_mask`` ``[T, S]``
    (mask 1.0 for a real rating, 0.0 for padding); the same for the query set with ``Q``.
    """

    support_x: Features
    support_y: np.ndarray
    support_mask: np.ndarray
    query_x: Features
    query_y: np.ndarray
    query_mask: np.ndarray
    user_ids: np.ndarray

    def __len__(self) -> int:
        return int(self.support_y.shape[0])

    def as_tuple(self) -> tuple[Any, ...]:
        """``(support_x, support_y, support_mask, query_x, query_y, query_mask)``."""
        return (
            self.support_x,
            self.support_y,
            self.support_mask,
            self.query_x,
            self.query_y,
            self.query_mask,
        )


def _pad_stack(parts: Sequence[np.ndarray], length: int) -> np.ndarray:
    """Stack arrays of shape ``[n_i, ...]`` into ``[len(parts), length, ...]`` with zeros."""
    first = parts[0]
    out = np.zeros((len(parts), length, *first.shape[1:]), dtype=first.dtype)
    for i, part in enumerate(parts):
        out[i, : len(part)] = part
    return out


@runtime_checkable
class TaskSource(Protocol):
    """What meta-training reads from a collection of tasks: :class:`TaskSet` or
    :class:`~metarec.data.pipeline.TaskStream`.

    ``MetaLearner.fit`` accepts any ``TaskSource``; evaluation needs a :class:`TaskSet` (the
    tasks in their order, with their user ids).
    """

    #: Fingerprint of the FeatureEncoder that encoded the tasks, or None for hand-built ones.
    encoder_fingerprint: str | None

    def __len__(self) -> int: ...

    def batch(self, indices: Any = None) -> TaskBatch:
        """The tasks at ``indices`` as one padded :class:`TaskBatch`."""
        ...

    def training_batches(self, batch_size: int, *, shuffle: bool = True, seed: int = 0,
                         bucket: bool = False) -> Iterator[TaskBatch]:
        """One epoch of meta-batches for training (``bucket``: grouped by support size)."""
        ...


@dataclass
class TaskSet(Sequence[Task]):
    """An ordered collection of :class:`Task` objects, stored padded for fast batching.

    Index it like a list (``tasks[0]`` is a :class:`Task`), take subsets with
    :meth:`subset`, and iterate over padded meta-batches with :meth:`batches`.
    All batches of one ``TaskSet`` share the same padded sizes ``S`` and ``Q``, so a compiled
    training step is traced once.
    """

    tasks: list[Task]
    support_length: int = field(default=0)
    query_length: int = field(default=0)

    def __post_init__(self) -> None:
        prints = {t.encoder_fingerprint for t in self.tasks} - {None}
        if len(prints) > 1:
            raise ValueError(f"These tasks were encoded by {len(prints)} different "
                             f"FeatureEncoders (fingerprints {sorted(prints)}); a TaskSet must "
                             "hold tasks of one encoder: build them all with the same one.")
        #: Fingerprint of the encoder of the tasks (None for hand-built tasks).
        self.encoder_fingerprint: str | None = prints.pop() if prints else None
        if not self.tasks:
            return
        self.support_length = max(self.support_length, max(t.n_support for t in self.tasks))
        self.query_length = max(self.query_length, max(t.n_query for t in self.tasks))
        keys = list(self.tasks[0].support_x)
        self._sx = {k: _pad_stack([t.support_x[k] for t in self.tasks], self.support_length)
                    for k in keys}
        self._qx = {k: _pad_stack([t.query_x[k] for t in self.tasks], self.query_length)
                    for k in keys}
        self._sy = _pad_stack([t.support_y for t in self.tasks], self.support_length)
        self._qy = _pad_stack([t.query_y for t in self.tasks], self.query_length)
        self._sm = _pad_stack(
            [np.ones(t.n_support, np.float32) for t in self.tasks], self.support_length
        )
        self._qm = _pad_stack(
            [np.ones(t.n_query, np.float32) for t in self.tasks], self.query_length
        )
        self._users = np.array([t.user_id for t in self.tasks], dtype=np.int64)

    # Sequence protocol
    def __len__(self) -> int:
        return len(self.tasks)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return self.subset(range(len(self))[index])
        return self.tasks[index]

    def __repr__(self) -> str:
        return (
            f"TaskSet({len(self)} tasks, support <= {self.support_length}, "
            f"query <= {self.query_length})"
        )

    @property
    def user_ids(self) -> np.ndarray:
        return np.array([t.user_id for t in self.tasks], dtype=np.int64)

    def subset(self, indices: Sequence[int] | np.ndarray) -> TaskSet:
        """A new ``TaskSet`` with the tasks at ``indices`` (same padded sizes)."""
        return TaskSet([self.tasks[int(i)] for i in indices], self.support_length,
                       self.query_length)

    def batch(self, indices: Sequence[int] | np.ndarray | None = None) -> TaskBatch:
        """The tasks at ``indices`` (all tasks by default) as one padded :class:`TaskBatch`."""
        if not self.tasks:
            raise ValueError("This TaskSet is empty: there is no task to batch. Check the "
                             "filters of build_tasks (min_ratings, max_ratings, support_size).")
        idx = np.arange(len(self)) if indices is None else np.asarray(indices, dtype=np.int64)
        return TaskBatch(
            support_x={k: v[idx] for k, v in self._sx.items()},
            support_y=self._sy[idx],
            support_mask=self._sm[idx],
            query_x={k: v[idx] for k, v in self._qx.items()},
            query_y=self._qy[idx],
            query_mask=self._qm[idx],
            user_ids=self._users[idx],
        )

    def batches(
        self,
        batch_size: int = 32,
        shuffle: bool = True,
        seed: int = 0,
        drop_remainder: bool = False,
    ) -> Iterator[TaskBatch]:
        """Yield padded meta-batches of ``batch_size`` tasks.

        Parameters
        ----------
        batch_size : int
            Tasks per batch (``T``).
        shuffle : bool
            Shuffle the task order with a generator seeded by ``seed``.
        drop_remainder : bool
            Skip a final batch smaller than ``batch_size``.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        order = np.arange(len(self))
        if shuffle:
            order = np.random.default_rng(seed).permutation(len(self))
        for start in range(0, len(self), batch_size):
            idx = order[start : start + batch_size]
            if drop_remainder and len(idx) < batch_size:
                break
            yield self.batch(idx)

    def training_batches(self, batch_size: int, *, shuffle: bool = True, seed: int = 0,
                         bucket: bool = False) -> Iterator[TaskBatch]:
        """One epoch of meta-batches for ``MetaLearner.fit`` (the :class:`TaskSource` method).

        ``bucket=False``: :meth:`batches`. ``bucket=True``: tasks grouped by support size, each
        meta-batch padded to its own longest support set, lengths rounded up to a multiple of 8
        (a handful of shapes, so few retraces of the compiled step); see
        :func:`metarec.data.buckets.bucketed_batches`.
        """
        if not bucket:
            return self.batches(batch_size, shuffle=shuffle, seed=seed)
        from metarec.data.buckets import bucketed_batches  # lazy: buckets imports this module

        return bucketed_batches(self, batch_size, shuffle=shuffle, seed=seed, multiple=8)

    def stats(self) -> dict[str, float]:
        """Number of tasks and support/query size summaries."""
        s = np.array([t.n_support for t in self.tasks])
        q = np.array([t.n_query for t in self.tasks])
        if len(s) == 0:
            return {"tasks": 0}
        return {
            "tasks": len(self),
            "support_min": int(s.min()),
            "support_median": float(np.median(s)),
            "support_max": int(s.max()),
            "query_min": int(q.min()),
            "query_max": int(q.max()),
            "ratings": int(s.sum() + q.sum()),
        }


def _check_no_duplicates(where: str, ratings: pd.DataFrame,
                         query_ratings: pd.DataFrame | None) -> None:
    """Refuse a (user, item) pair rated twice: it could be in a task's support and query set."""
    pairs = ratings[["user_id", "item_id"]]
    if query_ratings is not None:
        pairs = pd.concat([pairs, query_ratings[["user_id", "item_id"]]], ignore_index=True)
    dup = pairs.duplicated(keep=False)
    if dup.any():
        user, item = (int(v) for v in pairs[dup].iloc[0])
        where_dup = ("ratings and query_ratings" if query_ratings is not None
                     and ((query_ratings["user_id"] == user)
                          & (query_ratings["item_id"] == item)).any()
                     and ((ratings["user_id"] == user) & (ratings["item_id"] == item)).any()
                     else "the ratings")
        raise ValueError(
            f"{where}: {int(pairs.duplicated().sum())} (user, item) pair(s) are rated more "
            f"than once (first: user {user}, item {item}, in {where_dup}); one rating could "
            "land in both the support and the query set of a task (leakage). Keep one row per "
            "pair, e.g. ratings.drop_duplicates(['user_id', 'item_id'], keep='last').")


def check_task_arguments(where: str, ratings: pd.DataFrame, *, min_ratings: int,
                         max_ratings: int, n_query: int, seed: int,
                         support_size: int | None = None, max_support: int | None = None,
                         query_ratings: pd.DataFrame | None = None,
                         group_by: str = "user_id") -> None:
    """The checks of task construction, shared by :func:`build_tasks` and
    :meth:`metarec.data.pipeline.TaskStream.from_ratings`.

    Same rules, same messages (prefixed by ``where``, the caller's name): the columns of
    ``ratings`` (and ``query_ratings``), integer ranges (``n_query >= 1``, ``max_support >= 1``,
    ...), ``min_ratings <= max_ratings``, ``min_ratings > n_query``, ``support_size`` and
    ``max_support`` not both, ``group_by`` a known column, and no (user, item) pair rated twice
    (leakage between support and query set). Raises ``TypeError``/``ValueError``.

    Examples
    --------
    >>> check_task_arguments("build_tasks", ratings, min_ratings=13, max_ratings=100,
    ...                      n_query=10, seed=0)    # doctest: +SKIP
    """
    for name in ("user_id", "item_id", "rating"):
        if name not in ratings.columns:
            raise ValueError(f"{where}: ratings lack the column {name!r}; expected the "
                             "ratings DataFrame of a RatingsDataset or a ColdStartSplit part.")
    check_int(where, "min_ratings", min_ratings, 1)
    check_int(where, "max_ratings", max_ratings, 1)
    check_int(where, "n_query", n_query, 1,
              why="(a task needs a query set to score the adapted model)")
    check_int(where, "seed", seed, 0)
    if support_size is not None:
        check_int(where, "support_size", support_size, 1,
                  why="(an empty support set cannot be adapted on)")
    if max_support is not None:
        check_int(where, "max_support", max_support, 1,
                  why="(an empty support set cannot be adapted on)")
    if support_size is not None and max_support is not None:
        raise ValueError(f"{where}: give support_size (exactly that many support ratings) "
                         "or max_support (at most that many), not both.")
    if min_ratings > max_ratings:
        raise ValueError(f"{where}: min_ratings={min_ratings} > max_ratings={max_ratings} "
                         "keeps no user; use min_ratings <= max_ratings.")
    if group_by not in ("user_id", "item_id"):
        raise ValueError(f"{where}: group_by must be 'user_id' or 'item_id', got {group_by!r}.")
    if query_ratings is not None:
        for name in ("user_id", "item_id", "rating"):
            if name not in query_ratings.columns:
                raise ValueError(f"{where}: query_ratings lack the column {name!r}.")
    _check_no_duplicates(where, ratings, query_ratings)
    if query_ratings is None and min_ratings <= n_query:
        raise ValueError(
            f"{where}: min_ratings={min_ratings} <= n_query={n_query} would leave users with "
            "an empty support set; use min_ratings >= n_query + 1.")


def build_tasks(
    ratings: pd.DataFrame,
    encoder: _Encoder,
    *,
    min_ratings: int = 13,
    max_ratings: int = 100,
    n_query: int = 10,
    support_size: int | None = None,
    max_support: int | None = None,
    query_ratings: pd.DataFrame | None = None,
    seed: int = 0,
    group_by: str = "user_id",
) -> TaskSet:
    """Turn ratings into one few-shot task per user.

    Parameters
    ----------
    ratings : DataFrame
        Columns ``user_id``, ``item_id``, ``rating`` (and whatever the encoder needs).
    encoder : FeatureEncoder
        Fitted encoder; ``encoder.transform(ratings)`` gives the model features.
    min_ratings, max_ratings : int
        Keep users whose number of ratings (support + query) lies in this range (inclusive).
    n_query : int
        Ratings per user drawn at random into the query set (ignored with ``query_ratings``).
    support_size : int, optional
        Fix the support set to exactly this many ratings, drawn at random; users with fewer
        are dropped. For support-size sweeps.
    max_support : int, optional
        Cap the support set at this many ratings, drawn at random.
    query_ratings : DataFrame, optional
        Explicit query ratings (e.g. the held-out warm ratings). Then the support set of a
        user is all their rows in ``ratings`` and the query set all their rows here; only
        users present in both are kept, and the bounds apply to support + query.
    seed : int
        Seeds every random draw; the same seed gives the same tasks.
    group_by : str
        The column that defines a task: ``"user_id"`` (one task per user, the default) or
        ``"item_id"`` (one task per item, for item cold-start; ``Task.user_id`` then holds the
        item id).

    Returns
    -------
    TaskSet
        Tasks ordered by user id.

    Examples
    --------
    >>> tasks = build_tasks(split.train, encoder)          # doctest: +SKIP
    >>> batch = next(tasks.batches(32))                     # doctest: +SKIP
    >>> batch.support_x["item_genres"].shape                # [T, S, G]  # doctest: +SKIP
    """
    check_task_arguments("build_tasks", ratings, min_ratings=min_ratings,
                         max_ratings=max_ratings, n_query=n_query, seed=seed,
                         support_size=support_size, max_support=max_support,
                         query_ratings=query_ratings, group_by=group_by)
    rng = np.random.default_rng(seed)

    if query_ratings is None:
        frame = ratings.reset_index(drop=True)
        is_query_row = np.zeros(len(frame), dtype=bool)
    else:
        frame = pd.concat([ratings, query_ratings], ignore_index=True)
        is_query_row = np.r_[np.zeros(len(ratings), bool), np.ones(len(query_ratings), bool)]

    features = encoder.transform(frame)
    fingerprint = getattr(encoder, "fingerprint", None)
    y_all = frame["rating"].to_numpy(np.float32)
    items_all = frame["item_id"].to_numpy(np.int64)
    users_all = frame[group_by].to_numpy(np.int64)

    # Group row indices by user (stable order) without a Python loop over rows.
    order = np.argsort(users_all, kind="stable")
    users_sorted = users_all[order]
    boundaries = np.flatnonzero(np.diff(users_sorted)) + 1
    groups = np.split(order, boundaries)

    tasks: list[Task] = []
    for rows in groups:
        if len(rows) == 0:
            continue
        user = int(users_all[rows[0]])
        if not (min_ratings <= len(rows) <= max_ratings):
            continue
        if query_ratings is None:
            perm = rows[rng.permutation(len(rows))]
            query_rows, support_rows = perm[:n_query], perm[n_query:]
        else:
            query_rows, support_rows = rows[is_query_row[rows]], rows[~is_query_row[rows]]
            if len(query_rows) == 0 or len(support_rows) == 0:
                continue
            support_rows = support_rows[rng.permutation(len(support_rows))]
        if support_size is not None:
            if len(support_rows) < support_size:
                continue
            support_rows = support_rows[:support_size]
        elif max_support is not None:
            support_rows = support_rows[:max_support]
        tasks.append(
            Task(
                user_id=user,
                support_x={k: v[support_rows] for k, v in features.items()},
                support_y=y_all[support_rows],
                query_x={k: v[query_rows] for k, v in features.items()},
                query_y=y_all[query_rows],
                support_items=items_all[support_rows],
                query_items=items_all[query_rows],
                encoder_fingerprint=fingerprint,
            )
        )
    return TaskSet(tasks)
