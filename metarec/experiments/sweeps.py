"""Sweeps over one knob of a trained learner: support-set size and test-time inner steps."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from metarec.data import TaskSet, build_tasks
from metarec.experiments.runner import METRICS, PreparedData
from metarec.meta import MetaLearner

_PARTS = {"user_cold": "user_cold", "item_cold": "item_cold",
          "user_item_cold": "user_item_cold"}


def support_size_tasks(data: PreparedData, sizes: Sequence[int],
                       scenario: str = "user_cold", seed: int = 0,
                       n_query: int = 10) -> dict[int, TaskSet]:
    """The task sets of :func:`support_size_sweep`: one per size, same users and query sets."""
    if scenario not in _PARTS:
        raise ValueError(f"support_size_sweep: scenario must be one of {sorted(_PARTS)}.")
    ratings = getattr(data.split, _PARTS[scenario])
    out = {}
    for n in sizes:
        tasks = build_tasks(ratings, data.encoder, min_ratings=max(sizes) + n_query,
                            max_ratings=100, n_query=n_query, support_size=n, seed=seed)
        if len(tasks) == 0:
            raise ValueError(f"No {scenario} user has {max(sizes) + n_query} ratings; "
                             "use smaller sizes.")
        out[int(n)] = tasks
    return out


def support_size_sweep(learner: MetaLearner, data: PreparedData, sizes: Sequence[int],
                       scenario: str = "user_cold", seed: int = 0,
                       n_query: int = 10) -> pd.DataFrame:
    """Metrics against the number of support ratings a test user has (``sizes``).

    The same users and the same query sets are used for every size: only users with at
    least ``max(sizes) + n_query`` ratings in the scenario are kept, and the support set of
    size ``n`` is the first ``n`` of one fixed random order of the user's other ratings.
    """
    rows = []
    for n, tasks in support_size_tasks(data, sizes, scenario, seed, n_query).items():
        result = learner.evaluate(tasks)
        rows.append({"support_size": n, "n_tasks": len(tasks),
                     **{m: result[m] for m in METRICS}})
    return pd.DataFrame(rows)


def inner_steps_sweep(learner: MetaLearner, tasks, steps: Sequence[int]) -> pd.DataFrame:
    """Metrics against the number of adaptation steps taken at test time."""
    rows = []
    for k in steps:
        result = learner.evaluate(tasks, steps=k)
        rows.append({"steps": k, **{m: result[m] for m in METRICS}})
    return pd.DataFrame(rows)
