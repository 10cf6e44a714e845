"""Run-level statistics and the verdict (metarec.experiments.stats, metarec.experiments.verdict).

Synthetic per-user results with known effects: seed (training-run) effects, user noise, and a
true difference between cells. Everything is seeded; the simulations take seconds.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from metarec.experiments.stats import (
    BootstrapInference,
    TInference,
    adjust_pvalues,
    adjusted_alpha,
    cluster_bootstrap,
    holm,
    mixed_model_inference,
    paired_by_seed,
    paired_differences,
    seed_t_inference,
)
from metarec.experiments.verdict import (
    best_vs_best,
    label,
    main,
    meta_vs_conventional,
    noise_floor,
    tuning_noise,
    validation_scores,
    verdict_table,
)


def make_users(effects: dict[str, tuple[float, list[float] | float]], *, n_seeds: int = 5,
               n_users: int = 200, sigma: float = 0.3, seed: int = 0,
               scenario: str = "user_cold", model: str = "m") -> pd.DataFrame:
    """Per-user MAE of ``model/finetune`` and of one cell per scheme in ``effects``.

    ``effects[scheme] = (true difference, seed effects)``: the seed effects are a list (one per
    seed, used as given) or a standard deviation (drawn). Each seed has its own users (ids
    ``1000 * seed + i``, a varying number of them), as in the fair grid's results.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_seeds):
        n = n_users + 10 * s
        ids = 1000 * s + np.arange(n)
        base = rng.normal(0.8, 0.2, n)
        rows.append(pd.DataFrame({"seed": s, "cell": f"{model}/finetune", "model": model,
                                  "scheme": "finetune", "scenario": scenario, "user_id": ids,
                                  "mae": base}))
        for scheme, (effect, seed_effects) in effects.items():
            b = (seed_effects[s] if isinstance(seed_effects, list)
                 else rng.normal(0, seed_effects))
            rows.append(pd.DataFrame({"seed": s, "cell": f"{model}/{scheme}", "model": model,
                                      "scheme": scheme, "scenario": scenario, "user_id": ids,
                                      "mae": base + effect + b + rng.normal(0, sigma, n)}))
    return pd.concat(rows, ignore_index=True)


def simulate_groups(rng: np.random.Generator, theta: float, tau: float, sigma: float,
                    n_seeds: int = 5, n_users: int = 60) -> list[np.ndarray]:
    """Per-seed paired differences ``theta + b_s + e_su`` (``b_s ~ N(0, tau)``)."""
    return [theta + rng.normal(0, tau) + rng.normal(0, sigma, n_users) for _ in range(n_seeds)]


# ----------------------------------------------------------------------------------------------
# The reason for this work: users of one run are not independent
# ----------------------------------------------------------------------------------------------


def test_zero_effect_with_seed_noise_covers_zero_while_pair_interval_excludes_it():
    # True difference 0; the five runs' seed effects happen to average +0.032 (sd 0.04).
    seed_effects = [0.07, 0.01, 0.05, -0.03, 0.06]
    users = make_users({"maml": (0.0, seed_effects)}, sigma=0.3)
    naive = paired_differences(users).iloc[0]
    assert naive["ci_low"] > 0 and naive["verdict"] == "hurts"  # pairs: "significant"
    table = verdict_table(users, cross_checks=("seed_t", "cluster_bootstrap"), n_resamples=1999)
    row = table.iloc[0]
    assert row["label"] == "ties" and row["ci_low"] < 0 < row["ci_high"]  # mixed model
    assert row["seed_t_low"] < 0 < row["seed_t_high"]
    assert row["pairs_low"] > 0  # the same per-user pair view, kept as a secondary column
    assert row["n_seeds"] == 5 and row["n_users"] == len(users) // 2


def test_false_positive_rate_pairs_vs_runs():
    # 200 data sets with a true zero effect and seed effects of sd 0.05: the pair interval
    # calls a difference in about half of them, the seed-level t in about 5%.
    rng = np.random.default_rng(1)
    pair_hits = run_hits = 0
    for _ in range(200):
        groups = simulate_groups(rng, 0.0, tau=0.05, sigma=0.3, n_users=200)
        d = np.concatenate(groups)
        ci = stats.ttest_1samp(d, 0).confidence_interval(0.95)
        pair_hits += not ci.low < 0 < ci.high
        run_hits += seed_t_inference(groups).p_value < 0.05
    assert pair_hits / 200 > 0.35
    assert run_hits / 200 < 0.1


def test_large_effect_is_detected_by_every_method():
    users = make_users({"maml": (-0.1, 0.01)}, sigma=0.3)
    table = verdict_table(users, noise_floor=0.02,
                          cross_checks=("seed_t", "cluster_bootstrap"), n_resamples=1999)
    row = table.iloc[0]
    assert row["label"] == "helps" and row["labels_agree"]
    assert row["diff"] == pytest.approx(-0.1, abs=0.03) and row["ci_high"] < 0


# ----------------------------------------------------------------------------------------------
# Run-level methods
# ----------------------------------------------------------------------------------------------


def test_seed_t_is_the_t_test_over_seed_means():
    groups = {0: [0.1, 0.3], 1: [0.0], 2: [0.2, 0.2, 0.5]}
    means = [0.2, 0.0, 0.3]
    result = seed_t_inference(groups)
    ref = stats.ttest_1samp(means, 0.0)
    assert result.estimate == pytest.approx(np.mean(means))
    assert result.p_value == pytest.approx(ref.pvalue)
    np.testing.assert_allclose(result.interval(0.9), tuple(ref.confidence_interval(0.9)))
    assert result.df == 2 and result.n_users == 6


def test_mixed_model_equals_seed_t_on_balanced_data_and_flags_the_boundary():
    rng = np.random.default_rng(3)
    # Balanced, strong seed effects: the REML intercept's SE is the seed means' SE.
    groups = [rng.normal(0, 0.2) + rng.normal(0, 0.3, 80) for _ in range(5)]
    mm, st = mixed_model_inference(groups), seed_t_inference(groups)
    assert mm.estimate == pytest.approx(st.estimate, abs=1e-9)
    assert mm.se == pytest.approx(st.se, rel=1e-3)
    assert mm.details["converged"] and not mm.details["boundary"]
    # No seed effect at all and seed means closer than user noise implies: tau^2 = 0, and the
    # standard error is the user-level one, not the (smaller) spread of the five means.
    flat = [g - g.mean() + 0.01 + 0.001 * i for i, g in enumerate(groups)]
    mm = mixed_model_inference(flat)
    assert mm.details["boundary"]
    assert mm.se > seed_t_inference(flat).se
    assert mm.se == pytest.approx(np.concatenate(flat).std(ddof=1) / np.sqrt(400), rel=0.05)


def test_cluster_bootstrap_is_reproducible_and_nested():
    groups = [np.array([0.0, 1.0]), np.array([5.0, 5.0, 5.0])]
    a = cluster_bootstrap(groups, 500, rng=7)
    b = cluster_bootstrap(groups, 500, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a.distribution, b.distribution)
    assert a.estimate == pytest.approx((0.5 + 5.0) / 2)
    # Every resample mean is a mean of two resampled seed means: seed 0 gives 0, 0.5 or 1.
    values = set(np.round(a.distribution, 6))
    possible = {round((x + y) / 2, 6) for x in (0, 0.5, 1, 5) for y in (0, 0.5, 1, 5)}
    assert values <= possible and len(values) > 4  # users are resampled inside seeds


def test_bootstrap_and_t_coverage_near_nominal():
    # Seed-level spread about that of user sampling (tau = sigma / sqrt(n), the median case in
    # the ML-100K grid): 300 simulated data sets, 95% intervals, true effect 0.02.
    rng = np.random.default_rng(11)
    sigma, n_users = 0.3, 60
    tau = sigma / np.sqrt(n_users)
    covered = {"bootstrap": 0, "seed_t": 0}
    for _ in range(300):
        groups = simulate_groups(rng, 0.02, tau, sigma, n_users=n_users)
        lo, hi = cluster_bootstrap(groups, 999, rng).interval(0.95)
        covered["bootstrap"] += lo < 0.02 < hi
        lo, hi = seed_t_inference(groups).interval(0.95)
        covered["seed_t"] += lo < 0.02 < hi
    assert 0.90 <= covered["bootstrap"] / 300 <= 0.99
    assert 0.91 <= covered["seed_t"] / 300 <= 0.985


def test_mixed_model_coverage_near_nominal():
    rng = np.random.default_rng(12)
    sigma, n_users = 0.3, 60
    hits = 0
    for _ in range(40):
        groups = simulate_groups(rng, 0.0, 2 * sigma / np.sqrt(n_users), sigma, n_users=n_users)
        lo, hi = mixed_model_inference(groups).interval(0.95)
        hits += lo < 0 < hi
    assert hits / 40 >= 0.85


def test_bootstrap_p_value_is_too_optimistic_with_five_seeds():
    # All five seed means positive: a sign test over runs cannot go below 2 / 32, the cluster
    # bootstrap says ~0. This is why it is a cross-check and not the verdict's method.
    groups = [np.full(50, m) + np.linspace(-0.01, 0.01, 50) for m in (0.01, 0.02, 0.2, 0.3, 0.5)]
    assert cluster_bootstrap(groups, 2000, rng=0).p_value < 0.01
    assert seed_t_inference(groups).p_value > 0.05


# ----------------------------------------------------------------------------------------------
# Multiplicity
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("m", [1, 2, 7, 25, 100])
def test_holm_and_bh_match_statsmodels_and_scipy(m):
    rng = np.random.default_rng(m)
    p = rng.uniform(0, 1, m) ** 3
    if m > 2:
        p[1] = p[2]  # a tie
    np.testing.assert_allclose(holm(p), multipletests(p, method="holm")[1])
    np.testing.assert_allclose(adjust_pvalues(p, "holm"), multipletests(p, method="holm")[1])
    np.testing.assert_allclose(adjust_pvalues(p, "bh"), multipletests(p, method="fdr_bh")[1])
    np.testing.assert_allclose(adjust_pvalues(p, "bh"), stats.false_discovery_control(p))
    np.testing.assert_allclose(adjust_pvalues(p, "bonferroni"),
                               multipletests(p, method="bonferroni")[1])
    np.testing.assert_array_equal(adjust_pvalues(p, "none"), p)


@pytest.mark.parametrize("correction", ["holm", "bh", "bonferroni", "none"])
def test_adjusted_intervals_agree_with_adjusted_p_values(correction):
    rng = np.random.default_rng(5)
    for _ in range(50):
        m = int(rng.integers(1, 30))
        family = [TInference("t", float(rng.normal(0, 3)), 1.0, 4, 5, 100) for _ in range(m)]
        family += [BootstrapInference("b", 0.0, np.sort(rng.normal(rng.normal(0, 3), 1, 999)),
                                      5, 100) for _ in range(m)]
        p = np.array([f.p_value for f in family])
        level = 1 - adjusted_alpha(p, correction, 0.05)
        rejected = adjust_pvalues(p, correction) < 0.05
        excludes = [not lo < 0 < hi for lo, hi in (f.interval(level) for f in family)]
        np.testing.assert_array_equal(excludes, rejected)


def test_holm_level_is_the_stopping_step():
    p = np.array([0.001, 0.01, 0.04, 0.3])  # Holm rejects 0.001 (x4) and 0.01 (x3), not 0.04
    assert (adjust_pvalues(p, "holm") < 0.05).sum() == 2
    assert adjusted_alpha(p, "holm") == pytest.approx(0.05 / 2)
    assert adjusted_alpha(p, "bonferroni") == pytest.approx(0.05 / 4)
    assert adjusted_alpha(p, "bh") == pytest.approx(2 * 0.05 / 4)


# ----------------------------------------------------------------------------------------------
# Verdict labels
# ----------------------------------------------------------------------------------------------


def test_label_rule():
    assert label(-0.05, -0.08, -0.02, 0.03, lower_is_better=True) == "helps"
    assert label(-0.02, -0.03, -0.01, 0.03, lower_is_better=True) == "ties"  # below the floor
    assert label(-0.05, -0.08, 0.01, 0.0, lower_is_better=True) == "ties"   # interval has 0
    assert label(0.05, 0.02, 0.08, 0.03, lower_is_better=True) == "hurts"
    assert label(0.05, 0.02, 0.08, 0.03, lower_is_better=False) == "helps"  # nDCG: higher
    assert label(-0.05, -0.08, -0.02, 0.03, lower_is_better=False) == "hurts"


def test_verdict_labels_on_constructed_cases():
    users = make_users({"maml": (-0.1, 0.005), "reptile": (0.1, 0.005),
                        "fomaml": (-0.02, 0.002), "metasgd": (0.0, 0.005)}, sigma=0.1)
    table = verdict_table(users, noise_floor=0.05).set_index("cell")
    assert table.loc["m/maml", "label"] == "helps"
    assert table.loc["m/reptile", "label"] == "hurts"
    assert table.loc["m/metasgd", "label"] == "ties"
    # Significant, but smaller than the tuning-noise floor: a tie.
    assert table.loc["m/fomaml", "ci_high"] < 0 and table.loc["m/fomaml", "label"] == "ties"
    no_floor = verdict_table(users, noise_floor=0.0).set_index("cell")
    assert no_floor.loc["m/fomaml", "label"] == "helps"
    # Holm within the family of 4 comparisons rejects 3: the agreeing level is 1 - 0.05 / 1
    # (the step where Holm stops); Bonferroni's is 1 - 0.05 / 4, wider.
    row = table.loc["m/maml"]
    assert (table["p_adj"] < 0.05).sum() == 3 and row["level"] == pytest.approx(0.95)
    assert row["p_adj"] >= row["p"]
    bonferroni = verdict_table(users, noise_floor=0.05, correction="bonferroni")
    row = bonferroni.set_index("cell").loc["m/maml"]
    assert row["level"] == pytest.approx(1 - 0.05 / 4) and row["ci_low"] < row["ci95_low"]
    assert list(table["baseline"].unique()) == ["m/finetune"]
    # nDCG: higher is better, so a positive difference helps (here nDCG = -MAE).
    ndcg = users.assign(**{"ndcg@3": -users["mae"]})
    flipped = verdict_table(ndcg, metric="ndcg@3", noise_floor=0.05).set_index("cell")
    assert flipped.loc["m/maml", "diff"] > 0 and flipped.loc["m/maml", "label"] == "helps"
    assert flipped.loc["m/reptile", "diff"] < 0 and flipped.loc["m/reptile", "label"] == "hurts"


def test_families_are_corrected_separately():
    a = make_users({"maml": (-0.1, 0.005), "reptile": (0.0, 0.005)}, scenario="warm", seed=1)
    b = make_users({"maml": (0.0, 0.005), "reptile": (0.0, 0.005)}, scenario="item_cold", seed=2)
    users = pd.concat([a, b], ignore_index=True)
    per_scenario = verdict_table(users)
    one_family = verdict_table(users, family=())
    assert (per_scenario.groupby("scenario")["level"].nunique() == 1).all()
    assert one_family["level"].nunique() == 1
    assert (one_family["p_adj"] >= per_scenario["p_adj"] - 1e-12).all()
    assert meta_vs_conventional(users) == [("m/maml", "m/finetune"),
                                           ("m/reptile", "m/finetune")]


def test_best_vs_best_chooses_on_validation_only():
    users = pd.concat([make_users({"maml": (-0.1, 0.005)}, model="a", seed=1),
                       make_users({"reptile": (0.05, 0.005)}, model="b", seed=2)],
                      ignore_index=True)
    # On test a/maml is best; validation prefers b/reptile and a/finetune.
    configs = {"cells": {"a/finetune": {"val_mae": 0.70}, "a/maml": {"val_mae": 0.80},
                         "b/finetune": {"val_mae": 0.75}, "b/reptile": {"val_mae": 0.72}}}
    table = best_vs_best(users, configs)
    assert table["cell"].iloc[0] == "b/reptile" and table["baseline"].iloc[0] == "a/finetune"
    assert table["cell_val"].iloc[0] == 0.72 and table["baseline_val"].iloc[0] == 0.70
    # Validation rows in the per-user results (split column) are used when present; the test
    # rows alone decide the comparison.
    val = users.assign(split="validation",
                       mae=np.where(users["cell"] == "a/maml", 0.1, 1.0))
    both = pd.concat([users.assign(split="test"), val], ignore_index=True)
    assert validation_scores(both)["a/maml"] == pytest.approx(0.1)
    table = best_vs_best(both, both)
    assert table["cell"].iloc[0] == "a/maml"
    assert table["n_users"].iloc[0] == (users["cell"] == "a/maml").sum()
    with pytest.raises(ValueError, match="val_mae"):
        best_vs_best(users, {"cells": {"a/finetune": {"val_mae": 0.7}, "a/maml": {}}})
    with pytest.raises(ValueError, match="test users only"):
        validation_scores(users)


# ----------------------------------------------------------------------------------------------
# Tuning noise and the noise floor
# ----------------------------------------------------------------------------------------------


def tuning_runs(offsets: dict[str, list[float]], scenario: str = "user_cold") -> pd.DataFrame:
    """Per-user MAE of each cell for each tuner seed: a shared per-user base plus a constant
    offset per tuner seed, so the tuning spread is known exactly."""
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(5):
        ids = np.arange(50) + 1000 * seed
        base = rng.normal(0.8, 0.2, ids.size)
        for cell, offs in offsets.items():
            for tuner_seed, off in enumerate(offs):
                rows.append(pd.DataFrame({"cell": cell, "tuner_seed": tuner_seed, "seed": seed,
                                          "scenario": scenario, "user_id": ids,
                                          "mae": base + off}))
    return pd.concat(rows, ignore_index=True)


def test_tuning_noise_and_floor():
    runs = pd.concat([tuning_runs({"m/finetune": [0.0, 0.02, 0.05], "m/maml": [0.01, 0.0, 0.0]}),
                      tuning_runs({"m/finetune": [0.0, 0.01, 0.0]}, scenario="warm")])
    noise = tuning_noise(runs).set_index(["cell", "scenario"])
    row = noise.loc[("m/finetune", "user_cold")]
    assert row["range"] == pytest.approx(0.05) and row["n_tuner_seeds"] == 3
    assert row["sd"] == pytest.approx(np.std([0, 0.02, 0.05], ddof=1))
    assert row["sd_low"] < row["sd"] < row["sd_high"]
    floor = noise_floor(noise.reset_index())
    assert floor == pytest.approx({"user_cold": 0.05, "warm": 0.01})
    pooled = np.sqrt((np.var([0, 0.02, 0.05], ddof=1) + np.var([0.01, 0, 0], ddof=1)) / 2)
    assert noise_floor(noise.reset_index(), "two_tunings")["user_cold"] == pytest.approx(
        1.96 * np.sqrt(2) * pooled)
    with pytest.raises(ValueError, match="at least 2 tuner seeds"):
        tuning_noise(runs[runs["tuner_seed"] == 0])
    other_users = runs.copy()
    other_users.loc[other_users["tuner_seed"] == 1, "user_id"] += 1
    with pytest.raises(ValueError, match="same \\(seed, user\\) pairs"):
        tuning_noise(other_users)
    with pytest.raises(ValueError, match="unknown floor rule"):
        noise_floor(noise.reset_index(), "median")


# ----------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------


def test_bad_input_gives_clear_errors():
    users = make_users({"maml": (0.0, 0.01)}, n_users=20)
    with pytest.raises(ValueError, match="not paired.*only in the first, 1 only in the second"):
        paired_by_seed(users.drop(index=users.index[(users["cell"] == "m/maml")][3]),
                       "m/maml", "m/finetune", "user_cold")
    with pytest.raises(ValueError, match="at least 2 seeds"):
        verdict_table(users[users["seed"] == 0])
    with pytest.raises(ValueError, match="at least 2 seeds"):
        seed_t_inference([[0.1, 0.2]])
    nan = users.copy()
    nan.loc[nan.index[5], "mae"] = np.nan
    with pytest.raises(ValueError, match="non-finite mae"):
        verdict_table(nan)
    with pytest.raises(ValueError, match="non-finite"):
        cluster_bootstrap([[0.1, np.nan], [0.2]])
    with pytest.raises(ValueError, match="duplicate"):
        paired_by_seed(pd.concat([users, users.iloc[:1]]), "m/finetune", "m/maml", "user_cold")
    with pytest.raises(ValueError, match="no rows for cell 'm/reptile'"):
        paired_by_seed(users, "m/reptile", "m/finetune", "user_cold")
    with pytest.raises(ValueError, match="lack the columns"):
        paired_by_seed(users.drop(columns="user_id"), "m/maml", "m/finetune", "user_cold")
    with pytest.raises(ValueError, match="no rows"):
        paired_by_seed(users, "m/maml", "m/finetune", "warm")
    with pytest.raises(ValueError, match="no value for scenario 'user_cold'"):
        verdict_table(users, noise_floor={"warm": 0.01})
    with pytest.raises(ValueError, match=">= 0"):
        verdict_table(users, noise_floor=-1)
    with pytest.raises(ValueError, match="unknown correction"):
        verdict_table(users, correction="sidak")
    with pytest.raises(ValueError, match="unknown methods"):
        verdict_table(users, primary="wald")
    with pytest.raises(ValueError, match="no comparisons"):
        verdict_table(users[users["cell"] == "m/maml"])
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        adjust_pvalues([0.1, np.nan])


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------


def test_command_line_prints_the_survival_table(tmp_path, capsys):
    users = pd.concat([make_users({"maml": (-0.1, 0.005), "reptile": (0.0, 0.02)}, model="melu",
                                  n_users=40),
                       make_users({"melu": (0.0, 0.02)}, model="melu", n_users=40, seed=1)
                       .query("scheme == 'melu'")], ignore_index=True)
    prefix = tmp_path / "tiny"
    users.to_csv(f"{prefix}.users.csv.gz", index=False)
    configs = {"cells": {c: {"val_mae": 0.7 + 0.01 * i}
                         for i, c in enumerate(sorted(set(users["cell"])))}}
    (tmp_path / "tiny.configs.json").write_text(json.dumps(configs))
    assert main([str(prefix), "--floor", "0.01"]) == 0
    out = capsys.readouterr().out
    assert "helps (pairs)" in out and "null control" in out and "chosen on validation" in out
    assert "melu/maml" in out
    with pytest.raises(SystemExit):
        main([str(tmp_path / "missing")])
