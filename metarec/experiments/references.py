"""Conventional references beside the fair grid: a global refit and an item-kNN with baselines.

The fair grid (:mod:`metarec.experiments.fair`) asks how well *one user adapting alone* is
served: each test user's support set adapts a copy of the trained model, and nobody else's new
ratings are used. A running service does not work like that. It adds every user's new ratings
to its rating table and retrains (say nightly), so a new item rated by a few test users is
known to the model when it serves the next user. This module measures two such references on
exactly the grid's splits, test users, support sets and query sets (same seeds):

``<model>/refit`` -- **global refit**
    The conventional model of a grid row, retrained on the training ratings **plus the support
    sets of every test user of the scenario** (pooled across users), then served to each test
    user the way the grid's conventional cell serves them: the same adapted variables, inner
    learning rate and number of fine-tuning steps (``adapt``, ``inner_lr``, ``test_steps`` of
    ``<model>/finetune`` in the configs file). Hyper-parameters: the tuned ones of
    ``<model>/finetune`` are reused as they are (``outer_lr``, early stopping with the grid's
    patience on the validation users); the refit is the same training on 5-25% more ratings,
    and tuning it again on validation users would need their support sets pooled too, which
    changes what the validation users measure. The feature encoder is refitted on the pooled
    ratings, so new users and new items get their own ids (and item means) in the refit.
    The training ratings are those of the grid (the grid's training tasks, users with
    13..100 training ratings, for the trained models; every training rating for the
    closed-form item mean) plus one training task per test user holding their support set.

``knn/baseline`` -- **item-kNN with baseline estimates**
    :class:`~metarec.models.knn.KNNBaseline` (Koren, 2010; default settings: ALS baselines,
    shrunk Pearson-baseline similarity, 40 neighbours) on every training rating plus the same
    pooled support sets: how a neighbourhood model serves a new user (their ratings are in its
    table) and a new item (its ratings by other test users are).

Pools (``pool``): ``"scenario"`` (default) pools the support sets of one scenario's test users,
so each scenario's reference uses the same ratings as the grid's cells of that scenario, only
shared across users (a scenario without new support ratings, ``warm``, is the training data
alone: there the refit is the grid's conventional cell trained again). ``"all"`` pools the
support sets of all four scenarios at once, as a service holding every new rating would
(cells ``<model>/refit_all`` and ``knn/baseline_all``); then a new user's ratings on old items
also help on new items. No query rating, and no rating of a validation user, is ever in a pool
(checked on every call).

Files written into ``out_dir`` (atomically, after every (seed, cell); ``resume`` skips what is
done):

* ``NAME.references.users.csv.gz``: one row per (seed, cell, scenario, test user), the columns
  of the grid's ``NAME.users.csv.gz`` (``model``: the grid model or ``knn``; ``scheme``:
  ``refit``, ``refit_all``, ``baseline`` or ``baseline_all``);
* ``NAME.references.curves.csv``: for the refits, per (seed, cell, scenario, steps) the
  user-averaged metrics after 0..10 (``grid.MAX_TEST_STEPS``) fine-tuning steps (0: the
  refit alone);
* ``NAME.references.runs.csv``: per (seed, cell, pool) the pooled ratings, training time,
  epochs and best validation MAE.

Command line: ``python -m metarec.experiments.references --out book/results`` (``--help``).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from metarec._validate import check_int
from metarec.data import FeatureEncoder, TaskSet
from metarec.data.tasks import Task
from metarec.experiments.benchmarks import BENCHMARKS, ExperimentConfig, prepare_benchmark
from metarec.experiments.grid import PATIENCE, Cell, cell_method
from metarec.experiments.store import check_writable, write_frame, write_tables
from metarec.experiments.store import progress_bar as _progress
from metarec.experiments.training import (
    METRICS,
    SCENARIOS,
    PreparedData,
    evaluate_groups,
    train_method,
)
from metarec.experiments.tuning import load_configs
from metarec.metrics import task_metrics
from metarec.models.knn import KNNBaseline

__all__ = [
    "KNN_MODEL",
    "POOLS",
    "RefitResult",
    "knn_predictions",
    "pool_groups",
    "pooled_ratings",
    "reencode_tasks",
    "reference_paths",
    "refit",
    "run_references",
    "task_ratings",
]

#: How test users' support sets are pooled: name -> {pool name: scenarios it serves}.
POOLS: dict[str, dict[str, tuple[str, ...]]] = {
    "scenario": {s: (s,) for s in SCENARIOS},
    "all": {"all": SCENARIOS},
}
#: Scheme names of the reference cells, per pool.
_REFIT_SCHEME = {"scenario": "refit", "all": "refit_all"}
_KNN_SCHEME = {"scenario": "baseline", "all": "baseline_all"}
#: The model name of the neighbourhood reference.
KNN_MODEL = "knn"
_PARTS = ("users", "curves", "runs")
_KEY = ["user_id", "item_id"]

#: Identifying columns, first in every file this study writes.
_REFERENCE_COLUMNS = ("seed", "cell", "model", "scheme", "scenario", "pool", "user_id", "steps")


def reference_paths(out_dir: str | Path, name: str) -> dict[str, Path]:
    """The files :func:`run_references` writes for benchmark ``name`` into ``out_dir``."""
    out_dir = Path(out_dir)
    return {"users": out_dir / f"{name}.references.users.csv.gz",
            "curves": out_dir / f"{name}.references.curves.csv",
            "runs": out_dir / f"{name}.references.runs.csv"}


# ----------------------------------------------------------------------------- ratings
def task_ratings(tasks: TaskSet, ratings: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The support and query rows of ``tasks``, looked up in ``ratings``, in task order.

    Parameters
    ----------
    tasks : TaskSet
        Tasks built from rows of ``ratings`` (e.g. a scenario's test tasks and the dataset's
        ratings).
    ratings : DataFrame
        Columns ``user_id``, ``item_id``, ``rating`` (+ any others, kept); one row per pair.

    Returns
    -------
    support, query : DataFrame
        One row per support (query) rating: task 0's rows first, in the task's own order, with
        the columns of ``ratings``. Raises ``ValueError`` if a task's row is not in
        ``ratings`` or its rating differs (the tasks were built from other data).
    """
    out = []
    for side in ("support", "query"):
        users = np.concatenate([np.full(len(getattr(t, f"{side}_items")), t.user_id, np.int64)
                                for t in tasks]) if len(tasks) else np.zeros(0, np.int64)
        items = (np.concatenate([getattr(t, f"{side}_items") for t in tasks]).astype(np.int64)
                 if len(tasks) else np.zeros(0, np.int64))
        y = (np.concatenate([getattr(t, f"{side}_y") for t in tasks]) if len(tasks)
             else np.zeros(0, np.float32))
        keys = pd.DataFrame({"user_id": users, "item_id": items})
        rows = keys.merge(ratings.astype({"user_id": np.int64, "item_id": np.int64}), on=_KEY,
                          how="left", validate="many_to_one")
        if rows["rating"].isna().any() or not np.allclose(rows["rating"].to_numpy(float), y,
                                                          atol=1e-5):
            raise ValueError(f"task_ratings: the {side} rows of these tasks are not rows of the "
                             "given ratings (or their ratings differ); pass the ratings the "
                             "tasks were built from (e.g. data.dataset.ratings).")
        out.append(rows)
    return out[0], out[1]


def pooled_ratings(data: PreparedData, scenarios: Sequence[str]) -> pd.DataFrame:
    """Training ratings plus the support ratings of every test user of ``scenarios``.

    The pool of a global refit and of the kNN reference. ``warm`` adds nothing (warm users'
    support sets are their training ratings). Raises ``ValueError`` if a query rating of any
    scenario, or a rating of a validation user, would be in the pool (leakage).

    Returns
    -------
    DataFrame
        The ratings columns; ``split.train`` first, then the support rows scenario by
        scenario.
    """
    for s in scenarios:
        if s not in SCENARIOS:
            raise ValueError(f"Unknown scenario {s!r}; choose from {SCENARIOS}.")
    ratings = data.dataset.ratings
    supports = [task_ratings(data.tasks[s], ratings)[0] for s in scenarios if s != "warm"]
    columns = list(data.split.train.columns)
    pool = pd.concat([data.split.train, *[s[columns] for s in supports]], ignore_index=True)
    queries = pd.concat([task_ratings(data.tasks[s], ratings)[1][_KEY] for s in SCENARIOS],
                        ignore_index=True)
    leaked = pool[_KEY].merge(queries, on=_KEY)
    if len(leaked):
        raise ValueError(f"pooled_ratings: {len(leaked)} query rating(s) would be in the pool "
                         f"(first: user {leaked.iloc[0, 0]}, item {leaked.iloc[0, 1]}); the "
                         "tasks and the split disagree, rebuild both with prepare().")
    if pool["user_id"].isin(data.split.validation_users).any():
        raise ValueError("pooled_ratings: a validation user's rating would be in the pool; "
                         "validation users only stop training early.")
    if pool.duplicated(_KEY).any():
        raise ValueError("pooled_ratings: a (user, item) pair would be in the pool twice; the "
                         "tasks overlap the training ratings, rebuild them with prepare().")
    return pool


def reencode_tasks(tasks: TaskSet, ratings: pd.DataFrame, encoder: FeatureEncoder) -> TaskSet:
    """The same tasks (users, support and query rows, order) encoded with another encoder."""
    support, query = task_ratings(tasks, ratings)
    sx, qx = encoder.transform(support), encoder.transform(query)
    out, s0, q0 = [], 0, 0
    for t in tasks:
        s1, q1 = s0 + t.n_support, q0 + t.n_query
        out.append(Task(t.user_id, {k: v[s0:s1] for k, v in sx.items()}, t.support_y,
                        {k: v[q0:q1] for k, v in qx.items()}, t.query_y, t.support_items,
                        t.query_items, encoder_fingerprint=encoder.fingerprint))
        s0, q0 = s1, q1
    return TaskSet(out, tasks.support_length, tasks.query_length)


def _support_tasks(tasks: TaskSet) -> list[Task]:
    """One training task per test user holding their whole support set (and no query rows:
    conventional training pools support and query rows, padding rows weigh nothing)."""
    return [Task(t.user_id, t.support_x, t.support_y,
                 {k: v[:0] for k, v in t.support_x.items()}, t.support_y[:0], t.support_items,
                 t.support_items[:0], t.encoder_fingerprint) for t in tasks]


# ------------------------------------------------------------------------------- refit
@dataclasses.dataclass
class RefitResult:
    """A refitted learner and the test tasks it serves (encoded with the refit's encoder)."""

    learner: Any
    tasks: dict[str, TaskSet]
    pool: pd.DataFrame
    seconds: float
    epochs: int
    val_mae: float
    test_steps: int


def refit(data: PreparedData, cell_config: dict[str, Any], scenarios: Sequence[str], seed: int,
          batch_size: int = 32) -> RefitResult:
    """Retrain a grid model's conventional cell on the training ratings + pooled support sets.

    Parameters
    ----------
    data : PreparedData
        The grid's data of ``seed`` (:func:`~metarec.experiments.runner.prepare_benchmark`).
    cell_config : dict
        The configs-file entry of a conventional cell (``model``, ``scheme="finetune"``,
        ``params``, ``test_steps``).
    scenarios : sequence of str
        Whose test users' support sets are pooled (and whose tasks are returned).
    seed : int
        Seeds initialisation and training, as in the grid.

    Returns
    -------
    RefitResult
        ``tasks[s]`` are the grid's test tasks of ``s`` (same users, rows and order) encoded
        with the refit's encoder; adapt with ``result.learner`` and ``test_steps`` steps.
    """
    cell = Cell(cell_config["model"], cell_config["scheme"])
    if cell_config["scheme"] != "finetune":
        raise ValueError(f"refit: {cell.name} is not a conventional cell; pass the configs of "
                         f"{cell.model}/finetune.")
    pool = pooled_ratings(data, scenarios)
    encoder = FeatureEncoder().fit(data.dataset, pool)
    ratings = data.dataset.ratings
    tasks = {name: reencode_tasks(data.tasks[name], ratings, encoder)
             for name in ("train", "validation", *scenarios)}
    extra = [t for s in scenarios if s != "warm" for t in _support_tasks(tasks[s])]
    train = TaskSet(list(tasks["train"]) + extra) if extra else tasks["train"]
    refit_data = PreparedData(data.dataset, dataclasses.replace(data.split, train=pool),
                              encoder, {**tasks, "train": train})
    method = cell_method(cell, cell_config["params"], test_steps=cell_config["test_steps"])
    learner, seconds = train_method(method, refit_data, seed, batch_size=batch_size,
                                    patience=PATIENCE)
    learner.inner_steps = method.test_steps
    history = learner.history.history if learner.history else {}
    val = history.get("val_mae", [])
    return RefitResult(learner, {s: tasks[s] for s in scenarios}, pool, seconds,
                       len(history.get("loss", [])), float(min(val)) if val else float("nan"),
                       int(method.test_steps))


# --------------------------------------------------------------------------------- kNN
def knn_predictions(data: PreparedData, scenarios: Sequence[str],
                    **knn_options: Any) -> dict[str, np.ndarray]:
    """Item-kNN-baseline predictions of every query rating of ``scenarios``' test tasks.

    The model is fitted on :func:`pooled_ratings` (training ratings + the support sets of the
    scenarios' test users); predictions are clipped to the training ratings' scale, as the
    grid clips. ``knn_options`` go to :class:`~metarec.models.knn.KNNBaseline`.

    Returns
    -------
    dict of str to float64 array [T, Q]
        Per scenario, the predictions padded like ``data.tasks[s].batch().query_y``.
    """
    pool = pooled_ratings(data, scenarios)
    train = data.split.train["rating"]
    model = KNNBaseline(**knn_options).fit(pool, (float(train.min()), float(train.max())))
    out = {}
    for s in scenarios:
        tasks = data.tasks[s]
        users = np.concatenate([np.full(t.n_query, t.user_id) for t in tasks])
        items = np.concatenate([t.query_items for t in tasks])
        flat = model.predict(users, items)
        padded = np.zeros((len(tasks), tasks.query_length))
        start = 0
        for row, t in enumerate(tasks):
            padded[row, :t.n_query] = flat[start:start + t.n_query]
            start += t.n_query
        out[s] = padded
    return out


def _metric_rows(tasks: TaskSet, pred: np.ndarray) -> pd.DataFrame:
    batch = tasks.batch()
    metrics = task_metrics(batch.query_y, pred, batch.query_mask, ks=(1, 3))
    frame = pd.DataFrame({"user_id": batch.user_ids, **{m: metrics[m] for m in METRICS}})
    frame["diverged"] = False
    return frame


# ------------------------------------------------------------------------------ runner
def pool_groups(pool: str) -> dict[str, tuple[str, ...]]:
    """The pools of a pooling mode: ``{pool name: scenarios}`` (see :data:`POOLS`)."""
    if pool not in POOLS:
        raise ValueError(f"Unknown pool {pool!r}; choose 'scenario' (each scenario's support "
                         "sets) or 'all' (every scenario's support sets at once).")
    return POOLS[pool]


def run_references(config: ExperimentConfig | str, configs_path: str | Path,
                   out_dir: str | Path, *, models: Sequence[str] | None = None,
                   knn: bool = True, pools: Sequence[str] = ("scenario",),
                   resume: bool = False, overwrite: bool = False,
                   progress: bool = True) -> list[Path]:
    """Run the refit and kNN references for every seed of ``config``; returns the files.

    Parameters
    ----------
    config : ExperimentConfig or str
        The grid benchmark (or its name in :data:`~metarec.experiments.runner.BENCHMARKS`):
        dataset, seeds, batch size; the same data preparation as the grid.
    configs_path : path
        The grid's tuned configurations (``NAME.configs.json``); the refit of model ``m`` uses
        the entry of ``m/finetune``.
    out_dir : path
        Where the three files of :func:`reference_paths` go.
    models : sequence of str, optional
        Grid models to refit (default: every model with a ``finetune`` cell in the configs;
        ``[]`` for none).
    knn : bool
        Also run the item-kNN-baseline reference.
    pools : sequence of {"scenario", "all"}
        Pooling modes to run (module docstring).
    resume, overwrite : bool
        Continue an earlier run in ``out_dir`` (skip finished (seed, cell) pairs) or replace
        it; otherwise existing files raise ``FileExistsError`` before anything runs.
    """
    if isinstance(config, str):
        if config not in BENCHMARKS:
            raise ValueError(f"Unknown benchmark {config!r}; choose from {sorted(BENCHMARKS)}.")
        config = BENCHMARKS[config]
    if resume and overwrite:
        raise ValueError("run_references: pass resume=True or overwrite=True, not both.")
    if not config.seeds:
        raise ValueError("run_references: no seed given; pass at least one seed.")
    for seed in config.seeds:
        check_int("run_references", "every seed", seed, 0)
    if len(set(config.seeds)) != len(config.seeds):
        raise ValueError(f"Duplicate seeds {list(config.seeds)}: every seed must be distinct.")
    pools = list(dict.fromkeys(pools))
    for p in pools:
        pool_groups(p)
    configs = load_configs(configs_path)["cells"]
    conventional = [c["model"] for c in configs.values() if c["scheme"] == "finetune"]
    models = conventional if models is None else list(models)
    for m in models:
        if m not in conventional:
            raise ValueError(f"{m}/finetune has no tuned configuration in {configs_path}; "
                             f"models with one: {conventional}.")
    if not models and not knn:
        raise ValueError("run_references: nothing to run (no model to refit and knn=False).")
    cells = [(f"{KNN_MODEL}/{_KNN_SCHEME[p]}", None, p) for p in pools if knn]
    cells += [(f"{m}/{_REFIT_SCHEME[p]}", m, p) for p in pools for m in models]

    out_dir = Path(out_dir)
    check_writable(out_dir)
    paths = reference_paths(out_dir, config.name)
    frames: dict[str, list[pd.DataFrame]] = {k: [] for k in _PARTS}
    done: set[tuple[int, str]] = set()
    existing = [p for p in paths.values() if p.exists()]
    if existing and resume:
        for key, path in paths.items():
            if path.exists():
                frames[key].append(pd.read_csv(path))
        runs = pd.concat(frames["runs"]) if frames["runs"] else pd.DataFrame()
        done = {(int(s), c) for s, c in zip(runs.get("seed", []), runs.get("cell", []),
                                              strict=True)}
    elif existing and not overwrite:
        raise FileExistsError(
            f"{', '.join(str(p) for p in existing)} already exist(s). Pass --resume to "
            "continue that run, --overwrite to replace it, or choose another --out folder.")

    jobs = [(s, c) for s in config.seeds for c, _, _ in cells if (s, c) not in done]
    bar = _progress(len(jobs), enabled=progress)
    for seed in config.seeds:
        if all((seed, c) in done for c, _, _ in cells):
            continue
        data = prepare_benchmark(config, seed)
        scale = (float(data.split.train["rating"].min()), float(data.split.train["rating"].max()))
        for name, model, pool in cells:
            if (seed, name) in done:
                continue
            bar.set_description(f"seed {seed} {name}")
            model_name, scheme = name.split("/")
            ident = {"seed": seed, "cell": name, "model": model_name, "scheme": scheme}
            for pool_name, scenarios in pool_groups(pool).items():
                run = {**ident, "dataset": data.dataset.name, "pool": pool_name}
                if model is None:
                    start = time.perf_counter()
                    preds = knn_predictions(data, scenarios)
                    seconds = time.perf_counter() - start
                    for s in scenarios:
                        frames["users"].append(
                            _metric_rows(data.tasks[s], preds[s]).assign(**ident, scenario=s))
                    run.update(pool_ratings=len(pooled_ratings(data, scenarios)),
                               train_seconds=seconds)
                else:
                    result = refit(data, configs[f"{model}/finetune"], scenarios, seed,
                                   batch_size=config.batch_size)
                    table = evaluate_groups(result.learner, result.tasks, scale)
                    for s in scenarios:
                        part = table[table["group"] == s].drop(columns="group")
                        chosen = part[part["steps"] == result.test_steps].drop(columns="steps")
                        frames["users"].append(chosen.assign(**ident, scenario=s))
                        curve = part.drop(columns="user_id").groupby("steps").mean()
                        frames["curves"].append(curve.reset_index().assign(**ident, scenario=s))
                    run.update(pool_ratings=len(result.pool), train_seconds=result.seconds,
                               epochs=result.epochs, val_mae=result.val_mae,
                               test_steps=result.test_steps)
                frames["runs"].append(pd.DataFrame([run]))
            write_tables(frames, paths, _REFERENCE_COLUMNS)
            bar.update(1)
    bar.close()
    return list(paths.values())



# -------------------------------------------------------------------------- command line
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m metarec.experiments.references``: write the reference results."""
    parser = argparse.ArgumentParser(
        prog="python -m metarec.experiments.references",
        description="Global-refit and item-kNN references on the fair grid's splits; writes "
                    "OUT/NAME.references.{users.csv.gz,curves.csv,runs.csv}.")
    parser.add_argument("--benchmark", default="fair-ml100k",
                        help="grid benchmark (default fair-ml100k)")
    parser.add_argument("--out", default="results", help="results folder (default: results)")
    parser.add_argument("--configs", type=Path,
                        help="tuned configurations (default: OUT/NAME.configs.json)")
    parser.add_argument("--seeds", type=int, nargs="+", help="override the seeds")
    parser.add_argument("--models", nargs="*",
                        help="grid models to refit (default: all with a finetune cell)")
    parser.add_argument("--no-knn", action="store_true", help="skip the kNN reference")
    parser.add_argument("--pool", nargs="+", default=["scenario"], choices=sorted(POOLS),
                        help="pooling of the support sets (default: scenario)")
    parser.add_argument("--threads", type=int, help="TensorFlow threads (e.g. 1)")
    parser.add_argument("--resume", action="store_true",
                        help="keep finished (seed, cell) results in OUT; run the others")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier run in OUT")
    args = parser.parse_args(argv)
    if args.benchmark not in BENCHMARKS or not BENCHMARKS[args.benchmark].grid:
        parser.error(f"unknown grid benchmark {args.benchmark!r}; choose from "
                     f"{[n for n, c in BENCHMARKS.items() if c.grid]}")
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be >= 1")
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    config = BENCHMARKS[args.benchmark]
    if args.seeds is not None:
        config = dataclasses.replace(config, seeds=tuple(args.seeds))
    out = Path(args.out)
    configs = args.configs or out / f"{config.name}.configs.json"
    paths = run_references(config, configs, out, models=args.models, knn=not args.no_knn,
                           pools=args.pool, resume=args.resume, overwrite=args.overwrite)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
