"""Where a tuning trial of the fair grid spends its time, with and without reused graphs.

    python -m benchmarks.tuning_trial                          # melu/maml and mf/finetune
    python -m benchmarks.tuning_trial --cells all --epochs 3   # every cell, 3 epochs each
    python -m benchmarks.tuning_trial --json out.json          # also write the rows
    python -m benchmarks.tuning_trial --replay book/results/fair-ml100k-tuning  # the 8 trials

For each cell, its hand-set first trial (:func:`~metarec.experiments.grid.first_trial`) is
trained on MovieLens 100K (split of the tuning seed) as a tuning trial trains it -- early
stopping on the validation users, then the 0..10-step adaptation curve of the validation
users -- twice: with a freshly built learner (``fresh``: every ``tf.function`` is traced) and
with a learner of the same structure reused from a :class:`~metarec.experiments.learner_pool.
LearnerPool` (``reused``: the graphs of an earlier trial, learning rates changed). Columns
(seconds; one TensorFlow thread, as the long runs use):

* ``trace``: first training step minus a typical step (tracing the training step);
* ``train/ep``: training steps per epoch, after the first step;
* ``val0``: the first validation pass (with tracing), ``val/ep``: a later one;
* ``curve``: the validation users' adaptation curve after training (with tracing if fresh);
* ``wall`` and ``cpu``: the whole trial (process CPU time is less sensitive to other load).
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _instrumented(learner_cls, timings: dict) -> tuple:
    """Wrap ``evaluate`` and the training step of ``learner_cls`` to record their times."""
    orig_eval, orig_step = learner_cls.evaluate, learner_cls.make_train_function

    def evaluate(self, *args, **kwargs):
        start = time.perf_counter()
        out = orig_eval(self, *args, **kwargs)
        timings["val"].append(time.perf_counter() - start)
        return out

    def train_step_fn(self, *args, **kwargs):
        step = orig_step(self, *args, **kwargs)

        def timed(*args):
            start = time.perf_counter()
            loss = float(step(*args))
            timings["steps"].append(time.perf_counter() - start)
            return loss
        return timed

    learner_cls.evaluate, learner_cls.make_train_function = evaluate, train_step_fn
    return orig_eval, orig_step


def measure(cell_name: str, data, pool, epochs: int | None, params: dict | None = None,
            curve: bool = True) -> dict:
    """One instrumented trial of ``cell_name`` (fresh learner if ``pool`` is None).

    ``params``: the trial's hyper-parameters (default: the cell's first trial); ``curve``:
    whether the adaptation curve is computed after training (not for a pruned trial).
    """
    import numpy as np

    from metarec.experiments.grid import MAX_TEST_STEPS, PATIENCE, Cell, cell_method, first_trial
    from metarec.experiments.training import train_method
    from metarec.meta import MetaLearner

    cell = Cell.parse(cell_name)
    method = cell_method(cell, first_trial(cell) if params is None else params)
    timings: dict = {"val": [], "steps": []}
    saved = _instrumented(MetaLearner, timings)
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        learner = None if pool is None else pool.get(method, data.encoder.spec, 0,
                                                     data.train_mean)
        learner, _ = train_method(method, data, 0, patience=PATIENCE, epochs=epochs,
                                  learner=learner)
        start = time.perf_counter()
        if curve:
            learner.evaluate_steps(data.tasks["validation"], MAX_TEST_STEPS)
        curve = time.perf_counter() - start
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        MetaLearner.evaluate, MetaLearner.make_train_function = saved
    n_epochs = len(learner.history.history["loss"]) if learner.history else 0
    steps = timings["steps"]
    typical = float(np.median(steps[1:])) if len(steps) > 1 else 0.0
    return {
        "cell": cell_name, "mode": "fresh" if pool is None else "reused", "epochs": n_epochs,
        "trace": round(steps[0] - typical, 2) if steps else 0.0,
        "train/ep": round(sum(steps[1:]) / max(n_epochs, 1), 3),
        "val0": round(timings["val"][0], 2) if timings["val"] else 0.0,
        "val/ep": round(float(np.mean(timings["val"][1:])), 3) if len(timings["val"]) > 1
        else 0.0,
        "curve": round(curve, 2), "wall": round(wall, 1), "cpu": round(cpu, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", nargs="+", default=["melu/maml", "mf/finetune"],
                        help="grid cells (model/scheme), or 'all'")
    parser.add_argument("--epochs", type=int, default=None,
                        help="cap on training epochs (default: the grid's, early stopping)")
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow threads")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--replay", metavar="STUDIES",
                        help="replay the finished trials of the studies in this folder (e.g. "
                             "book/results/fair-ml100k-tuning) with fresh and with reused "
                             "learners, pruned trials for the epochs they ran; prints the "
                             "total per cell")
    args = parser.parse_args(argv)

    import pandas as pd
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    from metarec.experiments import BENCHMARKS, grid_cells, prepare_benchmark
    from metarec.experiments.learner_pool import LearnerPool
    from metarec.experiments.tuning import TUNING_SEED

    cells = [c.name for c in grid_cells()] if args.cells == ["all"] else args.cells
    data = prepare_benchmark(BENCHMARKS["fair-ml100k"], TUNING_SEED)
    if args.replay:
        return replay(args.replay, cells, data, args.json)
    rows = []
    for name in cells:
        pool = LearnerPool()
        rows.append(measure(name, data, None, args.epochs))
        measure(name, data, pool, args.epochs)  # the pool's first learner: traced here
        rows.append(measure(name, data, pool, args.epochs))
        print(pd.DataFrame(rows[-2:]).to_string(index=False, header=len(rows) == 2),
              flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


def replay(folder: str, cells: list[str], data, json_path: str | None) -> int:
    """Time a study's trials again, fresh and reused (same parameters, same epochs)."""
    from pathlib import Path

    import optuna
    import pandas as pd

    from metarec.experiments.grid import Cell
    from metarec.experiments.learner_pool import LearnerPool

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = []
    for name in cells:
        cell = Cell.parse(name)
        path = Path(folder) / f"{cell.model}.db"
        study = optuna.load_study(study_name=cell.scheme, storage=f"sqlite:///{path.resolve()}")
        trials = [t for t in study.get_trials(deepcopy=False)
                  if t.state.name in ("COMPLETE", "PRUNED")]
        totals = {}
        for mode in ("fresh", "reused"):
            pool = LearnerPool() if mode == "reused" else None
            runs = [measure(name, data, pool, len(t.intermediate_values) or None
                            if t.state.name == "PRUNED" else None, dict(t.params),
                            curve=t.state.name == "COMPLETE") for t in trials]
            totals[mode] = runs
        for mode, runs in totals.items():
            rows.append({"cell": name, "mode": mode, "trials": len(runs),
                         "epochs": sum(r["epochs"] for r in runs),
                         "cpu": round(sum(r["cpu"] for r in runs), 1),
                         "cpu/trial": round(sum(r["cpu"] for r in runs) / len(runs), 2),
                         "wall": round(sum(r["wall"] for r in runs), 1),
                         "recorded wall (8-trial grid)": round(sum(
                             (t.datetime_complete - t.datetime_start).total_seconds()
                             for t in trials), 1)})
        print(pd.DataFrame(rows[-2:]).to_string(index=False, header=len(rows) == 2),
              flush=True)
    if json_path:
        with open(json_path, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
