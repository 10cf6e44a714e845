"""``python -m metarec train``: meta-train one method on one or several devices or machines.

The same run on one device or under a ``tf.distribute`` strategy writes the same files::

    OUT/learner/          the trained learner (MetaLearner.save; load with load_learner)
    OUT/history.csv       one row per epoch: loss, val_mae, val_rmse, val_ndcg@k
    OUT/results.csv       one row per scenario: MAE, RMSE, nDCG@1, nDCG@3 after adaptation
    OUT/run.json          method, dataset and data source (official release with its checksum,
                          or the custom --data-path folder and the sha256 of its rating
                          file), seed, strategy, replicas, training time

Examples::

    python -m metarec train maml --dataset ml-100k --out runs/maml                # one device
    python -m metarec train maml --strategy mirrored --out runs/maml-gpus         # all GPUs
    python -m metarec train maml --strategy mirrored --devices 2 --out runs/cpu2  # 2 CPU replicas
    TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]},
                "task": {"type": "worker", "index": 0}}' \\
        python -m metarec train maml --strategy multi-worker --out runs/maml-2hosts

With ``--strategy multi-worker`` each worker first waits for the others named in ``TF_CONFIG``
(``--peer-timeout`` seconds, 300 by default): one that does not come ends the run with one
``error:`` line naming it (exit status 1) instead of TensorFlow's silent wait; Ctrl-C or SIGTERM
end the wait at once (exit status 130 or 143).

Training is :func:`metarec.experiments.train_method`, the core of every study (early stopping
on the validation users' MAE, the best epoch's weights restored), here with the model, learner
and optimizer created inside ``strategy.scope()``; the files are stored with
:mod:`metarec.experiments.store` (checked before training, written atomically, another run's
files replaced only with ``--overwrite``; a lock file refuses a second run into the same
``--out`` while the first is writing it). With several workers, every worker runs the same
command and only worker 0 writes files.

Why this module stands apart from :mod:`metarec.experiments`: a study loops over seeds and
methods and writes tables of results; ``train`` trains *one* method once, on any number of
devices or machines, and keeps the trained learner (to load with
:func:`~metarec.meta.load_learner`, adapt to users, serve). It is the top-level command of that
job, as :mod:`metarec.cli` is of ``data``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from metarec.cli_types import at_least, positive_float
from metarec.experiments.store import (
    atomic_replace,
    keep_previous,
    output_lock,
    write_frame,
    write_text,
)

__all__ = ["DEFAULT_PEER_TIMEOUT", "OUTPUT_FILES", "STRATEGIES", "PeersMissing",
           "register_train_commands", "run_training"]

#: Strategy names of ``--strategy`` and :func:`metarec.distribute.make_strategy` (which imports
#: them from here: building the command line must not import TensorFlow).
STRATEGIES = ("default", "mirrored", "multi-worker")

#: Seconds a multi-worker run waits for the other workers of ``TF_CONFIG`` (``--peer-timeout``,
#: :func:`metarec.distribute.make_strategy`'s ``peer_timeout``).
DEFAULT_PEER_TIMEOUT = 300.0


class PeersMissing(RuntimeError):
    """A worker of ``TF_CONFIG``'s cluster did not come within the peer timeout (or this
    worker's own port is taken): the command line's exit status 1. Defined here, not in
    :mod:`metarec.distribute`, because the command line must not import TensorFlow."""


#: What a run writes into its output folder.
OUTPUT_FILES = ("learner", "history.csv", "results.csv", "run.json")


def register_train_commands(subparsers: Any) -> None:
    """Add ``train`` to the top-level command line (see the module docstring)."""
    p = subparsers.add_parser(
        "train", help="meta-train one method (one device, several GPUs or several machines)",
        description="Meta-train one method of `experiment list` on a dataset, on one device or "
                    "under a tf.distribute strategy, and write OUT/learner, OUT/history.csv, "
                    "OUT/results.csv and OUT/run.json.")
    p.add_argument("method", help="a method name (see `python -m metarec experiment list`)")
    p.add_argument("--dataset", default="ml-100k", help="synthetic, ml-100k or ml-1m")
    p.add_argument("--data-path", type=Path, help="a custom folder in MovieLens format")
    p.add_argument("--seed", type=at_least(0), default=0,
                   help="split, initialisation and task order")
    p.add_argument("--epochs", type=at_least(1), help="override the method's epochs")
    p.add_argument("--batch-size", type=at_least(1), default=32,
                   help="global meta-batch (all replicas)")
    p.add_argument("--patience", type=at_least(0), default=3,
                   help="early-stopping patience (epochs)")
    p.add_argument("--strategy", choices=STRATEGIES, default="default",
                   help="default: one device; mirrored: every GPU of this machine (or the "
                        "--devices logical CPUs); multi-worker: the machines named in TF_CONFIG")
    p.add_argument("--devices", type=at_least(1),
                   help="mirrored without GPUs: split the CPU into this many logical devices")
    p.add_argument("--peer-timeout", type=positive_float, default=DEFAULT_PEER_TIMEOUT,
                   metavar="SECONDS",
                   help="multi-worker: how long to wait for the other workers of TF_CONFIG "
                        "before giving up with an error naming them (default: %(default)g)")
    p.add_argument("--bucket", action="store_true",
                   help="group tasks by support size (each meta-batch pads to its own longest)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace the files of another run")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> int:
    run = run_training(args.method, args.out, dataset=args.dataset, data_path=args.data_path,
                       seed=args.seed, epochs=args.epochs, batch_size=args.batch_size,
                       patience=args.patience, strategy=args.strategy, devices=args.devices,
                       bucket=args.bucket, overwrite=args.overwrite,
                       peer_timeout=args.peer_timeout)
    if run["wrote"]:
        from metarec.data.movielens import describe_source

        print(f"{run['method']} on {describe_source(run['data_source'])} ({run['strategy']}, "
              f"{run['replicas']} replica(s)): {run['epochs_run']} epochs in "
              f"{run['train_seconds']:.1f} s; "
              f"user-cold MAE {run['user_cold_mae']:.4f}; wrote {', '.join(OUTPUT_FILES)} "
              f"into {args.out}")
    return 0


def run_training(method: str, out: str | Path, *, dataset: str = "ml-100k",
                 data_path: str | Path | None = None, seed: int = 0, epochs: int | None = None,
                 batch_size: int = 32, patience: int = 3, strategy: Any = "default",
                 devices: int | None = None, bucket: bool = False,
                 overwrite: bool = False,
                 peer_timeout: float | None = DEFAULT_PEER_TIMEOUT) -> dict[str, Any]:
    """Train ``method`` under ``strategy`` and write :data:`OUTPUT_FILES` into ``out``.

    ``strategy`` is a name of :data:`metarec.distribute.STRATEGIES` or a strategy object;
    ``devices`` and ``peer_timeout`` are passed to :func:`metarec.distribute.make_strategy`
    with a name (a ``"multi-worker"`` run raises :class:`PeersMissing` when another worker
    of ``TF_CONFIG`` does not come within ``peer_timeout`` seconds).
    Returns the contents of ``run.json`` plus ``wrote`` (False on workers other than 0).
    """
    from metarec import distribute

    # First: logical devices and the multi-worker runtime need an untouched TensorFlow.
    if isinstance(strategy, str):
        name = strategy
        strategy = distribute.make_strategy(strategy, devices=devices,
                                            peer_timeout=peer_timeout)
    else:
        name = type(strategy).__name__
    out = Path(out)
    chief = distribute.is_chief(strategy)
    # Before any training (only worker 0 writes): the folder must be writable and no other
    # run may be writing it (a lock until this run ends), and another run's files are replaced
    # only with --overwrite.
    with contextlib.ExitStack() as stack:
        if chief:
            stack.enter_context(output_lock(out, f"python -m metarec train {method}"))
        keep_previous([out / f for f in OUTPUT_FILES], overwrite=overwrite, resumable=False)
        return _train_and_write(method, out, chief, name, strategy, dataset=dataset,
                                data_path=data_path, seed=seed, epochs=epochs,
                                batch_size=batch_size, patience=patience, bucket=bucket)


def _train_and_write(method: str, out: Path, chief: bool, name: str, strategy: Any, *,
                     dataset: str, data_path: str | Path | None, seed: int, epochs: int | None,
                     batch_size: int, patience: int, bucket: bool) -> dict[str, Any]:
    """Train and evaluate (every worker), then write the files (worker 0)."""
    import pandas as pd

    from metarec import distribute
    from metarec.data.movielens import data_source
    from metarec.experiments.methods import get_method
    from metarec.experiments.training import (
        evaluate_scenarios,
        load_dataset,
        prepare,
        train_method,
    )

    recipe = get_method(method)
    data = prepare(load_dataset(dataset, seed=seed, path=data_path), seed)
    learner, seconds = train_method(recipe, data, seed, epochs=epochs, batch_size=batch_size,
                                    patience=patience, strategy=strategy, bucket=bucket)
    history = learner.history.history if learner.history is not None else {}
    rows = evaluate_scenarios(learner, data, steps=recipe.test_steps)
    run = {"method": recipe.name, "dataset": data.dataset.name,
           "data_source": data_source(data.dataset.name, data.dataset.source), "seed": seed,
           "strategy": name, "replicas": int(strategy.num_replicas_in_sync),
           "batch_size": batch_size, "bucket": bool(bucket),
           "epochs_run": len(history.get("loss", [])), "train_seconds": seconds,
           "communicated_bytes_per_step": distribute.communicated_bytes(learner),
           "user_cold_mae": next(r["mae"] for r in rows if r["scenario"] == "user_cold")}
    if not chief:
        return {**run, "wrote": False}
    # The learner folder is saved beside its place, then swapped in: never half-written.
    tmp = Path(tempfile.mkdtemp(dir=out, prefix=".learner."))
    try:
        learner.save(tmp / "learner")
        if (out / "learner").exists():
            shutil.rmtree(out / "learner")
        (tmp / "learner").rename(out / "learner")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    frame = pd.DataFrame(history)
    frame.insert(0, "epoch", range(1, len(frame) + 1))
    atomic_replace(out / "history.csv", lambda p: frame.to_csv(p, index=False))
    write_frame(pd.DataFrame(rows), out / "results.csv")
    write_text(out / "run.json", json.dumps(run, indent=1))
    return {**run, "wrote": True}
