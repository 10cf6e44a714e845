"""Bucketing tasks by support size: each meta-batch pads to its own longest support set.

A :class:`~metarec.data.tasks.TaskSet` pads every task to the longest support set of the whole
set (90 ratings under the MeLU protocol), although most users have far fewer: most of a
meta-batch's rows are padding, and every inner step computes on them (masked out, but
computed). Grouping tasks of similar support size into the same meta-batch and cutting each
batch to its own longest task removes most of that work without changing any result (padding
rows have mask 0 and do not count in a loss).

:func:`bucketed_batches` draws the meta-batches of one epoch: tasks are assigned to
``n_buckets`` buckets by quantiles of their support size, shuffled within their bucket and cut
into meta-batches there; the batch order is shuffled. :func:`padding_cost` counts the padded
support rows (the inner loop's compute) with and without bucketing.

Example::

    for batch in bucketed_batches(tasks, 32, seed=epoch):
        loss, grads = learner.meta_gradients(batch)   # shapes [32, S_batch, ...], S_batch <= S
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from metarec.data.tasks import TaskBatch, TaskSet

__all__ = ["bucket_ids", "bucketed_batches", "padding_cost", "trim_batch"]


def trim_batch(batch: TaskBatch, multiple: int = 1) -> TaskBatch:
    """Cut the padding of ``batch`` to its own longest support and query sets.

    ``multiple`` rounds the kept lengths up to a multiple of it (fewer distinct shapes, so
    fewer retraces of a compiled step). Padding sits at the end of each task, so nothing real
    is cut.
    """
    s = int(batch.support_mask.sum(axis=1).max())
    q = int(batch.query_mask.sum(axis=1).max())
    s = min(-(-s // multiple) * multiple, batch.support_mask.shape[1])
    q = min(-(-q // multiple) * multiple, batch.query_mask.shape[1])
    return TaskBatch(
        support_x={k: v[:, :s] for k, v in batch.support_x.items()},
        support_y=batch.support_y[:, :s],
        support_mask=batch.support_mask[:, :s],
        query_x={k: v[:, :q] for k, v in batch.query_x.items()},
        query_y=batch.query_y[:, :q],
        query_mask=batch.query_mask[:, :q],
        user_ids=batch.user_ids,
    )


def bucket_ids(sizes: np.ndarray, n_buckets: int) -> np.ndarray:
    """Bucket of each task: quantile bins of the support sizes (``0 .. n_buckets - 1``)."""
    if n_buckets < 1:
        raise ValueError(f"n_buckets must be >= 1, got {n_buckets}.")
    sizes = np.asarray(sizes)
    if len(sizes) == 0:
        return np.zeros(0, dtype=np.int64)
    edges = np.unique(np.quantile(sizes, np.linspace(0, 1, n_buckets + 1)[1:-1]))
    return np.searchsorted(edges, sizes, side="right").astype(np.int64)


def _support_sizes(tasks: TaskSet) -> np.ndarray:
    return np.array([t.n_support for t in tasks.tasks], dtype=np.int64)


def _batch_indices(sizes: np.ndarray, batch_size: int, n_buckets: int, shuffle: bool,
                   seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    buckets = bucket_ids(sizes, n_buckets)
    batches, leftovers = [], []
    for b in np.unique(buckets):
        members = np.flatnonzero(buckets == b)
        if shuffle:
            members = rng.permutation(members)
        full = len(members) // batch_size * batch_size
        batches += [members[i:i + batch_size] for i in range(0, full, batch_size)]
        leftovers.append(members[full:])
    # The buckets' remainders, by size, form the last few batches.
    rest = np.concatenate(leftovers) if leftovers else np.zeros(0, np.int64)
    rest = rest[np.argsort(sizes[rest], kind="stable")]
    batches += [rest[i:i + batch_size] for i in range(0, len(rest), batch_size)]
    if shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def bucketed_batches(tasks: TaskSet, batch_size: int = 32, shuffle: bool = True, seed: int = 0,
                     n_buckets: int = 8, multiple: int = 1) -> Iterator[TaskBatch]:
    """Meta-batches of tasks of similar support size, each padded to its own longest task.

    Parameters
    ----------
    tasks : TaskSet
        The tasks; every task appears in exactly one batch per epoch.
    batch_size : int
        Tasks per meta-batch (the buckets' remainders make up the last batches).
    shuffle, seed : bool, int
        Shuffle tasks within buckets and the order of the batches (``seed``: the epoch's).
    n_buckets : int
        Number of support-size buckets (quantile bins); 1 is plain batching with trimming.
    multiple : int
        Round each batch's padded lengths up to this multiple (:func:`trim_batch`).

    Yields
    ------
    TaskBatch
        Shapes ``[T, S_b, ...]`` with ``S_b`` the batch's longest support set.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    if len(tasks) == 0:
        raise ValueError("bucketed_batches: the TaskSet is empty.")
    for idx in _batch_indices(_support_sizes(tasks), batch_size, n_buckets, shuffle, seed):
        yield trim_batch(tasks.batch(idx), multiple)


def padding_cost(tasks: TaskSet, batch_size: int = 32, n_buckets: int = 8,
                 seed: int = 0) -> dict[str, float]:
    """Support rows an epoch computes on, padded to the set's maximum vs bucketed.

    Returns ``real`` (rows with mask 1), ``padded_global`` (every batch padded to the
    TaskSet's longest support set), ``padded_bucketed`` (buckets, each batch to its own
    longest) and ``saved`` = ``1 - padded_bucketed / padded_global``. The inner loop's work
    (forward and backward passes on support rows) is proportional to these counts.
    """
    sizes = _support_sizes(tasks)
    padded = 0
    for idx in _batch_indices(sizes, batch_size, n_buckets, True, seed):
        padded += len(idx) * int(sizes[idx].max())
    glob = len(sizes) * int(tasks.support_length)
    return {"real": float(sizes.sum()), "padded_global": float(glob),
            "padded_bucketed": float(padded), "saved": 1.0 - padded / glob}
