"""Adaptation curves under an experiment's policy for diverging users and out-of-scale ratings.

``MetaLearner.evaluate_steps`` stops with an error when adaptation makes a task's predictions
NaN or infinite (a too-large inner learning rate after many steps). An experiment that scans
many learning rates and step counts needs a policy instead: :func:`evaluate_steps_guarded`
scores such a task as NaN (so a curve shows where adaptation breaks down), or with its
un-adapted predictions (what a guarded service would serve), and can clip predictions to the
rating scale. The fair grid (``metarec.experiments.fair``) and the synthetic study
(:mod:`metarec.experiments.when_study`) score their users this way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from metarec._validate import check_int, check_ks
from metarec.data.tasks import TaskSet
from metarec.metrics import task_metrics

__all__ = ["DIVERGED_POLICIES", "evaluate_steps_guarded"]

#: What :func:`evaluate_steps_guarded` does with a task whose adapted predictions are not finite.
DIVERGED_POLICIES = ("raise", "nan", "fallback")


def evaluate_steps_guarded(learner: Any, tasks: TaskSet, max_steps: int, *,
                           batch_size: int = 256, ks: Sequence[int] = (1, 3),
                           per_task: bool = False, diverged: str = "raise",
                           clip: tuple[float, float] | None = None,
                           ranking_extras: bool = False) -> pd.DataFrame:
    """Metrics after 0, 1, ..., ``max_steps`` inner steps, with a policy for diverged tasks.

    As ``learner.evaluate_steps`` (one pass over the adaptation curve,
    :meth:`~metarec.meta.evaluation.Evaluator.predict_curve`), plus:

    ``ranking_extras``: also precision@k, recall@k, hit@k and ap@k for every ``k`` of ``ks``
    (:func:`metarec.metrics.task_metrics`).

    ``diverged``: what to do when adaptation makes a task's predictions NaN or infinite:
    ``"raise"`` a ``ValueError``; ``"nan"``: that task's metrics are NaN at that step count
    (and the step count's average is NaN); ``"fallback"``: that task is scored with its
    un-adapted (0-step) predictions. Column ``diverged`` flags such tasks (per task), or gives
    their fraction (averaged table).

    ``clip=(low, high)`` clips predictions to the rating scale before scoring (infinite
    predictions become the nearest bound; NaN stays NaN).

    Returns one row per step count (``steps``, the metrics, ``diverged``), or with
    ``per_task`` one row per (step count, task) with ``user_id``, ordered by step count and
    then in the order of ``tasks``.

    Examples
    --------
    >>> curve = evaluate_steps_guarded(learner, tasks, 10, diverged="nan")  # doctest: +SKIP
    >>> curve.set_index("steps")["mae"]                                      # doctest: +SKIP
    """
    if diverged not in DIVERGED_POLICIES:
        raise ValueError(f"evaluate_steps_guarded: diverged must be 'raise', 'nan' or "
                         f"'fallback', got {diverged!r}.")
    where = f"{learner.display_name}.evaluate_steps_guarded"
    learner.check_tasks(tasks, where)
    max_steps = check_int(where, "max_steps", max_steps, 0)
    batch_size = check_int(where, "batch_size", batch_size, 1)
    ks = check_ks(where, ks)
    if clip is not None and not (len(clip) == 2 and float(clip[0]) < float(clip[1])):
        raise ValueError(f"{where}: clip must be (low, high) with low < high, got {clip!r}.")
    frames = []
    for batch in tasks.batches(batch_size, shuffle=False):
        preds = learner.predict_curve(batch, max_steps)  # [T, K + 1, Q]
        if clip is not None:
            preds = np.clip(preds, clip[0], clip[1])  # NaN stays NaN
        for k in range(max_steps + 1):
            pred = preds[:, k]
            bad = ~np.isfinite(np.where(batch.query_mask > 0, pred, 0.0)).all(axis=1)
            if bad.any() and diverged == "raise":
                raise ValueError(
                    f"{learner.display_name}: predictions of {int(bad.sum())} task(s) became "
                    f"NaN or infinite after {k} inner steps (inner_lr={learner.inner_lr}); "
                    "lower inner_lr or the number of steps, or pass diverged='nan'.")
            fallback = bad if diverged == "fallback" else np.zeros_like(bad)
            pred = np.where(bad[:, None], np.where(fallback[:, None], preds[:, 0], 0.0), pred)
            metrics = task_metrics(batch.query_y, pred, batch.query_mask, ks=tuple(ks),
                                   ranking_extras=ranking_extras)
            lost = bad & ~fallback
            frame = pd.DataFrame({k_: np.where(lost, np.nan, np.asarray(v, dtype=float))
                                  for k_, v in metrics.items()})
            frame["diverged"] = bad
            frame.insert(0, "steps", k)
            frame.insert(1, "user_id", batch.user_ids)
            frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    if per_task:
        return table.sort_values("steps", kind="stable").reset_index(drop=True)
    rows = []
    for k, part in table.groupby("steps", sort=True):
        # A diverged task makes the step count's average NaN (not a silent, kinder mean).
        summary = {c: float(part[c].mean(skipna=False)) for c in part.columns
                   if c not in ("steps", "user_id")}
        rows.append({"steps": int(k), **summary})
    return pd.DataFrame(rows)
