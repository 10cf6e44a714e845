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

import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import keras
import pandas as pd

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
                 callbacks: Sequence[keras.callbacks.Callback] = ()
                 ) -> tuple[MetaLearner, float]:
    """Build and train one method; returns the learner and the training time in seconds.

    Training stops early when the validation users' MAE has not improved for ``patience``
    epochs, and the weights of the best epoch are restored. ``callbacks`` (Keras callbacks,
    e.g. a ``keras.callbacks.LambdaCallback`` that logs every epoch) are called too; they see
    ``loss`` and ``val_mae``, ``val_rmse``, ``val_ndcg@k`` in the epoch logs.
    """
    method = get_method(method) if isinstance(method, str) else method
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


def run_experiment(config: ExperimentConfig | str, out_dir: str | Path | None = None,
                   progress: bool = True) -> pd.DataFrame:
    """Run ``config`` (or the name of a :data:`BENCHMARKS` entry); return the tidy results.

    With ``out_dir``, writes ``<name>.csv`` (tidy rows) and ``<name>.md`` (the summary
    table, mean ± std over seeds), each atomically.
    """
    if isinstance(config, str):
        if config not in BENCHMARKS:
            raise ValueError(f"Unknown benchmark {config!r}; choose from {sorted(BENCHMARKS)}.")
        config = BENCHMARKS[config]
    for scenario in config.scenarios:
        if scenario not in SCENARIOS:
            raise ValueError(f"Unknown scenario {scenario!r}; choose from {SCENARIOS}.")
    methods = [get_method(m) for m in config.methods]
    rows: list[dict] = []
    jobs = [(seed, m) for seed in config.seeds for m in methods]
    bar = _progress(len(jobs), enabled=progress)
    for seed in config.seeds:
        data = prepare_benchmark(config, seed)
        dataset = data.dataset
        for method in methods:
            bar.set_description(f"seed {seed} {method.name}")
            learner, seconds = train_method(method, data, seed, epochs=config.epochs,
                                            batch_size=config.batch_size,
                                            patience=config.patience)
            for row in evaluate_scenarios(learner, data, config.scenarios):
                rows.append({"dataset": dataset.name, "seed": seed, "method": method.name,
                             "label": method.label, **row, "train_seconds": seconds})
            bar.update(1)
    bar.close()
    results = pd.DataFrame(rows)
    if out_dir is not None:
        write_results(results, Path(out_dir), config.name)
    return results


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
    "run_experiment",
    "summary_table",
    "train_method",
    "write_results",
]
