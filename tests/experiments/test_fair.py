"""The fair grid: tuner (validation users only, resumable, equal budgets), runner, statistics."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from metarec.experiments import (
    ADAPT_SETS,
    MAX_TEST_STEPS,
    SCHEMES,
    SEARCH_SPACE,
    Cell,
    ExperimentConfig,
    cell_method,
    export_configs,
    grid_cells,
    load_dataset,
    prepare_benchmark,
    run_grid,
    train_method,
)
from metarec.experiments.guarded import evaluate_steps_guarded
from metarec.experiments.stats import cell_summary, paired_differences, t_interval
from metarec.experiments.tuning import tune_cell, tuning_view
from metarec.models import build_model

SMALL = {"n_users": 300, "n_items": 200}
TEST_PARTS = ("warm", "user_cold", "item_cold", "user_item_cold")


# The small synthetic `data` and the lowered epoch cap come from conftest.py.
pytestmark = pytest.mark.usefixtures("few_grid_epochs")


class Trap:
    """Any use fails the test: stands in for test users the tuner must never read."""

    def __init__(self, name):
        self.name = name

    def __getattr__(self, attr):
        raise AssertionError(f"the tuner read the test part {self.name!r} ({attr})")

    def __len__(self):
        raise AssertionError(f"the tuner read the test part {self.name!r}")

    def __iter__(self):
        raise AssertionError(f"the tuner read the test part {self.name!r}")


def _trapped(data):
    tasks = dict(data.tasks)
    for part in TEST_PARTS:
        tasks[part] = Trap(part)
    split = type(data.split).__new__(type(data.split))
    split.__dict__.update(data.split.__dict__)
    for part in ("warm_query", "user_cold", "item_cold", "user_item_cold", "warm_support"):
        if part in split.__dict__:
            split.__dict__[part] = Trap(part)
    return type(data)(data.dataset, split, data.encoder, tasks)


def test_tuner_never_reads_test_users(data, tmp_path):
    trapped = _trapped(data)
    with pytest.raises(AssertionError, match="test part"):
        len(trapped.tasks["user_cold"])  # the trap works
    study = tune_cell(Cell("item_mean", "maml"), trapped, n_trials=2, out_dir=tmp_path,
                      benchmark="t")
    assert len(study.trials) == 2
    view = tuning_view(data)
    with pytest.raises(RuntimeError, match="train and validation tasks only"):
        _ = view.tasks["user_cold"]
    with pytest.raises(RuntimeError, match="validation users only"):
        _ = view.dataset.ratings


def test_resume_continues_a_stopped_study(data, tmp_path):
    from optuna.trial import TrialState

    cell = Cell("item_mean", "finetune")
    study = tune_cell(cell, data, n_trials=2, out_dir=tmp_path, benchmark="t")
    first = [t.params for t in study.trials]
    with pytest.raises(FileExistsError, match="--resume"):
        tune_cell(cell, data, n_trials=3, out_dir=tmp_path, benchmark="t")
    study.ask()  # a trial left RUNNING, as by a process killed mid-trial
    study = tune_cell(cell, data, n_trials=3, out_dir=tmp_path, benchmark="t", resume=True)
    states = [t.state for t in study.trials]
    assert states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED) == 3
    assert states.count(TrialState.FAIL) == 1 and TrialState.RUNNING not in states
    assert [t.params for t in study.trials[:2]] == first  # the finished trials were kept
    assert study.trials[0].params["inner_lr"] == 1e-2  # the enqueued hand-set first trial


def test_every_cell_gets_the_same_budget(data, tmp_path):
    cells = [Cell("item_mean", "finetune"), Cell("item_mean", "reptile")]
    for cell in cells:
        tune_cell(cell, data, n_trials=3, out_dir=tmp_path, benchmark="t")
    configs = export_configs(tmp_path, "t", cells)
    assert {c["n_trials"] for c in configs.values()} == {3}
    saved = json.loads((tmp_path / "t.configs.json").read_text())
    assert saved["max_test_steps"] == MAX_TEST_STEPS and set(saved["cells"]) == {
        c.name for c in cells}
    for cfg in configs.values():
        assert 0 <= cfg["test_steps"] <= MAX_TEST_STEPS
    # Every scheme has a search space and every cell the same maximum of test-time steps.
    assert set(SEARCH_SPACE) == set(SCHEMES)
    for cell in grid_cells():
        params = {"inner_lr": 0.01, "outer_lr": 0.001, "adapt": cell.adapt_choices[0],
                  "inner_steps": 1}
        assert cell_method(cell, params, test_steps=MAX_TEST_STEPS).test_steps == MAX_TEST_STEPS
        with pytest.raises(ValueError, match="test_steps"):
            cell_method(cell, params, test_steps=MAX_TEST_STEPS + 1)
        assert set(cell.adapt_choices) <= set(ADAPT_SETS[cell.model])
    assert Cell.parse("melu/melu").adapt_choices == ["decision"]
    with pytest.raises(ValueError, match="Unknown grid cell"):
        Cell.parse("mf/melu")


def test_the_neural_process_row_samples_its_own_space(data):
    import optuna

    from metarec.experiments.grid import first_trial, suggest_params
    from metarec.meta import NeuralProcess

    cell = Cell.parse("melu/np")
    assert cell.adapt_choices == ["all"] and cell in grid_cells()
    for model in ("mf", "melu_ids"):  # a MeLU-network row only, like MeLU itself
        with pytest.raises(ValueError, match="Unknown grid cell"):
            Cell.parse(f"{model}/np")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    low, high = SEARCH_SPACE["np"]["representation_dim"]
    for _ in range(5):  # no inner rate, no inner steps: the outer rate and the representation
        params = suggest_params(study.ask(), cell)
        assert set(params) == {"outer_lr", "adapt", "representation_dim"}
        assert low <= params["representation_dim"] <= high
    method = cell_method(cell, first_trial(cell))
    assert (method.inner_steps, method.test_steps) == (1, 1)  # 1 step: conditioned
    learner = method.build(data.encoder.spec, seed=0, global_mean=data.train_mean)
    assert isinstance(learner, NeuralProcess)
    assert learner.representation_dim == first_trial(cell)["representation_dim"]
    assert cell_method(cell, first_trial(cell), test_steps=0).test_steps == 0  # its prior


@pytest.mark.parametrize("name,variable", [
    ("melu", "decision_out/bias"), ("melu_ids", "decision_out/bias"),
    ("neumf", "decision_out/bias"), ("mf", "global_bias"), ("wide_deep", "global_bias"),
])
def test_networks_start_at_the_training_mean(data, name, variable):
    method = cell_method(Cell(name, "finetune"),
                         {"inner_lr": 0.01, "outer_lr": 0.001,
                          "adapt": list(ADAPT_SETS[name])[0]})
    learner = method.build(data.encoder.spec, seed=0, global_mean=data.train_mean)
    values = [v.numpy() for v in learner.model.weights if v.path.endswith(variable)]
    assert len(values) == 1
    np.testing.assert_allclose(values[0], data.train_mean, rtol=1e-6)
    assert abs(data.train_mean - data.split.train["rating"].mean()) < 1e-9
    # train_method passes it: an untrained MeLU network predicts near the training mean.
    if name == "melu":
        model = build_model("melu", data.encoder.spec, global_mean=data.train_mean)
        pred = model(data.tasks["validation"][0].query_x).numpy()
        assert abs(pred.mean() - data.train_mean) < 0.5


def test_evaluate_steps_matches_evaluate(data):
    learner, _ = train_method(cell_method(Cell("melu", "finetune"), {
        "inner_lr": 0.05, "outer_lr": 0.001, "adapt": "decision"}), data, seed=0)
    curve = learner.evaluate_steps(data.tasks["user_cold"], 3)
    assert curve["steps"].tolist() == [0, 1, 2, 3]
    for k in (0, 3):
        direct = learner.evaluate(data.tasks["user_cold"], steps=k)
        assert abs(direct["mae"] - curve.loc[k, "mae"]) < 1e-5


def test_custom_folder_warns_and_loads(tmp_path):
    src = os.environ.get("METAREC_DATA_DIR")
    if not src:
        pytest.skip("METAREC_DATA_DIR is not set")
    folder = tmp_path / "my-ml"
    folder.mkdir()
    for name in ("u.item", "u.user", "u.genre", "u.occupation"):
        (folder / name).write_bytes((Path(src) / "ml-100k" / name).read_bytes())
    lines = (Path(src) / "ml-100k" / "u.data").read_text().splitlines()
    (folder / "u.data").write_text("\n".join(ln for ln in lines
                                             if int(ln.split()[0]) % 2 == 0) + "\n")
    config = ExperimentConfig("custom", dataset="ml-100k", data_path=str(folder),
                              new_item_year=1996)
    with pytest.warns(UserWarning, match="not comparable"):
        data = prepare_benchmark(config, seed=0)
    assert data.split.new_item_year == 1996
    assert data.dataset.ratings["user_id"].nunique() == 471
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_dataset("synthetic", seed=0, **SMALL)  # official or generated data: no warning


def _tiny_configs(path):
    cells = {
        "item_mean/finetune": {"model": "item_mean", "scheme": "finetune",
                               "params": {"inner_lr": 0.1, "outer_lr": 0.001, "adapt": "user"},
                               "test_steps": 5, "val_mae": 0.9},
        "item_mean/maml": {"model": "item_mean", "scheme": "maml",
                           "params": {"inner_lr": 0.1, "outer_lr": 0.001, "adapt": "user",
                                      "inner_steps": 1}, "test_steps": 5, "val_mae": 0.8},
    }
    path.write_text(json.dumps({"benchmark": "tiny", "max_test_steps": MAX_TEST_STEPS,
                                "cells": cells}))
    return path


def test_run_grid_writes_resumes_and_never_overwrites(tmp_path):
    configs = _tiny_configs(tmp_path / "tiny.configs.json")
    config = ExperimentConfig("tiny", dataset="synthetic", grid=True, seeds=(0,),
                              synthetic_kwargs=SMALL)
    out = tmp_path / "out"
    old = os.umask(0o022)
    try:
        paths = run_grid(config, configs, out, progress=False)
    finally:
        os.umask(old)
    users = pd.read_csv(out / "tiny.users.csv.gz")
    assert set(users["cell"]) == {"item_mean/finetune", "item_mean/maml"}
    assert set(users["scenario"]) == set(TEST_PARTS)
    for path in paths:
        assert oct(path.stat().st_mode & 0o777) == oct(0o644), path  # the umask, not 0600
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temporary file left"
    curves = pd.read_csv(out / "tiny.curves.csv")
    assert sorted(curves["steps"].unique()) == list(range(MAX_TEST_STEPS + 1))
    # The support sweep records the same users' MAE without adaptation: one value per run.
    support = pd.read_csv(out / "tiny.support.csv")
    assert support["mae_0_steps"].notna().all()
    assert (support.groupby(["seed", "cell"])["mae_0_steps"].nunique() == 1).all()
    # The runs' own validation users, scored at the chosen steps: what the verdict chooses on.
    val = pd.read_csv(out / "tiny.validation.csv.gz")
    assert set(val["split"]) == {"validation"} and set(val["scenario"]) == {"validation"}
    assert set(val["cell"]) == set(users["cell"]) and val["mae"].notna().all()
    assert set(val["user_id"]).isdisjoint(users["user_id"])
    # A cell's test rows do not depend on the cells (and validation scoring) before it.
    alone = run_grid(config, configs, tmp_path / "alone", cells=["item_mean/maml"],
                     progress=False)
    mine = users[users["cell"] == "item_mean/maml"].reset_index(drop=True)
    pd.testing.assert_frame_equal(pd.read_csv(alone[0]), mine)
    with pytest.raises(FileExistsError, match="--resume"):
        run_grid(config, configs, out, progress=False)
    before = (out / "tiny.users.csv.gz").read_bytes()
    run_grid(config, configs, out, resume=True, progress=False)  # nothing left to do
    assert (out / "tiny.users.csv.gz").read_bytes() == before
    with pytest.raises(ValueError, match="Duplicate seeds"):
        run_grid(ExperimentConfig("tiny", dataset="synthetic", grid=True, seeds=(0, 0)),
                 configs, tmp_path / "other", progress=False)


def test_t_interval_and_paired_differences_match_scipy():
    assert np.isnan(t_interval([1.0])[1])  # one seed: undefined spread, not "± 0"
    mean, lo, hi = t_interval([1.0, 2.0, 4.0])
    ref = stats.t.interval(0.95, 2, loc=np.mean([1, 2, 4]), scale=stats.sem([1, 2, 4]))
    np.testing.assert_allclose([lo, hi], ref)
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(3):
        for user in range(40):
            base = rng.normal(0.8, 0.1)
            rows.append({"seed": seed, "model": "m", "scheme": "finetune",
                         "scenario": "user_cold", "user_id": user, "mae": base})
            rows.append({"seed": seed, "model": "m", "scheme": "maml",
                         "scenario": "user_cold", "user_id": user, "mae": base - 0.05
                         + rng.normal(0, 0.01)})
    users = pd.DataFrame(rows)
    diff = paired_differences(users)
    assert len(diff) == 1 and diff.loc[0, "verdict"] == "helps"
    d = (users[users.scheme == "maml"]["mae"].to_numpy()
         - users[users.scheme == "finetune"]["mae"].to_numpy())
    ci = stats.ttest_1samp(d, 0).confidence_interval()
    np.testing.assert_allclose([diff.loc[0, "ci_low"], diff.loc[0, "ci_high"]],
                               [ci.low, ci.high])
    assert diff.loc[0, "n_pairs"] == 120 and diff.loc[0, "n_seeds"] == 3
    summary = cell_summary(users)
    assert set(summary["scheme"]) == {"finetune", "maml"}
    # Equal on average (symmetric noise around 0): no verdict either way.
    noise = users.assign(mae=np.where(users["scheme"] == "maml",
                                      users["mae"] + np.tile([0.01, -0.01], len(users) // 2),
                                      users["mae"]))
    noise.loc[noise["scheme"] == "maml", "mae"] = (
        users.loc[users["scheme"] == "finetune", "mae"].to_numpy()
        + np.tile([0.01, -0.01], len(users) // 4))
    assert paired_differences(noise)["verdict"].iloc[0] == "no significant difference"


def test_seed_fixes_a_cell(data):
    method = cell_method(Cell("mf", "maml"), {"inner_lr": 0.1, "outer_lr": 0.01,
                                               "adapt": "user", "inner_steps": 1})
    keras.utils.set_random_seed(123)
    a, _ = train_method(method, data, seed=0)
    b, _ = train_method(method, data, seed=0)
    ra = a.evaluate_steps(data.tasks["validation"], 2)
    rb = b.evaluate_steps(data.tasks["validation"], 2)
    pd.testing.assert_frame_equal(ra, rb)


def test_diverging_adaptation_is_reported_not_hidden(data):
    method = cell_method(Cell("item_mean", "finetune"),
                         {"inner_lr": 1e4, "outer_lr": 0.001, "adapt": "user"})
    learner, _ = train_method(method, data, seed=0)
    with pytest.raises(ValueError, match="NaN or infinite after"):
        learner.evaluate_steps(data.tasks["user_cold"], 10)
    curve = evaluate_steps_guarded(learner, data.tasks["user_cold"], 10, diverged="nan")
    assert np.isfinite(curve.loc[0, "mae"]) and np.isnan(curve.loc[10, "mae"])
    per_user = evaluate_steps_guarded(learner, data.tasks["user_cold"], 10, per_task=True,
                                      diverged="nan")
    assert per_user.query("steps == 10")["mae"].isna().all()
    assert per_user.query("steps == 0")["mae"].notna().all()


def test_guarded_scoring_clips_and_falls_back(data):
    method = cell_method(Cell("item_mean", "finetune"),
                         {"inner_lr": 1e4, "outer_lr": 0.001, "adapt": "user"})
    learner, _ = train_method(method, data, seed=0)
    table = evaluate_steps_guarded(learner, data.tasks["user_cold"], 10, per_task=True,
                                   diverged="fallback", clip=(1.0, 5.0))
    at0 = table.query("steps == 0").reset_index(drop=True)
    at10 = table.query("steps == 10").reset_index(drop=True)
    flagged = at10["diverged"].to_numpy(bool)
    assert flagged.any() and not at0["diverged"].any()
    # A diverged user is scored with the un-adapted predictions: the same metrics as 0 steps.
    np.testing.assert_allclose(at10.loc[flagged, "mae"], at0.loc[flagged, "mae"])
    assert at10["mae"].notna().all()
    clipped = evaluate_steps_guarded(learner, data.tasks["user_cold"], 1, per_task=True,
                                     clip=(1.0, 5.0))
    assert clipped["mae"].max() <= 4.0 + 1e-9  # no prediction outside the 1..5 scale


def test_ranking_study_scores_the_grids_models(tmp_path):
    """The ranking study retrains a cell and finds the grid's per-user MAE again, with
    precision, recall, hit rate and AP at 5 beside it."""
    from metarec.experiments.ranking_study import score_cells
    from metarec.experiments.tuning import load_configs

    configs_path = _tiny_configs(tmp_path / "tiny.configs.json")
    config = ExperimentConfig("tiny", dataset="synthetic", grid=True, seeds=(0,),
                              synthetic_kwargs=SMALL)
    run_grid(config, configs_path, tmp_path / "out", cells=["item_mean/maml"], progress=False)
    grid = pd.read_csv(tmp_path / "out" / "tiny.users.csv.gz")
    ranked = score_cells(config, load_configs(configs_path), ["item_mean/maml"], progress=False)
    both = grid.merge(ranked, on=["seed", "cell", "scenario", "user_id"], suffixes=("", "_r"))
    assert len(both) == len(grid) == len(ranked)
    assert (both["mae"] - both["mae_r"]).abs().max() < 1e-6
    for k in ("precision@5", "recall@5", "hit@5", "ap@5"):
        values = ranked[k].dropna()
        assert len(values) and values.between(0, 1).all(), k
    assert ranked["hit@5"].isin([0.0, 1.0]).all()
    assert (ranked["precision@5"] <= ranked["hit@5"]).all()  # no hit, no precision
    with pytest.raises(ValueError, match="no tuned configuration"):
        score_cells(config, load_configs(configs_path), ["mf/maml"], progress=False)
