"""The named benchmarks of ``python -m metarec experiment run NAME``: what each one runs.

A benchmark (:class:`ExperimentConfig`) names a dataset, the seeds and either the hand-set
recipes to compare (a *recipe benchmark*, run by :mod:`~metarec.experiments.recipe_study`) or
``grid=True`` (a *grid benchmark*: every cell of ``metarec.experiments.grid`` tuned with
Optuna, then run by :mod:`~metarec.experiments.grid_study`). :data:`BENCHMARKS` holds the named
ones; ``python -m metarec experiment list`` prints them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from metarec._validate import check_int
from metarec.experiments.methods import METHODS, get_method
from metarec.experiments.training import (
    DATASET_NAMES,
    SCENARIOS,
    PreparedData,
    load_dataset,
    prepare,
)

__all__ = ["BENCHMARKS", "ExperimentConfig", "prepare_benchmark", "validate_config"]


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
    # 32 trials per cell: the budget of the book's grid (book/results/fair-ml100k-tuning).
    "fair-ml100k": ExperimentConfig("fair-ml100k", dataset="ml-100k", grid=True,
                                    seeds=(0, 1, 2, 3, 4), n_trials=32),
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


def prepare_benchmark(config: ExperimentConfig, seed: int) -> PreparedData:
    """Load ``config``'s dataset (official, synthetic or custom folder) and prepare ``seed``."""
    dataset = load_dataset(config.dataset, seed=seed, path=config.data_path,
                           **config.synthetic_kwargs)
    return prepare(dataset, seed, new_item_year=config.new_item_year)


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
