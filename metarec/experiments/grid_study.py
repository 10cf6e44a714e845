"""The grid study: run every tuned cell of the grid for several seeds (chapter 8's data).

``python -m metarec experiment run fair-ml100k`` (a grid benchmark of
:data:`~metarec.experiments.BENCHMARKS`) runs it after ``experiment tune`` chose each cell's
configuration (``metarec.experiments.tuning``). The cells themselves (model x training
scheme) and their search spaces are defined in ``metarec.experiments.grid``.

For every seed and every cell of the configs file (``metarec.experiments.tuning``):

1. the seed fixes the cold-start split, the task draws, the initial weights and the task order;
2. the cell is trained with its tuned configuration (early stopping on the validation users);
3. every test user of every scenario is adapted with 0..``MAX_TEST_STEPS`` inner steps in one
   pass; the cell's result is the step count chosen in tuning, the others give the test-time
   steps curve. Predictions are clipped to the rating scale of the training ratings (1 to 5
   on MovieLens), and a user whose adapted predictions become NaN (a too-large inner rate) is
   scored with the un-adapted model's predictions and flagged (``diverged``);
4. for the support-size sweep, the conventional cell and the meta cell with the best
   *validation* MAE of each model are also scored with 1, 2, 3, 5, 10 and 20 support ratings
   on the same new users.

Files written into ``out_dir`` (each replaced atomically after every (seed, cell), so an
interruption loses at most the running cell; ``resume=True`` skips what is done):

* ``NAME.users.csv.gz``: one row per (seed, cell, scenario, test user) at the chosen steps;
* ``NAME.curves.csv``: per (seed, cell, scenario, steps) the user-averaged metrics;
* ``NAME.support.csv``: per (seed, cell, support size) the user-cold metrics, and
  ``mae_0_steps``, the same users' MAE without adaptation;
* ``NAME.runs.csv``: per (seed, cell) the training time, epochs, test steps and, for Meta-SGD,
  the median, 90th percentile and share of negative learned inner learning rates;
* ``NAME.validation.csv.gz``: one row per (seed, cell, validation user) at the chosen steps
  (``split`` is ``"validation"``), the run's own validation users scored like the test users:
  what ``metarec.experiments.verdict.validation_scores`` reads to choose cells on
  validation users only. Scored in a batch of their own, so the test rows do not depend on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from metarec.experiments.benchmarks import ExperimentConfig, prepare_benchmark
from metarec.experiments.grid import SCHEMES, Cell
from metarec.experiments.store import (
    check_writable,
    keep_previous,
    progress_bar,
    write_frame,
    write_tables,
)
from metarec.experiments.training import (
    METRICS,
    SCENARIOS,
    SUPPORT_SIZES,
    epochs_run,
    evaluate_groups,
    support_size_tasks,
    train_tuned,
)
from metarec.experiments.tuning import load_configs

_PARTS = ("users", "curves", "support", "runs", "validation")

#: Identifying columns, first in every file this study writes.
_GRID_COLUMNS = ("seed", "cell", "model", "scheme", "scenario", "user_id", "steps", "support_size")


def output_paths(out_dir: str | Path, name: str) -> dict[str, Path]:
    """The result files of benchmark ``name`` in ``out_dir``."""
    out_dir = Path(out_dir)
    return {"users": out_dir / f"{name}.users.csv.gz", "curves": out_dir / f"{name}.curves.csv",
            "support": out_dir / f"{name}.support.csv", "runs": out_dir / f"{name}.runs.csv",
            "validation": out_dir / f"{name}.validation.csv.gz"}


def sweep_cells(configs: dict[str, Any]) -> list[str]:
    """Per model: its conventional cell and its meta cell with the lowest validation MAE."""
    chosen = []
    cells = configs["cells"]
    for model in dict.fromkeys(c["model"] for c in cells.values()):
        mine = {n: c for n, c in cells.items() if c["model"] == model}
        conv = [n for n, c in mine.items() if not SCHEMES[c["scheme"]].meta]
        meta = [n for n, c in mine.items() if SCHEMES[c["scheme"]].meta]
        chosen += conv
        if meta:
            chosen.append(min(meta, key=lambda n: mine[n]["val_mae"]))
    return chosen


def run_grid(config: ExperimentConfig, configs_path: str | Path, out_dir: str | Path, *,
             cells: Sequence[str] | None = None, resume: bool = False, overwrite: bool = False,
             progress: bool = True) -> list[Path]:
    """Train and evaluate every tuned cell for every seed of ``config``; returns the files."""
    configs = load_configs(configs_path)
    names = list(configs["cells"]) if cells is None else list(cells)
    for name in names:
        Cell.parse(name)
        if name not in configs["cells"]:
            raise ValueError(f"{name} has no tuned configuration in {configs_path}; tune it "
                             f"first (`python -m metarec experiment tune {config.name}`).")
    if len(set(config.seeds)) != len(config.seeds):
        raise ValueError(f"Duplicate seeds {list(config.seeds)}: every seed must be distinct.")
    out_dir = Path(out_dir)
    check_writable(out_dir)
    paths = output_paths(out_dir, config.name)
    frames: dict[str, list[pd.DataFrame]] = {k: [] for k in _PARTS}
    done: set[tuple[int, str]] = set()
    if keep_previous(paths.values(), resume=resume, overwrite=overwrite):
        for key, path in paths.items():
            if path.exists():
                frames[key].append(pd.read_csv(path))
        runs = pd.concat(frames["runs"]) if frames["runs"] else pd.DataFrame()
        done = {(int(s), c) for s, c in zip(runs.get("seed", []), runs.get("cell", []),
                                              strict=True)}
    swept = set(sweep_cells(configs))
    jobs = [(s, n) for s in config.seeds for n in names if (s, n) not in done]
    bar = progress_bar(len(jobs), enabled=progress)
    for seed in config.seeds:
        if all((seed, n) in done for n in names):
            continue
        data = prepare_benchmark(config, seed)
        for name in names:
            if (seed, name) in done:
                continue
            bar.set_description(f"seed {seed} {name}")
            cfg = configs["cells"][name]
            cell = Cell(cfg["model"], cfg["scheme"])
            method, learner, seconds = train_tuned(cell, cfg, data, seed,
                                                   batch_size=config.batch_size)
            learner.inner_steps = method.test_steps  # evaluate() defaults to the chosen steps
            ident = {"seed": seed, "cell": name, "model": cell.model, "scheme": cell.scheme}
            groups = {scenario: data.tasks[scenario] for scenario in SCENARIOS}
            if name in swept:
                sizes = support_size_tasks(data, SUPPORT_SIZES, "user_cold", seed)
                groups.update({f"support_{n}": tasks for n, tasks in sizes.items()})
            ratings = data.split.train["rating"]
            table = evaluate_groups(learner, groups, (float(ratings.min()),
                                                         float(ratings.max())))
            # The validation users in a batch of their own: the test rows stay what they are
            # without them (one padded batch per call).
            val = evaluate_groups(learner, {"validation": data.tasks["validation"]},
                                  (float(ratings.min()), float(ratings.max())))
            val = val[val["steps"] == method.test_steps].drop(columns=["group", "steps"])
            frames["validation"].append(val.assign(**ident, scenario="validation",
                                                   split="validation"))
            for scenario in SCENARIOS:
                part = table[table["group"] == scenario].drop(columns="group")
                chosen = part[part["steps"] == method.test_steps].drop(columns="steps")
                frames["users"].append(chosen.assign(**ident, scenario=scenario))
                curve = part.drop(columns="user_id").groupby("steps").mean().reset_index()
                frames["curves"].append(curve.assign(**ident, scenario=scenario))
            if name in swept:
                rows = []
                for n in SUPPORT_SIZES:
                    part = table[(table["group"] == f"support_{n}")
                                 & (table["steps"] == method.test_steps)]
                    # The same users' MAE without adaptation (0 steps): the support-size
                    # figure's "no adaptation" line, on exactly these query sets.
                    unadapted = table[(table["group"] == f"support_{n}") & (table["steps"] == 0)]
                    rows.append({"support_size": n, "n_tasks": len(part),
                                 **{m: float(part[m].mean()) for m in METRICS},
                                 "diverged": float(part["diverged"].mean()),
                                 "mae_0_steps": float(unadapted["mae"].mean())})
                frames["support"].append(pd.DataFrame(rows).assign(**ident))
            run = {**ident, "dataset": data.dataset.name, "train_seconds": seconds,
                   "epochs": epochs_run(learner), "test_steps": method.test_steps,
                   "inner_lr": method.inner_lr}
            rates = getattr(learner, "learning_rates", None)
            if rates:  # Meta-SGD: how far the learned step sizes moved from their start
                flat = np.concatenate([np.ravel(r.numpy()) for r in rates])
                run.update(lr_median=float(np.median(flat)), lr_p90=float(np.quantile(flat, 0.9)),
                           lr_negative=float(np.mean(flat < 0)))
            frames["runs"].append(pd.DataFrame([run]))
            write_tables(frames, paths, _GRID_COLUMNS)
            bar.update(1)
    bar.close()
    return list(paths.values())



__all__ = ["output_paths", "run_grid", "sweep_cells"]
