"""The experiment runner: named benchmarks, methods, sweeps and cost measurements.

``python -m metarec experiment tune fair-ml100k`` tunes every cell of the fair grid (each base
model trained conventionally and meta-trained) on validation users, and
``python -m metarec experiment run fair-ml100k`` runs the tuned cells for five seeds and writes
per-user results; chapter 8 reads them. The notebooks call the same functions.
"""

from metarec.experiments.cost import measure_training_cost
from metarec.experiments.fair import run_grid
from metarec.experiments.grid import (
    ADAPT_SETS,
    GRID_MODELS,
    MAX_TEST_STEPS,
    SCHEMES,
    SEARCH_SPACE,
    Cell,
    cell_method,
    grid_cells,
)
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
    prepare_benchmark,
    run_experiment,
    summary_table,
    train_method,
    write_results,
)
from metarec.experiments.sweeps import inner_steps_sweep, support_size_sweep
from metarec.experiments.tuning import export_configs, load_configs, tune_grid

__all__ = [
    "ADAPT_SETS",
    "BENCHMARKS",
    "Cell",
    "GRID_MODELS",
    "MAX_TEST_STEPS",
    "SCHEMES",
    "SEARCH_SPACE",
    "cell_method",
    "export_configs",
    "grid_cells",
    "load_configs",
    "prepare_benchmark",
    "run_grid",
    "tune_grid",
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
