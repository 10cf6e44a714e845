"""Chapter 9's controlled experiments (metarec.experiments.when): data knobs, files, resume."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from metarec.data import make_synthetic
from metarec.experiments import when

SMALL = {"n_users": 120, "n_items": 60, "ratings_per_user": (20, 50)}


def test_interaction_scale_changes_only_the_taste_term():
    base = make_synthetic(**SMALL, seed=3)
    flat = make_synthetic(**SMALL, seed=3, interaction_scale=0.0)
    # The same users, items and rated pairs: only the ratings' interaction term differs.
    pd.testing.assert_frame_equal(base.ratings[["user_id", "item_id"]],
                                  flat.ratings[["user_id", "item_id"]])
    truth = flat.truth
    users = flat.ratings["user_id"].to_numpy() - 1
    items = flat.ratings["item_id"].to_numpy() - 1
    expected = truth.global_mean + truth.user_bias[users] + truth.item_bias[items]
    np.testing.assert_allclose(truth.noiseless, expected, rtol=1e-5, atol=1e-5)
    assert not np.allclose(base.truth.noiseless, expected, atol=1e-3)
    with pytest.raises(ValueError, match="interaction_scale"):
        make_synthetic(**SMALL, interaction_scale=-1.0)
    with pytest.raises(ValueError, match="interaction_scale"):
        make_synthetic(**SMALL, interaction_scale=float("nan"))


def test_taste_statistics_grow_with_heterogeneity():
    stats = [when.taste_statistics(make_synthetic(n_users=300, n_items=120, seed=0,
                                                  ratings_per_user=(20, 60),
                                                  interaction_scale=a).ratings)
             for a in (0.0, 0.9, 1.8)]
    for key in ("slope_sd", "residual_sd"):
        values = [s[key] for s in stats]
        assert values == sorted(values), (key, values)
    assert stats[0]["n_users"] == 300
    # Deterministic for a seed.
    again = when.taste_statistics(make_synthetic(n_users=300, n_items=120, seed=0,
                                                 ratings_per_user=(20, 60),
                                                 interaction_scale=0.0).ratings)
    assert again == stats[0]
    with pytest.raises(ValueError, match="n_ratings"):
        when.taste_statistics(make_synthetic(**SMALL).ratings, n_ratings=2)
    with pytest.raises(ValueError, match="No user"):
        when.taste_statistics(make_synthetic(**SMALL).ratings, n_ratings=10_000)


def test_train_fraction_keeps_validation_and_test_users(monkeypatch):
    monkeypatch.setattr(when, "BASE", SMALL)
    full = when.prepare_point(when.POINTS["default"], seed=1)
    part = when.prepare_point(when.POINTS["train_0.25"], seed=1)
    assert len(part.tasks["train"]) == round(0.25 * len(full.tasks["train"]))
    assert {t.user_id for t in part.tasks["train"]} <= {t.user_id for t in full.tasks["train"]}
    for key in ("validation", "user_cold"):
        assert [t.user_id for t in part.tasks[key]] == [t.user_id for t in full.tasks[key]]
    again = when.prepare_point(when.POINTS["train_0.25"], seed=1)
    assert [t.user_id for t in again.tasks["train"]] == [t.user_id for t in part.tasks["train"]]


def test_support_groups_share_users_and_queries(monkeypatch):
    monkeypatch.setattr(when, "BASE", SMALL)
    data = when.prepare_point(when.POINTS["default"], seed=0)
    groups = when.support_groups(data, seed=0)
    for part in ("val", "test"):
        sets = [groups[f"{part}_{n}"] for n in when.SUPPORT_SIZES]
        users = [t.user_id for t in sets[0]]
        assert users and all([t.user_id for t in s] == users for s in sets)
        for s, n in zip(sets, when.SUPPORT_SIZES, strict=True):
            assert all(len(t.support_y) == n for t in s)
            np.testing.assert_array_equal(s[0].query_y, sets[0][0].query_y)
    val_users = {t.user_id for t in groups["val_1"]}
    assert val_users.isdisjoint({t.user_id for t in groups["test_1"]})


def _fake(monkeypatch, calls):
    def tune_point(point, out_dir, *, n_trials, resume):
        calls.append(("tune", point))
        return {f"{m}/{s}": {"model": m, "scheme": s, "params": {"adapt": "decision"},
                             "test_steps": 1, "val_mae": 1.0}
                for m, s, _ in when.variants(point)}

    def run_point(point, configs, seed):
        calls.append(("run", point, seed))
        ident = {"point": point, "seed": seed, "model": "melu", "scheme": "finetune"}
        users = pd.DataFrame([{**ident, "support_size": 1, "user_id": 1, "steps": 0,
                               "mae": 0.5, "diverged": False}])
        curves = pd.DataFrame([{**ident, "support_size": 1, "steps": 0, "mae": 0.5}])
        runs = pd.DataFrame([{**ident, "train_seconds": 1.0, "adapt": "decision",
                              "epochs": 1}])
        return users, curves, runs

    monkeypatch.setattr(when, "tune_point", tune_point)
    monkeypatch.setattr(when, "run_point", run_point)


def test_run_when_writes_per_point_resumes_and_never_overwrites(tmp_path, monkeypatch):
    calls = []
    _fake(monkeypatch, calls)
    when.run_when(tmp_path, points=["alpha_0"], seeds=(0, 1), cost=False, progress=False)
    files = when.paths(tmp_path, "alpha_0")
    assert all(files[k].exists() for k in ("users", "curves", "runs", "configs"))
    assert calls == [("tune", "alpha_0"), ("run", "alpha_0", 0), ("run", "alpha_0", 1)]
    before = files["users"].read_bytes()
    with pytest.raises(FileExistsError, match="--resume"):
        when.run_when(tmp_path, points=["alpha_0"], seeds=(0, 1), cost=False, progress=False)
    assert files["users"].read_bytes() == before
    calls.clear()
    when.run_when(tmp_path, points=["alpha_0"], seeds=(0, 1, 2), resume=True, cost=False,
                  progress=False)
    assert calls == [("run", "alpha_0", 2)]  # tuned config and finished seeds are kept
    assert sorted(when.load_results(tmp_path)["seed"]) == [0, 1, 2]
    calls.clear()
    when.run_when(tmp_path, points=["alpha_0"], seeds=(0,), overwrite=True, cost=False,
                  progress=False)
    assert calls == [("tune", "alpha_0"), ("run", "alpha_0", 0)]
    assert list(when.load_results(tmp_path)["seed"]) == [0]


def test_run_when_refuses_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="Unknown point"):
        when.run_when(tmp_path, points=["nowhere"], progress=False)
    with pytest.raises(ValueError, match="Duplicate seeds"):
        when.run_when(tmp_path, points=["alpha_0"], seeds=(1, 1), progress=False)
    with pytest.raises(FileNotFoundError, match="experiment when"):
        when.load_results(tmp_path / "empty")


def test_every_axis_point_exists_and_anil_runs_last_layer_head_and_all():
    for axis in when.AXES.values():
        assert all(name in when.POINTS for name, _ in axis)
    labels = [s for _, s, _ in when.variants(when.ANIL_POINT)]
    assert {"maml[decision]", "maml[all]"} <= set(labels)
    assert set(when.ANIL_ADAPT) <= set(when.ANIL_SETS)
    for _, s, cell in when.variants(when.ANIL_POINT):
        if s.startswith("maml["):
            assert cell.adapt_choices == [s[5:-1]]
    # The conventional scheme searches the same adapted sets as the meta-learners.
    cells = {s: cell for m, s, cell in when.variants("default") if m == when.MODEL}
    assert cells["finetune"].adapt_choices == cells["maml"].adapt_choices == ["decision", "all"]


def test_anil_arm_adapts_the_last_layer_only():
    from metarec.experiments.grid import cell_method

    data = when.prepare_point(when.POINTS["default"], 0)
    sizes = {}
    for adapt in ("last", "decision", "all"):
        cell = when._FixedAdaptCell(when.MODEL, "maml", adapt)
        method = cell_method(cell, {"inner_lr": 0.01, "outer_lr": 0.001, "adapt": adapt,
                                    "inner_steps": 1})
        learner = method.build(data.encoder.spec, seed=0, global_mean=data.train_mean)
        learner.adapt(data.tasks["validation"][0], steps=1)  # builds the model
        chosen = learner.adapted_variables
        sizes[adapt] = sum(int(np.prod(v.shape)) for v in chosen)
        if adapt == "last":
            assert all("decision_out" in v.path for v in chosen), [v.path for v in chosen]
    # ANIL's head (64 weights + 1 bias) < the decision layers < every weight.
    assert sizes["last"] == 65
    assert sizes["last"] < sizes["decision"] < sizes["all"]
    with pytest.raises(ValueError, match="adapt='user'"):
        cell_method(cell, {"inner_lr": 0.01, "outer_lr": 0.001, "adapt": "user"})


def _map_users(shift: float, seed_noise: float) -> pd.DataFrame:
    """Per-user rows of two points: at "far" MAML is `shift` better on every seed, at "near"
    the seeds disagree (a per-seed offset of +-`seed_noise`)."""
    rng = np.random.default_rng(0)
    rows = []
    for point in ("near", "far"):
        for seed in range(5):
            offset = shift if point == "far" else seed_noise * (-1) ** seed
            for n in (1, 5):
                for user in range(30):
                    base = 1.0 + rng.normal(0, 0.2)
                    for scheme, mae in (("finetune", base),
                                        ("maml", base - offset + rng.normal(0, 0.01))):
                        rows.append({"point": point, "seed": seed, "model": when.MODEL,
                                     "scheme": scheme, "support_size": n, "user_id": user,
                                     "mae": mae})
    return pd.DataFrame(rows)


def test_map_verdicts_are_run_level_and_corrected_over_the_whole_map():
    users = _map_users(shift=0.1, seed_noise=0.05)
    table = when.map_verdicts(users, ["near", "far"], schemes=("maml",))
    assert len(table) == 4 and set(table["point"]) == {"near", "far"}
    by = table.set_index(["point", "support_size"])
    assert (by.loc["far", "label"] == "helps").all()
    # Seeds that disagree: every per-user pair interval may exclude 0, the run level does not.
    assert (by.loc["near", "label"] == "ties").all()
    assert (table["level"] > 0.95).all()  # Holm over the 4 rows widens every interval
    with pytest.raises(ValueError, match="no rows"):
        when.map_verdicts(users, ["nowhere"])
