"""Run the tuned grid for several seeds and write per-user results (chapter 8's data).

For every seed and every cell of the configs file (:mod:`metarec.experiments.tuning`):

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
* ``NAME.support.csv``: per (seed, cell, support size) the user-cold metrics;
* ``NAME.runs.csv``: per (seed, cell) the training time, epochs, test steps and, for Meta-SGD,
  the median, 90th percentile and share of negative learned inner learning rates.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from metarec.data import TaskSet
from metarec.experiments.grid import MAX_TEST_STEPS, PATIENCE, SCHEMES, Cell, cell_method
from metarec.experiments.guarded import evaluate_steps_guarded
from metarec.experiments.runner import (
    METRICS,
    SCENARIOS,
    ExperimentConfig,
    _progress,
    atomic_replace,
    check_writable,
    prepare_benchmark,
    train_method,
)
from metarec.experiments.sweeps import support_size_tasks
from metarec.experiments.tuning import load_configs

#: Support sizes of the support-size sweep (ratings per new user).
SUPPORT_SIZES = (1, 2, 3, 5, 10, 20)
_PARTS = ("users", "curves", "support", "runs")


def output_paths(out_dir: str | Path, name: str) -> dict[str, Path]:
    """The result files of benchmark ``name`` in ``out_dir``."""
    out_dir = Path(out_dir)
    return {"users": out_dir / f"{name}.users.csv.gz", "curves": out_dir / f"{name}.curves.csv",
            "support": out_dir / f"{name}.support.csv", "runs": out_dir / f"{name}.runs.csv"}


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


def write_frame(frame: pd.DataFrame, path: Path) -> None:
    """Write a CSV (gzip if the name ends in .gz) atomically, with the user's umask."""
    # mtime=0: the same results give the same bytes (no timestamp in the gzip header).
    opts = {"method": "gzip", "mtime": 0} if path.suffix == ".gz" else None
    atomic_replace(path, lambda tmp: frame.to_csv(tmp, index=False, float_format="%.6f",
                                                  compression=opts))


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
    existing = [p for p in paths.values() if p.exists()]
    frames: dict[str, list[pd.DataFrame]] = {k: [] for k in _PARTS}
    done: set[tuple[int, str]] = set()
    if existing and resume:
        for key, path in paths.items():
            if path.exists():
                frames[key].append(pd.read_csv(path))
        runs = pd.concat(frames["runs"]) if frames["runs"] else pd.DataFrame()
        done = {(int(s), c) for s, c in zip(runs.get("seed", []), runs.get("cell", []),
                                              strict=True)}
    elif existing and not overwrite:
        raise FileExistsError(
            f"{', '.join(str(p) for p in existing)} already exist(s). Pass --resume to "
            "continue that run, --overwrite to replace it, or choose another --out folder.")
    swept = set(sweep_cells(configs))
    jobs = [(s, n) for s in config.seeds for n in names if (s, n) not in done]
    bar = _progress(len(jobs), enabled=progress)
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
            method = cell_method(cell, cfg["params"], test_steps=cfg["test_steps"])
            learner, seconds = train_method(method, data, seed, batch_size=config.batch_size,
                                            patience=PATIENCE)
            learner.inner_steps = method.test_steps  # evaluate() defaults to the chosen steps
            ident = {"seed": seed, "cell": name, "model": cell.model, "scheme": cell.scheme}
            groups = {scenario: data.tasks[scenario] for scenario in SCENARIOS}
            if name in swept:
                sizes = support_size_tasks(data, SUPPORT_SIZES, "user_cold", seed)
                groups.update({f"support_{n}": tasks for n, tasks in sizes.items()})
            ratings = data.split.train["rating"]
            table = evaluate_groups(learner, groups, (float(ratings.min()),
                                                         float(ratings.max())))
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
                    rows.append({"support_size": n, "n_tasks": len(part),
                                 **{m: float(part[m].mean()) for m in METRICS},
                                 "diverged": float(part["diverged"].mean())})
                frames["support"].append(pd.DataFrame(rows).assign(**ident))
            epochs = len(learner.history.history["loss"]) if learner.history else 0
            run = {**ident, "dataset": data.dataset.name, "train_seconds": seconds,
                   "epochs": epochs, "test_steps": method.test_steps,
                   "inner_lr": method.inner_lr}
            rates = getattr(learner, "learning_rates", None)
            if rates:  # Meta-SGD: how far the learned step sizes moved from their start
                flat = np.concatenate([np.ravel(r.numpy()) for r in rates])
                run.update(lr_median=float(np.median(flat)), lr_p90=float(np.quantile(flat, 0.9)),
                           lr_negative=float(np.mean(flat < 0)))
            frames["runs"].append(pd.DataFrame([run]))
            _write_all(frames, paths)
            bar.update(1)
    bar.close()
    return list(paths.values())


def evaluate_groups(learner: Any, groups: dict[str, TaskSet],
                       scale: tuple[float, float]) -> pd.DataFrame:
    """Per-task metrics after 0..MAX_TEST_STEPS steps for several task sets in one pass.

    The task sets are joined into one padded batch, so the adaptation curve is compiled once
    per learner instead of once per task-set shape (tracing dominated the run time).
    ``group`` says which set each row comes from. Predictions are clipped to the rating
    ``scale``, and a user whose adapted predictions are NaN is scored with the un-adapted
    model's (flagged in ``diverged``): what a guarded recommender would serve.
    """
    names = [name for name, tasks in groups.items() for _ in range(len(tasks))]
    joined = TaskSet([task for tasks in groups.values() for task in tasks])
    table = evaluate_steps_guarded(learner, joined, MAX_TEST_STEPS, batch_size=len(joined),
                                   per_task=True, diverged="fallback", clip=scale)
    # evaluate_steps_guarded keeps the task order within every step count.
    table["group"] = np.tile(names, MAX_TEST_STEPS + 1)
    return table


def _write_all(frames: dict[str, list[pd.DataFrame]], paths: dict[str, Path]) -> None:
    ident = ["seed", "cell", "model", "scheme"]
    for key, parts in frames.items():
        if not parts:
            continue
        frame = pd.concat(parts, ignore_index=True)
        first = [c for c in [*ident, "scenario", "user_id", "steps", "support_size"]
                 if c in frame.columns]
        write_frame(frame[first + [c for c in frame.columns if c not in first]], paths[key])


__all__ = ["SUPPORT_SIZES", "evaluate_groups", "output_paths", "run_grid", "sweep_cells",
           "write_frame"]
