"""The fair grid, part 2: the tuner's heavier paths (command line, reused learners, tuner seeds,
pruners, trial counts, the noise study). Its own file so pytest-xdist runs it beside part 1
(``test_fair.py``) on the other worker."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from metarec.experiments import (
    Cell,
    ExperimentConfig,
    cell_method,
    export_configs,
    train_method,
)
from metarec.experiments import grid as grid_module
from metarec.experiments.tuning import tune_cell

SMALL = {"n_users": 300, "n_items": 200}
TEST_PARTS = ("warm", "user_cold", "item_cold", "user_item_cold")


# The small synthetic `data` and the lowered epoch cap come from conftest.py.
pytestmark = pytest.mark.usefixtures("few_grid_epochs")


def test_cli_tunes_and_runs_a_grid(tmp_path, monkeypatch, capsys):
    from metarec.cli import main as cli_main
    from metarec.experiments import BENCHMARKS

    monkeypatch.setitem(BENCHMARKS, "tiny-grid", ExperimentConfig(
        "tiny-grid", dataset="synthetic", grid=True, seeds=(0,), synthetic_kwargs=SMALL))
    out = str(tmp_path)
    args = ["experiment", "tune", "tiny-grid", "--out", out, "--trials", "2",
            "--models", "item_mean", "--schemes", "finetune", "maml"]
    assert cli_main(args) == 0
    configs = json.loads((tmp_path / "tiny-grid.configs.json").read_text())
    assert set(configs["cells"]) == {"item_mean/finetune", "item_mean/maml"}
    capsys.readouterr()
    assert cli_main(args) == 2  # a finished study is never silently extended: one line
    err = capsys.readouterr().err
    assert "--resume" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert cli_main([*args[:-5], "--trials", "3", "--models", "item_mean", "--schemes",
                     "finetune", "--resume"]) == 0
    configs = json.loads((tmp_path / "tiny-grid.configs.json").read_text())
    assert configs["cells"]["item_mean/finetune"]["n_trials"] == 3
    run = ["experiment", "run", "tiny-grid", "--out", out, "--cells", "item_mean/finetune"]
    assert cli_main(run) == 0
    assert (tmp_path / "tiny-grid.users.csv.gz").exists()
    capsys.readouterr()
    assert cli_main(run) == 2  # results of a run are never replaced without --overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert cli_main([*run, "--overwrite"]) == 0
    capsys.readouterr()


# ---------------------------------------------------------------- 32-trial grid: speed, noise
@pytest.mark.parametrize("name,first,second", [
    ("melu/maml", {"inner_lr": 0.05, "outer_lr": 0.003, "adapt": "decision", "inner_steps": 2},
     {"inner_lr": 0.3, "outer_lr": 0.01, "adapt": "decision", "inner_steps": 2}),
    ("mf/finetune", {"inner_lr": 0.1, "outer_lr": 0.003, "adapt": "all"},
     {"inner_lr": 0.01, "outer_lr": 0.02, "adapt": "all"}),
    ("item_mean/metasgd", {"inner_lr": 0.05, "outer_lr": 0.003, "adapt": "user",
                           "inner_steps": 1},
     {"inner_lr": 0.5, "outer_lr": 0.02, "adapt": "user", "inner_steps": 1}),
    ("mf/reptile", {"inner_lr": 0.05, "outer_lr": 0.3, "adapt": "user", "inner_steps": 2},
     {"inner_lr": 0.2, "outer_lr": 0.9, "adapt": "user", "inner_steps": 2}),
    # The neural process's own variables (encoder, FiLM maps) go back to their start too.
    ("melu/np", {"outer_lr": 0.003, "adapt": "all", "representation_dim": 16},
     {"outer_lr": 0.02, "adapt": "all", "representation_dim": 16}),
])
def test_a_reused_learner_gives_the_numbers_of_a_fresh_one(data, name, first, second):
    from metarec.experiments.learner_pool import LearnerPool

    def trial(params, learner=None):
        method = cell_method(Cell.parse(name), params)
        learner, _ = train_method(method, data, 0, learner=learner)
        return (learner.history.history["val_mae"],
                # A short curve: reuse does not depend on its length, tracing 10 steps does.
                learner.evaluate_steps(data.tasks["validation"], 3), learner)

    fresh_mae, fresh_curve, _ = trial(first)
    pool = LearnerPool()
    spec, mean = data.encoder.spec, data.train_mean
    _, _, used = trial(second, pool.get(cell_method(Cell.parse(name), second), spec, 0, mean))
    compiled = dict(used._compiled)
    reused = pool.get(cell_method(Cell.parse(name), first), spec, 0, mean)
    assert reused is used and (pool.hits, pool.misses) == (1, 1)
    # The reset keeps the compiled functions (the point of the pool): nothing is retraced.
    assert compiled and all(reused._compiled.get(k) is f for k, f in compiled.items())
    mae, curve, _ = trial(first, reused)
    assert mae == fresh_mae  # bit-identical, not just close
    pd.testing.assert_frame_equal(curve, fresh_curve, check_exact=True)
    # Another structure (inner steps, adapted set, representation size) gets its own learner.
    others = [dict(first, adapt=a) for a in Cell.parse(name).adapt_choices if a != first["adapt"]]
    for key, value in (("inner_steps", 3), ("representation_dim", 8)):
        if key in first:  # fine-tuning has no training inner steps, only the NP a representation
            others.append(dict(first, **{key: value}))
    assert others
    for other in others:
        assert pool.get(cell_method(Cell.parse(name), other), spec, 0, mean) is not used


def test_a_tuner_seed_tunes_into_its_own_study_and_resumes(data, tmp_path):
    from optuna.trial import TrialState

    from metarec.experiments.tuning import configs_path, sampler_seed, study_file

    cell = Cell("item_mean", "maml")
    grid = tune_cell(cell, data, n_trials=3, out_dir=tmp_path, benchmark="t")
    other = tune_cell(cell, data, n_trials=2, out_dir=tmp_path, benchmark="t", tuner_seed=1)
    assert study_file(tmp_path, "t", "item_mean", 1).name == "item_mean.tuner1.db"
    assert study_file(tmp_path, "t", "item_mean", 1).exists()
    assert len(grid.trials) == 3  # the grid's study is untouched by tuner seed 1
    assert sampler_seed("item_mean/maml", 0, 0) != sampler_seed("item_mean/maml", 0, 1)
    # Same hand-set first trial, then the sampler's own draws.
    assert other.trials[0].params == grid.trials[0].params
    assert other.trials[1].params != grid.trials[1].params
    with pytest.raises(FileExistsError, match="--resume"):
        tune_cell(cell, data, n_trials=3, out_dir=tmp_path, benchmark="t", tuner_seed=1)
    other.ask()  # a trial left RUNNING by a killed process
    other = tune_cell(cell, data, n_trials=3, out_dir=tmp_path, benchmark="t", tuner_seed=1,
                      resume=True)
    states = [t.state for t in other.trials]
    assert states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED) == 3
    assert states.count(TrialState.FAIL) == 1
    configs = export_configs(tmp_path, "t", [cell], tuner_seed=1)
    saved = json.loads(configs_path(tmp_path, "t", 1).read_text())
    assert configs_path(tmp_path, "t", 1).name == "t.tuner1.configs.json"
    assert saved["tuner_seed"] == 1 and saved["cells"]["item_mean/maml"]["tuner_seed"] == 1
    result = configs["item_mean/maml"]
    assert result["n_trials"] == result["n_complete"] + result["n_pruned"] == 3
    assert result["n_failed"] == 1 and result["pruners"] == {"median": 0}
    with pytest.raises(ValueError, match="tuner_seed"):
        tune_cell(cell, data, n_trials=1, out_dir=tmp_path, benchmark="t", tuner_seed=-1)
    with pytest.raises(ValueError, match="Unknown pruner"):
        tune_cell(cell, data, n_trials=1, out_dir=tmp_path, benchmark="t", pruner="magic")


@pytest.mark.parametrize("pruner", ["median", "sha"])
def test_pruners_stop_a_bad_trial_after_the_third_epoch(pruner):
    import optuna

    from metarec.experiments.tuning import GRID_PRUNER, PRUNERS

    assert GRID_PRUNER in PRUNERS
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(pruner=PRUNERS[pruner]())
    for value in (0.80, 0.82, 0.84):  # three trials that ran 20 epochs
        trial = study.ask()
        for step in range(20):
            trial.report(value - 0.001 * step, step)
            # The tuner asks after every epoch; the pruner records each rung's value then.
            assert not trial.should_prune() or value > 0.80
        study.tell(trial, value - 0.02)
    trial = study.ask()
    pruned_at = None
    for step in range(20):  # worse than all others at every epoch
        trial.report(0.95, step)
        if trial.should_prune():
            pruned_at = step
            break
    assert pruned_at == 2  # after the third epoch, not before
    trial = study.ask()
    for step in range(20):  # the best so far: never pruned
        trial.report(0.70, step)
        assert not trial.should_prune()


def test_grid_tuning_counts_complete_and_pruned_trials(data, tmp_path, monkeypatch):
    from metarec.experiments.tuning import tune_grid

    monkeypatch.setattr(grid_module, "MAX_EPOCHS", 6)  # past the first rung (epoch 3)
    cells = [Cell("item_mean", "maml"), Cell("item_mean", "reptile")]
    configs = tune_grid(data, tmp_path, "t", n_trials=5, cells=cells, progress=False,
                        pruner="sha")
    for cfg in configs.values():
        assert cfg["n_trials"] == cfg["n_complete"] + cfg["n_pruned"] == 5
        assert cfg["pruners"] == {"sha": 0} and cfg["epochs"] > 0
    assert sum(cfg["n_pruned"] for cfg in configs.values()) > 0
    # Extending the studies with the other pruner records from which trial on it ran.
    configs = tune_grid(data, tmp_path, "t", n_trials=6, cells=cells, progress=False,
                        resume=True, pruner="median")
    assert {c["n_trials"] for c in configs.values()} == {6}
    assert configs["item_mean/maml"]["pruners"] == {"sha": 0, "median": 5}


def test_noise_study_trains_each_tuner_seeds_choice(tmp_path, monkeypatch, capsys):
    from metarec.cli import main as cli_main
    from metarec.experiments import BENCHMARKS
    from metarec.experiments.noise import noise_summary

    monkeypatch.setitem(BENCHMARKS, "tiny-grid", ExperimentConfig(
        "tiny-grid", dataset="synthetic", grid=True, seeds=(0,), synthetic_kwargs=SMALL))
    out = str(tmp_path)
    cells = ["item_mean/finetune", "item_mean/maml"]
    noise = ["experiment", "noise", "tiny-grid", "--out", out, "--tuner-seeds", "0", "1",
             "--cells", *cells]
    assert cli_main(noise) == 2  # nothing tuned yet: one line naming the tune command
    assert "--tuner-seed 0" in capsys.readouterr().err
    for k in ("0", "1"):
        assert cli_main(["experiment", "tune", "tiny-grid", "--out", out, "--trials", "2",
                         "--models", "item_mean", "--schemes", "finetune", "maml",
                         "--tuner-seed", k]) == 0
    assert (tmp_path / "tiny-grid.tuner1.configs.json").exists()
    assert cli_main(noise) == 0
    table = pd.read_csv(tmp_path / "tiny-grid.tuning-noise.csv.gz")
    # One row per (cell, tuner seed, seed, scenario, user), the same users for every tuner seed.
    assert set(table["tuner_seed"]) == {0, 1} and set(table["seed"]) == {0}
    assert set(table["cell"]) == set(cells) and set(table["scenario"]) == set(TEST_PARTS)
    keys = table.groupby("tuner_seed").apply(
        lambda g: sorted(zip(g["cell"], g["seed"], g["scenario"], g["user_id"], strict=True)))
    assert keys[0] == keys[1] and len(keys[0]) == len(table) // 2
    users = pd.read_csv(tmp_path / "tiny-grid-noise" / "tuner1.users.csv.gz")
    pd.testing.assert_frame_equal(
        table[table["tuner_seed"] == 1].drop(columns="tuner_seed").reset_index(drop=True),
        users[table.columns.drop("tuner_seed")].sort_values(
            "cell", key=lambda c: c.map(cells.index), kind="stable").reset_index(drop=True))
    summary = noise_summary(table)
    assert len(summary) == 2 * len(TEST_PARTS) and (summary["range"] >= 0).all()
    capsys.readouterr()
    assert cli_main([*noise, "--resume"]) == 0  # finished runs are kept: nothing to train
    assert cli_main(noise) == 2 and "--resume" in capsys.readouterr().err
