"""The experiment runner: named benchmarks, methods, sweeps and cost measurements.

``python -m metarec experiment run melu-ml100k`` runs the book's main benchmark (MeLU protocol
on MovieLens 100K, 12 methods, 3 seeds, 4 scenarios) and writes a tidy CSV plus a markdown
table; the notebooks call the same functions.
"""

from metarec.experiments.cost import measure_training_cost
from metarec.experiments.methods import FINE_TUNE_STEPS, METHODS, Method, get_method
from metarec.experiments.runner import (
    BENCHMARKS,
    METRICS,
    SCENARIOS,
    ExperimentConfig,
    KeepBestWeights,
    PreparedData,
    evaluate_scenarios,
    load_dataset,
    prepare,
    run_experiment,
    summary_table,
    train_method,
    write_results,
)
from metarec.experiments.sweeps import inner_steps_sweep, support_size_sweep

__all__ = [
    "BENCHMARKS",
    "ExperimentConfig",
    "FINE_TUNE_STEPS",
    "KeepBestWeights",
    "METHODS",
    "METRICS",
    "Method",
    "PreparedData",
    "SCENARIOS",
    "evaluate_scenarios",
    "get_method",
    "inner_steps_sweep",
    "load_dataset",
    "measure_training_cost",
    "prepare",
    "run_experiment",
    "summary_table",
    "support_size_sweep",
    "train_method",
    "write_results",
]
