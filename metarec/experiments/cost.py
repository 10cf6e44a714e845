"""Compute cost of meta-training: time per step and peak memory, each setting in a subprocess.

Peak memory is the resident set size high-water mark (``VmHWM``) of a fresh Python
process that builds the model and runs the training steps, so settings do not share a
high-water mark. Time is wall-clock seconds per meta-training step after warm-up.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from collections.abc import Sequence

import pandas as pd


def peak_memory_mib() -> float:
    """This process's own peak resident memory in MiB.

    Linux's ``VmHWM`` is reset by ``exec``; ``ru_maxrss`` is inherited from the parent process
    (a notebook kernel that already used more memory would hide the child's own peak), so it is
    only the fallback where ``/proc`` is missing.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _measure(config: dict) -> dict:
    import keras

    from metarec.data import FeatureEncoder, build_tasks, cold_start_split, make_synthetic
    from metarec.experiments.methods import get_method

    ds = make_synthetic(seed=0)
    split = cold_start_split(ds, seed=0)
    enc = FeatureEncoder().fit(ds, split.train)
    tasks = build_tasks(split.train, enc, max_support=config["support"], seed=0)
    batch = tasks.batch(list(range(config["batch_size"])))
    method = get_method(config["method"]).with_(inner_steps=config["steps"])
    learner = method.build(enc.spec, seed=0)
    if "first_order" in config:
        learner.first_order = config["first_order"]
    keras.utils.set_random_seed(0)
    tensors = learner.prepare(batch)
    step = learner.make_train_function()
    for _ in range(2):
        step(tensors)
    start = time.perf_counter()
    for _ in range(config["repeats"]):
        float(step(tensors))
    seconds = (time.perf_counter() - start) / config["repeats"]
    return {**config, "seconds_per_step": seconds,
            "tasks_per_second": config["batch_size"] / seconds,
            "peak_memory_mib": peak_memory_mib()}


def measure_training_cost(method: str = "maml", steps: Sequence[int] = (1, 2, 3, 5),
                          first_order: Sequence[bool] = (False, True), batch_size: int = 32,
                          support: int = 20, repeats: int = 10) -> pd.DataFrame:
    """Seconds per meta-training step and peak memory against inner steps and order.

    Runs on synthetic tasks (support sets of at most ``support`` ratings, query sets of 10)
    with the network and learning rates of ``method`` (a :data:`~metarec.experiments.METHODS`
    key). One subprocess per setting.
    """
    rows = []
    for order in first_order:
        for k in steps:
            config = {"method": method, "steps": int(k), "first_order": bool(order),
                      "batch_size": batch_size, "support": support, "repeats": repeats}
            proc = subprocess.run([sys.executable, "-m", "metarec.experiments.cost",
                                   json.dumps(config)], capture_output=True, text=True,
                                  check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"cost measurement failed for {config}:\n"
                                   f"{proc.stderr[-2000:]}")
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    table = pd.DataFrame(rows)
    table["order"] = table["first_order"].map({True: "first order", False: "second order"})
    return table


if __name__ == "__main__":
    print(json.dumps(_measure(json.loads(sys.argv[1]))))
