"""Evaluation: adapt to each task's support set, score its query set.

:meth:`Evaluator.test_step` is the compiled unit (query predictions of a meta-batch after
adaptation), :meth:`Evaluator.predict_curve` the same after 0, 1, ..., ``max_steps`` inner
steps in one pass; :meth:`Evaluator.evaluate` and :meth:`Evaluator.evaluate_steps` turn them
into the metrics of :mod:`metarec.metrics`. A policy for tasks whose adapted predictions are
not finite (score them as NaN, or fall back to the un-adapted model) belongs to experiments:
:func:`metarec.experiments.guarded.evaluate_steps_guarded`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf

from metarec._validate import check_int, check_ks
from metarec.data.tasks import TaskBatch, TaskSet
from metarec.metrics import NonFinitePredictionError, summarize, task_metrics


class Evaluator:
    """Evaluation (mixed into :class:`~metarec.meta.MetaLearner`)."""

    def _compile_per_batch(self, key: Any, fn: Callable) -> Callable:
        if key not in self._compiled:
            self._compiled[key] = tf.function(fn, jit_compile=self.jit_compile,
                                              reduce_retracing=self.vectorize)
        return self._compiled[key]

    def test_step(self, batch: tuple[Any, ...], steps: int | None = None) -> tf.Tensor:
        """Query predictions ``[T, Q]`` after ``steps`` inner steps on each support set.

        ``batch`` is :meth:`~metarec.meta.checks.InputChecks.prepare`'s tensors; ``steps`` (a
        Python int) defaults to ``inner_steps``. Every task starts from the current weights;
        nothing is updated.
        """
        steps = self.inner_steps if steps is None else steps
        sx, sy, sm, qx, _, _ = batch
        theta, extra, nt = self._values()
        fast0, frozen = self._split(theta)

        def one(task):
            sx, sy, sm, qx = task
            fast, nt_i = self._adapt_task(list(fast0), frozen, nt, sx, sy, sm, steps,
                                          create_graph=False, training=False, extra=extra)
            pred, _ = self._forward(self._merge(fast, frozen), nt_i, qx, training=False)
            return pred

        return self._map_tasks(one, (sx, sy, sm, qx))

    def _curve_step(self, batch: tuple[Any, ...], max_steps: int) -> tf.Tensor:
        """Query predictions ``[T, max_steps + 1, Q]`` after 0, 1, ..., ``max_steps`` steps."""
        sx, sy, sm, qx, _, _ = batch
        theta, extra, nt = self._values()
        fast0, frozen = self._split(theta)

        def one(task):
            sx, sy, sm, qx = task
            fast, preds = list(fast0), []
            for k in range(max_steps + 1):
                if k > 0:  # one more inner step from the previous weights
                    fast, _ = self._adapt_task(fast, frozen, nt, sx, sy, sm, 1,
                                               create_graph=False, training=False, extra=extra)
                pred, _ = self._forward(self._merge(fast, frozen), nt, qx, training=False)
                preds.append(pred)
            return tf.stack(preds)  # [K + 1, Q]

        return self._map_tasks(one, (sx, sy, sm, qx))

    def predict_query(self, batch: TaskBatch, steps: int | None = None) -> np.ndarray:
        """Adapt to each task's support set, then predict its query set: ``[T, Q]``."""
        if steps is not None:
            steps = check_int(f"{self.display_name}.predict_query", "steps", steps, 0)
        steps = self.inner_steps if steps is None else steps
        tensors = self.prepare(batch)
        fn = self._compile_per_batch(("predict", steps),
                                     lambda b: self.test_step(b, steps))
        return fn(tensors).numpy()

    def predict_curve(self, batch: TaskBatch, max_steps: int) -> np.ndarray:
        """Query predictions after 0, 1, ..., ``max_steps`` inner steps: ``[T, K + 1, Q]``.

        Entry ``[:, k]`` equals ``predict_query(batch, steps=k)`` (same step rule and rate),
        at the cost of one ``predict_query(batch, steps=max_steps)``.
        """
        max_steps = check_int(f"{self.display_name}.predict_curve", "max_steps", max_steps, 0)
        tensors = self.prepare(batch)
        fn = self._compile_per_batch(("curve", max_steps),
                                     lambda b: self._curve_step(b, max_steps))
        return fn(tensors).numpy()

    def evaluate(
        self,
        tasks: TaskSet,
        steps: int | None = None,
        batch_size: int = 256,
        ks: Sequence[int] = (1, 3),
        per_task: bool = False,
    ) -> dict[str, float] | pd.DataFrame:
        """Adapt on each support set with ``steps`` inner steps and score the query sets.

        Returns the task-averaged metrics (``mae``, ``rmse``, ``ndcg@k``; definitions in
        :mod:`metarec.metrics`), or one row per task (with ``user_id``) if ``per_task``.
        """
        where = f"{self.display_name}.evaluate"
        self.check_tasks(tasks, where)
        if steps is not None:
            steps = check_int(where, "steps", steps, 0)
        batch_size = check_int(where, "batch_size", batch_size, 1)
        ks = check_ks(where, ks)
        frames = []
        for batch in tasks.batches(batch_size, shuffle=False):
            pred = self.predict_query(batch, steps)
            metrics = task_metrics(batch.query_y, pred, batch.query_mask, ks=tuple(ks))
            frame = pd.DataFrame({k: np.asarray(v) for k, v in metrics.items()})
            frame.insert(0, "user_id", batch.user_ids)
            frame.insert(1, "n_support", batch.support_mask.sum(axis=1).astype(int))
            frames.append(frame)
        table = pd.concat(frames, ignore_index=True)
        if per_task:
            return table
        return summarize({k: table[k].to_numpy() for k in table.columns
                          if k not in ("user_id", "n_support")})

    def evaluate_steps(self, tasks: TaskSet, max_steps: int, batch_size: int = 256,
                       ks: Sequence[int] = (1, 3), per_task: bool = False) -> pd.DataFrame:
        """Metrics after 0, 1, ..., ``max_steps`` inner steps, computed in one pass.

        The adaptation curve: the same as calling :meth:`evaluate` with ``steps=k`` for every
        ``k`` (same step rule and rate), at the cost of one ``evaluate(steps=max_steps)``.
        Returns one row per step count (column ``steps``), or with ``per_task`` one row per
        (step count, task) with ``user_id``. Predictions that adaptation made NaN or infinite
        (a too-large inner learning rate after many steps) raise a ``ValueError``; to score
        such tasks as NaN or with the un-adapted model instead, use
        :func:`metarec.experiments.guarded.evaluate_steps_guarded`.
        """
        where = f"{self.display_name}.evaluate_steps"
        self.check_tasks(tasks, where)
        max_steps = check_int(where, "max_steps", max_steps, 0)
        batch_size = check_int(where, "batch_size", batch_size, 1)
        ks = check_ks(where, ks)
        frames = []
        for batch in tasks.batches(batch_size, shuffle=False):
            preds = self.predict_curve(batch, max_steps)
            for k in range(max_steps + 1):
                pred = preds[:, k]
                bad = ~np.isfinite(np.where(batch.query_mask > 0, pred, 0.0)).all(axis=1)
                if bad.any():
                    raise NonFinitePredictionError(
                        f"{self.display_name}: predictions of {int(bad.sum())} task(s) became "
                        f"NaN or infinite after {k} inner steps (inner_lr={self.inner_lr}); "
                        "lower inner_lr or the number of steps, or score them with "
                        "metarec.experiments.guarded.evaluate_steps_guarded(..., "
                        "diverged='nan').")
                metrics = task_metrics(batch.query_y, pred, batch.query_mask, ks=tuple(ks))
                frame = pd.DataFrame({k_: np.asarray(v, dtype=float)
                                      for k_, v in metrics.items()})
                frame.insert(0, "steps", k)
                frame.insert(1, "user_id", batch.user_ids)
                frames.append(frame)
        table = pd.concat(frames, ignore_index=True)
        if per_task:
            return table.sort_values("steps", kind="stable").reset_index(drop=True)
        # skipna=False: an undefined metric (nDCG of regression targets) stays NaN on average.
        rows = [{"steps": int(k), **{c: float(part[c].mean(skipna=False)) for c in part.columns
                                     if c not in ("steps", "user_id")}}
                for k, part in table.groupby("steps", sort=True)]
        return pd.DataFrame(rows)
