"""Tune every cell of the grid with Optuna, on validation users only, resumably.

For each cell (:class:`~metarec.experiments.grid.Cell`) one Optuna study minimises the
validation users' MAE:

1. a trial samples the cell's hyper-parameters (:func:`~metarec.experiments.grid.suggest_params`;
   the first trial is the hand-set :func:`~metarec.experiments.grid.first_trial`) with a TPE
   sampler whose seed is fixed per cell and tuner seed (:func:`sampler_seed`);
2. it trains the cell on the meta-training users of the tuning seed, with early stopping on
   the validation users' MAE; after every epoch the validation MAE is reported to the study's
   pruner (:data:`PRUNERS`; the grid uses successive halving with epochs as the resource,
   :data:`GRID_PRUNER`), which stops trials that are worse than the others at that epoch;
3. the trained model is adapted to every validation user with 0..``MAX_TEST_STEPS`` inner
   steps (one pass, :meth:`~metarec.meta.MetaLearner.evaluate_steps`); the trial's value is
   the lowest MAE over the step counts, and that step count is stored with the trial.

Trials of one study with the same structure (adapted variables, inner steps) share compiled
TensorFlow graphs (:class:`~metarec.experiments.learner_pool.LearnerPool`): tracing took about
three quarters of a trial's time, and a reused learner gives bit-identical numbers.

Only ``data.tasks["train"]``, ``data.tasks["validation"]`` and ``data.split.train`` are read:
no test user (warm query, user-cold, item-cold, user-and-item-cold) informs any choice
(:func:`tuning_view` hides the rest, and a test checks it).

Studies live in one SQLite file per model and tuner seed
(``<out>/<benchmark>-tuning/<model>.db``; ``<model>.tuner<k>.db`` for tuner seed ``k`` > 0,
:func:`study_file`), one study per scheme. An interrupted run continues with
``resume=True``: finished and pruned trials are kept, a trial that was running when the
process died is marked failed and run again, and only the missing trials are added. Every
cell gets exactly ``n_trials`` finished (complete or pruned) trials. The chosen
configuration of every cell, with its counts of complete and pruned trials, is written to
``<benchmark>.configs.json`` (``<benchmark>.tuner<k>.configs.json``; :func:`export_configs`),
which ``python -m metarec experiment run`` reads.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import warnings
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import pandas as pd

from metarec.data.errors import DataError
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
from metarec.experiments.learner_pool import LearnerPool
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
               epochs: int | None = None, pool: LearnerPool | None = None) -> Callable:
    import optuna

    def objective(trial: optuna.Trial) -> float:
        params = suggest_params(trial, cell)
        method = cell_method(cell, params)
        report = _ReportToTrial(trial)
        learner = None
        if pool is not None:  # an earlier trial's compiled graphs, reset (same numbers)
            learner = pool.get(method, data.encoder.spec, seed, data.train_mean)
        try:
            learner, seconds = train_method(method, data, seed, batch_size=batch_size,
                                            epochs=epochs, patience=PATIENCE,
                                            callbacks=[report], learner=learner,
                                            validation_diverged="raise")
            trial.set_user_attr("epochs_run", len(learner.history.history["loss"])
                                if learner.history is not None else 0)
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
        value = float(best["mae"])
        if value != value:  # NaN: a diverged trial counts as failed, not as a result
            raise optuna.TrialPruned()
        return value

    return objective


#: Pruners a study can use (``tune_cell(pruner=...)``, ``experiment tune --pruner``), by
#: name. Every intermediate value is the validation users' MAE after an epoch, at step
#: ``epoch`` (0-based).
#:
#: * ``"median"``: from the third epoch on, stop a trial whose best value so far is worse
#:   than the median of earlier trials at that epoch (after 3 trials). The grid's
#:   (:data:`GRID_PRUNER`).
#: * ``"sha"``: successive halving with epochs as the resource: at epochs 3, 7 and 19 (steps
#:   2, 6, 18) a trial goes on only if it is in the best third of the trials that reached
#:   that epoch. Replayed on the 8-trial grid's 30 studies with intermediate values it ran
#:   34% fewer epochs than the median rule, but stopped the trial the median rule found best
#:   in 6 studies (mean loss 0.0011 validation MAE, at most 0.017). Once trials reuse their
#:   graphs, epochs are ~16% of the projected tuning time saved: not worth that loss here;
#:   kept for budgets where time is short.
PRUNERS: dict[str, Callable[[], Any]] = {}


def _median_pruner() -> Any:
    import optuna

    return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2)


def _sha_pruner() -> Any:
    import optuna

    return optuna.pruners.SuccessiveHalvingPruner(min_resource=2, reduction_factor=3,
                                                  min_early_stopping_rate=0)


PRUNERS.update(median=_median_pruner, sha=_sha_pruner)
#: The pruner of :func:`tune_grid` (the fair grid).
GRID_PRUNER = "median"


def study_file(out_dir: str | Path, benchmark: str, model: str, tuner_seed: int = 0) -> Path:
    """The SQLite file of ``model``'s studies (one study per scheme) for ``tuner_seed``.

    Tuner seed 0 is the grid's own study (``<model>.db``); another tuner seed ``k`` (the
    tuning-noise study, :mod:`metarec.experiments.noise`) has its own file
    ``<model>.tuner<k>.db``, so re-tuning a cell never touches the grid's study.
    """
    name = f"{model}.db" if tuner_seed == 0 else f"{model}.tuner{tuner_seed}.db"
    return Path(out_dir) / f"{benchmark}-tuning" / name


class StudyFileError(DataError):
    """An Optuna study file (SQLite) that cannot be used: damaged, or locked by another
    process. The message names the file and the fix."""


@contextlib.contextmanager
def study_file_errors(path: str | Path) -> Iterator[None]:
    """Turn the database errors of the study file ``path`` into a :class:`StudyFileError`."""
    try:
        yield
    except Exception as err:
        import sqlite3

        import sqlalchemy.exc

        if not isinstance(err, sqlalchemy.exc.SQLAlchemyError | sqlite3.Error):
            raise
        reason = str(getattr(err, "orig", None) or err).splitlines()[0]
        if "locked" in reason:
            fix = ("another process holds it (a tuning run on the same --out?): wait for it to "
                   "finish, or choose another --out folder")
        else:
            fix = ("it is damaged (not an SQLite database, or truncated): move it away to tune "
                   "its cells again, or restore it from a copy")
        raise StudyFileError(f"The Optuna study file {path} cannot be used ({reason}); "
                             f"{fix}.") from None


def study_storage(out_dir: Path, benchmark: str, model: str, tuner_seed: int = 0) -> str:
    """The SQLite URL of ``model``'s studies (one file per model and tuner seed)."""
    path = study_file(out_dir, benchmark, model, tuner_seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path.resolve()}"


def configs_path(out_dir: str | Path, benchmark: str, tuner_seed: int = 0) -> Path:
    """``<benchmark>.configs.json`` (tuner seed 0) or ``<benchmark>.tuner<k>.configs.json``."""
    suffix = "" if tuner_seed == 0 else f".tuner{tuner_seed}"
    return Path(out_dir) / f"{benchmark}{suffix}.configs.json"


def sampler_seed(cell_key: str, seed: int = TUNING_SEED, tuner_seed: int = 0) -> int:
    """The TPE seed of a study: one per cell (cells do not all try the same random
    configurations) and per tuner seed; tuner seed 0 gives the grid's historical seeds."""
    return seed + zlib.crc32(cell_key.encode()) % 10_000 + 10_000 * tuner_seed


def _finished(study: Any) -> list[Any]:
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False)
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


def tune_cell(cell: Cell, data: PreparedData, *, n_trials: int, out_dir: Path,
              benchmark: str, resume: bool = False, seed: int = TUNING_SEED,
              batch_size: int = 32, study_name: str | None = None,
              epochs: int | None = None, tuner_seed: int = 0, pruner: str = "median",
              reuse_graphs: bool = True, log: Callable[[str], None] | None = None) -> Any:
    """Run (or continue) the study of ``cell`` until it has ``n_trials`` finished trials.

    The study is ``study_name`` (default: the scheme's name) in the model's SQLite file under
    ``out_dir/<benchmark>-tuning/`` (:func:`study_file`: one file per tuner seed);
    ``epochs`` caps (meta-)training (default: the grid's). ``tuner_seed`` changes only the
    TPE sampler's seed (:func:`sampler_seed`): the data, the initial weights and the
    training of a configuration stay those of ``seed``. ``pruner`` names one of
    :data:`PRUNERS`. With ``reuse_graphs`` the trials share compiled learners
    (:class:`~metarec.experiments.learner_pool.LearnerPool`: the same numbers, less
    tracing). ``log`` gets one line per finished trial.

    A trial is *finished* when it completed or was pruned (a diverging configuration counts
    as pruned); a trial that failed (its process died) is run again.

    Raises ``FileExistsError`` if the study already has trials and ``resume`` is False, so a
    finished study is never silently extended or replaced. A resumed study started for more
    than ``n_trials`` trials continues to its own (larger) budget, with a line saying so
    (``log``, else a warning): a smaller budget would leave it unfinished and out of the
    configs file.
    """
    import optuna
    from optuna.trial import TrialState

    if pruner not in PRUNERS:
        raise ValueError(f"Unknown pruner {pruner!r}; choose from {sorted(PRUNERS)}.")
    if not isinstance(tuner_seed, int) or tuner_seed < 0:
        raise ValueError(f"tuner_seed must be an integer >= 0, got {tuner_seed!r}.")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = study_storage(out_dir, benchmark, cell.model, tuner_seed)
    key = cell.name if study_name is None else f"{cell.name}@{study_name}"
    study_name = cell.scheme if study_name is None else study_name
    sampler = optuna.samplers.TPESampler(seed=sampler_seed(key, seed, tuner_seed),
                                         n_startup_trials=min(5, n_trials))
    with study_file_errors(study_file(out_dir, benchmark, cell.model, tuner_seed)):
        study = optuna.create_study(study_name=study_name, storage=storage, direction="minimize",
                                    sampler=sampler, pruner=PRUNERS[pruner](),
                                    load_if_exists=True)
        trials = study.get_trials(deepcopy=False)
        if trials and not resume:
            raise FileExistsError(
                f"The study {cell.name} in {storage} already has {len(trials)} trial(s). Pass "
                "--resume (resume=True) to continue it, or choose another --out folder.")
        earlier = int(study.user_attrs.get("n_trials", 0)) if trials else 0
        if earlier > n_trials:
            # A resumed study keeps the larger budget: exported only once it has them all, so a
            # smaller --trials would leave it unfinished (and its cell out of the configs).
            line = (f"{cell.name} tuner {tuner_seed}: the study was started for {earlier} "
                    f"trials; continuing to {earlier} (the {n_trials} asked for now are fewer).")
            if log is not None:
                log(line)
            else:
                warnings.warn(line, stacklevel=2)
            n_trials = earlier
            study.sampler = optuna.samplers.TPESampler(seed=sampler_seed(key, seed, tuner_seed),
                                                       n_startup_trials=min(5, n_trials))
        for t in trials:  # a process that died mid-trial leaves it RUNNING: run it again
            if t.state == TrialState.RUNNING:
                study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        if not trials:
            study.enqueue_trial(first_trial(cell))
        # The budget asked for now: an extended study (8 -> 32 trials) is not exported as
        # finished before it has them all.
        study.set_user_attr("n_trials", n_trials)
        study.set_user_attr("tuner_seed", tuner_seed)
        study.set_user_attr("sampler_seed", sampler_seed(key, seed, tuner_seed))
        pruners = dict(study.user_attrs.get("pruners", {}))
        pruners.setdefault(pruner, len(_finished(study)))  # from which finished trial on
        study.set_user_attr("pruners", pruners)
        view = tuning_view(data)
        pool = LearnerPool() if reuse_graphs else None
        objective = _objective(cell, view, seed, batch_size, epochs, pool)
        callbacks = [] if log is None else [_trial_logger(cell.name, tuner_seed, n_trials, log)]
        while len(_finished(study)) < n_trials:
            study.optimize(objective, n_trials=1, callbacks=callbacks)
    return study


def _trial_logger(name: str, tuner_seed: int, n_trials: int,
                  log: Callable[[str], None]) -> Callable:
    def callback(study: Any, trial: Any) -> None:
        seconds = ((trial.datetime_complete - trial.datetime_start).total_seconds()
                   if trial.datetime_complete and trial.datetime_start else float("nan"))
        value = "" if trial.value is None else f" val MAE {trial.value:.4f}"
        log(f"{time.strftime('%H:%M:%S')} {name} tuner {tuner_seed} trial "
            f"{len(_finished(study))}/{n_trials} {trial.state.name.lower()}{value} "
            f"epochs {trial.user_attrs.get('epochs_run', 0)} {seconds:.1f}s")
    return callback


def cell_result(cell: Cell, study: Any) -> dict[str, Any]:
    """The chosen configuration of a finished study, and what tuning it cost.

    ``n_trials`` counts the finished trials (``n_complete`` + ``n_pruned``); ``n_failed``
    the trials run again after their process died; ``tuning_seconds`` the wall time of all
    trials; ``epochs`` the (meta-)training epochs they ran.
    """
    finished = _finished(study)
    trials = study.get_trials(deepcopy=False)
    best = study.best_trial
    seconds = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in trials
                  if t.datetime_complete is not None and t.datetime_start is not None)
    n_pruned = sum(t.state.name == "PRUNED" for t in finished)
    return {
        "cell": cell.name, "model": cell.model, "scheme": cell.scheme,
        "params": dict(best.params), "test_steps": int(best.user_attrs["test_steps"]),
        "val_mae": float(best.value), "val_ndcg@3": float(best.user_attrs["val_ndcg@3"]),
        "n_trials": len(finished), "n_complete": len(finished) - n_pruned,
        "n_pruned": n_pruned, "n_failed": sum(t.state.name == "FAIL" for t in trials),
        "tuner_seed": int(study.user_attrs.get("tuner_seed", 0)),
        "pruners": dict(study.user_attrs.get("pruners", {"median": 0})),
        "epochs": int(sum(t.user_attrs.get("epochs_run", len(t.intermediate_values))
                          for t in finished)),
        "tuning_seconds": round(seconds, 1),
    }


def export_configs(out_dir: Path, benchmark: str, cells: Sequence[Cell] | None = None,
                   tuner_seed: int = 0) -> dict[str, Any]:
    """Collect the best configuration of every finished study into its configs file.

    Reads the SQLite studies of ``tuner_seed`` under ``out_dir``; cells without a finished
    study are left out. Writes ``configs_path`` (``<benchmark>.configs.json`` for tuner
    seed 0), replaced atomically.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    configs: dict[str, Any] = {}
    for cell in cells or grid_cells():
        path = study_file(out_dir, benchmark, cell.model, tuner_seed)
        if not path.exists():
            continue
        with study_file_errors(path):
            try:
                study = optuna.load_study(study_name=cell.scheme,
                                          storage=f"sqlite:///{path.resolve()}")
            except KeyError:
                continue
            n_wanted = study.user_attrs.get("n_trials")
            if not _finished(study) or len(_finished(study)) < (n_wanted or 1):
                continue
            configs[cell.name] = cell_result(cell, study)
    path = configs_path(out_dir, benchmark, tuner_seed)
    _atomic_write(path, json.dumps({"benchmark": benchmark, "max_test_steps": MAX_TEST_STEPS,
                                    "tuner_seed": tuner_seed, "cells": configs},
                                   indent=1) + "\n")
    return configs


def tune_grid(data: PreparedData, out_dir: str | Path, benchmark: str, *, n_trials: int,
              cells: Sequence[Cell] | None = None, resume: bool = False,
              progress: bool = True, tuner_seed: int = 0,
              pruner: str = GRID_PRUNER) -> dict[str, Any]:
    """Tune ``cells`` (default: the whole grid) one after the other; returns the configs.

    ``data`` must be prepared with :data:`TUNING_SEED`. After every cell the configs file
    (``configs_path``) is rewritten, so an interruption loses at most the trial that was
    running. With ``progress``, one line per finished trial and per cell is printed.
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}.")
    out_dir = Path(out_dir)
    cells = list(cells or grid_cells())
    logging.getLogger("optuna").setLevel(logging.WARNING)
    log = (lambda line: print(line, flush=True)) if progress else None
    for i, cell in enumerate(cells):
        start = time.perf_counter()
        study = tune_cell(cell, data, n_trials=n_trials, out_dir=out_dir, benchmark=benchmark,
                          resume=resume, tuner_seed=tuner_seed, pruner=pruner, log=log)
        if log is not None:
            log(f"{time.strftime('%H:%M:%S')} cell {i + 1}/{len(cells)} {cell.name} tuner "
                f"{tuner_seed}: {study.user_attrs['n_trials']} trials finished "
                f"({time.perf_counter() - start:.0f}s in this process)")
        export_configs(out_dir, benchmark, tuner_seed=tuner_seed)
    return export_configs(out_dir, benchmark, tuner_seed=tuner_seed)


def study_progress(out_dir: str | Path, benchmark: str) -> pd.DataFrame:
    """Where the studies under ``out_dir/<benchmark>-tuning/`` stand (for long runs).

    One row per study: ``model``, ``tuner_seed``, ``scheme``, the counts of ``finished``
    (complete + pruned), ``complete``, ``pruned``, ``failed`` and ``running`` trials, and
    ``wanted`` (the budget the last tuning command asked for).
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = []
    for path in sorted((Path(out_dir) / f"{benchmark}-tuning").glob("*.db")):
        model, _, tuner = path.stem.partition(".tuner")
        storage = f"sqlite:///{path.resolve()}"
        with study_file_errors(path):
            summaries = optuna.get_all_study_summaries(storage, include_best_trial=False)
            studies = [optuna.load_study(study_name=summary.study_name, storage=storage)
                       for summary in summaries]
        for summary, study in zip(summaries, studies, strict=True):
            with study_file_errors(path):
                states = [t.state.name for t in study.get_trials(deepcopy=False)]
            rows.append({"model": model, "tuner_seed": int(tuner or 0),
                         "scheme": summary.study_name,
                         "finished": states.count("COMPLETE") + states.count("PRUNED"),
                         "complete": states.count("COMPLETE"),
                         "pruned": states.count("PRUNED"), "failed": states.count("FAIL"),
                         "running": states.count("RUNNING"),
                         "wanted": int(study.user_attrs.get("n_trials", 0))})
    return pd.DataFrame(rows)


def load_configs(path: str | Path) -> dict[str, Any]:
    """Read a configs file written by :func:`export_configs`, with a clear error if missing."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist: tune the grid first with `python -m metarec experiment "
            f"tune {path.name.removesuffix('.configs.json')}` (or use the committed file in "
            "book/results).")
    again = (f"re-export it from the tuning studies with `python -m metarec experiment tune "
             f"{path.name.removesuffix('.configs.json')} --resume --out {path.parent}` (no new "
             "trials for finished studies), or restore it")
    try:
        configs = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not a configs file (not valid JSON: {err}); {again}.") \
            from None
    if not isinstance(configs, dict) or not isinstance(configs.get("cells"), dict):
        raise ValueError(f"{path} has no 'cells' mapping (cell name -> tuned configuration), so "
                         f"it is not a configs file written by `experiment tune`; {again}.")
    for name, cfg in configs["cells"].items():
        Cell.parse(name)
        missing = ([k for k in ("model", "scheme", "params", "test_steps") if k not in cfg]
                   if isinstance(cfg, dict) else ["every key"])
        if missing:
            raise ValueError(f"{path}: the cell {name!r} lacks {', '.join(map(repr, missing))}"
                             f"; {again}.")
        if not isinstance(cfg["params"], dict):
            raise ValueError(f"{path}: the params of cell {name!r} are not a mapping "
                             f"(got {cfg['params']!r}); {again}.")
        if cfg["scheme"] not in SCHEMES:
            raise ValueError(f"{path}: unknown scheme {cfg['scheme']!r} in cell {name!r}.")
    return configs


__all__ = [
    "GRID_PRUNER",
    "PRUNERS",
    "TUNING_SEED",
    "StudyFileError",
    "cell_result",
    "configs_path",
    "export_configs",
    "load_configs",
    "sampler_seed",
    "study_file",
    "study_progress",
    "study_file_errors",
    "study_storage",
    "tune_cell",
    "tune_grid",
    "tuning_view",
]
