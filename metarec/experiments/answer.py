"""The book's one answer to "does meta-learning help this recommender, and when?".

:func:`build_answer` turns the stored results of the fair grid (``NAME.users.csv.gz``,
``NAME.configs.json``, ``NAME.support.csv``, optionally the tuning-noise study and the
conventional references) into one small JSON document, ``book/results/verdict.json``:

* ``best``: the best meta cell and the best conventional cell, both chosen on **validation**
  users before any test result is read (the tuned configurations' ``val_mae``, the same
  choice that picks the cells of the support-size sweep);
* ``scenarios``: per cold-start scenario, best meta minus best conventional on the test users:
  run-level difference (mixed model, seeds as groups, users nested), Holm-adjusted interval
  over the four scenarios, the noise floor, and the label helps / ties / hurts
  (``metarec.experiments.verdict.label``: the interval excludes 0 *and* the difference is
  larger than the floor);
* ``support``: the same for new users with 1, 2, 3, 5, 10, 20 support ratings (seed-level t
  over the per-seed means of the sweep, Holm over the sizes), for the cells in
  ``support_cells``: the best meta and conventional cell of the support-size sweep, chosen
  the same way;
* ``cells``: how many meta cells help / tie / hurt against their own model's conventional
  cell, per scenario (the full table is chapter 8's);
* ``null_control``: ``melu/melu`` minus ``melu/maml`` (the same algorithm tuned twice);
* ``references``: per scenario the best conventional reference outside the per-user protocol
  (a global refit on everyone's support ratings, item-kNN with baselines) beside the best cell;
* ``noise_floor``: per scenario, from the tuning-noise study when it exists, otherwise the
  absolute null-control difference (one re-tuning of one cell; ``noise_floor_source`` says
  which).

Every chapter that states the answer reads this file (:func:`load_answer`) and prints
:func:`answer_sentence` / :func:`headline`, so the book cannot disagree with itself.

Command line::

    python -m metarec.experiments.answer book/results/fair-ml100k \\
        --out book/results/verdict.json --markdown book/results/answer.md
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from metarec.experiments.stats import adjust_pvalues, adjusted_alpha, seed_t_inference
from metarec.experiments.store import write_text
from metarec.experiments.verdict import (
    CONVENTIONAL,
    LABELS,
    choose_best,
    label,
    noise_floor,
    tuning_noise,
    validation_scores,
    verdict_table,
)

#: Version of the document's layout (bumped when a key changes meaning).
FORMAT = 1

#: Readable names of the scenarios, in the book's order.
SCENARIO_NAMES = {"warm": "existing users and items", "user_cold": "new users",
                  "item_cold": "new items", "user_item_cold": "new users on new items"}

#: The null control: the same algorithm (MAML on the MeLU network) tuned twice.
NULL_CONTROL = ("melu/melu", "melu/maml")


def cell_label(name: str) -> str:
    """A readable name of a grid cell: ``"Wide & Deep, Conventional + fine-tune"``."""
    from metarec.experiments.grid import Cell  # at call time: the grid imports TensorFlow

    try:
        return Cell.parse(name).label
    except ValueError:  # not a grid cell (a constructed example): its name as it is
        return name


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _row(table_row: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON fields of one verdict-table row."""
    keys = ("diff", "ci_low", "ci_high", "level", "p_adj", "noise_floor")
    out = {k: round(float(table_row[k]), 6) for k in keys}
    out.update(label=str(table_row["label"]), n_seeds=int(table_row["n_seeds"]),
               n_users=int(table_row["n_users"]))
    return out


def support_verdicts(support: pd.DataFrame, cell: str, baseline: str, floor: float, *,
                     metric: str = "mae", alpha: float = 0.05) -> dict[str, dict[str, Any]]:
    """Per support size: ``cell - baseline`` on new users, seed-level t over the per-seed means
    of ``NAME.support.csv`` (paired by seed: the same users and query sets), Holm over the
    sizes, labelled with ``verdict.label`` and ``floor``."""
    names = (support["cell"] if "cell" in support
             else support["model"] + "/" + support["scheme"])
    rows = []
    for size, part in support.groupby("support_size", sort=True):
        means = {}
        for name in (cell, baseline):
            mine = part[names.loc[part.index] == name].set_index("seed")[metric]
            if mine.empty:
                raise ValueError(f"the support-size sweep has no rows for {name!r}; it scores "
                                 "each model's conventional cell and its best meta cell")
            means[name] = mine
        seeds = sorted(set(means[cell].index) & set(means[baseline].index))
        if len(seeds) < 2:
            raise ValueError(f"support size {size}: {cell!r} and {baseline!r} share fewer "
                             "than 2 seeds; run-level inference needs at least 2")
        diffs = [np.array([means[cell][s] - means[baseline][s]]) for s in seeds]
        rows.append((int(size), seed_t_inference(diffs)))
    p = np.array([inf.p_value for _, inf in rows])
    p_adj = adjust_pvalues(p, "holm")
    # One level for the family: the 1 - a' interval excludes 0 exactly where Holm rejects.
    lv = 1 - adjusted_alpha(p, "holm", alpha)
    lower = metric in ("mae", "rmse")
    out = {}
    for (size, inf), pa in zip(rows, p_adj, strict=True):
        low, high = inf.interval(lv)
        out[str(size)] = {"diff": round(inf.estimate, 6), "ci_low": round(float(low), 6),
                          "ci_high": round(float(high), 6), "level": round(float(lv), 6),
                          "p_adj": round(float(pa), 6), "noise_floor": round(floor, 6),
                          "label": label(inf.estimate, low, high, floor, lower),
                          "n_seeds": len(seeds)}
    return out


def build_answer(prefix: str | Path, *, noise: pd.DataFrame | None = None,
                 references: pd.DataFrame | None = None, metric: str = "mae") -> dict[str, Any]:
    """The answer document from the results with file prefix ``prefix`` (see the module doc).

    ``noise``: the tuning-noise study's per-user rows (``NAME.tuning-noise.csv.gz``); without it
    the floor is the absolute null-control difference per scenario. ``references``: the
    references' per-user rows (``NAME.references.users.csv.gz``), optional.
    """
    prefix = Path(prefix)
    paths = {"users": Path(f"{prefix}.users.csv.gz"), "configs": Path(f"{prefix}.configs.json"),
             "support": Path(f"{prefix}.support.csv")}
    for key, path in paths.items():
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: the answer reads the fair grid's {key} "
                                    "file (python -m metarec experiment tune/run NAME)")
    users = pd.read_csv(paths["users"])
    configs = json.loads(paths["configs"].read_text())
    support = pd.read_csv(paths["support"])
    scenarios = [s for s in SCENARIO_NAMES if s in set(users["scenario"])]
    options = {"metric": metric, "correction": "holm", "primary": "mixed_model",
               "cross_checks": ("seed_t",)}

    has_null = set(NULL_CONTROL) <= set(users["cell"] if "cell" in users
                                         else users["model"] + "/" + users["scheme"])
    if noise is None and not has_null:
        raise ValueError(f"no noise floor: the results lack the null control {NULL_CONTROL} "
                         "and no tuning-noise study was given (NAME.tuning-noise.csv.gz)")
    null = (verdict_table(users, 0.0, comparisons=[NULL_CONTROL], scenarios=scenarios,
                          family=(), **options) if has_null else None)
    if noise is not None:
        floors = noise_floor(tuning_noise(noise, metric))
        floor_source = "tuning-noise study (largest range over tuner seeds of the re-tuned cells)"
    else:
        floors = {r["scenario"]: abs(float(r["diff"])) for _, r in null.iterrows()}
        floor_source = ("null control: |melu/melu - melu/maml| (the same algorithm tuned twice);"
                        " provisional until the tuning-noise study is stored")
    floors = {s: round(float(floors[s]), 6) for s in scenarios}

    # The choice: the runs' own validation users when the grid stored them (every seed),
    # else the tuned configurations' val_<metric> (the tuning seed's validation users).
    val_path = Path(f"{prefix}.validation.csv.gz")
    if val_path.is_file():
        paths["validation"] = val_path
        scores = validation_scores(pd.read_csv(val_path), metric)
        choice = ("best meta and best conventional cell chosen on validation users (every "
                  "seed's own validation users), compared on test users")
    else:
        scores = validation_scores(configs, metric)
        choice = ("best meta and best conventional cell chosen on validation users (tuned "
                  f"configurations' val_{metric}), compared on test users")
    meta, conv = choose_best(scores, metric)
    # The support-size sweep scores each model's conventional cell and its best meta cell (by
    # the configs' val_mae); its comparison is the best of those by the same validation scores.
    swept = set(support["cell"] if "cell" in support
                else support["model"] + "/" + support["scheme"])
    s_meta, s_conv = choose_best({c: v for c, v in scores.items() if c in swept}, metric)
    best = verdict_table(users, floors, comparisons=[(meta, conv)], scenarios=scenarios,
                         family=(), **options)
    cells = verdict_table(users, floors, scenarios=scenarios, family=("scenario",), **options)
    counts = {s: {lab: int((cells[cells["scenario"] == s]["label"] == lab).sum())
                  for lab in LABELS} for s in scenarios}

    trials = [c.get("n_trials") for c in configs["cells"].values()]
    doc: dict[str, Any] = {
        "format": FORMAT,
        "question": "Does meta-learning help this recommender, and when?",
        "dataset": "MovieLens 100K (fair grid, five seeds)",
        "metric": metric,
        "sources": {k: {"file": p.name, "sha256": _sha256(p)} for k, p in paths.items()},
        "protocol": {
            "choice": choice,
            "primary": "mixed model: random intercept per seed, users nested; t with S-1 df",
            "correction": "Holm over the scenarios (the support sizes: over the sizes)",
            "label": "helps/hurts: the adjusted interval excludes 0 and |difference| is "
                     "larger than the noise floor; ties otherwise",
            "min_trials_per_cell": (int(min(t for t in trials if t is not None))
                                    if any(t is not None for t in trials) else None),
            "n_seeds": int(users["seed"].nunique()),
        },
        "noise_floor": floors,
        "noise_floor_source": floor_source,
        "best": {"meta": meta, "conventional": conv,
                 "val_meta": round(scores[meta], 6), "val_conventional": round(scores[conv], 6)},
        "scenarios": {r["scenario"]: _row(r) for _, r in best.iterrows()},
        "support_cells": {"meta": s_meta, "conventional": s_conv},
        "support": support_verdicts(support, s_meta, s_conv, floors.get("user_cold", 0.0),
                                    metric=metric),
        "cells": counts,
    }
    if null is not None:
        doc["null_control"] = {r["scenario"]: _row(r) for _, r in null.iterrows()}
    if references is not None:
        doc["references"] = _references(users, references, meta, conv, scenarios, metric)
    doc["headline"] = headline(doc)
    return doc


def _references(users: pd.DataFrame, refs: pd.DataFrame, meta: str, conv: str,
                scenarios: Sequence[str], metric: str) -> dict[str, dict[str, Any]]:
    """Per scenario: the best reference (lowest mean over seeds) and the two chosen cells."""
    def protocol_mean(frame: pd.DataFrame) -> pd.Series:
        names = frame["model"] + "/" + frame["scheme"] if "cell" not in frame else frame["cell"]
        per_seed = frame.assign(cell=names).groupby(["cell", "scenario", "seed"])[metric].mean()
        return per_seed.groupby(level=["cell", "scenario"]).mean()

    grid, ref = protocol_mean(users), protocol_mean(refs)
    out = {}
    for s in scenarios:
        mine = ref.xs(s, level="scenario")
        name = str(mine.idxmin())
        out[s] = {"best_reference": name, "reference": round(float(mine.min()), 6),
                  "best_meta": round(float(grid[(meta, s)]), 6),
                  "best_conventional": round(float(grid[(conv, s)]), 6)}
    return out


def headline(doc: Mapping[str, Any]) -> str:
    """One sentence: where the best meta-learner helps, ties and hurts, per scenario."""
    by_label: dict[str, list[str]] = {lab: [] for lab in LABELS}
    for scenario, row in doc["scenarios"].items():
        by_label[row["label"]].append(SCENARIO_NAMES.get(scenario, scenario))
    parts = [f"{lab} on {_join(names)}" for lab, names in by_label.items() if names]
    if len(parts) == 1 and len(doc["scenarios"]) > 1:
        parts = [f"{doc['scenarios'][next(iter(doc['scenarios']))]['label']} in every scenario"]
    return (f"The best meta-learner ({cell_label(doc['best']['meta'])}) {_join(parts)}, against "
            f"the best conventional model ({cell_label(doc['best']['conventional'])}); both "
            "chosen on validation "
            f"users, {doc['metric'].upper()} over {doc['protocol']['n_seeds']} seeds, \"helps\" "
            "or \"hurts\" only where the corrected run-level interval excludes zero and the "
            "difference exceeds the noise floor.")


def support_sentence(doc: Mapping[str, Any]) -> str:
    """One sentence: at which support sizes (new users) the best meta-learner helps."""
    by_label: dict[str, list[str]] = {lab: [] for lab in LABELS}
    for size, row in doc["support"].items():
        by_label[row["label"]].append(size)
    parts = [f"{lab} with {_join(sizes)} rating{'s' if sizes != ['1'] else ''}"
             for lab, sizes in by_label.items() if sizes]
    cells = doc.get("support_cells", doc["best"])
    return (f"For new users by the number of ratings they gave, {cell_label(cells['meta'])} "
            f"{_join(parts)} against {cell_label(cells['conventional'])}.")


def _join(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def answer_sentence(doc: Mapping[str, Any], scenario: str) -> str:
    """The answer for one scenario, with its numbers (difference = meta - conventional)."""
    row = doc["scenarios"][scenario]
    return (f"On {SCENARIO_NAMES.get(scenario, scenario)}, {cell_label(doc['best']['meta'])} "
            f"{row['label']} against {cell_label(doc['best']['conventional'])}: "
            f"{doc['metric'].upper()} "
            f"difference {row['diff']:+.3f} ({row['level']:.1%} interval {row['ci_low']:+.3f} "
            f"to {row['ci_high']:+.3f}; noise floor {row['noise_floor']:.3f}).")


def render_markdown(doc: Mapping[str, Any], source: str = "book/results/verdict.json") -> str:
    """The answer as a MyST admonition: headline, one row per scenario, the support sizes and
    the protocol. The book includes it (``book/results/answer.md``) and notebooks display it."""
    metric = doc["metric"].upper()
    lines = [f"```{{admonition}} The book's answer (generated from `{source}`)",
             ":class: important", "", doc["headline"], "",
             f"| Scenario | Difference in {metric} | Interval | Noise floor | Verdict |",
             "|:--|--:|:--|--:|:--|"]
    for scenario, row in doc["scenarios"].items():
        lines.append(f"| {SCENARIO_NAMES.get(scenario, scenario).capitalize()} | "
                     f"{row['diff']:+.3f} | {row['ci_low']:+.3f} to {row['ci_high']:+.3f} "
                     f"({row['level']:.1%}) | {row['noise_floor']:.3f} | {row['label']} |")
    protocol = doc["protocol"]
    trials = protocol.get("min_trials_per_cell")
    lines += ["", support_sentence(doc), "",
              f"Difference: meta minus conventional ({metric}, lower is better); intervals are "
              f"run-level (seeds as groups, users nested), Holm-adjusted over the scenarios. "
              f"Every cell tuned with at least {trials} trials on validation users; noise floor "
              f"from the {doc['noise_floor_source']}.", "```", ""]
    return "\n".join(lines)


def load_answer(path: str | Path) -> dict[str, Any]:
    """Read ``verdict.json`` and check its layout (a clear error for a stale or foreign file)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; write it with `python -m "
                                "metarec.experiments.answer book/results/fair-ml100k --out "
                                f"{path}`")
    doc = json.loads(path.read_text())
    if doc.get("format") != FORMAT:
        raise ValueError(f"{path} has format {doc.get('format')!r}, this metarec reads format "
                         f"{FORMAT}; regenerate it with python -m metarec.experiments.answer")
    missing = {"best", "scenarios", "support", "noise_floor", "headline"} - set(doc)
    if missing:
        raise ValueError(f"{path} lacks {sorted(missing)}; regenerate it")
    return doc


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m metarec.experiments.answer PREFIX --out verdict.json``."""
    parser = argparse.ArgumentParser(prog="python -m metarec.experiments.answer",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("prefix", help="fair-grid results prefix, e.g. book/results/fair-ml100k")
    parser.add_argument("--out", type=Path, required=True, help="the JSON file to write")
    parser.add_argument("--markdown", type=Path,
                        help="also write the answer as a MyST admonition (book/results/answer.md)")
    parser.add_argument("--metric", default="mae", choices=("mae", "rmse"))
    args = parser.parse_args(argv)
    noise_file = Path(f"{args.prefix}.tuning-noise.csv.gz")
    ref_file = Path(f"{args.prefix}.references.users.csv.gz")
    try:
        doc = build_answer(args.prefix, metric=args.metric,
                           noise=pd.read_csv(noise_file) if noise_file.is_file() else None,
                           references=pd.read_csv(ref_file) if ref_file.is_file() else None)
    except (FileNotFoundError, ValueError) as err:
        parser.exit(1, f"error: {err}\n")
    write_text(args.out, json.dumps(doc, indent=1) + "\n")
    if args.markdown is not None:
        write_text(args.markdown, render_markdown(doc))
    print(doc["headline"])
    for scenario in doc["scenarios"]:
        print(answer_sentence(doc, scenario))
    print(support_sentence(doc))
    print(f"wrote {args.out}")
    return 0


__all__ = ["FORMAT", "NULL_CONTROL", "SCENARIO_NAMES", "answer_sentence", "build_answer",
           "cell_label", "headline", "load_answer", "main", "render_markdown",
           "support_sentence", "support_verdicts"]

if __name__ == "__main__":
    raise SystemExit(main())
