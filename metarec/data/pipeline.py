"""Task construction that scales to MovieLens-25M sizes, and meta-batches streamed by tf.data.

:func:`~metarec.data.tasks.build_tasks` makes one Python :class:`~metarec.data.Task` object per
user and pads every task of the set to the longest one: fine for MovieLens 100K and 1M, but
memory and time grow with users x longest task. :class:`TaskStream` keeps the same tasks (MeLU
protocol: users with ``min_ratings..max_ratings`` ratings, ``n_query`` random query ratings, the
rest support) as a few flat numpy arrays -- the rating rows of every task, in task order, and
one offset per task (a CSR layout) -- and builds a padded meta-batch only when it is needed:

* construction is a stable sort by user plus a random key per rating (``O(N log N)``, in
  practice linear in the number of ratings ``N``); nothing per task is a Python object;
* features are looked up per meta-batch from per-user and per-item tables encoded once
  (``encoder.encode`` on the distinct users and items), not stored per rating;
* meta-batches are bucketed by support size (:mod:`metarec.data.buckets`): each pads to its
  own longest support set;
* :meth:`TaskStream.dataset` wraps the batches in a ``tf.data`` pipeline with prefetching, so
  the next meta-batch is assembled while the current one trains.

A ``TaskStream`` can be passed to ``MetaLearner.fit`` like a ``TaskSet``. The random draws
differ from ``build_tasks`` (same protocol, different query ratings).

Example::

    stream = TaskStream.from_ratings(split.train, encoder, seed=0)
    learner.fit(stream, epochs=1, batch_size=32)
    for batch in stream.dataset(32, seed=epoch):      # (support_x, ..., query_mask) tensors
        ...
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from metarec._validate import check_int
from metarec.data.buckets import bucket_ids
from metarec.data.tasks import TaskBatch, check_task_arguments

__all__ = ["TaskStream"]


class TaskStream:
    """Few-shot tasks stored flat (CSR), batched and padded on demand.

    Build with :meth:`from_ratings`. ``len(stream)`` is the number of tasks; ``stream.batch(idx)``
    gives a padded :class:`~metarec.data.TaskBatch`; :meth:`batches` and :meth:`dataset`
    iterate an epoch.
    """

    def __init__(self, task_users: np.ndarray, offsets: np.ndarray, n_query: np.ndarray,
                 rows_item: np.ndarray, rows_rating: np.ndarray, user_tables: dict[str, Any],
                 item_tables: dict[str, Any], task_user_pos: np.ndarray, bucket: bool = True,
                 n_buckets: int = 8, encoder_fingerprint: str | None = None):
        self.task_users = task_users        # [T] raw user id of each task
        self.offsets = offsets              # [T + 1] rows of task t: offsets[t]:offsets[t + 1]
        self.n_query = n_query              # [T] the first n_query rows of a task are its query
        self.rows_item = rows_item          # [R] item position (into item tables) of each row
        self.rows_rating = rows_rating      # [R] rating of each row, float32
        self.user_tables = user_tables      # feature key -> [distinct users, ...]
        self.item_tables = item_tables      # feature key -> [distinct items, ...]
        self.task_user_pos = task_user_pos  # [T] row of each task's user in the user tables
        self.bucket = bool(bucket)
        self.n_buckets = int(n_buckets)
        #: Fingerprint of the FeatureEncoder of the tasks (see TaskSet.encoder_fingerprint).
        self.encoder_fingerprint = encoder_fingerprint
        sizes = np.diff(offsets)
        self.n_support = sizes - n_query
        self.support_length = int(self.n_support.max(initial=0))
        self.query_length = int(n_query.max(initial=0))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_ratings(cls, ratings: pd.DataFrame, encoder: Any, *, min_ratings: int = 13,
                     max_ratings: int = 100, n_query: int = 10, max_support: int | None = None,
                     seed: int = 0, bucket: bool = True, n_buckets: int = 8) -> TaskStream:
        """One task per user with ``min_ratings..max_ratings`` ratings (MeLU protocol).

        Parameters
        ----------
        ratings : DataFrame
            ``user_id``, ``item_id``, ``rating`` columns (``N`` rows).
        encoder : FeatureEncoder
            Fitted encoder; used once on the distinct users and items.
        min_ratings, max_ratings, n_query, max_support, seed
            As for :func:`~metarec.data.tasks.build_tasks`.
        bucket, n_buckets
            Batch tasks of similar support size together (:mod:`metarec.data.buckets`).
        """
        check_task_arguments("TaskStream.from_ratings", ratings, min_ratings=min_ratings,
                             max_ratings=max_ratings, n_query=n_query, seed=seed,
                             max_support=max_support)
        check_int("TaskStream.from_ratings", "n_buckets", n_buckets, 1)
        users = ratings["user_id"].to_numpy(np.int64)
        rng = np.random.default_rng(seed)
        # Group by user with a random order inside each user: one sort, no loop over users.
        order = np.lexsort((rng.random(len(users)), users))
        sorted_users = users[order]
        starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
        counts = np.diff(np.r_[starts, len(users)])
        keep = (counts >= min_ratings) & (counts <= max_ratings)
        if not keep.any():
            raise ValueError(f"TaskStream.from_ratings: no user has {min_ratings}..{max_ratings} "
                             "ratings; check min_ratings and max_ratings.")
        starts, counts = starts[keep], counts[keep]
        lengths = counts if max_support is None else np.minimum(counts, n_query + max_support)
        offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
        # Row r of the flat layout is position r - offsets[t] inside task t.
        task_of_row = np.repeat(np.arange(len(starts)), lengths)
        rows = order[starts[task_of_row] + np.arange(offsets[-1]) - offsets[task_of_row]]

        task_users = sorted_users[starts]
        items = ratings["item_id"].to_numpy(np.int64)[rows]
        distinct_items, item_pos = np.unique(items, return_inverse=True)
        item_side = encoder.encode(np.full(len(distinct_items), task_users[0]), distinct_items)
        user_side = encoder.encode(task_users, np.full(len(task_users), distinct_items[0]))
        user_tables = {k: v for k, v in user_side.items() if k.startswith("user_")}
        item_tables = {k: v for k, v in item_side.items() if not k.startswith("user_")}
        return cls(task_users, offsets, np.full(len(starts), n_query, np.int64),
                   item_pos.astype(np.int32), ratings["rating"].to_numpy(np.float32)[rows],
                   user_tables, item_tables, np.arange(len(starts)), bucket=bucket,
                   n_buckets=n_buckets,
                   encoder_fingerprint=getattr(encoder, "fingerprint", None))

    # ------------------------------------------------------------------ sizes
    def __len__(self) -> int:
        return len(self.task_users)

    def __repr__(self) -> str:
        return (f"TaskStream({len(self)} tasks, {int(self.offsets[-1])} ratings, support <= "
                f"{self.support_length}, query <= {self.query_length})")

    @property
    def user_ids(self) -> np.ndarray:
        return self.task_users

    def nbytes(self) -> int:
        """Memory held by the stream's arrays (bytes)."""
        arrays = [self.task_users, self.offsets, self.n_query, self.rows_item, self.rows_rating,
                  self.task_user_pos, *self.user_tables.values(), *self.item_tables.values()]
        return int(sum(a.nbytes for a in arrays))

    # ------------------------------------------------------------------ batches
    def _pad(self, idx: np.ndarray, part: str) -> tuple[dict[str, np.ndarray], np.ndarray,
                                                        np.ndarray]:
        lo = self.offsets[idx] + (self.n_query[idx] if part == "support" else 0)
        n = self.n_support[idx] if part == "support" else self.n_query[idx]
        width = max(int(n.max()), 1)
        pos = np.arange(width)[None, :]
        mask = pos < n[:, None]
        flat = np.where(mask, lo[:, None] + pos, 0)  # padding reads row 0, masked out below
        item_pos = self.rows_item[flat]
        x = {}
        for key, table in self.item_tables.items():
            values = table[item_pos]
            x[key] = np.where(mask.reshape(mask.shape + (1,) * (values.ndim - 2)), values, 0)
        upos = self.task_user_pos[idx]
        for key, table in self.user_tables.items():
            values = table[upos]
            values = np.broadcast_to(values[:, None], (len(idx), width, *values.shape[1:]))
            x[key] = np.where(mask.reshape(mask.shape + (1,) * (values.ndim - 2)), values, 0)
        y = np.where(mask, self.rows_rating[flat], 0.0).astype(np.float32)
        return x, y, mask.astype(np.float32)

    def batch(self, indices: Any = None) -> TaskBatch:
        """Tasks at ``indices`` as a :class:`~metarec.data.TaskBatch`, padded to their own
        longest sets."""
        idx = (np.arange(len(self)) if indices is None
               else np.asarray(indices, dtype=np.int64).reshape(-1))
        sx, sy, sm = self._pad(idx, "support")
        qx, qy, qm = self._pad(idx, "query")
        return TaskBatch(sx, sy, sm, qx, qy, qm, self.task_users[idx])

    def _order(self, batch_size: int, shuffle: bool, seed: int) -> list[np.ndarray]:
        rng = np.random.default_rng(seed)
        if not self.bucket:
            order = rng.permutation(len(self)) if shuffle else np.arange(len(self))
            return [order[i:i + batch_size] for i in range(0, len(self), batch_size)]
        buckets = bucket_ids(self.n_support, self.n_buckets)
        out = []
        for b in np.unique(buckets):
            members = np.flatnonzero(buckets == b)
            if shuffle:
                members = rng.permutation(members)
            out += [members[i:i + batch_size] for i in range(0, len(members), batch_size)]
        if shuffle:
            out = [out[i] for i in rng.permutation(len(out))]
        return out

    def batches(self, batch_size: int = 32, shuffle: bool = True, seed: int = 0,
                drop_remainder: bool = False) -> Iterator[TaskBatch]:
        """One epoch of padded meta-batches (bucketed by support size unless ``bucket=False``)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        for idx in self._order(batch_size, shuffle, seed):
            if drop_remainder and len(idx) < batch_size:
                continue
            yield self.batch(idx)

    def training_batches(self, batch_size: int, *, shuffle: bool = True, seed: int = 0,
                         bucket: bool = False) -> Iterator[TaskBatch]:
        """One epoch for ``MetaLearner.fit`` (the :class:`~metarec.data.TaskSource`
        method): :meth:`batches`. A stream groups tasks by support size when it is built with
        ``bucket=True`` (the default), so ``fit(bucket=...)`` leaves it as it is."""
        del bucket  # decided when the stream was built
        return self.batches(batch_size, shuffle=shuffle, seed=seed)

    def dataset(self, batch_size: int = 32, shuffle: bool = True, seed: int = 0,
                prefetch: int | None = None):
        """One epoch as a ``tf.data.Dataset`` of ``TaskBatch.as_tuple()`` tensors, prefetched.

        ``prefetch``: meta-batches prepared ahead (default ``tf.data.AUTOTUNE``).
        """
        import tensorflow as tf

        first = self.batch([0]).as_tuple()
        spec = tf.nest.map_structure(
            lambda a: tf.TensorSpec([None, None, *a.shape[2:]], tf.as_dtype(a.dtype)), first)

        def generate() -> Iterator[tuple[Any, ...]]:
            for batch in self.batches(batch_size, shuffle=shuffle, seed=seed):
                yield batch.as_tuple()

        data = tf.data.Dataset.from_generator(generate, output_signature=spec)
        return data.prefetch(tf.data.AUTOTUNE if prefetch is None else prefetch)

    def stats(self) -> dict[str, float]:
        """Number of tasks and ratings, support-size summary."""
        return {"tasks": len(self), "ratings": int(self.offsets[-1]),
                "support_min": int(self.n_support.min()),
                "support_median": float(np.median(self.n_support)),
                "support_max": self.support_length}
