"""Hidden checks of assignment 4 (a fair, paired comparison), shipped only in the autograder.

Every check draws fresh random per-user results (the seed is printed in a failure message) and
compares the student's functions with the package's reference,
:func:`metarec.experiments.stats.paired_differences` (pairs by user, the paired t interval,
the verdict), and diagnoses the usual mistakes (pairs matched by position, an unpaired
interval, the direction of "better" reversed for an error metric).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy import stats

from metarec.experiments.stats import LOWER_IS_BETTER, paired_differences

try:  # the autograder ships checks_support.py beside this module
    from checks_support import fresh_rng
except ModuleNotFoundError:  # in the repository: assignments/checks_support.py
    from assignments.checks_support import fresh_rng


def reference(a: np.ndarray, b: np.ndarray, metric: str = "mae") -> pd.Series:
    """The package's paired comparison of per-user values ``a`` (meta) and ``b`` (baseline)."""
    users = np.arange(len(a))
    frame = pd.concat([
        pd.DataFrame({"seed": 0, "scenario": "user_cold", "user_id": users, "model": "net",
                      "scheme": scheme, metric: values})
        for scheme, values in (("maml", a), ("finetune", b))], ignore_index=True)
    return paired_differences(frame, metric=metric).iloc[0]


def correlated(rng: np.random.Generator, n: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-user values of two learners that share a large per-user component."""
    base = rng.normal(0.9, 0.3, n)
    return base + shift + rng.normal(0, 0.05, n), base + rng.normal(0, 0.05, n)


# ------------------------------------------------------------------ question 1: pairs
def check_pairs(pair_by_user: Callable) -> None:
    """Pairs by ``user_id`` whatever the row order; only users present in both frames."""
    rng, seed = fresh_rng()
    n = int(rng.integers(10, 30))
    users = rng.choice(10_000, n, replace=False)
    a = pd.DataFrame({"user_id": users, "mae": rng.uniform(0.5, 1.5, n), "rmse": 1.0})
    b = pd.DataFrame({"user_id": users, "mae": rng.uniform(0.5, 1.5, n), "rmse": 1.0})
    b = b.iloc[rng.permutation(n)].reset_index(drop=True)  # another row order
    out = pair_by_user(a, b, "mae")
    assert isinstance(out, pd.DataFrame), "pair_by_user must return a DataFrame"
    missing = {"user_id", "a", "b", "diff"} - set(out.columns)
    assert not missing, f"the result lacks the column(s) {sorted(missing)}"
    want = a.merge(b, on="user_id", suffixes=("_a", "_b"))
    want = dict(zip(want["user_id"], want["mae_a"] - want["mae_b"], strict=True))
    got = dict(zip(out["user_id"], out["diff"], strict=True))
    assert set(got) == set(want), "every user of both frames must have one pair"
    wrong = [u for u in want if abs(got[u] - want[u]) > 1e-12]
    assert not wrong, (
        f"{len(wrong)} of {n} pairs are wrong (e.g. user {int(wrong[0])}) when the two frames "
        "list the users in different orders: you match rows by POSITION; match them by "
        f"user_id (merge on user_id; seed {seed})")
    b_part = b.iloc[: n - 3]
    extra = pd.DataFrame({"user_id": [10_001, 10_002], "mae": [1.0, 1.1], "rmse": 1.0})
    out = pair_by_user(a, pd.concat([b_part, extra], ignore_index=True), "mae")
    assert set(out["user_id"]) == set(b_part["user_id"]), (
        "with users missing from one frame, keep only the users scored by both learners: a "
        "paired comparison needs both values of every pair")


# ------------------------------------------------------------------ question 2: interval
def check_interval(paired_interval: Callable) -> None:
    """The paired t interval of ``a - b``, as the package's ``paired_differences``."""
    rng, seed = fresh_rng()
    a, b = correlated(rng, int(rng.integers(8, 30)), float(rng.normal(0, 0.03)))
    out = paired_interval(a, b, 0.95)
    assert isinstance(out, tuple) and len(out) == 3, "return (mean_diff, low, high)"
    mean, low, high = (float(v) for v in out)
    ref = reference(a, b)
    if np.allclose([mean, low, high], [ref["mean_diff"], ref["ci_low"], ref["ci_high"]],
                   rtol=1e-9, atol=1e-12):
        other = stats.ttest_1samp(a - b, 0.0).confidence_interval(0.8)
        got = [float(v) for v in paired_interval(a, b, 0.8)[1:]]
        assert np.allclose(got, [other.low, other.high], rtol=1e-9, atol=1e-12), (
            "the interval ignores `confidence` (checked with confidence=0.8)")
        return
    welch = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert not np.allclose([low, high], [welch.low, welch.high], rtol=1e-6), (
        "this is the UNPAIRED (Welch) interval of two independent samples: both learners were "
        "scored on the same users, so take the per-user differences a - b first and use the "
        "one-sample t interval of their mean (scipy.stats.ttest_1samp); pairing removes the "
        "per-user variation and gives a much narrower interval")
    raise AssertionError(
        f"(mean, low, high) = ({mean:.5f}, {low:.5f}, {high:.5f}); the paired 95% t interval "
        f"is ({ref['mean_diff']:.5f}, {ref['ci_low']:.5f}, {ref['ci_high']:.5f}) (as "
        f"metarec.experiments.stats.paired_differences; seed {seed})")


# ------------------------------------------------------------------ question 3: verdict
def check_verdict(verdict: Callable) -> None:
    """The package's verdict for intervals below, above and across 0, for MAE and nDCG."""
    rng, seed = fresh_rng()
    for metric in ("mae", "ndcg@3"):
        lower = metric in LOWER_IS_BETTER
        for shift in (-0.2, 0.0, 0.2):
            a, b = correlated(rng, 20, shift)
            ref = reference(a, b, metric)
            got = verdict(float(ref["ci_low"]), float(ref["ci_high"]), lower_is_better=lower)
            if got == ref["verdict"]:
                continue
            better = "lower" if lower else "higher"
            raise AssertionError(
                f"for {metric} ({better} is better) and the interval of meta minus baseline "
                f"({ref['ci_low']:+.3f}, {ref['ci_high']:+.3f}) the verdict is "
                f"{ref['verdict']!r}, yours is {got!r}: 'helps' when the whole interval lies "
                f"on the better side of 0 ({'below' if lower else 'above'} 0 for {metric}), "
                f"'hurts' when it lies on the worse side, else 'no significant difference' "
                f"(seed {seed})")
