"""Exactness of distributed meta-training: run by tests/distribute/test_distribute.py in a
subprocess.

    python tests/scripts/distribute_check.py mirrored OUT.json            # 2 logical CPU devices
    TF_CONFIG=... python tests/scripts/distribute_check.py multi-worker OUT.json   # one per worker

For each learner named (default: MAML second order, FOMAML, Reptile, Meta-SGD, MeLU, FineTune;
tests/distribute/test_distribute.py names the ones each strategy checks) one training
step on a global meta-batch of 5 tasks (split 2 + 3 over the two replicas) is taken under the
strategy, and the same step on one device from the same initial weights; the maximum absolute
weight difference, the size of the update and the two losses are written to OUT.json (by
worker 0 only). A subprocess because the logical devices and the multi-worker runtime must be
set up before TensorFlow initialises, which the pytest process has long done.
"""

from __future__ import annotations

import json
import sys
import time

import metarec  # noqa: F401  (quiet TensorFlow logs, before tensorflow)
from metarec import distribute

LEARNERS = ("MAML", "FOMAML", "Reptile", "MetaSGD", "MeLU", "FineTune")


def main(mode: str, out: str, learners: tuple[str, ...] = LEARNERS) -> int:
    """Run the checks; returns the exit code."""
    started = time.perf_counter()
    strategy = distribute.make_strategy("multi-worker" if mode == "multi-worker" else "mirrored",
                                        devices=2 if mode == "mirrored" else None)
    import keras
    import numpy as np

    from metarec import meta
    from metarec.data import FeatureEncoder, build_tasks, make_synthetic
    from metarec.models import MeLUNetwork

    ds = make_synthetic(n_users=40, n_items=60, ratings_per_user=(14, 30), seed=3)
    enc = FeatureEncoder().fit(ds, ds.ratings)
    tasks = build_tasks(ds.ratings, enc, min_ratings=14, max_ratings=30, seed=0)[:5]

    def make(name: str):
        keras.utils.set_random_seed(0)
        model = MeLUNetwork(enc.spec, embedding_dim=4, hidden_units=(8,))
        kwargs = {"inner_steps": 2, "inner_lr": 0.05}
        if name == "MeLU":
            kwargs["inner_lr"] = 0.05
        learner = getattr(meta, name)(model, **kwargs)
        learner.compile(keras.optimizers.SGD(0.5))
        return learner

    def variables(learner):
        return list(learner.model.trainable_variables) + list(learner.extra_variables)

    results = {"replicas": strategy.num_replicas_in_sync, "learners": {}}
    for name in learners:
        tick = time.perf_counter()
        with strategy.scope():
            learner = make(name)
        learner.build(tasks, strategy)  # mirrored model, Meta-SGD's rates, optimizer slots
        # One meta-batch of all 5 tasks, not shuffled: the same batch on both sides.
        start = [v.numpy().copy() for v in variables(learner)]
        # MeLU: no strategy= and outside the scope; fit finds the learner's own strategy.
        history = learner.fit(tasks, epochs=1, batch_size=5, shuffle=False, verbose=0,
                              strategy=None if name == "MeLU" else strategy)
        after = [v.numpy() for v in variables(learner)]

        reference = make(name)  # outside the scope: plain variables, one device
        reference.prepare(tasks.batch([0]))
        for var, value in zip(variables(reference), start, strict=True):
            var.assign(value)
        ref_history = reference.fit(tasks, epochs=1, batch_size=5, shuffle=False, verbose=0)
        expected = [v.numpy() for v in variables(reference)]
        results["learners"][name] = {
            "max_abs_diff": max(float(np.max(np.abs(a - b)))
                                for a, b in zip(after, expected, strict=True)),
            "max_update": max(float(np.max(np.abs(a - b)))
                              for a, b in zip(expected, start, strict=True)),
            "loss": history.history["loss"][0],
            "reference_loss": ref_history.history["loss"][0],
            "seconds": time.perf_counter() - tick,
        }
    results["seconds"] = time.perf_counter() - started
    if distribute.is_chief(strategy):
        with open(out, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2],
                  tuple(sys.argv[3].split(",")) if len(sys.argv) > 3 else LEARNERS))
