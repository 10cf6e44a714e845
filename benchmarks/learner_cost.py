"""CPU time per epoch of chapter 5's five learners (FineTune, MAML, FOMAML, Meta-SGD, Reptile).

    python -m benchmarks.learner_cost                                   # print the table
    python -m benchmarks.learner_cost --out book/results/learner-cost.csv   # and store it

Chapter 5's setting: ``make_synthetic(seed=0)``, its cold-start split and tasks (seed 0), the
training tasks cut to whole meta-batches of 32, the MeLU network with embeddings of 16 and
decision layers (32, 32), Adam 1e-3, inner rate 0.01, one inner step (Reptile three). Every
learner first trains one epoch (its CPU seconds include tracing the training step); then
``--rounds`` rounds of one more epoch per learner, interleaved (FineTune, MAML, ..., Reptile,
then again), keep each learner's fastest epoch, in CPU seconds (``time.process_time``, all
threads of the process) and wall seconds.

Run it on a quiet machine: a loaded machine inflates CPU seconds too (TensorFlow's worker
threads spin while they wait for a core). The chapter asserts its statements about cost on the
stored table and shows its own live run beside it, re-checked only with wide margins.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BATCH = 32
LEARNERS = ("FineTune", "MAML", "FOMAML", "Meta-SGD", "Reptile")


def measure(rounds: int = 5) -> pd.DataFrame:
    """One row per learner: first-epoch CPU seconds and the fastest later epoch (CPU, wall)."""
    import keras
    import pandas as pd

    from metarec.data import FeatureEncoder, cold_start_split, make_synthetic, scenario_tasks
    from metarec.meta import FOMAML, MAML, FineTune, MetaSGD, Reptile
    from metarec.models import MeLUNetwork

    ds = make_synthetic(seed=0)
    split = cold_start_split(ds, seed=0)
    encoder = FeatureEncoder().fit(ds, split.train)
    tasks = scenario_tasks(split, encoder, seed=0)
    train = tasks["train"].subset(range(len(tasks["train"]) // BATCH * BATCH))
    classes = {"FineTune": (FineTune, 1), "MAML": (MAML, 1), "FOMAML": (FOMAML, 1),
               "Meta-SGD": (MetaSGD, 1), "Reptile": (Reptile, 3)}

    def one_epoch(learner) -> tuple[float, float]:
        cpu, wall = time.process_time(), time.perf_counter()
        learner.fit(train, epochs=1, batch_size=BATCH, verbose=0)
        return time.process_time() - cpu, time.perf_counter() - wall

    learners, first = {}, {}
    for name in LEARNERS:
        keras.utils.set_random_seed(0)
        cls, steps = classes[name]
        net = MeLUNetwork(encoder.spec, embedding_dim=16, hidden_units=(32, 32))
        learner = cls(net, inner_lr=1e-2, inner_steps=steps)
        learner.compile(keras.optimizers.Adam(1e-3))
        first[name], _ = one_epoch(learner)
        learners[name] = learner
    cpu = {name: [] for name in LEARNERS}
    wall = {name: [] for name in LEARNERS}
    for _ in range(rounds):
        for name, learner in learners.items():
            c, w = one_epoch(learner)
            cpu[name].append(c)
            wall[name].append(w)
    table = pd.DataFrame({
        "learner": list(LEARNERS),
        "tasks": len(train),
        "rounds": rounds,
        "cpu_seconds_per_epoch": [min(cpu[n]) for n in LEARNERS],
        "wall_seconds_per_epoch": [min(wall[n]) for n in LEARNERS],
        "cpu_seconds_first_epoch": [first[n] for n in LEARNERS],
    })
    fomaml = table.loc[table["learner"] == "FOMAML", "cpu_seconds_per_epoch"].iloc[0]
    table["cpu_relative_to_fomaml"] = table["cpu_seconds_per_epoch"] / fomaml
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timed rounds")
    parser.add_argument("--out", type=Path, help="also write the rows to this CSV file")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    from metarec.experiments.store import write_frame

    table = measure(args.rounds)
    if args.out is not None:
        write_frame(table, args.out)
    print(table.drop(columns=["tasks", "rounds"]).to_markdown(index=False, floatfmt=".2f"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
