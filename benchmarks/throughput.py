"""Meta-training throughput and peak memory of the meta-learners, side by side in one run.

    python -m benchmarks.throughput            # full table (a few minutes on 2 cores)
    python -m benchmarks.throughput --quick    # inner steps 1 only
    python -m benchmarks.throughput --xla      # graph mode vs XLA (jit_compile=True)
    python -m benchmarks.throughput --xla --quick   # the same, 2 blocks of 4 steps

Setting: the MeLU network on ml-100k-sized tasks (MovieLens 100K meta-training users when the
data is available, else synthetic tasks of the same shapes): meta-batch 32, support sets of at
most 16 ratings, query sets of 10. Each configuration runs in a fresh subprocess so that its
peak resident memory (``ru_maxrss``) is its own; throughput is meta-training tasks per second
over ``--steps`` compiled training steps after warm-up (setup shared with
:mod:`benchmarks.scaling` in :mod:`benchmarks.common`).

Implementations compared:

* ``vectorized``: the package's path, the public training step
  (``learner.make_train_function()``: ``MetaLearner.train_step`` under ``strategy.run``, as
  ``fit`` runs it; ``tf.vectorized_map`` over tasks in one ``tf.function``);
* ``per-task loop``: the same learner with ``vectorize=False`` (an unrolled per-task loop
  inside one ``tf.function``);
* ``eager loop``: a plain per-task Python loop in eager mode, written the way most public
  TensorFlow MAML code does it (no ``tf.function``; the reference point for "naive" code);
* ``hand-written``: a hand-vectorized MAML of the MeLU network in raw TensorFlow (embeddings
  shared, decision weights tiled per task), the speed a specialised implementation gets.

``--xla`` prints another table (issue 21): the package's training step in graph mode and with
``jit_compile=True`` side by side, on MovieLens 100K tasks and on synthetic tasks of the same
size (``make_synthetic(943 users, 1682 items)``), for MAML with 1 and 5 inner steps,
first-order MAML, Meta-SGD, Reptile (5 steps) and the MeLU recipe (MAML on the decision
layers), each with a fresh learner; ``first call`` is the time of the first step (tracing, and
XLA's compilation: the compile cost), ``tasks/s`` the rate over distinct meta-batches of one
shape after warm-up, the two modes taking turns in blocks of steps (a load that changes
during the run affects both alike). Each data set runs in its own process.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from benchmarks.common import melu_learner, ml100k_tasks, peak_memory_mib, run_isolated, time_steps

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

LEARNERS = ["MAML", "FOMAML", "MetaSGD", "MeLU", "Reptile"]


def _eager_loop_step(learner, batch, optimizer) -> float:
    """One MAML step as typical public code writes it: eager, one task at a time."""
    import tensorflow as tf

    variables = learner.model.trainable_variables
    adapt = set(learner._adapt_idx)
    first_order = getattr(learner, "first_order", False)
    with tf.GradientTape() as outer:
        theta = [tf.convert_to_tensor(v) for v in variables]
        outer.watch(theta)
        total = 0.0
        for i in range(len(batch.support_y)):
            sx = {k: tf.constant(v[i]) for k, v in batch.support_x.items()}
            qx = {k: tf.constant(v[i]) for k, v in batch.query_x.items()}
            fast = list(theta)
            for _ in range(learner.inner_steps):
                with tf.GradientTape() as inner:
                    inner.watch(fast)
                    pred, _ = learner.model.stateless_call(fast, [], sx)
                    loss = tf.reduce_sum(batch.support_mask[i] * (pred - batch.support_y[i]) ** 2)
                    loss = loss / batch.support_mask[i].sum()
                grads = inner.gradient(loss, fast)
                fast = [
                    w - learner.inner_lr * (tf.stop_gradient(tf.convert_to_tensor(g))
                                            if first_order else tf.convert_to_tensor(g))
                    if j in adapt and g is not None else w
                    for j, (w, g) in enumerate(zip(fast, grads, strict=True))
                ]
            pred, _ = learner.model.stateless_call(fast, [], qx)
            qloss = tf.reduce_sum(batch.query_mask[i] * (pred - batch.query_y[i]) ** 2)
            total += qloss / batch.query_mask[i].sum()
        meta_loss = total / len(batch.support_y)
    grads = outer.gradient(meta_loss, theta)
    optimizer.apply(grads, variables)
    return float(meta_loss)


def _hand_written_step_fn(model, inner_lr: float, steps: int, first_order: bool, optimizer):
    """Hand-vectorized MAML of the MeLU network: decision weights tiled to ``[T, ...]``."""
    import tensorflow as tf

    emb_vars = [v for v in model.trainable_variables if "decision" not in v.path]
    dec_vars = [v for v in model.trainable_variables if "decision" in v.path]

    def mlp(w, h):
        # w = [W0, b0, W1, b1, W2, b2], each with a leading task axis.
        for layer in range(0, len(w) - 2, 2):
            h = tf.nn.relu(tf.matmul(h, w[layer]) + w[layer + 1][:, None])
        return tf.squeeze(tf.matmul(h, w[-2]) + w[-1][:, None], -1)

    @tf.function
    def step(sx, sy, sm, qx, qy, qm):
        with tf.GradientTape() as outer:
            outer.watch([tf.convert_to_tensor(v) for v in dec_vars])
            t = tf.shape(sy)[0]

            def embed(x):
                flat = {k: tf.reshape(v, tf.concat([[-1], tf.shape(v)[2:]], 0))
                        for k, v in x.items()}
                e = model.embed(flat)
                return tf.reshape(e, [t, -1, e.shape[-1]])

            hs, hq = embed(sx), embed(qx)
            fast = [tf.tile(v[None], [t] + [1] * len(v.shape)) for v in dec_vars]
            for _ in range(steps):
                with tf.GradientTape() as inner:
                    inner.watch(fast)
                    err = sm * (mlp(fast, hs) - sy) ** 2
                    loss = tf.reduce_sum(tf.reduce_sum(err, 1) / tf.reduce_sum(sm, 1))
                grads = inner.gradient(loss, fast)
                if first_order:
                    grads = [tf.stop_gradient(g) for g in grads]
                fast = [w - inner_lr * g for w, g in zip(fast, grads, strict=True)]
            qerr = qm * (mlp(fast, hq) - qy) ** 2
            meta_loss = tf.reduce_mean(tf.reduce_sum(qerr, 1) / tf.reduce_sum(qm, 1))
        variables = emb_vars + dec_vars
        grads = outer.gradient(meta_loss, variables)
        optimizer.apply(grads, variables)
        return meta_loss

    return step


def run_one(config: dict) -> dict:
    """Measure one configuration (called in a fresh subprocess)."""
    import keras
    import tensorflow as tf

    dataset, enc, tasks = ml100k_tasks(max_support=16)
    batch = tasks.batch(list(range(config["batch_size"])))
    impl, name, steps = config["impl"], config["learner"], config["steps"]
    # Adam for every learner here (Reptile too): the same outer update in every implementation.
    learner = melu_learner(name, enc.spec, steps, vectorize=impl != "per-task loop",
                           reptile_sgd=False)
    tensors = learner.prepare(batch)
    if impl in ("vectorized", "per-task loop"):
        step, inputs = learner.make_train_function(), tensors
    elif impl == "eager loop":
        opt = keras.optimizers.Adam(1e-4)

        def step(batch):
            return _eager_loop_step(learner, batch, opt)
        inputs = batch
    else:  # hand-written
        hw = _hand_written_step_fn(learner.model, learner.inner_lr, steps,
                                   getattr(learner, "first_order", False),
                                   keras.optimizers.Adam(1e-4))
        args = [tf.constant(a) if not isinstance(a, dict) else
                {k: tf.constant(v) for k, v in a.items()} for a in batch.as_tuple()]

        def step(args):
            return hw(*args)
        inputs = args

    n = config["steps_measured"] if impl != "eager loop" else max(2, config["steps_measured"] // 5)
    elapsed = time_steps(step, [inputs] * (config["warmup"] + n), config["warmup"])
    return {
        **config,
        "dataset": dataset,
        "tasks_per_s": n * config["batch_size"] / elapsed,
        "peak_rss_mib": peak_memory_mib(),
    }


#: The learners of the graph-vs-XLA table: (label, class name, inner steps).
XLA_LEARNERS = [("MAML", "MAML", 1), ("MAML", "MAML", 5), ("FOMAML", "FOMAML", 1),
                ("MetaSGD", "MetaSGD", 1), ("Reptile", "Reptile", 5), ("MeLU", "MeLU", 1)]


def run_xla_group(config: dict) -> list[dict]:
    """Every learner of :data:`XLA_LEARNERS` on one data set, graph mode and XLA (one process).

    For each learner a graph-mode and an XLA learner are built and called once (the first call
    is timed: tracing, plus compilation under XLA); then the modes take turns in ``rounds``
    blocks of ``warmup`` untimed and ``steps_measured`` timed steps, so that a change in the
    machine's load affects both modes alike. (The first graph-mode steps right after XLA steps
    were several times slower in one test, hence the untimed steps of every block.)
    """
    import time

    dataset, enc, tasks = ml100k_tasks(max_support=16, synthetic=config["synthetic"])
    size, warmup, k = config["batch_size"], config["warmup"], config["steps_measured"]
    batches = [tasks.batch([(i * size + j) % len(tasks) for j in range(size)])
               for i in range(1 + warmup + k)]
    rows = []
    for label, name, steps in XLA_LEARNERS:
        modes = {}
        for jit in (False, True):
            learner = melu_learner(name, enc.spec, steps, jit_compile=jit)
            inputs = [learner.prepare(b) for b in batches]
            step = learner.make_train_function()
            start = time.perf_counter()
            float(step(inputs[0]))
            modes[jit] = {"step": step, "inputs": inputs[1:],
                          "first": time.perf_counter() - start, "elapsed": 0.0}
        for _ in range(config["rounds"]):
            for mode in modes.values():
                mode["elapsed"] += time_steps(mode["step"], mode["inputs"], warmup)
        for jit, mode in modes.items():
            rows.append({"data": "synthetic" if config["synthetic"] else dataset,
                         "learner": label, "steps": steps, "mode": "XLA" if jit else "graph",
                         "tasks_per_s": k * config["rounds"] * size / mode["elapsed"],
                         "first_call_s": mode["first"]})
    return rows


def xla_table(quick: bool, batch_size: int, steps_measured: int) -> Any:
    """Graph mode vs XLA, one row per (data set, learner): tasks/s, ratio, first-call seconds."""
    import pandas as pd

    rows = []
    for synthetic in (False, True):
        config = {"xla": True, "synthetic": synthetic, "batch_size": batch_size,
                  "warmup": 2 if quick else 3, "rounds": 2 if quick else 4,
                  "steps_measured": 4 if quick else max(1, steps_measured // 4)}
        rows += run_isolated("benchmarks.throughput", config)["rows"]
        print(f"  {'synthetic' if synthetic else 'ml-100k'}: done", file=sys.stderr)
    long = pd.DataFrame(rows)
    wide = long.pivot_table(index=["data", "learner", "steps"], columns="mode",
                            values=["tasks_per_s", "first_call_s"], sort=False)
    table = pd.DataFrame({
        "graph tasks/s": wide[("tasks_per_s", "graph")],
        "XLA tasks/s": wide[("tasks_per_s", "XLA")],
        "XLA / graph": wide[("tasks_per_s", "XLA")] / wide[("tasks_per_s", "graph")],
        "graph first call (s)": wide[("first_call_s", "graph")],
        "XLA first call (s)": wide[("first_call_s", "XLA")],
    }).reset_index()
    return table


def configurations(quick: bool, batch_size: int, steps_measured: int) -> list[dict]:
    inner_steps = [1] if quick else [1, 3, 5]
    out = []
    for steps in inner_steps:
        for name in LEARNERS:
            impls = ["vectorized", "per-task loop"]
            if name in ("MAML", "FOMAML"):
                impls += ["eager loop"]
            if name in ("MeLU",):
                impls += ["hand-written"]
            for impl in impls:
                out.append({"learner": name, "impl": impl, "steps": steps,
                            "batch_size": batch_size, "warmup": 3,
                            "steps_measured": steps_measured})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="inner steps 1 only")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20, help="measured training steps")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--xla", action="store_true",
                        help="graph mode vs XLA (jit_compile=True), ML-100K and synthetic tasks")
    args = parser.parse_args(argv)
    if args.one:
        config = json.loads(args.one)
        result = {"rows": run_xla_group(config)} if config.get("xla") else run_one(config)
        print(json.dumps(result))
        return 0

    import pandas as pd

    if args.xla:
        table = xla_table(args.quick, args.batch_size, args.steps)
        print(f"\nMeta-training throughput, graph mode vs XLA, MeLU network, meta-batch "
              f"{args.batch_size}, support <= 16, query 10, {os.cpu_count()} CPU cores\n")
        print(table.to_markdown(index=False, floatfmt=".2f"))
        if args.json:
            table.to_json(args.json, orient="records", indent=1)
        return 0

    rows = []
    for config in configurations(args.quick, args.batch_size, args.steps):
        rows.append(run_isolated("benchmarks.throughput", config))
        print(f"  {config['learner']:8s} {config['impl']:14s} steps={config['steps']} "
              f"{rows[-1]['tasks_per_s']:8.0f} tasks/s", file=sys.stderr)
    table = pd.DataFrame(rows)
    base = table[table.impl == "vectorized"].set_index(["learner", "steps"])["tasks_per_s"]
    table["speed vs vectorized"] = [
        r.tasks_per_s / base[(r.learner, r.steps)] for r in table.itertuples()
    ]
    order = ["learner", "steps", "impl", "tasks_per_s", "speed vs vectorized", "peak_rss_mib"]
    print(f"\nMeta-training throughput, MeLU network, {rows[0]['dataset']} tasks, meta-batch "
          f"{args.batch_size}, support <= 16, query 10, {os.cpu_count()} CPU cores\n")
    print(table[order].to_markdown(index=False, floatfmt=".2f"))
    if args.json:
        table.to_json(args.json, orient="records", indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
