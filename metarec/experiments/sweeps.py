"""Sweeps over one knob of a trained learner: support-set size and test-time inner steps.

The task sets of the support-size sweep come from
:func:`~metarec.experiments.training.support_size_tasks`, the ones the grid and "when" studies
score too.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from metarec.experiments.training import METRICS, PreparedData, support_size_tasks
from metarec.meta import MetaLearner

__all__ = ["inner_steps_sweep", "support_size_sweep", "support_size_tasks"]


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
