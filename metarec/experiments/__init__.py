"""The experiment runner: named benchmarks, methods, sweeps and cost measurements.

``python -m metarec experiment tune fair-ml100k`` tunes every cell of the fair grid (each base
model trained conventionally and meta-trained) on validation users, and
``python -m metarec experiment run fair-ml100k`` runs the tuned cells for five seeds and writes
per-user results; chapter 8 reads them. The notebooks call the same functions.

The names below are imported on first use (PEP 562), so that building the command line
(``python -m metarec --help``) imports no TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the eager imports, for type checkers and editors
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

#: public name -> the module of metarec.experiments that defines it
_HOMES: dict[str, str] = {
    "ADAPT_SETS": "grid",
    "BENCHMARKS": "runner",
    "Cell": "grid",
    "GRID_MODELS": "grid",
    "MAX_TEST_STEPS": "grid",
    "SCHEMES": "grid",
    "SEARCH_SPACE": "grid",
    "cell_method": "grid",
    "export_configs": "tuning",
    "grid_cells": "grid",
    "load_configs": "tuning",
    "prepare_benchmark": "runner",
    "run_grid": "fair",
    "tune_grid": "tuning",
    "ExperimentConfig": "runner",
    "FINE_TUNE_STEPS": "methods",
    "KeepBestWeights": "runner",
    "METHODS": "methods",
    "METRICS": "runner",
    "Method": "methods",
    "PreparedData": "runner",
    "SCENARIOS": "runner",
    "evaluate_scenarios": "runner",
    "get_method": "methods",
    "inner_steps_sweep": "sweeps",
    "load_dataset": "runner",
    "measure_training_cost": "cost",
    "prepare": "runner",
    "run_experiment": "runner",
    "summary_table": "runner",
    "support_size_sweep": "sweeps",
    "train_method": "runner",
    "write_results": "runner",
}

__all__ = list(_HOMES)


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        value = getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})
