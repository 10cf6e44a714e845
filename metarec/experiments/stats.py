"""Statistics of the fair comparison: intervals per cell and paired differences per user.

* :func:`cell_summary`: per cell and scenario, the mean over seeds of the user-averaged metric,
  with a 95% Student-t interval over the seeds (undefined, NaN, with one seed).
* :func:`paired_differences`: per model, meta scheme and scenario, the difference "meta scheme
  minus conventional + fine-tune" of the *same model* on the *same test users*: one pair per
  (seed, user). Its mean, a 95% t interval over all pairs (``scipy.stats.ttest_1samp``), the
  paired t-test's and the Wilcoxon signed-rank test's p-values, and a more conservative 95%
  interval over the seed means (5 seeds: 4 degrees of freedom). The verdict says "helps" only
  where the pair interval excludes 0 in the meta scheme's favour.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

#: Metrics where lower is better; the others (nDCG) are better when higher.
LOWER_IS_BETTER = ("mae", "rmse")


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t ``confidence`` interval of ``values``; NaN bounds for one value."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(x.mean())
    if len(x) < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + confidence / 2, len(x) - 1) * stats.sem(x))
    return mean, mean - half, mean + half


def cell_summary(users: pd.DataFrame, metric: str = "mae") -> pd.DataFrame:
    """Mean over seeds and 95% interval over seeds, per (model, scheme, scenario).

    ``users`` has one row per (seed, model, scheme, scenario, user) with the metric column.
    """
    per_seed = (users.groupby(["model", "scheme", "scenario", "seed"], sort=False)[metric]
                .mean().reset_index())
    rows = []
    for (model, scheme, scenario), part in per_seed.groupby(["model", "scheme", "scenario"],
                                                            sort=False):
        mean, lo, hi = t_interval(part[metric])
        rows.append({"model": model, "scheme": scheme, "scenario": scenario, "mean": mean,
                     "ci_low": lo, "ci_high": hi, "n_seeds": len(part)})
    return pd.DataFrame(rows)


def paired_differences(users: pd.DataFrame, metric: str = "mae",
                       baseline: str = "finetune") -> pd.DataFrame:
    """Meta scheme minus ``baseline`` of the same model, paired by (seed, scenario, user)."""
    lower = metric in LOWER_IS_BETTER
    key = ["seed", "scenario", "user_id"]
    rows = []
    for model, part in users.groupby("model", sort=False):
        base = part[part["scheme"] == baseline][[*key, metric]]
        if base.empty:
            continue
        for scheme, other in part[part["scheme"] != baseline].groupby("scheme", sort=False):
            pairs = other[[*key, metric]].merge(base, on=key, suffixes=("", "_base"))
            for scenario, p in pairs.groupby("scenario", sort=False):
                d = (p[metric] - p[f"{metric}_base"]).to_numpy(float)
                d = d[np.isfinite(d)]
                if len(d) < 2:
                    continue
                test = stats.ttest_1samp(d, 0.0)
                ci = test.confidence_interval(0.95)
                nonzero = d[d != 0]
                wilcoxon_p = (float(stats.wilcoxon(nonzero).pvalue) if len(nonzero) > 0
                              else 1.0)
                seed_means = (p.assign(d=p[metric] - p[f"{metric}_base"])
                              .groupby("seed")["d"].mean())
                _, s_lo, s_hi = t_interval(seed_means)
                better = ci.high < 0 if lower else ci.low > 0
                worse = ci.low > 0 if lower else ci.high < 0
                verdict = "helps" if better else ("hurts" if worse else "no significant difference")
                rows.append({"model": model, "scheme": scheme, "scenario": scenario,
                             "metric": metric, "mean_diff": float(d.mean()),
                             "ci_low": float(ci.low), "ci_high": float(ci.high),
                             "seed_ci_low": s_lo, "seed_ci_high": s_hi,
                             "p_ttest": float(test.pvalue), "p_wilcoxon": wilcoxon_p,
                             "n_pairs": len(d), "n_seeds": int(seed_means.size),
                             "verdict": verdict})
    return pd.DataFrame(rows)


__all__ = ["LOWER_IS_BETTER", "cell_summary", "paired_differences", "t_interval"]
