"""Run a benchmark: train every method for every seed, evaluate it in every scenario.

The protocol (MeLU, Lee et al. 2019, on MovieLens; see :mod:`metarec.data.splits`):

1. ``seed`` fixes the cold-start split (new users, validation users, warm hold-out), the task
   draws (support/query), each model's initialisation and the task order of training;
2. each method is trained on the meta-training tasks (existing users, existing items), with
   early stopping on the validation users' tasks (best validation MAE is restored);
3. it is evaluated on the tasks of four scenarios -- warm, user-cold, item-cold,
   user-and-item-cold -- by adapting to each user's support set and scoring the query set.

The result is a tidy table: one row per (dataset, seed, method, scenario) with MAE, RMSE,
nDCG@1, nDCG@3 (task averages, :mod:`metarec.metrics`), the number of tasks and the training
time. :func:`summary_table` turns it into mean and standard deviation over seeds.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

from metarec._validate import check_int
from metarec.data import (
    ColdStartSplit,
    FeatureEncoder,
    RatingsDataset,
    TaskSet,
    cold_start_split,
    load_movielens,
    load_movielens_folder,
    make_synthetic,
    scenario_tasks,
)
from metarec.experiments.methods import METHODS, Method, get_method
from metarec.meta import MetaLearner

SCENARIOS = ("warm", "user_cold", "item_cold", "user_item_cold")
#: Datasets a benchmark can name (``data_path`` reads a custom folder of a MovieLens format).
DATASET_NAMES = ("synthetic", "ml-100k", "ml-1m")
METRICS = ("mae", "rmse", "ndcg@1", "ndcg@3")


@dataclass
class ExperimentConfig:
    """What to run. ``python -m metarec experiment run NAME`` uses :data:`BENCHMARKS`.

    ``grid=True`` makes it a fair-comparison benchmark (module ``metarec.experiments.grid``): every
    cell is tuned with ``n_trials`` Optuna trials, then run with ``seeds``. ``data_path`` reads
    a custom MovieLens-format folder instead of the official release (no checksum check);
    ``new_item_year`` overrides the dataset's default threshold of new items.
    """

    name: str
    dataset: str = "ml-100k"
    methods: Sequence[str] = tuple(METHODS)
    seeds: Sequence[int] = (0, 1, 2)
    scenarios: Sequence[str] = SCENARIOS
    epochs: int | None = None  # overrides every method's epochs when set
    batch_size: int = 32
    patience: int = 3
    synthetic_kwargs: dict = field(default_factory=dict)
    grid: bool = False
    n_trials: int = 8
    data_path: str | None = None
    new_item_year: int | None = None


BENCHMARKS: dict[str, ExperimentConfig] = {
    "fair-ml100k": ExperimentConfig("fair-ml100k", dataset="ml-100k", grid=True,
                                    seeds=(0, 1, 2, 3, 4)),
    "fair-ml1m": ExperimentConfig("fair-ml1m", dataset="ml-1m", grid=True,
                                  seeds=(0, 1, 2, 3, 4)),
    "fair-synthetic": ExperimentConfig("fair-synthetic", dataset="synthetic", grid=True,
                                       seeds=(0, 1, 2, 3, 4)),
    "melu-ml100k": ExperimentConfig("melu-ml100k", dataset="ml-100k"),
    "melu-ml1m": ExperimentConfig("melu-ml1m", dataset="ml-1m"),
    "melu-synthetic": ExperimentConfig("melu-synthetic", dataset="synthetic"),
    "quick": ExperimentConfig("quick", dataset="synthetic", methods=("popularity", "mf",
                              "melu_finetune", "maml"), seeds=(0,), epochs=3),
}


def load_dataset(name: str, seed: int = 0, path: str | Path | None = None,
                 **synthetic_kwargs) -> RatingsDataset:
    """``"synthetic"`` (generated with ``seed``), a MovieLens name (checksummed cached download),
    or, with ``path``, a custom folder in MovieLens format (no checksum check; it warns that
    results are not comparable with the official release)."""
    if path is not None:
        return load_movielens_folder(path, name=None if name == "synthetic" else name)
    if name == "synthetic":
        return make_synthetic(seed=seed, **synthetic_kwargs)
    return load_movielens(name)


@dataclass
class PreparedData:
    """Everything a method needs for one seed: split, fitted encoder, tasks per part."""

    dataset: RatingsDataset
    split: ColdStartSplit
    encoder: FeatureEncoder
    tasks: dict[str, TaskSet]

    @property
    def train_mean(self) -> float:
        """Mean rating of the training part: the starting intercept/output bias of models."""
        return float(self.split.train["rating"].mean())


def prepare(dataset: RatingsDataset, seed: int,
            new_item_year: int | None = None) -> PreparedData:
    """Cold-start split, encoder fitted on the training part, and the tasks of every part.

    ``new_item_year``: items released in or after it are new (default: the dataset's).
    """
    split = cold_start_split(dataset, seed=seed, new_item_year=new_item_year)
    encoder = FeatureEncoder().fit(dataset, split.train)
    return PreparedData(dataset, split, encoder, scenario_tasks(split, encoder, seed=seed))


def prepare_benchmark(config: ExperimentConfig, seed: int) -> PreparedData:
    """Load ``config``'s dataset (official, synthetic or custom folder) and prepare ``seed``."""
    dataset = load_dataset(config.dataset, seed=seed, path=config.data_path,
                           **config.synthetic_kwargs)
    return prepare(dataset, seed, new_item_year=config.new_item_year)


class KeepBestWeights(keras.callbacks.Callback):
    """Restore, at the end of training, the weights of the epoch with the lowest ``monitor``.

    Unlike ``EarlyStopping(restore_best_weights=True)`` it also restores when training runs
    all its epochs, and it includes the learner's own variables (Meta-SGD's learning rates).
    """

    def __init__(self, learner: MetaLearner, monitor: str = "val_mae"):
        super().__init__()
        self.learner, self.monitor = learner, monitor
        self.best, self.weights = float("inf"), None

    def _variables(self):
        return list(self.learner.model.weights) + list(self.learner.extra_variables)

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and value < self.best:
            self.best = value
            self.weights = [v.numpy().copy() for v in self._variables()]

    def on_train_end(self, logs=None):
        if self.weights is not None:
            for var, value in zip(self._variables(), self.weights, strict=True):
                var.assign(value)


def train_method(method: Method | str, data: PreparedData, seed: int, *,
                 epochs: int | None = None, batch_size: int = 32, patience: int = 3,
                 verbose: int = 0,
                 callbacks: Sequence[keras.callbacks.Callback] = (),
                 learner: MetaLearner | None = None) -> tuple[MetaLearner, float]:
    """Build and train one method; returns the learner and the training time in seconds.

    Training stops early when the validation users' MAE has not improved for ``patience``
    epochs, and the weights of the best epoch are restored. ``callbacks`` (Keras callbacks,
    e.g. a ``keras.callbacks.LambdaCallback`` that logs every epoch) are called too; they see
    ``loss`` and ``val_mae``, ``val_rmse``, ``val_ndcg@k`` in the epoch logs.

    ``learner``: an untrained learner in the state ``method.build(spec, seed=seed,
    global_mean=data.train_mean)`` returns (the tuner passes a reset, already compiled one,
    :mod:`metarec.experiments.learner_pool`); default: built here.
    """
    method = get_method(method) if isinstance(method, str) else method
    if learner is None:
        learner = method.build(data.encoder.spec, seed=seed, global_mean=data.train_mean)
    start = time.perf_counter()
    if hasattr(learner.model, "fit_closed_form"):
        learner.model.fit_closed_form(data.split.train, data.encoder)
    n_epochs = method.epochs if epochs is None or method.epochs == 0 else epochs
    if n_epochs > 0:
        stop = keras.callbacks.EarlyStopping(monitor="val_mae", mode="min", patience=patience)
        best = KeepBestWeights(learner)
        learner.fit(data.tasks["train"], epochs=n_epochs, batch_size=batch_size,
                    validation_tasks=data.tasks["validation"],
                    callbacks=[stop, best, *callbacks],
                    verbose=verbose)
    return learner, time.perf_counter() - start


def evaluate_scenarios(learner: MetaLearner, data: PreparedData,
                       scenarios: Sequence[str] = SCENARIOS,
                       steps: int | None = None) -> list[dict]:
    """One row per scenario with the task-averaged metrics."""
    rows = []
    for scenario in scenarios:
        result = learner.evaluate(data.tasks[scenario], steps=steps)
        rows.append({"scenario": scenario, "n_tasks": len(data.tasks[scenario]),
                     **{m: result[m] for m in METRICS}})
    return rows


def _run_identity(config: ExperimentConfig) -> dict[str, Any]:
    """What makes two runs comparable: everything but the seeds and methods (which resume adds)."""
    return {"benchmark": config.name, "dataset": config.dataset,
            "scenarios": list(config.scenarios), "epochs": config.epochs,
            "batch_size": config.batch_size, "patience": config.patience,
            "synthetic_kwargs": dict(config.synthetic_kwargs), "data_path": config.data_path,
            "new_item_year": config.new_item_year}


def check_writable(out_dir: Path) -> None:
    """Create ``out_dir`` if needed and check a file can be written there (before training)."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".write-test-"):
            pass
    except OSError as err:
        raise OSError(f"Cannot write results into {out_dir}: {err.strerror or err}. Choose "
                      "another --out folder (nothing was trained).") from None


def validate_config(config: ExperimentConfig) -> ExperimentConfig:
    """Check a recipe benchmark's names and numbers before any training; clear messages."""
    where = f"benchmark {config.name!r}"
    if config.dataset not in DATASET_NAMES:
        raise ValueError(f"{where}: unknown dataset {config.dataset!r}; choose from "
                         f"{', '.join(DATASET_NAMES)}.")
    for scenario in config.scenarios:
        if scenario not in SCENARIOS:
            raise ValueError(f"Unknown scenario {scenario!r}; choose from {SCENARIOS}.")
    if not config.seeds:
        raise ValueError(f"{where}: no seed given; pass at least one seed.")
    for seed in config.seeds:
        check_int(where, "every seed", seed, 0)
    if len(set(config.seeds)) != len(config.seeds):
        raise ValueError(f"{where}: duplicate seeds {list(config.seeds)}; every seed must be "
                         "distinct (a repeated seed would count one run twice).")
    if not config.methods:
        raise ValueError(f"{where}: no method given; choose from {', '.join(METHODS)}.")
    for name in config.methods:
        get_method(name)
    if len(set(config.methods)) != len(config.methods):
        raise ValueError(f"{where}: duplicate methods {list(config.methods)}; list each once.")
    if config.epochs is not None:
        check_int(where, "epochs", config.epochs, 1)
    check_int(where, "batch_size", config.batch_size, 1)
    check_int(where, "patience", config.patience, 0)
    return config


def run_experiment(config: ExperimentConfig | str, out_dir: str | Path | None = None,
                   progress: bool = True, *, resume: bool = False,
                   overwrite: bool = False) -> pd.DataFrame:
    """Run ``config`` (or the name of a :data:`BENCHMARKS` entry); return the tidy results.

    With ``out_dir``, writes ``<name>.csv`` (tidy rows), ``<name>.md`` (the summary table,
    mean ± std over seeds) and ``<name>.run.json`` (what was run), each atomically and again
    after every finished (seed, method): an error or an interruption loses at most the
    running method. Existing files are never replaced silently: ``resume=True`` keeps their
    finished (seed, method) rows and runs the others (the dataset, scenarios and training
    settings must be those of the earlier run; seeds and methods may be added),
    ``overwrite=True`` starts afresh, and otherwise a ``FileExistsError`` says so before
    anything is trained. The folder is checked for writing first, too.
    """
    if isinstance(config, str):
        if config not in BENCHMARKS:
            raise ValueError(f"Unknown benchmark {config!r}; choose from {sorted(BENCHMARKS)}.")
        config = BENCHMARKS[config]
    validate_config(config)
    if resume and overwrite:
        raise ValueError("run_experiment: pass resume=True (continue the run in out_dir) or "
                         "overwrite=True (replace it), not both.")
    methods = [get_method(m) for m in config.methods]
    rows: list[dict] = []
    done: set[tuple[int, str]] = set()
    paths = None
    if out_dir is not None:
        paths = result_paths(out_dir, config.name)
        check_writable(Path(out_dir))
        rows, done = _previous_rows(config, paths, resume=resume, overwrite=overwrite)
        _atomic_write(paths["run"], json.dumps(_run_identity(config), indent=2) + "\n")
    jobs = [(seed, m) for seed in config.seeds for m in methods if (seed, m.name) not in done]
    bar = _progress(len(jobs), enabled=progress)
    for seed in config.seeds:
        if all((seed, m.name) in done for m in methods):
            continue
        data = prepare_benchmark(config, seed)
        dataset = data.dataset
        for method in methods:
            if (seed, method.name) in done:
                continue
            bar.set_description(f"seed {seed} {method.name}")
            try:
                learner, seconds = train_method(method, data, seed, epochs=config.epochs,
                                                batch_size=config.batch_size,
                                                patience=config.patience)
                new = [{"dataset": dataset.name, "seed": seed, "method": method.name,
                        "label": method.label, **row, "train_seconds": seconds}
                       for row in evaluate_scenarios(learner, data, config.scenarios)]
            except Exception as err:
                if paths is not None and rows:
                    err.add_note(f"The {len(rows)} result rows finished before are in "
                                 f"{paths['csv']}; fix the problem and rerun with --resume "
                                 "(resume=True) to run only the missing (seed, method) pairs.")
                bar.close()
                raise
            rows.extend(new)
            if paths is not None:  # after every method: an error later loses nothing
                write_results(pd.DataFrame(rows), Path(out_dir), config.name)
            bar.update(1)
    bar.close()
    results = pd.DataFrame(rows)
    if len(results):  # the order of the config, whatever order resume found them in
        order = {(s, m.name): i for i, (s, m) in enumerate(
            (s, m) for s in config.seeds for m in methods)}
        keep = [(int(s), m) in order for s, m in zip(results["seed"], results["method"],
                                                      strict=True)]
        results = results[keep]
        rank = [order[(int(s), m)] for s, m in zip(results["seed"], results["method"],
                                                   strict=True)]
        results = results.iloc[np.argsort(rank, kind="stable")].reset_index(drop=True)
    return results


def result_paths(out_dir: str | Path, name: str) -> dict[str, Path]:
    """The files :func:`run_experiment` writes for benchmark ``name`` into ``out_dir``."""
    out_dir = Path(out_dir)
    return {"csv": out_dir / f"{name}.csv", "md": out_dir / f"{name}.md",
            "run": out_dir / f"{name}.run.json"}


def _previous_rows(config: ExperimentConfig, paths: dict[str, Path], *, resume: bool,
                   overwrite: bool) -> tuple[list[dict], set[tuple[int, str]]]:
    """Rows and finished (seed, method) pairs of an earlier run to keep; refuse to clobber."""
    existing = [p for p in paths.values() if p.exists()]
    if not existing or overwrite:
        return [], set()
    if not resume:
        raise FileExistsError(
            f"{', '.join(str(p) for p in existing)} already exist(s), maybe the results of "
            "another run. Pass --resume (resume=True) to continue that run, --overwrite "
            "(overwrite=True) to replace it, or choose another --out folder.")
    if not paths["run"].exists() or not paths["csv"].exists():
        raise FileExistsError(
            f"{', '.join(str(p) for p in existing)} exist(s) but not as a resumable run "
            f"({paths['run'].name} and {paths['csv'].name} are both needed); pass --overwrite "
            "to replace them or choose another --out folder.")
    try:
        before = json.loads(paths["run"].read_text())
        previous = pd.read_csv(paths["csv"])
    except (ValueError, OSError) as err:
        raise ValueError(f"Cannot resume from {paths['run']} / {paths['csv']}: {err}. Pass "
                         "--overwrite to start afresh.") from None
    now = json.loads(json.dumps(_run_identity(config)))  # tuples read back as lists
    changed = {k: (before.get(k), v) for k, v in now.items() if before.get(k) != v}
    if changed:
        what = "; ".join(f"{k}: {a!r} then, {b!r} now" for k, (a, b) in changed.items())
        raise ValueError(f"Cannot resume {paths['csv']}: it holds another run ({what}). Pass "
                         "--overwrite to replace it, or choose another --out folder.")
    done = {(int(s), str(m)) for s, m in zip(previous["seed"], previous["method"],
                                             strict=True)}
    return previous.to_dict("records"), done


def summary_table(results: pd.DataFrame, metrics: Sequence[str] = METRICS,
                  decimals: int = 4) -> pd.DataFrame:
    """Mean ± standard deviation over seeds; rows = methods, columns = (scenario, metric).

    With a single seed the spread is undefined and only the mean is shown.
    """
    grouped = results.groupby(["method", "scenario"], sort=False)[list(metrics)]
    mean, std = grouped.mean(), grouped.std(ddof=1)
    fmt = f"{{:.{decimals}f}}"
    cells = mean.map(fmt.format)
    spread = std.notna()
    cells = cells.where(~spread, cells + " ± " + std.map(fmt.format))
    table = cells.unstack("scenario")
    order = list(dict.fromkeys(results["method"]))
    scen = [s for s in SCENARIOS if s in set(results["scenario"])]
    table = table.reindex(order)
    return table.reindex(columns=pd.MultiIndex.from_product([list(metrics), scen]))


def atomic_replace(path: Path, write: Callable[[str], None]) -> None:
    """Create ``path`` by ``write(temporary path)`` then a rename: never a half-written file.

    The file gets the permissions of a normally created one (the user's umask), not the
    temporary file's 0600.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_write(path: Path, text: str) -> None:
    atomic_replace(path, lambda tmp: Path(tmp).write_text(text))


def write_results(results: pd.DataFrame, out_dir: Path, name: str) -> tuple[Path, Path]:
    """Write ``<name>.csv`` and ``<name>.md`` into ``out_dir`` (temp file, then rename)."""
    csv_path, md_path = out_dir / f"{name}.csv", out_dir / f"{name}.md"
    _atomic_write(csv_path, results.to_csv(index=False, float_format="%.6f"))
    seeds = sorted(results["seed"].unique().tolist())
    parts = [f"# {name}: {results['dataset'].iloc[0]}, seeds {seeds}\n"]
    for metric in METRICS:
        table = summary_table(results, [metric])
        table.columns = [c[1] for c in table.columns]
        title = "mean ± std over seeds" if len(seeds) > 1 else "one seed: no spread"
        parts.append(f"\n## {metric} ({title})\n\n{table.to_markdown()}\n")
    _atomic_write(md_path, "".join(parts))
    return csv_path, md_path


class _NoBar:
    def update(self, n: int = 1) -> None: ...
    def set_description(self, text: str) -> None: ...
    def set_postfix_str(self, text: str) -> None: ...
    def close(self) -> None: ...


def _progress(total: int, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, file=sys.stdout, ascii=True, unit="run")


__all__ = [
    "BENCHMARKS",
    "ExperimentConfig",
    "KeepBestWeights",
    "METRICS",
    "PreparedData",
    "SCENARIOS",
    "evaluate_scenarios",
    "load_dataset",
    "prepare",
    "prepare_benchmark",
    "result_paths",
    "run_experiment",
    "summary_table",
    "train_method",
    "validate_config",
    "write_results",
]
