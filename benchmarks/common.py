"""What the benchmarks share: the tasks, the learners, the timing and the subprocess runner.

Both :mod:`benchmarks.throughput` and :mod:`benchmarks.scaling` time the package's own
training step -- ``learner.make_train_function()``, i.e. ``MetaLearner.train_step`` run by
``strategy.run`` as ``fit`` runs it -- on MovieLens 100K meta-training tasks (synthetic tasks of
the same shapes when the data is not available) with the MeLU network, each configuration in a
fresh subprocess so that its peak memory is its own.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent


def ml100k_tasks(max_support: int | None = None,
                 synthetic: bool = False) -> tuple[str, Any, Any]:
    """``(dataset name, encoder, TaskSet)``: the meta-training users of MovieLens 100K.

    Split and tasks with seed 0 (MeLU protocol; support sets capped at ``max_support``). Without
    the data (no download here), or with ``synthetic``, synthetic ratings of the same size
    stand in.
    """
    from metarec.data import (
        DataError,
        FeatureEncoder,
        build_tasks,
        cold_start_split,
        load_movielens,
        make_synthetic,
    )

    ds = None
    if not synthetic:
        try:
            ds = load_movielens("ml-100k", download=False)
        except DataError:
            pass
    if ds is None:
        ds = make_synthetic(n_users=943, n_items=1682, seed=0)
    split = cold_start_split(ds, seed=0)
    enc = FeatureEncoder().fit(ds, split.train)
    return ds.name, enc, build_tasks(split.train, enc, max_support=max_support, seed=0)


def melu_learner(name: str, spec: Any, inner_steps: int, *, vectorize: bool = True,
                 reptile_sgd: bool = True, jit_compile: bool = False) -> Any:
    """A compiled learner ``name`` (a :mod:`metarec.meta` class) on a seeded MeLU network.

    Inner learning rate 1e-3; outer optimizer Adam(1e-4), or SGD(1e-3) for Reptile when
    ``reptile_sgd`` (its default rule); ``jit_compile``: XLA.
    """
    import keras

    from metarec import meta
    from metarec.models import MeLUNetwork

    keras.utils.set_random_seed(0)
    learner = getattr(meta, name)(MeLUNetwork(spec), inner_lr=1e-3, inner_steps=inner_steps,
                                  vectorize=vectorize, jit_compile=jit_compile)
    learner.compile(keras.optimizers.SGD(1e-3) if name == "Reptile" and reptile_sgd
                    else keras.optimizers.Adam(1e-4))
    return learner


def time_steps(step: Callable[[Any], Any], inputs: Sequence[Any], warmup: int) -> float:
    """Seconds taken by ``step(x)`` for ``x`` in ``inputs[warmup:]``, after ``inputs[:warmup]``.

    The warm-up steps trace and compile; every step's result is read back (``float``), so the
    time includes the whole step.
    """
    for x in inputs[:warmup]:
        float(step(x))
    start = time.perf_counter()
    for x in inputs[warmup:]:
        float(step(x))
    return time.perf_counter() - start


def peak_memory_mib() -> float:
    """Peak resident memory of this process in MiB (``VmHWM``, else ``ru_maxrss``)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_isolated(module: str, payload: Any, timeout: float = 3600) -> dict:
    """Run ``python -m module --one JSON(payload)`` in a fresh process; its last stdout line
    is the JSON result. Stops with the subprocess's error output when it fails."""
    proc = subprocess.run([sys.executable, "-m", module, "--one", json.dumps(payload)],
                          capture_output=True, text=True, check=False, cwd=ROOT,
                          timeout=timeout)
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"benchmark configuration failed: {module} {payload}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
