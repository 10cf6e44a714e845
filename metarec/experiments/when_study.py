"""The "when" study: controlled experiments on synthetic data -- when does meta-learning help?

Chapter 9's data, from ``python -m metarec experiment when``. The book imports this module as
``from metarec.experiments import when`` (``when`` is another name of this module).

Every experiment compares, on one base model, the tuned conventional model + fine-tuning with
MAML and Meta-SGD, under the protocol of the fair benchmark (``metarec.experiments.grid``):

1. For every *point* (one setting of the generator :func:`metarec.data.make_synthetic`), each
   scheme is tuned with the same Optuna budget (:data:`N_TRIALS` finished trials, the first one
   hand-set, objective: validation users' MAE at the best of 0..10 test-time steps, seed 0;
   studies in ``<out>/when/<point>-tuning/<model>.db``, resumable).
2. Each tuned scheme is trained for every seed of :data:`SEEDS` (the seed draws the data set,
   the split, the initialisation and the training order).
3. Test users (new users, existing items) are evaluated with support sets of 1, 2, 3, 5, 10
   and 20 ratings (the same users and query sets for every size). For every size, the number
   of test-time steps (0..10) is chosen on *validation* users with that support size, per
   scheme and seed; no test user is seen before the choice.

Points (:data:`POINTS`): the heterogeneity of users' tastes (``interaction_scale``), how
informative features are (``informative``) and the fraction of training users kept
(``train_fraction``); :data:`AXES` lists the points of each curve. :data:`ANIL_POINT` adds
the ablation of what MAML adapts: the last layer only (ANIL, Raghu et al. 2020), the decision
layers (MeLU's choice, 87% of the network's weights) and all weights.

Files (in ``<out>/when/``, one set per point, written after every (point, seed) so a killed
run resumes): ``<point>.users.csv.gz`` per-user MAE, ``<point>.curves.csv`` mean MAE against
test-time steps, ``<point>.runs.csv`` training time and epochs, ``<point>.configs.json`` chosen
configurations; ``cost.csv`` the cost of personalising one new user.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from metarec.data import TaskSet, build_tasks, make_synthetic
from metarec.experiments.grid import ADAPT_SETS, Cell
from metarec.experiments.store import (
    check_writable,
    keep_previous,
    progress_bar,
    write_frame,
    write_text,
)
from metarec.experiments.training import (
    SUPPORT_SIZES,
    PreparedData,
    diverged_epochs,
    epochs_run,
    evaluate_groups,
    prepare,
    support_size_tasks,
    train_tuned,
)
from metarec.experiments.tuning import TUNING_SEED, tune_cell

#: The base model of every comparison: MeLU's network (user and item features only), the
#: model MeLU meta-learns. ``REFERENCE`` (the same network with user and item id embeddings,
#: the best conventional model on this generator) is trained conventionally on the
#: heterogeneity map as the bar any method must clear.
MODEL = "melu"
REFERENCE = "melu_ids"
#: Schemes compared on ``MODEL``; ``finetune`` is the conventional baseline.
SCHEMES = ("finetune", "maml", "metasgd")
SEEDS = (0, 1, 2, 3, 4)
#: Finished Optuna trials per (point, scheme), the same for every scheme (a pruned trial
#: counts: it was stopped early by the median pruner). A study stopped before that resumes
#: with ``--resume``; ``--trials N`` continues every study to N.
N_TRIALS = 16
#: Cap on (meta-)training epochs (early stopping on validation MAE usually stops sooner).
EPOCHS = 10
#: Query ratings per test user (support sizes: :data:`SUPPORT_SIZES`, those of chapter 8).
N_QUERY = 10
#: Size of every synthetic data set (other generator settings: the defaults or the point's).
BASE = {"n_users": 400, "n_items": 250, "ratings_per_user": (20, 60)}
BENCHMARK = "when"


@dataclass(frozen=True)
class Point:
    """One generator setting: ``synthetic`` overrides of the defaults of
    :func:`~metarec.data.make_synthetic`, and the fraction of training (meta-training) users
    kept."""

    name: str
    synthetic: dict = field(default_factory=dict, hash=False)
    train_fraction: float = 1.0


def _points() -> dict[str, Point]:
    points = [Point("default")]
    points += [Point(f"alpha_{a:g}", {"interaction_scale": a}) for a in (0.0, 1.8)]
    points += [Point(f"rho_{r:g}", {"informative": r}) for r in (0.0, 1.0)]
    points += [Point("train_0.25", train_fraction=0.25)]
    return {p.name: p for p in points}


#: Every point, by name. ``default`` is the generator's default (alpha 0.9, rho 0.7, all users).
POINTS: dict[str, Point] = _points()
#: The points of each experiment, in axis order, with the axis value of each.
AXES: dict[str, list[tuple[str, float]]] = {
    "interaction_scale": [("alpha_0", 0.0), ("default", 0.9), ("alpha_1.8", 1.8)],
    "informative": [("rho_0", 0.0), ("default", 0.7), ("rho_1", 1.0)],
    "train_fraction": [("train_0.25", 0.25), ("default", 1.0)],
}
#: Where the ANIL ablation runs: MAML adapting the last layer only (ANIL), the decision layers
#: or all weights.
ANIL_POINT = "alpha_1.8"
ANIL_ADAPT = ("last", "decision", "all")
#: The ablation's adapted sets of :data:`MODEL`: the grid's (``ADAPT_SETS``) plus ``last``, the
#: output layer of the decision MLP (``decision_out``: 65 weights), ANIL's "head" in the strict
#: sense.
ANIL_SETS = {**ADAPT_SETS[MODEL], "last": "/decision_out/"}


class _FixedAdaptCell(Cell):
    """A grid cell whose adapted-variable set is fixed (the ANIL ablation)."""

    def __init__(self, model: str, scheme: str, adapt: str):
        super().__init__(model, scheme)
        object.__setattr__(self, "_adapt", adapt)

    @property
    def adapt_choices(self) -> list[str]:
        return [self._adapt]

    @property
    def adapt_sets(self) -> dict[str, str]:
        return {self._adapt: ANIL_SETS[self._adapt]}


def prepare_point(point: Point, seed: int) -> PreparedData:
    """The data set of ``point`` drawn with ``seed``, split and turned into tasks.

    With ``train_fraction < 1`` only that fraction of the training users' tasks is kept (a
    seeded random subset); validation and test users are the same as with all users.
    """
    dataset = make_synthetic(**BASE, **point.synthetic, seed=seed)
    data = prepare(dataset, seed)
    if point.train_fraction < 1.0:
        train = data.tasks["train"]
        rng = np.random.default_rng(seed)
        keep = int(round(point.train_fraction * len(train)))
        chosen = np.sort(rng.choice(len(train), size=keep, replace=False))
        data.tasks["train"] = TaskSet([train[int(i)] for i in chosen])
    return data


def support_groups(data: PreparedData, seed: int) -> dict[str, TaskSet]:
    """Validation and test users with 1..20 support ratings (same users, same query sets).

    Users with at least ``max(SUPPORT_SIZES) + N_QUERY`` ratings are kept; the support set of
    size ``n`` is the first ``n`` of one seeded random order of the user's other ratings.
    """
    groups = {}
    for part, scenario in (("val", "validation"), ("test", "user_cold")):
        sizes = support_size_tasks(data, SUPPORT_SIZES, scenario, seed, n_query=N_QUERY)
        groups.update({f"{part}_{n}": tasks for n, tasks in sizes.items()})
    return groups


def variants(point: str) -> list[tuple[str, str, Cell]]:
    """(model, scheme label, cell) of every run at ``point``."""
    out = [(MODEL, s, Cell(MODEL, s)) for s in SCHEMES]
    if point in {name for name, _ in AXES["interaction_scale"]}:
        out.append((REFERENCE, "finetune", Cell(REFERENCE, "finetune")))
    if point == ANIL_POINT:
        out += [(MODEL, f"maml[{a}]", _FixedAdaptCell(MODEL, "maml", a)) for a in ANIL_ADAPT]
    return out


def paths(out_dir: str | Path, point: str) -> dict[str, Path]:
    """The files of ``point`` under ``out_dir/when/`` (one set per point: points can run in
    parallel processes and resume independently)."""
    folder = Path(out_dir) / BENCHMARK
    return {k: folder / f"{point}.{k}.{ext}" for k, ext in
            [("users", "csv.gz"), ("curves", "csv"), ("runs", "csv"), ("configs", "json")]}


def tune_point(point: str, out_dir: str | Path, *, n_trials: int = N_TRIALS,
               resume: bool = False) -> dict[str, Any]:
    """Tune every run of ``point`` on its validation users (seed 0); the chosen configs.

    Studies: ``out_dir/when/<point>-tuning/<model>.db`` (SQLite), one per scheme label.
    """
    data = prepare_point(POINTS[point], TUNING_SEED)
    chosen: dict[str, Any] = {}
    for model, label, cell in variants(point):
        study = tune_cell(cell, data, n_trials=n_trials, out_dir=Path(out_dir) / BENCHMARK,
                          benchmark=point, resume=resume,
                          study_name=f"{model}/{label}", epochs=EPOCHS)
        best = study.best_trial
        chosen[f"{model}/{label}"] = {
            "model": model, "scheme": label, "params": dict(best.params),
            "test_steps": int(best.user_attrs["test_steps"]), "val_mae": float(best.value)}
    return chosen


def run_variant(point: str, configs: dict[str, Any], seed: int, model: str, label: str,
                data: PreparedData | None = None, groups: dict[str, TaskSet] | None = None
                ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Train one tuned run (``model``, scheme ``label``) of ``point`` with ``seed``.

    Returns the per-user test rows (MAE at the test-time steps chosen on validation users, per
    support size), the test users' mean MAE against steps, and the run's record. ``data`` and
    ``groups`` (from :func:`prepare_point` / :func:`support_groups`) are built when omitted.
    """
    data = prepare_point(POINTS[point], seed) if data is None else data
    groups = support_groups(data, seed) if groups is None else groups
    ratings = data.split.train["rating"]
    scale = (float(ratings.min()), float(ratings.max()))
    cell = dict(((m, s), c) for m, s, c in variants(point))[(model, label)]
    cfg = configs[f"{model}/{label}"]
    _, learner, seconds = train_tuned(cell, cfg, data, seed, epochs=EPOCHS)
    table = evaluate_groups(learner, groups, scale)
    table["part"] = table["group"].str.split("_").str[0]
    table["support_size"] = table["group"].str.split("_").str[1].astype(int)
    mean = table.groupby(["part", "support_size", "steps"])["mae"].mean()
    ident = {"point": point, "seed": seed, "model": model, "scheme": label}
    users, curves = [], []
    for n in SUPPORT_SIZES:
        steps = int(mean.loc[("val", n)].idxmin())  # chosen on validation users only
        test = table[(table["part"] == "test") & (table["support_size"] == n)]
        chosen = test[test["steps"] == steps]
        users.append(chosen[["user_id", "mae", "diverged"]].assign(
            **ident, support_size=n, steps=steps))
        curves.append(mean.loc[("test", n)].reset_index().assign(**ident, support_size=n))
    run = {**ident, "train_seconds": seconds, "adapt": cfg["params"]["adapt"],
           "epochs": epochs_run(learner), "diverged_epochs": diverged_epochs(learner)}
    order = ["point", "seed", "model", "scheme", "support_size"]
    users_df = pd.concat(users, ignore_index=True)[order + ["user_id", "steps", "mae",
                                                           "diverged"]]
    curves_df = pd.concat(curves, ignore_index=True)[order + ["steps", "mae"]]
    return users_df, curves_df, run


def run_point(point: str, configs: dict[str, Any], seed: int
              ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Train every tuned run of ``point`` with ``seed``; per-user rows, curves, runs."""
    data = prepare_point(POINTS[point], seed)
    groups = support_groups(data, seed)
    users, curves, runs = [], [], []
    for model, label, _ in variants(point):
        u, c, r = run_variant(point, configs, seed, model, label, data, groups)
        users.append(u)
        curves.append(c)
        runs.append(r)
    return (pd.concat(users, ignore_index=True), pd.concat(curves, ignore_index=True),
            pd.DataFrame(runs))


def adaptation_cost(point: str, configs: dict[str, Any], seed: int = 0,
                    n_users: int = 20, steps: Sequence[int] = (1, 3, 10)) -> pd.DataFrame:
    """Seconds to personalise one new user, against refitting the conventional model.

    For the tuned MAML and conventional models of ``point`` (and the reference model): the
    median wall time of adapting to one user's support set with ``k`` steps and predicting
    their query ratings (``learner.predict_query`` on a batch of one task, compiled, after
    one warm-up call) over ``n_users`` test users; the time of one epoch of conventional
    training over all training users plus the new user (a warm-start refit) and of the full
    conventional training (a refit from scratch); and
    the bytes of personal weights stored per user for each adapted-variable set.
    """
    data = prepare_point(POINTS[point], seed)
    test = build_tasks(data.split.user_cold, data.encoder, min_ratings=20, max_ratings=100,
                       n_query=N_QUERY, support_size=10, seed=seed)
    rows = []
    for model, label in [(MODEL, "finetune"), (MODEL, "maml"), (REFERENCE, "finetune")]:
        _, learner, seconds = train_tuned(Cell(model, label), configs[f"{model}/{label}"],
                                          data, seed, epochs=EPOCHS)
        for k in steps:
            # Compiled adaptation + prediction of the query, one user per call (what a
            # service runs); the first call per k builds the graph and is not timed.
            learner.predict_query(test.batch([0]), steps=k)
            times = []
            for i in range(min(n_users, len(test))):
                batch = test.batch([i])
                start = time.perf_counter()
                learner.predict_query(batch, steps=k)
                times.append(time.perf_counter() - start)
            rows.append({"model": model, "scheme": label, "what": f"adapt, {k} step(s)",
                         "seconds": float(np.median(times))})
        if label == "finetune":
            rows.append({"model": model, "scheme": label, "what": "refit from scratch",
                         "seconds": seconds})
            plus_one = TaskSet([*data.tasks["train"], test[0]])
            start = time.perf_counter()
            learner.fit(plus_one, epochs=1, batch_size=32, verbose=0)
            rows.append({"model": model, "scheme": label, "what": "refit, one warm-start epoch",
                         "seconds": time.perf_counter() - start})
            rows += [{"model": model, **r} for r in _personal_bytes(learner, model, test[0])]
    return pd.DataFrame(rows)


def _personal_bytes(learner: Any, model: str, task: Any) -> list[dict[str, Any]]:
    """Bytes of weights that one user's adaptation changes, per adapted-variable set.

    Measured: the user is adapted with each set of :data:`ADAPT_SETS` and the float32 values
    that differ from the shared model are counted (for an id embedding only the rows the
    user's ratings touch change). What a service stores per personalised user.
    """
    rows, original = [], learner._adapt_idx
    try:
        for name, spec in ADAPT_SETS[model].items():
            learner._adapt_idx = learner._select(spec)
            adapted = learner.adapt(task, steps=1)
            shared = [learner.model.trainable_variables[j] for j in learner._adapt_idx]
            changed = sum(int(np.count_nonzero(f.numpy() != v.numpy()))
                          for f, v in zip(adapted.fast_weights, shared, strict=True))
            rows.append({"scheme": "finetune", "what": f"bytes per user, adapt={name}",
                         "seconds": float("nan"), "bytes": 4 * changed})
    finally:
        learner._adapt_idx = original
    return rows


def taste_statistics(ratings: pd.DataFrame, n_ratings: int = 20, seed: int = 0
                     ) -> dict[str, float]:
    """How much users differ, measured on ratings alone (to place a real data set on the map).

    Every user with at least ``n_ratings`` ratings contributes ``n_ratings`` of them, drawn at
    random with ``seed`` (the same number for every user and data set, so sampling noise is
    comparable). With :math:`m_i` the mean rating of item :math:`i` over all users, each
    user's ratings are regressed on the item means, :math:`r_{ui} = a_u + s_u m_i + e_{ui}`:

    - ``offset_sd``: standard deviation over users of the mean of :math:`r_{ui} - m_i` (how
      much users differ in their average rating);
    - ``slope_sd``: standard deviation over users of :math:`s_u` (how much users differ in
      agreeing with the crowd: 1 = ranks items like the average user, 0 = unrelated);
    - ``residual_sd``: the mean over users of the standard deviation of :math:`e_{ui}`
      (taste the item means cannot explain, plus noise).

    Returns those three numbers and ``n_users`` (users kept).
    """
    if n_ratings < 3:
        raise ValueError(f"n_ratings must be >= 3 (a slope needs 3 points), got {n_ratings}.")
    rng = np.random.default_rng(seed)
    frame = ratings.assign(item_mean=ratings.groupby("item_id")["rating"].transform("mean"))
    frame = frame[frame.groupby("user_id")["rating"].transform("size") >= n_ratings]
    if frame.empty:
        raise ValueError(f"No user has {n_ratings} ratings; use a smaller n_ratings.")
    offsets, slopes, residuals = [], [], []
    for _, user in frame.groupby("user_id", sort=True):
        pick = user.iloc[rng.choice(len(user), n_ratings, replace=False)]
        x = pick["item_mean"].to_numpy(float)
        y = pick["rating"].to_numpy(float)
        offsets.append(float(np.mean(y - x)))
        xc = x - x.mean()
        slope = float(xc @ (y - y.mean()) / (xc @ xc)) if xc @ xc > 0 else 0.0
        slopes.append(slope)
        residuals.append(float(np.std(y - y.mean() - slope * xc, ddof=2)))
    return {"n_users": len(slopes), "offset_sd": float(np.std(offsets)),
            "slope_sd": float(np.std(slopes)), "residual_sd": float(np.mean(residuals))}


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path) if path.exists() else pd.DataFrame()


def run_when(out_dir: str | Path, *, points: Sequence[str] | None = None,
             seeds: Sequence[int] = SEEDS, n_trials: int = N_TRIALS, resume: bool = False,
             overwrite: bool = False, cost: bool = True, progress: bool = True) -> list[Path]:
    """Tune and run ``points`` (default: all of :data:`POINTS`); returns the files written.

    Files go to ``out_dir/when/`` (one set per point, rewritten atomically after every seed).
    An existing point's files are refused unless ``resume`` (keep finished seeds and the
    tuned configuration, run the rest) or ``overwrite`` (start that point again).
    """
    names = list(POINTS) if points is None else list(points)
    for name in names:
        if name not in POINTS:
            raise ValueError(f"Unknown point {name!r}; choose from {list(POINTS)}.")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"Duplicate seeds {list(seeds)}: every seed must be distinct.")
    check_writable(Path(out_dir) / BENCHMARK)  # before any tuning or training
    # Every point's earlier files are continued, replaced or refused before anything runs.
    keep = {name: keep_previous(paths(out_dir, name).values(), resume=resume,
                                overwrite=overwrite) for name in names}
    written: list[Path] = []
    bar = progress_bar(len(names) * len(seeds), enabled=progress)
    for name in names:
        files = paths(out_dir, name)
        if overwrite:
            for path in files.values():
                path.unlink(missing_ok=True)
            shutil.rmtree(Path(out_dir) / BENCHMARK / f"{name}-tuning", ignore_errors=True)
        if keep[name] and files["configs"].exists():
            configs = json.loads(files["configs"].read_text())
        else:
            bar.set_description(f"tune {name}")
            configs = {"point": name, "n_trials": n_trials, "epochs": EPOCHS,
                       "runs": tune_point(name, out_dir, n_trials=n_trials, resume=resume)}
            write_text(files["configs"], json.dumps(configs, indent=1))
        frames = {k: [_read(files[k])] if keep[name] else [] for k in ("users", "curves", "runs")}
        done = (set(frames["runs"][0]["seed"]) if keep[name] and not frames["runs"][0].empty
                else set())
        for seed in seeds:
            if seed in done:
                bar.update(1)
                continue
            bar.set_description(f"{name} seed {seed}")
            parts = run_point(name, configs["runs"], seed)
            for key, frame in zip(("users", "curves", "runs"), parts, strict=True):
                frames[key].append(frame)
                write_frame(pd.concat(frames[key], ignore_index=True), files[key])
            bar.update(1)
        written += [p for p in files.values() if p.exists()]
    bar.close()
    default = paths(out_dir, "default")["configs"]
    if cost and "default" in names and default.exists():
        table = adaptation_cost("default", json.loads(default.read_text())["runs"])
        cost_path = Path(out_dir) / BENCHMARK / "cost.csv"
        write_frame(table, cost_path)
        written.append(cost_path)
    return written


def map_verdicts(users: pd.DataFrame, points: Sequence[str],
                 schemes: Sequence[str] = ("maml", "metasgd"), model: str = MODEL,
                 correction: str = "holm") -> pd.DataFrame:
    """Run-level verdicts of ``schemes`` against the conventional model, per point and support
    size: the chapter's map, under chapter 8's statistics.

    ``users``: the per-user rows of :func:`load_results`. Each (scheme, point, support size)
    compares ``model/scheme`` with ``model/finetune`` on the same test users of the same seeds
    (``metarec.experiments.verdict.verdict_table``: random-intercept model over seeds,
    users nested; ``correction`` across *all* the rows returned, one family; no noise floor:
    the map has no tuning-noise study). Columns: those of ``verdict_table`` plus ``point``,
    ``support_size`` and ``scheme``; ``label`` is helps / ties / hurts, ``pairs_*`` the per-user
    pair view (secondary).
    """
    from metarec.experiments.verdict import verdict_table

    part = users[users["point"].isin(points) & (users["model"] == model)
                 & users["scheme"].isin(("finetune", *schemes))]
    if part.empty:
        raise ValueError(f"no rows of {model} at points {list(points)}")
    part = part.assign(scenario=part["point"] + "|" + part["support_size"].astype(str))
    comparisons = [(f"{model}/{s}", f"{model}/finetune") for s in schemes]
    table = verdict_table(part, 0.0, comparisons=comparisons, family=(),
                          correction=correction)
    table[["point", "support_size"]] = table["scenario"].str.split("|", expand=True)
    table["support_size"] = table["support_size"].astype(int)
    table["scheme"] = table["cell"].str.split("/", n=1).str[1]
    return table.reset_index(drop=True)


def load_results(out_dir: str | Path, part: str = "users") -> pd.DataFrame:
    """One results table (``users``, ``curves`` or ``runs``) of every point found."""
    frames = [_read(paths(out_dir, name)[part]) for name in POINTS]
    frames = [f for f in frames if not f.empty]
    if not frames:
        raise FileNotFoundError(f"No results of `python -m metarec experiment when` under "
                                f"{Path(out_dir) / BENCHMARK}.")
    return pd.concat(frames, ignore_index=True)


__all__ = ["ANIL_POINT", "AXES", "MODEL", "POINTS", "REFERENCE", "SCHEMES", "SEEDS",
           "SUPPORT_SIZES", "Point", "adaptation_cost", "load_results", "map_verdicts", "paths",
           "prepare_point", "run_point", "run_variant", "run_when", "support_groups",
           "taste_statistics", "tune_point", "variants"]
