"""Time per meta-training step and peak memory of MAML against inner steps, both orders.

    python -m benchmarks.training_cost                                  # print the table
    python -m benchmarks.training_cost --out book/results/training-cost.csv   # and store it

The measurement of chapter 12's "compute cost of the inner loop": for every number of inner
steps ``k`` in ``--steps`` and for second- and first-order MAML,
:func:`metarec.experiments.measure_training_cost` starts a fresh Python process, builds the
MeLU network with the ``maml`` recipe's learning rates, takes two warm-up steps (tracing is not
counted) and times ``--repeats`` meta-training steps on a meta-batch of 32 synthetic tasks
(support sets of at most 20 ratings); peak memory is that process's resident high-water mark.

The chapter plots the stored table and re-checks two settings live with wide margins: live
timings move with the machine's load, so no timing is asserted against a tight bound.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

STEPS = (1, 2, 4, 8)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, nargs="+", default=list(STEPS),
                        help="inner steps to measure (default: 1 2 4 8)")
    parser.add_argument("--repeats", type=int, default=10, help="timed steps per setting")
    parser.add_argument("--out", type=Path, help="also write the rows to this CSV file")
    args = parser.parse_args(argv)
    if args.repeats < 1 or any(k < 1 for k in args.steps):
        parser.error("--repeats and every --steps value must be at least 1")

    from metarec.experiments import measure_training_cost
    from metarec.experiments.store import write_frame

    cost = measure_training_cost(method="maml", steps=args.steps, first_order=(False, True),
                                 repeats=args.repeats)
    table = cost[["order", "steps", "batch_size", "support", "repeats", "seconds_per_step",
                  "tasks_per_second", "peak_memory_mib"]]
    if args.out is not None:
        write_frame(table, args.out)
    shown = table.assign(ms_per_step=1000 * table["seconds_per_step"])
    print(shown[["order", "steps", "ms_per_step", "tasks_per_second", "peak_memory_mib"]]
          .to_markdown(index=False, floatfmt=".1f"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
