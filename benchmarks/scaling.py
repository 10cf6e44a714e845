"""Scaling meta-training: devices, data size, bucketing, vectorized vs per-task loop.

    python -m benchmarks.scaling                 # every table; writes book/results/scaling-*.csv
    python -m benchmarks.scaling --only devices  # one table (devices, data, buckets, paths)
    python -m benchmarks.scaling --quick         # smaller sizes (1M and 5M ratings only)

Every configuration runs in a fresh subprocess (its own peak memory, ``ru_maxrss``; logical
CPU devices need an untouched TensorFlow). The machine's load average is recorded with each
table: on a shared machine absolute numbers are noisy, so compare rows of one run.

Tables (CSV files under ``book/results/``, read by the book's chapter on tools):

* ``scaling-devices.csv``: meta-training tasks/s of MAML (second order) and Reptile on one
  device and under ``MirroredStrategy`` with 2 logical CPU devices (same cores, so no speed-up
  is expected: it shows the overhead of the strategy), with the bytes all-reduced per step;
* ``scaling-data.csv``: time and peak memory of generating ``make_synthetic`` data and of task
  construction (:class:`~metarec.data.pipeline.TaskStream`, and the list-based ``build_tasks``
  up to 5M ratings) plus one epoch of meta-batches, at 1M, 5M and 25M ratings;
* ``scaling-buckets.csv``: padded support rows and tasks/s with and without bucketing by
  support size (MovieLens 100K meta-training tasks, MeLU protocol);
* ``scaling-paths.csv``: tasks/s of the vectorized and per-task-loop steps (``vectorize``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from benchmarks.common import (
    ROOT,
    melu_learner,
    ml100k_tasks,
    peak_memory_mib,
    run_isolated,
    time_steps,
)

RESULTS = ROOT / "book" / "results"
TABLES = ("devices", "data", "buckets", "paths")
# Mean ratings per user of make_synthetic's default long tail (bounded Pareto on 15..300).
RATINGS_PER_USER = 47.3


# ---------------------------------------------------------------------------- one configuration
def run_devices(cfg: dict) -> dict:
    """Tasks/s of one learner on 1 device or 2 logical CPU devices (MirroredStrategy)."""
    from metarec import distribute

    strategy = distribute.make_strategy("mirrored", devices=2) if cfg["replicas"] == 2 else None
    _, enc, tasks = ml100k_tasks()
    if strategy is None:
        learner = melu_learner(cfg["learner"], enc.spec, cfg["steps"])
        batches = [learner.prepare(b) for b in tasks.batches(cfg["batch_size"], seed=0)]
    else:
        with strategy.scope():
            learner = melu_learner(cfg["learner"], enc.spec, cfg["steps"])
        learner.build(tasks, strategy)
        batches = list(distribute.distribute_batches(
            strategy, lambda: tasks.batches(cfg["batch_size"], seed=0), tasks.batch([0])))
    step = learner.make_train_function(strategy)
    n = min(cfg["steps_measured"], len(batches) - cfg["warmup"])
    elapsed = time_steps(step, batches[:cfg["warmup"] + n], cfg["warmup"])
    return {**cfg, "tasks_per_s": n * cfg["batch_size"] / elapsed,
            "bytes_per_step": distribute.communicated_bytes(learner),
            "task_inner_steps_per_step": cfg["batch_size"] * cfg["steps"],
            "peak_rss_mib": peak_memory_mib()}


def run_data(cfg: dict) -> dict:
    """Generation, task construction and one epoch of batches at ``cfg['ratings']``."""
    from metarec.data import FeatureEncoder, build_tasks, make_synthetic
    from metarec.data.pipeline import TaskStream

    target = cfg["ratings"]
    start = time.perf_counter()
    ds = make_synthetic(n_users=round(target / RATINGS_PER_USER), n_items=cfg["items"], seed=0)
    generate = time.perf_counter() - start
    after_generate = peak_memory_mib()
    start = time.perf_counter()
    enc = FeatureEncoder().fit(ds, ds.ratings)
    if cfg["builder"] == "TaskStream":
        tasks = TaskStream.from_ratings(ds.ratings, enc, seed=0)
        batches = tasks.batches(32, seed=0)
    else:
        tasks = build_tasks(ds.ratings, enc, seed=0)
        batches = tasks.batches(32, seed=0)
    construct = time.perf_counter() - start
    start = time.perf_counter()
    n_batches = sum(1 for _ in batches)
    epoch = time.perf_counter() - start
    return {**cfg, "ratings_exact": len(ds.ratings), "users": ds.n_users, "tasks": len(tasks),
            "generate_s": generate, "construct_s": construct, "epoch_batches_s": epoch,
            "batches": n_batches, "peak_rss_after_generate_mib": after_generate,
            "peak_rss_mib": peak_memory_mib()}


def run_buckets(cfg: dict) -> dict:
    """Padding and tasks/s of one epoch's first batches, with or without buckets."""
    from metarec.data.buckets import padding_cost

    _, enc, tasks = ml100k_tasks()
    learner = melu_learner(cfg["learner"], enc.spec, cfg["steps"])
    step = learner.make_train_function()
    source = tasks.training_batches(cfg["batch_size"], seed=0, bucket=cfg["bucket"])
    batches = [learner.prepare(b) for b in source]
    # Trace every distinct batch shape first: the timing is the steady state of later epochs.
    shapes = {tuple(b[1].shape): b for b in batches}
    elapsed = time_steps(step, [*shapes.values(), *batches], len(shapes))
    cost = padding_cost(tasks, cfg["batch_size"])
    rows = sum(int(b[1].shape[0] * b[1].shape[1]) for b in batches)
    return {**cfg, "tasks_per_s": sum(int(b[1].shape[0]) for b in batches) / elapsed,
            "padded_support_rows": rows, "real_support_rows": cost["real"],
            "saved_fraction": cost["saved"], "support_length": tasks.support_length}


def run_paths(cfg: dict) -> dict:
    """Tasks/s of the vectorized or the per-task-loop step (support <= 16, as in throughput)."""
    _, enc, tasks = ml100k_tasks(max_support=16)
    learner = melu_learner(cfg["learner"], enc.spec, cfg["steps"], vectorize=cfg["vectorize"])
    step = learner.make_train_function()
    batches = [learner.prepare(b) for b in tasks.batches(cfg["batch_size"], seed=0,
                                                         drop_remainder=True)]
    inputs = batches[:cfg["warmup"] + cfg["steps_measured"]]
    elapsed = time_steps(step, inputs, cfg["warmup"])
    return {**cfg, "tasks_per_s": (len(inputs) - cfg["warmup"]) * cfg["batch_size"] / elapsed}


RUNNERS = {"devices": run_devices, "data": run_data, "buckets": run_buckets, "paths": run_paths}


# ---------------------------------------------------------------------------- tables
def configurations(table: str, quick: bool) -> list[dict]:
    """The configurations of one table."""
    if table == "devices":
        return [{"learner": name, "steps": steps, "replicas": r, "batch_size": 32, "warmup": 3,
                 "steps_measured": 15}
                for name, steps in (("MAML", 1), ("Reptile", 5)) for r in (1, 2)]
    if table == "data":
        sizes = (1_000_000, 5_000_000) if quick else (1_000_000, 5_000_000, 25_000_000)
        out = [{"ratings": n, "items": 20_000, "builder": "TaskStream"} for n in sizes]
        out += [{"ratings": n, "items": 20_000, "builder": "build_tasks"}
                for n in (1_000_000, 5_000_000)]
        return out
    if table == "buckets":
        return [{"learner": "MAML", "steps": 1, "bucket": b, "batch_size": 32, "warmup": 3}
                for b in (False, True)]
    return [{"learner": name, "steps": steps, "vectorize": v, "batch_size": 32, "warmup": 2,
             "steps_measured": 6}
            for name, steps in (("MAML", 1), ("MAML", 5))
            for v in (True, False)]


def _load() -> float:
    return round(os.getloadavg()[0], 1)


def run_table(table: str, quick: bool) -> list[dict]:
    """Run every configuration of ``table`` in its own subprocess."""
    rows = []
    for cfg in configurations(table, quick):
        load = _load()
        row = run_isolated("benchmarks.scaling", [table, cfg])
        row["load_average"] = load
        rows.append(row)
        print(f"  {table}: {cfg} done", file=sys.stderr)
    return rows


def summarize(table: str, frame):
    """Add the ratios compared side by side (speed-up, cost per million ratings)."""
    if table == "devices":
        base = frame[frame.replicas == 1].set_index("learner")["tasks_per_s"]
        frame["speed vs 1 device"] = frame.tasks_per_s / frame.learner.map(base)
    elif table == "data":
        frame["construct_s_per_M"] = frame.construct_s / (frame.ratings_exact / 1e6)
        frame["generate_s_per_M"] = frame.generate_s / (frame.ratings_exact / 1e6)
    elif table == "buckets":
        base = frame[~frame.bucket]["tasks_per_s"].iloc[0]
        frame["speed vs padded"] = frame.tasks_per_s / base
    else:
        base = frame[frame.vectorize].set_index(["learner", "steps"])["tasks_per_s"]
        frame["speed vs vectorized"] = [r.tasks_per_s / base[(r.learner, r.steps)]
                                        for r in frame.itertuples()]
    return frame


COLUMNS = {
    "devices": ["learner", "steps", "replicas", "tasks_per_s", "speed vs 1 device",
                "bytes_per_step", "task_inner_steps_per_step", "load_average"],
    "data": ["builder", "ratings_exact", "users", "tasks", "generate_s", "construct_s",
             "construct_s_per_M", "epoch_batches_s", "peak_rss_mib", "load_average"],
    "buckets": ["bucket", "tasks_per_s", "speed vs padded", "padded_support_rows",
                "saved_fraction", "load_average"],
    "paths": ["learner", "steps", "vectorize", "tasks_per_s", "speed vs vectorized",
              "load_average"],
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=TABLES, nargs="+", help="run only these tables")
    parser.add_argument("--quick", action="store_true", help="data table up to 5M ratings")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of the CSV files")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        table, cfg = json.loads(args.one)
        print(json.dumps(RUNNERS[table](cfg)))
        return 0

    import pandas as pd

    from metarec.experiments.store import atomic_replace

    for table in args.only or TABLES:
        frame = summarize(table, pd.DataFrame(run_table(table, args.quick)))
        frame["cpu_cores"] = os.cpu_count()
        path = args.out / f"scaling-{table}.csv"
        atomic_replace(path, lambda p, f=frame: f.to_csv(p, index=False, float_format="%.4g"))
        print(f"\n{table} ({os.cpu_count()} CPU cores; load average per row; {path.name})\n")
        print(frame[COLUMNS[table]].to_markdown(index=False, floatfmt=".3g"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
