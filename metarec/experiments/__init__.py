"""Experiments: the studies behind the book's result chapters, and the core they share.

``python -m metarec experiment run NAME`` runs a named benchmark, ``experiment tune NAME``
tunes a grid benchmark, ``experiment when`` runs chapter 9's study; the notebooks call the
same functions. Every public name is importable from here; the modules, core first:

Core (every study uses them)

* :mod:`~metarec.experiments.store` -- results files: atomic writes (temporary file, then
  rename), the resume/overwrite policy (:func:`keep_previous`), the writability check
  (:func:`check_writable`) and the progress bar;
* :mod:`~metarec.experiments.training` -- train a configured method on one seed's data and
  evaluate it: :func:`prepare` (split, encoder, tasks), :func:`train_method` (a recipe, early
  stopping, best epoch restored), :func:`train_tuned` (a tuned grid cell),
  :func:`evaluate_scenarios` and :func:`evaluate_groups` (metrics after 0..10 inner steps),
  :func:`support_size_tasks`.

What is trained

* ``methods`` -- the hand-set *recipes* of the teaching chapters (:data:`METHODS`; not tuned);
* ``grid`` -- the *grid* of the fair comparison: cells (base model x training scheme), their
  adapted-variable sets and search spaces;
* ``tuning`` -- Optuna tuning of grid cells on validation users (SQLite studies, resumable)
  and the configs file it writes;
* :mod:`~metarec.experiments.benchmarks` -- the named benchmarks (:data:`BENCHMARKS`: dataset,
  seeds, recipes or grid).

The three studies (thin layers: loop over seeds and methods, store the results)

* :mod:`~metarec.experiments.recipe_study` -- recipes x seeds x scenarios, a tidy table
  (:func:`run_experiment`; ``experiment run melu-ml100k``);
* :mod:`~metarec.experiments.grid_study` -- every tuned grid cell x seeds, per-user results
  and curves (:func:`run_grid`; ``experiment run fair-ml100k``; chapter 8);
* :mod:`~metarec.experiments.when_study` -- controlled experiments on synthetic data: when
  does meta-learning help? (``experiment when``; chapter 9). It is also reachable as
  ``metarec.experiments.when`` (``from metarec.experiments import when``).

Analyses: ``stats`` (intervals, paired differences, run-level inference), ``verdict`` (the
verdict table of a grid study's results), ``sweeps`` (support size, inner steps), ``cost``
(time and memory per meta-training step). The command line is ``cli``.
``python -m metarec train`` (``metarec.train``) uses the same core to train one method under
any ``tf.distribute`` strategy and save the learner.

``runner`` and ``fair`` are the former names of the recipe and grid studies, kept so that
old imports still work. Names are imported on first use (PEP 562), so that building the
command line imports no TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> the module that defines it (imported on first use).
_HOMES = {
    "metarec.experiments.benchmarks": ("BENCHMARKS", "ExperimentConfig", "prepare_benchmark",
                                       "validate_config"),
    "metarec.experiments.cost": ("measure_training_cost",),
    "metarec.experiments.grid": ("ADAPT_SETS", "GRID_MODELS", "MAX_TEST_STEPS", "SCHEMES",
                                 "SEARCH_SPACE", "Cell", "cell_method", "grid_cells"),
    "metarec.experiments.grid_study": ("run_grid", "sweep_cells"),
    "metarec.experiments.methods": ("FINE_TUNE_STEPS", "METHODS", "Method", "get_method"),
    "metarec.experiments.recipe_study": ("run_experiment", "summary_table", "write_results"),
    "metarec.experiments.store": ("atomic_replace", "check_writable", "keep_previous",
                                  "write_frame", "write_text"),
    "metarec.experiments.sweeps": ("inner_steps_sweep", "support_size_sweep"),
    "metarec.experiments.training": ("METRICS", "SCENARIOS", "SUPPORT_SIZES", "KeepBestWeights",
                                     "PreparedData", "diverged_epochs", "epochs_run",
                                     "evaluate_groups", "evaluate_scenarios", "load_dataset",
                                     "prepare", "support_size_tasks", "train_method",
                                     "train_tuned"),
    "metarec.experiments.tuning": ("export_configs", "load_configs", "tune_grid"),
}
_WHERE = {name: module for module, names in _HOMES.items() for name in names}
#: Modules reachable under another name: ``from metarec.experiments import when``.
_ALIASES = {"when": "metarec.experiments.when_study"}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
    elif name in _ALIASES:
        value = importlib.import_module(_ALIASES[name])
    else:
        raise AttributeError(f"module 'metarec.experiments' has no attribute {name!r}")
    globals()[name] = value  # found once; later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE, *_ALIASES})
