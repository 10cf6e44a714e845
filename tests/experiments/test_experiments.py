"""The experiment runner: tidy results, files, determinism, sweeps, command line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from metarec.cli import main as cli_main
from metarec.data import make_synthetic
from metarec.experiments import (
    BENCHMARKS,
    METHODS,
    METRICS,
    SCENARIOS,
    ExperimentConfig,
    get_method,
    inner_steps_sweep,
    prepare,
    run_experiment,
    summary_table,
    support_size_sweep,
    train_method,
)

SMALL = {"n_users": 300, "n_items": 200}


def _config(**changes) -> ExperimentConfig:
    base = {"name": "tiny", "dataset": "synthetic", "methods": ("popularity", "melu1"),
            "seeds": (0,), "epochs": 1, "synthetic_kwargs": SMALL}
    return ExperimentConfig(**{**base, **changes})


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory) -> tuple[pd.DataFrame, object]:
    out = tmp_path_factory.mktemp("results")
    return run_experiment(_config(), out_dir=out, progress=False), out


def test_results_are_tidy_and_written(tiny_results):
    results, out = tiny_results
    assert len(results) == 2 * len(SCENARIOS)
    assert set(results["scenario"]) == set(SCENARIOS)
    for metric in METRICS:
        assert results[metric].notna().all()
    assert (results["mae"] > 0).all() and (results["ndcg@3"] <= 1).all()
    saved = pd.read_csv(out / "tiny.csv")
    assert list(saved.columns) == list(results.columns)
    np.testing.assert_allclose(saved["mae"], results["mae"], atol=1e-6)
    markdown = (out / "tiny.md").read_text()
    assert "## mae" in markdown and "melu1" in markdown
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temporary file left"


def test_same_seed_same_results(tiny_results):
    again = run_experiment(_config(), progress=False)
    pd.testing.assert_frame_equal(
        tiny_results[0].drop(columns="train_seconds"), again.drop(columns="train_seconds")
    )


def test_summary_table_mean_and_std():
    rows = [{"method": "a", "scenario": "warm", "mae": v, "rmse": v, "ndcg@1": v, "ndcg@3": v}
            for v in (1.0, 2.0, 3.0)]
    table = summary_table(pd.DataFrame(rows), ["mae"], decimals=1)
    assert table.loc["a", ("mae", "warm")] == "2.0 ± 1.0"
    one_seed = summary_table(pd.DataFrame(rows[:1]), ["mae"], decimals=2)
    assert one_seed.loc["a", ("mae", "warm")] == "1.00"  # no "± 0.0": the spread is undefined


def test_unknown_names_are_explained():
    with pytest.raises(ValueError, match="Unknown method 'nope'"):
        get_method("nope")
    with pytest.raises(ValueError, match="Unknown benchmark"):
        run_experiment("nope")
    with pytest.raises(ValueError, match="Unknown scenario"):
        run_experiment(_config(scenarios=("lukewarm",)), progress=False)


def test_every_method_builds_and_predicts():
    data = prepare(make_synthetic(seed=0, **SMALL), seed=0)
    batch = data.tasks["user_cold"].batch([0, 1])
    for name, method in METHODS.items():
        learner = method.build(data.encoder.spec, seed=0)
        learner._build({k: v[0] for k, v in batch.support_x.items()})
        assert learner.adapted_variables, name
        # Tracing every learner costs minutes on 2 cores: predict with one of each kind.
        if name in ("popularity", "wide_deep", "reptile"):
            pred = learner.predict_query(batch)
            assert pred.shape == batch.query_y.shape, name
            assert np.isfinite(pred).all(), name


def test_sweeps_keep_users_fixed():
    data = prepare(make_synthetic(seed=0, **SMALL), seed=0)
    learner, _ = train_method("melu1", data, seed=0, epochs=1)
    sweep = support_size_sweep(learner, data, sizes=[1, 5, 10], scenario="user_cold")
    assert sweep["support_size"].tolist() == [1, 5, 10]
    assert sweep["n_tasks"].nunique() == 1 and sweep["n_tasks"].iloc[0] > 0
    steps = inner_steps_sweep(learner, data.tasks["user_cold"], [0, 1, 3])
    assert steps["steps"].tolist() == [0, 1, 3]
    assert steps["mae"].iloc[0] != steps["mae"].iloc[2]  # adaptation changes predictions


def test_cli_lists_and_runs(tmp_path, capsys, monkeypatch):
    assert cli_main(["experiment", "list"]) == 0
    out = capsys.readouterr().out
    assert "melu-ml100k" in out and "melu5_paper" in out
    monkeypatch.setitem(BENCHMARKS, "tiny", _config(methods=("popularity",)))
    assert cli_main(["experiment", "run", "tiny", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "tiny.csv").exists() and (tmp_path / "tiny.md").exists()
