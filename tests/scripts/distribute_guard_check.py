"""A NaN step under MirroredStrategy (2 logical CPU devices) and on one device.

    python tests/scripts/distribute_guard_check.py OUT.json [REPLICAS]   # REPLICAS: 1,2 (default)

Run by tests/distribute/test_distribute_guard.py in a subprocess (logical devices must be configured
before TensorFlow initialises). For MAML and Reptile (the two kinds of outer step), with a
NaN rating in the chunk of replica 0 and in the chunk of replica 1:

* ``fit`` on the poisoned tasks must raise ``FloatingPointError`` saying the step was not
  applied, and every model weight, learner variable and optimizer variable (step counter and
  slots) must be exactly as before, and finite;
* ``KeepBestWeights`` must restore the best epoch's weights on the way out of that error.

The same checks run on one device (``REPLICAS`` 1), so both paths can be held to the same
guarantee. Writes one record per (device count, learner, poisoned task) to OUT.json.
"""

from __future__ import annotations

import json
import sys

import metarec  # noqa: F401  (quiet TensorFlow logs, before tensorflow)
from metarec import distribute


def main(out: str, replica_counts: tuple[int, ...] = (1, 2)) -> int:
    """Run the checks for each device count in ``replica_counts``; returns the exit code."""
    strategy = distribute.make_strategy("mirrored", devices=2)
    import keras
    import numpy as np

    from metarec import meta
    from metarec.data import FeatureEncoder, build_tasks, make_synthetic
    from metarec.experiments import KeepBestWeights
    from metarec.models import MeLUNetwork

    ds = make_synthetic(n_users=40, n_items=60, ratings_per_user=(14, 30), seed=3)
    enc = FeatureEncoder().fit(ds, ds.ratings)
    tasks = build_tasks(ds.ratings, enc, min_ratings=14, max_ratings=30, seed=0)[:8]
    validation = build_tasks(ds.ratings, enc, min_ratings=14, max_ratings=30, seed=1)[8:12]

    def make(name: str):
        keras.utils.set_random_seed(0)
        model = MeLUNetwork(enc.spec, embedding_dim=4, hidden_units=(8,))
        learner = getattr(meta, name)(model, inner_steps=2, inner_lr=0.05)
        learner.compile(keras.optimizers.Adam(1e-2))  # slots: the moments
        return learner

    def state(learner):
        return [v.numpy() for v in [*learner.model.weights, *learner.extra_variables,
                                    *learner.optimizer.variables]]

    def poisoned(task: int):
        bad = tasks.subset(range(len(tasks)))
        bad._qy = bad._qy.copy()
        bad._qy[task, 0] = np.nan
        return bad

    def fresh(name: str, replicas: int):
        if replicas == 1:
            return make(name)
        with strategy.scope():
            return make(name)

    results = []
    for replicas in replica_counts:
        fit_strategy = strategy if replicas == 2 else None
        for name in ("MAML", "Reptile"):
            learner = fresh(name, replicas)
            learner.fit(tasks, epochs=1, batch_size=8, verbose=0, strategy=fit_strategy)
            before = state(learner)
            iterations = int(learner.optimizer.iterations.numpy())
            for task in (0, len(tasks) - 1):  # meta-batch of 8: replica 0's and 1's chunk
                record = {"replicas": replicas, "learner": name, "task": task}
                try:
                    learner.fit(poisoned(task), epochs=1, batch_size=8, shuffle=False,
                                verbose=0, strategy=fit_strategy)
                    record["error"] = None
                except FloatingPointError as err:
                    record["error"] = str(err)
                after = state(learner)
                record["unchanged"] = all(np.array_equal(a, b)
                                          for a, b in zip(before, after, strict=True))
                record["finite"] = all(np.isfinite(a).all() for a in after)
                record["iterations_kept"] = (int(learner.optimizer.iterations.numpy())
                                             == iterations)
                results.append(record)
                print(json.dumps(record), file=sys.stderr)

            # KeepBestWeights on the way out of the error: epoch 2 diverges (replica 1's chunk).
            learner = fresh(name, replicas)
            best = KeepBestWeights(learner)
            train = tasks.subset(range(len(tasks)))

            class PoisonAfterFirstEpoch(keras.callbacks.Callback):
                def on_epoch_end(self, epoch, logs=None, train=train):
                    train._qy = train._qy.copy()
                    train._qy[-1, 0] = np.nan

            record = {"replicas": replicas, "learner": name, "task": "keep_best"}
            try:
                learner.fit(train, epochs=3, batch_size=8, shuffle=False, verbose=0,
                            validation_tasks=validation, strategy=fit_strategy,
                            callbacks=[best, PoisonAfterFirstEpoch()])
                record["error"] = None
            except FloatingPointError as err:
                record["error"] = str(err)
            restored = [v.numpy() for v in best._variables()]
            record["best_saved"] = best.weights is not None
            record["best_restored"] = best.weights is not None and all(
                np.array_equal(a, b) for a, b in zip(best.weights, restored, strict=True))
            record["best_finite"] = all(np.isfinite(w).all() for w in restored)
            results.append(record)
            print(json.dumps(record), file=sys.stderr)
    with open(out, "w") as f:
        json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], tuple(int(n) for n in sys.argv[2].split(","))
                  if len(sys.argv) > 2 else (1, 2)))
