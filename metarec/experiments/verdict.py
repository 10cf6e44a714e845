"""The verdict "helps / ties / hurts": run-level intervals, multiplicity, the tuning-noise floor.

One comparison is a cell against a baseline cell (by default: every meta cell against the same
model's conventional ``finetune`` cell) in one scenario, on the same test users of the same
seeds (:func:`~metarec.experiments.stats.paired_by_seed`). :func:`verdict_table` gives, per
comparison:

1. the run-level mean difference ``cell - baseline`` and its p-value from the primary method
   (default :func:`~metarec.experiments.stats.mixed_model_inference`: random intercept per
   seed, users nested, t with ``S - 1`` degrees of freedom), plus cross-checks (default the
   Student t over the seed means; optionally the nested cluster bootstrap, too optimistic with
   5 seeds) and the per-user pair interval (secondary view; it treats the users of one run as
   independent);
2. p-values adjusted within each family of comparisons (default: one family per scenario,
   Holm), and the interval at the level that agrees with the adjustment
   (:func:`~metarec.experiments.stats.adjusted_alpha`);
3. the label: **"helps"** when the adjusted interval lies entirely on the better side of 0
   *and* the estimated difference is larger than the noise floor in the better direction,
   **"hurts"** symmetrically, **"ties"** otherwise. For MAE better is lower, for nDCG higher.

The noise floor comes from re-tuning cells with several tuner seeds (:func:`tuning_noise`,
:func:`noise_floor`): a difference smaller than what re-tuning the *same* cell produces cannot
be attributed to the training scheme.

:func:`best_vs_best` picks the best meta cell and the best conventional cell on *validation*
users (never on test results) and compares them on the test users of every scenario.

Command line (prints how many of the per-user-pair verdicts survive)::

    python -m metarec.experiments.verdict book/results/fair-ml100k [--floor 0.02]
"""

from __future__ import annotations

import argparse
import json
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from metarec.experiments.stats import (
    CORRECTIONS,
    LOWER_IS_BETTER,
    adjust_pvalues,
    adjusted_alpha,
    cell_names,
    cluster_bootstrap,
    mixed_model_inference,
    paired_by_seed,
    paired_differences,
    seed_t_inference,
)

#: Run-level methods by name; each maps per-seed difference arrays to an inference object.
METHODS: dict[str, Callable[..., Any]] = {
    "seed_t": seed_t_inference,
    "cluster_bootstrap": cluster_bootstrap,
    "mixed_model": mixed_model_inference,
}

#: The conventional training scheme (every other scheme is a meta scheme).
CONVENTIONAL = "finetune"

#: Verdict labels.
LABELS = ("helps", "ties", "hurts")


def meta_vs_conventional(users: pd.DataFrame,
                         conventional: str = CONVENTIONAL) -> list[tuple[str, str]]:
    """``(meta cell, conventional cell of the same model)`` for every meta cell in ``users``,
    in order of first appearance. Cells are named "model/scheme"."""
    cells = list(dict.fromkeys(cell_names(users)))
    pairs = []
    for cell in cells:
        model, _, scheme = cell.partition("/")
        base = f"{model}/{conventional}"
        if scheme != conventional and base in cells:
            pairs.append((cell, base))
    return pairs


def label(diff: float, low: float, high: float, floor: float, lower_is_better: bool) -> str:
    """"helps" / "ties" / "hurts" for ``cell - baseline`` = ``diff`` with interval
    ``[low, high]``: "helps" needs the interval on the better side of 0 and ``|diff| > floor``
    in the better direction; "hurts" the same on the worse side."""
    sign = -1.0 if lower_is_better else 1.0  # sign of a difference that means "better"
    better = (high < 0 if lower_is_better else low > 0) and sign * diff > floor
    worse = (low > 0 if lower_is_better else high < 0) and -sign * diff > floor
    return "helps" if better else ("hurts" if worse else "ties")


def _floor_for(noise: float | Mapping[str, float], scenario: str) -> float:
    if isinstance(noise, Mapping):
        if scenario not in noise:
            raise ValueError(f"the noise floor has no value for scenario {scenario!r} "
                             f"(it has {sorted(noise)}); give a floor for every scenario")
        value = float(noise[scenario])
    else:
        value = float(noise)
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"the noise floor must be a finite number >= 0, got {value}")
    return value


def _rng(seed: int, *key: str) -> np.random.Generator:
    """A generator fixed by ``seed`` and the comparison (independent of the other rows)."""
    return np.random.default_rng([seed, zlib.crc32("|".join(key).encode())])


def run_level_rows(users: pd.DataFrame, comparisons: Sequence[tuple[str, str]],
                   scenarios: Sequence[str], metric: str = "mae",
                   methods: Sequence[str] = ("seed_t", "cluster_bootstrap", "mixed_model"),
                   n_resamples: int = 9999, seed: int = 0) -> list[dict[str, Any]]:
    """Unadjusted inference per (comparison, scenario): one dict per row with the keys
    cell, baseline, scenario, metric, n_seeds, n_users, the per-user pair view
    (``pairs_diff``, ``pairs_low``, ``pairs_high``: t over all (seed, user) pairs, 95%) and,
    per method, the inference object under the method's name."""
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; choose from {sorted(METHODS)}")
    rows = []
    for scenario in scenarios:
        for cell, baseline in comparisons:
            groups = paired_by_seed(users, cell, baseline, scenario, metric)
            d = np.concatenate(list(groups.values()))
            pairs = stats.ttest_1samp(d, 0.0).confidence_interval(0.95)
            row: dict[str, Any] = {"cell": cell, "baseline": baseline, "scenario": scenario,
                                   "metric": metric, "n_seeds": len(groups),
                                   "n_users": int(d.size), "pairs_diff": float(d.mean()),
                                   "pairs_low": float(pairs.low),
                                   "pairs_high": float(pairs.high)}
            for name in methods:
                if name == "cluster_bootstrap":
                    rng = _rng(seed, cell, baseline, scenario, metric)
                    row[name] = cluster_bootstrap(groups, n_resamples, rng)
                else:
                    row[name] = METHODS[name](groups)
            rows.append(row)
    return rows


def verdict_table(users: pd.DataFrame, noise_floor: float | Mapping[str, float] = 0.0, *,
                  comparisons: Sequence[tuple[str, str]] | None = None,
                  scenarios: Sequence[str] | None = None, metric: str = "mae",
                  correction: str = "holm", alpha: float = 0.05,
                  family: Sequence[str] = ("scenario",), primary: str = "mixed_model",
                  cross_checks: Sequence[str] = ("seed_t",),
                  n_resamples: int = 9999, seed: int = 0) -> pd.DataFrame:
    """Per comparison and scenario: run-level difference, adjusted p-value, interval, label.

    Parameters
    ----------
    users : one row per (seed, cell, scenario, user_id) with the ``metric`` column (the
        format of ``NAME.users.csv.gz``; ``model`` and ``scheme`` columns stand in for
        ``cell``). If it has a ``split`` column, only its ``"test"`` rows are used.
    noise_floor : in the metric's units, one number or one per scenario.
    comparisons : ``(cell, baseline)`` pairs; default :func:`meta_vs_conventional`.
    scenarios : default: every scenario in ``users``, in order of appearance.
    correction : ``"holm"``, ``"bh"``, ``"bonferroni"`` or ``"none"``, applied within each
        family: the rows sharing the values of the ``family`` columns (``()``: all rows).
    primary, cross_checks : names in :data:`METHODS`; the label uses ``primary``.

    Returns
    -------
    DataFrame, one row per (scenario, comparison): ``cell``, ``baseline``, ``scenario``,
    ``metric``, ``n_seeds``, ``n_users``, ``diff`` (run-level mean difference), ``p``,
    ``p_adj``, ``level`` (confidence of the adjusted interval), ``ci_low``/``ci_high``
    (adjusted), ``ci95_low``/``ci95_high`` (unadjusted), ``noise_floor``, ``label``; per
    cross-check ``{name}_diff``, ``{name}_p_adj``, ``{name}_low``, ``{name}_high``,
    ``{name}_label``; ``labels_agree`` (every cross-check gives the primary's label); the pair
    view
    ``pairs_diff``, ``pairs_low``, ``pairs_high``.
    """
    if correction not in CORRECTIONS:
        raise ValueError(f"unknown correction {correction!r}; choose from {CORRECTIONS}")
    users = _test_rows(users)
    if scenarios is None:
        scenarios = list(dict.fromkeys(users["scenario"]))
    if comparisons is None:
        comparisons = meta_vs_conventional(users)
    if not comparisons:
        raise ValueError("no comparisons: users holds no meta cell with the same model's "
                         f"{CONVENTIONAL!r} cell; pass comparisons=[(cell, baseline), ...]")
    methods = [primary, *[m for m in cross_checks if m != primary]]
    rows = run_level_rows(users, comparisons, scenarios, metric, methods, n_resamples, seed)
    table = pd.DataFrame([{k: v for k, v in r.items() if k not in methods} for r in rows])
    lower = metric in LOWER_IS_BETTER
    floors = [_floor_for(noise_floor, s) for s in table["scenario"]]
    groups = (table.groupby(list(family), sort=False).indices if family
              else {"all": np.arange(len(table))})
    for name in methods:
        inference = [r[name] for r in rows]
        p = np.array([i.p_value for i in inference])
        p_adj, level = np.empty(len(p)), np.empty(len(p))
        for index in groups.values():
            index = np.asarray(index)
            p_adj[index] = adjust_pvalues(p[index], correction)
            level[index] = 1 - adjusted_alpha(p[index], correction, alpha)
        bounds = np.array([i.interval(c) for i, c in zip(inference, level, strict=True)])
        diff = np.array([i.estimate for i in inference])
        labels = [label(d, lo, hi, f, lower)
                  for d, (lo, hi), f in zip(diff, bounds, floors, strict=True)]
        if name == primary:
            ci95 = np.array([i.interval(1 - alpha) for i in inference])
            table = table.assign(diff=diff, p=p, p_adj=p_adj, level=level,
                                 ci_low=bounds[:, 0], ci_high=bounds[:, 1],
                                 ci95_low=ci95[:, 0], ci95_high=ci95[:, 1],
                                 noise_floor=floors, label=labels)
        else:
            table[f"{name}_diff"] = diff
            table[f"{name}_p_adj"] = p_adj
            table[f"{name}_low"], table[f"{name}_high"] = bounds[:, 0], bounds[:, 1]
            table[f"{name}_label"] = labels
    checks = [f"{m}_label" for m in methods if m != primary]
    table["labels_agree"] = table[checks].eq(table["label"], axis=0).all(axis=1)
    first = ["cell", "baseline", "scenario", "metric", "n_seeds", "n_users", "diff", "p",
             "p_adj", "level", "ci_low", "ci_high", "ci95_low", "ci95_high", "noise_floor",
             "label"]
    return table[first + [c for c in table.columns if c not in first]]


def _test_rows(users: pd.DataFrame) -> pd.DataFrame:
    """The test rows of ``users`` (all rows when there is no ``split`` column)."""
    if "split" not in users.columns:
        return users
    test = users[users["split"] == "test"]
    if test.empty:
        raise ValueError("users has a 'split' column but no 'test' rows; verdicts are made on "
                         "test users")
    return test


# ----------------------------------------------------------------------------------------------
# Best meta vs best conventional, chosen on validation users
# ----------------------------------------------------------------------------------------------


def validation_scores(source: pd.DataFrame | Mapping[str, Any],
                      metric: str = "mae") -> dict[str, float]:
    """Validation score per cell, from one of:

    * per-user results with a ``split`` column: the mean over seeds of the user-averaged
      ``metric`` of the ``"validation"`` rows (the runs' own validation users);
    * a configs mapping (``NAME.configs.json`` as loaded: ``{"cells": {cell: {"val_mae":
      ...}}}``): the tuned configuration's ``val_<metric>`` on the tuning seed's validation
      users (``experiment tune`` writes ``val_mae`` and ``val_ndcg@3``).

    Test results are never read.
    """
    if isinstance(source, pd.DataFrame):
        if "split" not in source.columns:
            raise ValueError("per-user results without a 'split' column hold test users only; "
                             "pass the configs (val_mae) or results with validation rows")
        val = source[source["split"] == "validation"]
        if val.empty:
            raise ValueError("no 'validation' rows in the per-user results")
        val = val.assign(cell=cell_names(val))
        per_seed = val.groupby(["cell", "seed"], sort=False)[metric].mean()
        return {c: float(v) for c, v in per_seed.groupby(level="cell", sort=False).mean().items()}
    cells = source.get("cells", source)
    key = f"val_{metric}"
    scores = {}
    for name, cfg in cells.items():
        if key not in cfg or cfg[key] is None or not np.isfinite(cfg[key]):
            raise ValueError(f"cell {name!r} has no finite {key!r} in the configs; it is "
                             "written by `python -m metarec experiment tune`")
        scores[name] = float(cfg[key])
    return scores


def choose_best(scores: Mapping[str, float], metric: str = "mae",
                conventional: str = CONVENTIONAL) -> tuple[str, str]:
    """``(best meta cell, best conventional cell)`` by validation score (lowest MAE / highest
    nDCG; the first listed cell wins a tie)."""
    sign = 1.0 if metric in LOWER_IS_BETTER else -1.0
    conv = [c for c in scores if c.partition("/")[2] == conventional]
    meta = [c for c in scores if c.partition("/")[2] != conventional]
    if not conv or not meta:
        raise ValueError(f"need both conventional ({conventional!r}) and meta cells to choose "
                         f"from; got {sorted(scores)}")

    def pick(names: list[str]) -> str:
        return min(names, key=lambda c: sign * scores[c])

    return pick(meta), pick(conv)


def best_vs_best(users: pd.DataFrame, validation: pd.DataFrame | Mapping[str, Any],
                 noise_floor: float | Mapping[str, float] = 0.0, *, metric: str = "mae",
                 scenarios: Sequence[str] | None = None, **options: Any) -> pd.DataFrame:
    """Best meta cell minus best conventional cell, both chosen on validation users, compared
    on the test users of every scenario.

    ``validation``: per-user results with validation rows, or the configs mapping
    (:func:`validation_scores`). One choice for all scenarios (the validation users are new
    users on existing items). The Holm (or ``correction``) family is the set of scenarios.
    Returns :func:`verdict_table`'s columns plus ``cell_val`` and ``baseline_val``.
    """
    scores = validation_scores(validation, metric)
    meta, conv = choose_best(scores, metric)
    options.setdefault("family", ())
    table = verdict_table(users, noise_floor, comparisons=[(meta, conv)], scenarios=scenarios,
                          metric=metric, **options)
    table.insert(2, "cell_val", scores[meta])
    table.insert(3, "baseline_val", scores[conv])
    return table


# ----------------------------------------------------------------------------------------------
# Tuning noise and the noise floor
# ----------------------------------------------------------------------------------------------


def tuning_noise(runs: pd.DataFrame, metric: str = "mae",
                 confidence: float = 0.95) -> pd.DataFrame:
    """Spread of a cell's test metric caused by re-tuning it, per (cell, scenario).

    ``runs``: one row per (cell, tuner_seed, seed, scenario, user_id) with ``metric``: each
    tuner seed's chosen configuration trained and evaluated over the same seeds (hence the
    same splits and test users, which is checked). Per tuner seed, the **protocol result**
    is the mean over seeds of the user-averaged metric (as in the grid table). Returns per
    (cell, scenario): ``n_tuner_seeds``, ``n_seeds``, ``tuner_means`` (list), ``range``
    (max minus min of the tuner means), ``sd`` (their standard deviation, ddof 1) and
    ``sd_low``/``sd_high`` (chi-square ``confidence`` interval of the SD, ``T - 1`` degrees
    of freedom). User sampling cancels (same users); what remains is the tuner's choice plus
    the training noise that the chosen configuration brings over the seeds.
    """
    need = {"cell", "tuner_seed", "seed", "scenario", "user_id", metric}
    if need - set(runs.columns):
        raise ValueError(f"tuning-noise results lack the columns {sorted(need - set(runs.columns))}"
                         "; expected one row per (cell, tuner_seed, seed, scenario, user_id)")
    if not np.isfinite(runs[metric].to_numpy(float)).all():
        raise ValueError(f"tuning-noise results have non-finite {metric} values; fix them first")
    rows = []
    for (cell, scenario), part in runs.groupby(["cell", "scenario"], sort=False):
        keys = {t: frozenset(zip(g["seed"], g["user_id"], strict=True))
                for t, g in part.groupby("tuner_seed", sort=True)}
        if len(keys) < 2:
            raise ValueError(f"cell {cell!r}, scenario {scenario!r}: tuning noise needs at least "
                             f"2 tuner seeds, got {sorted(keys)}")
        if len(set(keys.values())) != 1:
            raise ValueError(f"cell {cell!r}, scenario {scenario!r}: the tuner seeds were not "
                             "evaluated on the same (seed, user) pairs; train every tuner "
                             "seed's choice over the same seeds")
        per_seed = part.groupby(["tuner_seed", "seed"], sort=True)[metric].mean()
        means = per_seed.groupby(level="tuner_seed", sort=True).mean().to_numpy(float)
        t = len(means)
        sd = float(means.std(ddof=1))
        q_hi, q_lo = stats.chi2.ppf([0.5 + confidence / 2, 0.5 - confidence / 2], t - 1)
        rows.append({"cell": cell, "scenario": scenario, "n_tuner_seeds": t,
                     "n_seeds": part["seed"].nunique(), "tuner_means": means.tolist(),
                     "range": float(means.max() - means.min()), "sd": sd,
                     "sd_low": sd * float(np.sqrt((t - 1) / q_hi)),
                     "sd_high": sd * float(np.sqrt((t - 1) / q_lo))})
    return pd.DataFrame(rows)


#: Rules of :func:`noise_floor`.
FLOOR_RULES = ("max_range", "two_tunings")


def noise_floor(noise: pd.DataFrame, rule: str = "max_range") -> dict[str, float]:
    """The floor per scenario from :func:`tuning_noise`'s table.

    * ``"max_range"`` (default): the largest ``range`` among the re-tuned cells of the
      scenario -- the biggest gap that re-tuning the same cell with another tuner seed
      produced;
    * ``"two_tunings"``: ``1.96 * sqrt(2) * pooled SD`` (pooled over the cells: root mean of
      the variances), the 95% spread of the difference between two independently tuned
      cells if tuning noise is normal with that SD.
    """
    if rule not in FLOOR_RULES:
        raise ValueError(f"unknown floor rule {rule!r}; choose from {FLOOR_RULES}")
    out = {}
    for scenario, part in noise.groupby("scenario", sort=False):
        if rule == "max_range":
            out[scenario] = float(part["range"].max())
        else:
            out[scenario] = float(1.96 * np.sqrt(2) * np.sqrt((part["sd"] ** 2).mean()))
    return out


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------


def survival_table(users: pd.DataFrame, verdicts: pd.DataFrame,
                   metric: str = "mae") -> pd.DataFrame:
    """Per scenario: how many per-user-pair verdicts (``paired_differences``, 95%, no
    correction) were "helps"/"hurts", and how many keep that label in ``verdicts``."""
    old = paired_differences(users, metric)
    old = old.assign(cell=old["model"] + "/" + old["scheme"])
    both = old.merge(verdicts, on=["cell", "scenario"], how="inner")
    rows = []
    for scenario, part in both.groupby("scenario", sort=False):
        row = {"scenario": scenario, "comparisons": len(part)}
        for name in ("helps", "hurts"):
            was = part["verdict"] == name
            row[f"{name} (pairs)"] = int(was.sum())
            row[f"{name} kept"] = int((was & (part["label"] == name)).sum())
            row[f"{name} now"] = int((part["label"] == name).sum())
        rows.append(row)
    table = pd.DataFrame(rows).set_index("scenario")
    table.loc["all"] = table.sum()
    return table


def _format(table: pd.DataFrame) -> str:
    cols = ["cell", "baseline", "scenario", "diff", "ci_low", "ci_high", "level", "p_adj",
            "label", "pairs_diff", "labels_agree"]
    signed = {c: "{:+.4f}".format for c in ("diff", "ci_low", "ci_high", "pairs_diff")}
    plain = {"level": "{:.4f}".format, "p_adj": "{:.4f}".format}
    return table[[c for c in cols if c in table]].to_string(index=False,
                                                            formatters={**signed, **plain})


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m metarec.experiments.verdict PREFIX``: verdicts of a fair-grid results set."""
    parser = argparse.ArgumentParser(prog="python -m metarec.experiments.verdict",
                                     description=main.__doc__)
    parser.add_argument("prefix", help="results prefix, e.g. book/results/fair-ml100k "
                                       "(reads PREFIX.users.csv.gz and PREFIX.configs.json)")
    parser.add_argument("--metric", default="mae")
    parser.add_argument("--correction", default="holm", choices=CORRECTIONS)
    parser.add_argument("--family", default="scenario", choices=("scenario", "all"),
                        help="Holm/BH family: each scenario (default) or all comparisons")
    parser.add_argument("--primary", default="mixed_model", choices=sorted(METHODS),
                        help="run-level method of the label (default mixed_model)")
    floor = parser.add_mutually_exclusive_group()
    floor.add_argument("--floor", type=float, default=0.0, help="noise floor (metric units)")
    floor.add_argument("--noise", type=Path, help="tuning-noise per-user results (csv[.gz]): "
                                                  "the floor is noise_floor(tuning_noise(...))")
    parser.add_argument("--bootstrap", action="store_true",
                        help="add the nested cluster bootstrap to the cross-checks (slow)")
    parser.add_argument("--resamples", type=int, default=9999, help="bootstrap resamples")
    parser.add_argument("--all", action="store_true", help="print every comparison")
    args = parser.parse_args(argv)
    users_path = Path(f"{args.prefix}.users.csv.gz")
    if not users_path.is_file():
        parser.error(f"{users_path} not found; give the prefix of a fair-grid run "
                     "(python -m metarec experiment run ... writes PREFIX.users.csv.gz)")
    users = pd.read_csv(users_path)
    floor_value: float | dict[str, float] = args.floor
    if args.noise is not None:
        noise = tuning_noise(pd.read_csv(args.noise), args.metric)
        floor_value = noise_floor(noise)
        print("noise floor per scenario (max range over tuner seeds):", floor_value)
    checks = [m for m in ("seed_t", "mixed_model") if m != args.primary]
    if args.bootstrap and args.primary != "cluster_bootstrap":
        checks.append("cluster_bootstrap")
    options = {"metric": args.metric, "correction": args.correction,
               "family": ("scenario",) if args.family == "scenario" else (),
               "primary": args.primary, "cross_checks": checks,
               "n_resamples": args.resamples}
    table = verdict_table(users, floor_value, **options)
    floor_text = "per scenario" if args.noise is not None else f"{args.floor:g}"
    print(f"Verdicts ({args.metric}; {args.primary} over {table['n_seeds'].max()} seeds; "
          f"{args.correction} per {args.family}; noise floor {floor_text}) against the "
          "per-user-pair verdicts (95%, no correction):")
    print(survival_table(_test_rows(users), table, args.metric).to_string())
    shown = table if args.all else table[table["label"] != "ties"]
    print("\n" + (_format(shown) if len(shown) else "no helps / hurts"))
    print(f"\ncross-checks ({', '.join(checks)}) give the same label in "
          f"{int(table['labels_agree'].sum())} of {len(table)} comparisons")
    cells = set(cell_names(users))
    if {"melu/melu", "melu/maml"} <= cells:
        null = verdict_table(users, floor_value, comparisons=[("melu/melu", "melu/maml")],
                             **{**options, "family": ()})
        print(f"\nnull control, melu/melu minus melu/maml (same algorithm, tuned twice; "
              f"{args.correction} over scenarios):")
        print(_format(null))
    configs_path = Path(f"{args.prefix}.configs.json")
    if configs_path.is_file():
        best = best_vs_best(users, json.loads(configs_path.read_text()), floor_value,
                            **{k: v for k, v in options.items() if k != "family"})
        print("\nbest meta vs best conventional, chosen on validation "
              f"(val {args.metric} {best['cell_val'].iloc[0]:.4f} vs "
              f"{best['baseline_val'].iloc[0]:.4f}; {args.correction} over scenarios):")
        print(_format(best))
    return 0


__all__ = ["CONVENTIONAL", "FLOOR_RULES", "LABELS", "METHODS", "best_vs_best", "choose_best",
           "label", "main", "meta_vs_conventional", "noise_floor", "run_level_rows",
           "survival_table", "tuning_noise", "validation_scores", "verdict_table"]

if __name__ == "__main__":
    raise SystemExit(main())
