"""``python -m metarec experiment {list,run}``: run a named benchmark from the command line."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register_experiment_commands(subparsers: Any) -> None:
    """Add ``experiment {list,run}`` to the top-level command line."""
    exp = subparsers.add_parser("experiment", help="run a named benchmark",
                                description="Run a named benchmark and write its results.")
    commands = exp.add_subparsers(dest="experiment_command", metavar="{list,run}",
                                  required=True)
    p = commands.add_parser("list", help="list the benchmarks and methods")
    p.set_defaults(func=_cmd_list)
    p = commands.add_parser("run", help="run a benchmark; writes NAME.csv and NAME.md")
    p.add_argument("name", help="benchmark name (see `experiment list`)")
    p.add_argument("--seeds", type=int, nargs="+", help="override the seeds")
    p.add_argument("--methods", nargs="+", help="override the methods")
    p.add_argument("--epochs", type=int, help="override every method's training epochs")
    p.add_argument("--dataset", help="override the dataset (synthetic, ml-100k, ml-1m)")
    p.add_argument("--out", default="results", help="output folder (default: results)")
    p.set_defaults(func=_cmd_run)


def _cmd_list(args: argparse.Namespace) -> int:
    from metarec.experiments import BENCHMARKS, METHODS

    print("benchmarks:")
    for name, cfg in BENCHMARKS.items():
        print(f"  {name:16s} dataset={cfg.dataset} seeds={list(cfg.seeds)} "
              f"methods={len(cfg.methods)}")
    print("methods:")
    for name, method in METHODS.items():
        print(f"  {name:16s} {method.label}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from metarec.experiments import BENCHMARKS, run_experiment, summary_table

    if args.name not in BENCHMARKS:
        print(f"unknown benchmark {args.name!r}; choose from {', '.join(BENCHMARKS)}")
        return 2
    config = BENCHMARKS[args.name]
    changes = {k: v for k, v in {"seeds": args.seeds, "methods": args.methods,
                                 "epochs": args.epochs, "dataset": args.dataset}.items()
               if v is not None}
    config = replace(config, **changes)
    results = run_experiment(config, out_dir=Path(args.out))
    print(summary_table(results, ["mae", "ndcg@3"]).to_markdown())
    print(f"wrote {Path(args.out) / (config.name + '.csv')} and .md")
    return 0
