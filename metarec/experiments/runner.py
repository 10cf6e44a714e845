"""Former home of the recipe study and the training core; kept so that old imports still work.

Chapter 12 imports :class:`KeepBestWeights` from here. New code imports every name from
:mod:`metarec.experiments` (which finds it in :mod:`~metarec.experiments.training`,
:mod:`~metarec.experiments.benchmarks`, :mod:`~metarec.experiments.recipe_study` or
:mod:`~metarec.experiments.store`).
"""

from metarec.experiments.benchmarks import (
    BENCHMARKS,
    ExperimentConfig,
    prepare_benchmark,
    validate_config,
)
from metarec.experiments.recipe_study import (
    result_paths,
    run_experiment,
    summary_table,
    write_results,
)
from metarec.experiments.store import atomic_replace, check_writable
from metarec.experiments.training import (
    METRICS,
    SCENARIOS,
    KeepBestWeights,
    PreparedData,
    evaluate_scenarios,
    load_dataset,
    prepare,
    train_method,
)

__all__ = [
    "BENCHMARKS",
    "ExperimentConfig",
    "KeepBestWeights",
    "METRICS",
    "PreparedData",
    "SCENARIOS",
    "atomic_replace",
    "check_writable",
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
