"""Tune every cell of the grid with Optuna, on validation users only, resumably.

For each cell (:class:`~metarec.experiments.grid.Cell`) one Optuna study minimises the
validation users' MAE:

1. a trial samples the cell's hyper-parameters (:func:`~metarec.experiments.grid.suggest_params`;
   the first trial is the hand-set :func:`~metarec.experiments.grid.first_trial`);
2. it trains the cell on the meta-training users of the tuning seed, with early stopping on
   the validation users' MAE; after every epoch the validation MAE is reported to a
   ``MedianPruner``, which stops trials that are worse than the median of earlier trials;
3. the trained model is adapted to every validation user with 0..``MAX_TEST_STEPS`` inner
   steps (one pass, :meth:`~metarec.meta.MetaLearner.evaluate_steps`); the trial's value is
   the lowest MAE over the step counts, and that step count is stored with the trial.

Only ``data.tasks["train"]``, ``data.tasks["validation"]`` and ``data.split.train`` are read:
no test user (warm query, user-cold, item-cold, user-and-item-cold) informs any choice
(:func:`tuning_view` hides the rest, and a test checks it).

Studies live in one SQLite file per model (``<out>/<benchmark>-tuning/<model>.db``), one study
per scheme. An interrupted run continues with ``resume=True``: finished and pruned trials are
kept, a trial that was running when the process died is marked failed and run again, and only
the missing trials are added. Every cell gets exactly ``n_trials`` finished (complete or
pruned) trials. The chosen configuration of every cell is written to ``<benchmark>.configs.json``
(:func:`export_configs`), which ``python -m metarec experiment run`` reads.
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from metarec.experiments.grid import (
    MAX_TEST_STEPS,
    PATIENCE,
    SCHEMES,
    Cell,
    cell_method,
    first_trial,
    grid_cells,
    suggest_params,
)
from metarec.experiments.store import progress_bar as _progress
from metarec.experiments.store import write_text as _atomic_write
from metarec.experiments.training import PreparedData, train_method

#: Seed of the split used for tuning (its validation users choose every configuration).
TUNING_SEED = 0


class _Hidden:
    """Stands in for data the tuner must never read; any use raises."""

    def __init__(self, what: str):
        self._what = what

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"the tuner read {self._what}: tuning may use validation users only")

    def __len__(self) -> int:
        raise RuntimeError(f"the tuner read {self._what}: tuning may use validation users only")

    def __iter__(self):
        raise RuntimeError(f"the tuner read {self._what}: tuning may use validation users only")


class _TuningTasks(dict):
    def __missing__(self, key: str) -> Any:
        raise RuntimeError(f"the tuner read the {key!r} tasks: tuning may use the train and "
                           "validation tasks only")


@dataclass
class _TuningSplit:
    train: Any


def tuning_view(data: PreparedData) -> PreparedData:
    """``data`` with everything but the training and validation users removed."""
    tasks = _TuningTasks(train=data.tasks["train"], validation=data.tasks["validation"])
    return PreparedData(_Hidden("the dataset"), _TuningSplit(data.split.train), data.encoder,
                        tasks)


class _ReportToTrial(keras.callbacks.Callback):
    """Report the validation MAE of every epoch to Optuna; stop pruned trials."""

    def __init__(self, trial: Any):
        super().__init__()
        self.trial, self.pruned = trial, False

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get("val_mae")
        if value is None:
            return
        self.trial.report(float(value), epoch)
        if self.trial.should_prune():
            self.pruned = True
            self.model.stop_training = True


def _objective(cell: Cell, data: PreparedData, seed: int, batch_size: int,
               epochs: int | None = None) -> Callable:
    import optuna

    def objective(trial: optuna.Trial) -> float:
        params = suggest_params(trial, cell)
        method = cell_method(cell, params)
        report = _ReportToTrial(trial)
        try:
            learner, seconds = train_method(method, data, seed, batch_size=batch_size,
                                            epochs=epochs, patience=PATIENCE,
                                            callbacks=[report])
            if report.pruned:
                raise optuna.TrialPruned()
            curve = learner.evaluate_steps(data.tasks["validation"], MAX_TEST_STEPS)
        except (FloatingPointError, ValueError) as err:
            # A configuration that diverges (NaN loss or predictions) is a bad result: it
            # counts as a finished, pruned trial so every cell gets the same budget.
            if not isinstance(err, FloatingPointError) and "NaN" not in str(err):
                raise
            trial.set_user_attr("diverged", str(err)[:200])
            raise optuna.TrialPruned() from err
        best = curve.loc[curve["mae"].idxmin()]
        trial.set_user_attr("test_steps", int(best["steps"]))
        trial.set_user_attr("val_ndcg@3", float(best["ndcg@3"]))
        trial.set_user_attr("train_seconds", float(seconds))
        trial.set_user_attr("epochs_run", len(learner.history.history["loss"])
                            if learner.history is not None else 0)
        value = float(best["mae"])
        if value != value:  # NaN: a diverged trial counts as failed, not as a result
            raise optuna.TrialPruned()
        return value

    return objective


def study_storage(out_dir: Path, benchmark: str, model: str) -> str:
    """The SQLite URL of ``model``'s studies (one file per model, one study per scheme)."""
    folder = Path(out_dir) / f"{benchmark}-tuning"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(folder / f'{model}.db').resolve()}"


def _finished(study: Any) -> list[Any]:
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False)
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


def tune_cell(cell: Cell, data: PreparedData, *, n_trials: int, out_dir: Path,
              benchmark: str, resume: bool = False, seed: int = TUNING_SEED,
              batch_size: int = 32, study_name: str | None = None,
              epochs: int | None = None) -> Any:
    """Run (or continue) the study of ``cell`` until it has ``n_trials`` finished trials.

    The study is ``study_name`` (default: the scheme's name) in the model's SQLite file under
    ``out_dir/<benchmark>-tuning/``; ``epochs`` caps (meta-)training (default: the grid's).

    Raises ``FileExistsError`` if the study already has trials and ``resume`` is False, so a
    finished study is never silently extended or replaced.
    """
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = study_storage(out_dir, benchmark, cell.model)
    # One sampler seed per cell: cells do not all try the same random configurations.
    key = cell.name if study_name is None else f"{cell.name}@{study_name}"
    study_name = cell.scheme if study_name is None else study_name
    sampler = optuna.samplers.TPESampler(seed=seed + zlib.crc32(key.encode()) % 10_000,
                                         n_startup_trials=min(5, n_trials))
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2)
    study = optuna.create_study(study_name=study_name, storage=storage, direction="minimize",
                                sampler=sampler, pruner=pruner, load_if_exists=True)
    trials = study.get_trials(deepcopy=False)
    if trials and not resume:
        raise FileExistsError(
            f"The study {cell.name} in {storage} already has {len(trials)} trial(s). Pass "
            "--resume (resume=True) to continue it, or choose another --out folder.")
    for t in trials:  # a process that died mid-trial leaves it RUNNING: run it again
        if t.state == TrialState.RUNNING:
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    if not trials:
        study.enqueue_trial(first_trial(cell))
        study.set_user_attr("n_trials", n_trials)
    view = tuning_view(data)
    objective = _objective(cell, view, seed, batch_size, epochs)
    while len(_finished(study)) < n_trials:
        study.optimize(objective, n_trials=1)
    return study


def cell_result(cell: Cell, study: Any) -> dict[str, Any]:
    """The chosen configuration of a finished study, and what tuning it cost."""
    finished = _finished(study)
    best = study.best_trial
    seconds = sum((t.datetime_complete - t.datetime_start).total_seconds()
                  for t in study.get_trials(deepcopy=False)
                  if t.datetime_complete is not None and t.datetime_start is not None)
    return {
        "cell": cell.name, "model": cell.model, "scheme": cell.scheme,
        "params": dict(best.params), "test_steps": int(best.user_attrs["test_steps"]),
        "val_mae": float(best.value), "val_ndcg@3": float(best.user_attrs["val_ndcg@3"]),
        "n_trials": len(finished),
        "n_pruned": sum(t.state.name == "PRUNED" for t in finished),
        "tuning_seconds": round(seconds, 1),
    }


def export_configs(out_dir: Path, benchmark: str,
                   cells: Sequence[Cell] | None = None) -> dict[str, Any]:
    """Collect the best configuration of every finished study into ``<benchmark>.configs.json``.

    Reads the SQLite studies under ``out_dir``; cells without a finished study are left out.
    The file is replaced atomically.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    configs: dict[str, Any] = {}
    for cell in cells or grid_cells():
        path = Path(out_dir) / f"{benchmark}-tuning" / f"{cell.model}.db"
        if not path.exists():
            continue
        try:
            study = optuna.load_study(study_name=cell.scheme,
                                      storage=f"sqlite:///{path.resolve()}")
        except KeyError:
            continue
        n_wanted = study.user_attrs.get("n_trials")
        if not _finished(study) or len(_finished(study)) < (n_wanted or 1):
            continue
        configs[cell.name] = cell_result(cell, study)
    path = Path(out_dir) / f"{benchmark}.configs.json"
    _atomic_write(path, json.dumps({"benchmark": benchmark, "max_test_steps": MAX_TEST_STEPS,
                                    "cells": configs}, indent=1) + "\n")
    return configs


def tune_grid(data: PreparedData, out_dir: str | Path, benchmark: str, *, n_trials: int,
              cells: Sequence[Cell] | None = None, resume: bool = False,
              progress: bool = True) -> dict[str, Any]:
    """Tune ``cells`` (default: the whole grid) one after the other; returns the configs.

    ``data`` must be prepared with :data:`TUNING_SEED`. After every cell the configs file is
    rewritten, so an interruption loses at most the trial that was running.
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}.")
    out_dir = Path(out_dir)
    cells = list(cells or grid_cells())
    logging.getLogger("optuna").setLevel(logging.WARNING)
    bar = _bar(len(cells) * n_trials, progress)
    for cell in cells:
        bar.set_description(cell.name)
        start = time.perf_counter()
        tune_cell(cell, data, n_trials=n_trials, out_dir=out_dir, benchmark=benchmark,
                  resume=resume)
        bar.update(n_trials)
        bar.set_postfix_str(f"{cell.name} {time.perf_counter() - start:.0f}s")
        export_configs(out_dir, benchmark)
    bar.close()
    return export_configs(out_dir, benchmark)


def load_configs(path: str | Path) -> dict[str, Any]:
    """Read a configs file written by :func:`export_configs`, with a clear error if missing."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist: tune the grid first with `python -m metarec experiment "
            f"tune {path.name.removesuffix('.configs.json')}` (or use the committed file in "
            "book/results).")
    configs = json.loads(path.read_text())
    for name, cfg in configs["cells"].items():
        Cell.parse(name)
        if cfg["scheme"] not in SCHEMES:
            raise ValueError(f"{path}: unknown scheme {cfg['scheme']!r} in cell {name!r}.")
    return configs


def _bar(total: int, enabled: bool):
    return _progress(total, enabled)


__all__ = [
    "TUNING_SEED",
    "cell_result",
    "export_configs",
    "load_configs",
    "study_storage",
    "tune_cell",
    "tune_grid",
    "tuning_view",
]
