"""The layout of metarec.experiments: one policy for every study, old import paths, light CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "book" / "results" / "fair-ml100k.configs.json"


def test_building_the_command_line_imports_no_tensorflow():
    code = ("import sys\nfrom metarec.cli import build_parser\nbuild_parser()\n"
            "import metarec.experiments\n"
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH",
                                                                                 "")]))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, check=True, timeout=120)
    assert proc.stdout.strip() == "[]"


def test_old_import_paths_give_the_same_objects():
    import metarec.experiments as experiments
    from metarec.experiments import (
        fair,
        grid_study,
        recipe_study,
        runner,
        store,
        training,
        when,
        when_study,
    )

    assert when is when_study  # chapter 9: `from metarec.experiments import when`
    assert fair.evaluate_groups is training.evaluate_groups is experiments.evaluate_groups
    assert fair.SUPPORT_SIZES is training.SUPPORT_SIZES is when.SUPPORT_SIZES
    assert fair.sweep_cells is grid_study.sweep_cells and fair.run_grid is grid_study.run_grid
    assert runner.KeepBestWeights is training.KeepBestWeights
    assert runner.run_experiment is recipe_study.run_experiment
    assert runner.atomic_replace is store.atomic_replace is experiments.atomic_replace
    for name in experiments.__all__:
        assert getattr(experiments, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        experiments.nothing  # noqa: B018


def test_strategies_are_defined_once():
    from metarec import distribute, train

    assert distribute.STRATEGIES is train.STRATEGIES


def test_every_study_refuses_resume_and_overwrite_together(tmp_path):
    from metarec.experiments import ExperimentConfig, run_experiment, run_grid, when

    config = ExperimentConfig("tiny", dataset="synthetic", methods=("popularity",), seeds=(0,))
    with pytest.raises(ValueError, match="not both"):
        run_experiment(config, out_dir=tmp_path, progress=False, resume=True, overwrite=True)
    grid = ExperimentConfig("tiny-grid", dataset="ml-100k", grid=True, seeds=(0,))
    with pytest.raises(ValueError, match="not both"):
        run_grid(grid, CONFIGS, tmp_path, cells=["item_mean/finetune"], resume=True,
                 overwrite=True, progress=False)
    with pytest.raises(ValueError, match="not both"):
        when.run_when(tmp_path, points=["default"], seeds=(0,), resume=True, overwrite=True,
                      cost=False, progress=False)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["when"]  # nothing was written


def test_grid_study_refuses_another_runs_files(tmp_path):
    from metarec.experiments import ExperimentConfig, run_grid

    (tmp_path / "tiny-grid.runs.csv").write_text("mine\n")
    grid = ExperimentConfig("tiny-grid", dataset="ml-100k", grid=True, seeds=(0,))
    with pytest.raises(FileExistsError, match="--resume .*--overwrite"):
        run_grid(grid, CONFIGS, tmp_path, cells=["item_mean/finetune"], progress=False)
    assert (tmp_path / "tiny-grid.runs.csv").read_text() == "mine\n"
    assert json.loads(CONFIGS.read_text())["cells"]  # the committed file is only read
