"""``python -m metarec experiment {list,tune,run,noise,when}``: benchmarks from the shell.

Building the parser imports nothing heavy (``--help`` and argument errors answer at once):
every command handler imports the study it runs, and TensorFlow with it, when it is called.

``tune``, ``run`` and ``noise`` write ``OUT/NAME.provenance.json`` before anything runs, and
``when`` writes ``OUT/when/when.provenance.json``: the data the results are computed on
(official release and its checksum, custom ``--data-path`` folder and the sha256 of its
rating file, or synthetic data), as ``train`` records it in ``run.json``
(:func:`~metarec.experiments.store.record_provenance`; a resumed run on other data is
refused). The results files themselves are unchanged.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from metarec.cli_types import UsageError, at_least


def register_experiment_commands(subparsers: Any) -> None:
    """Add ``experiment {list,tune,run}`` to the top-level command line."""
    exp = subparsers.add_parser("experiment", help="tune and run a named benchmark",
                                description="Tune and run a named benchmark; write its results.")
    commands = exp.add_subparsers(dest="experiment_command",
                                  metavar="{list,tune,run,noise,when}",
                                  required=True)
    p = commands.add_parser("list", help="list the benchmarks, methods and grid cells")
    p.set_defaults(func=_cmd_list)

    p = commands.add_parser(
        "tune", help="tune every grid cell with Optuna on validation users",
        description="Tune the cells of a grid benchmark (Optuna, SQLite studies under OUT, "
                    "resumable) and write OUT/NAME.configs.json.")
    p.add_argument("name", help="grid benchmark name (see `experiment list`)")
    p.add_argument("--trials", type=at_least(1), default=None,
                   help="finished trials per cell (default: the benchmark's)")
    p.add_argument("--models", nargs="+", help="tune only these models")
    p.add_argument("--schemes", nargs="+", help="tune only these schemes")
    p.add_argument("--resume", action="store_true",
                   help="continue studies that already have trials")
    p.add_argument("--tuner-seed", type=at_least(0), default=0,
                   help="seed of the TPE sampler (default 0: the grid's studies); another "
                        "seed tunes into its own studies and NAME.tunerK.configs.json, for "
                        "the tuning-noise study")
    p.add_argument("--pruner", choices=("median", "sha"), default="median",
                   help="median rule (default) or successive halving over epochs (see "
                        "metarec.experiments.tuning.PRUNERS)")
    _data_options(p)
    p.set_defaults(func=_cmd_tune)

    p = commands.add_parser(
        "noise", help="train the tuning-noise study's choices over the seeds",
        description="Train every tuner seed's chosen configuration of the noise cells over the "
                    "benchmark's seeds (tune them first with `experiment tune NAME "
                    "--tuner-seed K`); writes OUT/NAME.tuning-noise.csv.gz (per user) and "
                    "OUT/NAME-noise/ (metarec.experiments.noise).")
    p.add_argument("name", help="grid benchmark name (see `experiment list`)")
    p.add_argument("--tuner-seeds", type=at_least(0), nargs="+", default=[0, 1, 2],
                   help="tuner seeds to train (default: 0 1 2; 0 is the grid's own study)")
    p.add_argument("--cells", nargs="+", help="cells (model/scheme; default: the noise cells "
                   "melu/finetune melu/maml melu/melu item_mean/finetune item_mean/maml)")
    p.add_argument("--seeds", type=at_least(0), nargs="+", help="override the seeds")
    p.add_argument("--resume", action="store_true",
                   help="keep finished (tuner seed, seed, cell) runs and run only the others")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier noise run in OUT")
    _data_options(p)
    p.set_defaults(func=_cmd_noise)

    p = commands.add_parser("run", help="run a benchmark; writes its results files into OUT")
    p.add_argument("name", help="benchmark name (see `experiment list`)")
    p.add_argument("--seeds", type=at_least(0), nargs="+", help="override the seeds")
    p.add_argument("--methods", nargs="+", help="override the methods (recipe benchmarks)")
    p.add_argument("--cells", nargs="+", help="run only these grid cells (model/scheme)")
    p.add_argument("--epochs", type=at_least(1),
                   help="override every method's training epochs")
    p.add_argument("--dataset", choices=("synthetic", "ml-100k", "ml-1m"),
                   help="override the dataset")
    p.add_argument("--configs", type=Path,
                   help="tuned configurations (default: OUT/NAME.configs.json)")
    p.add_argument("--resume", action="store_true",
                   help="keep finished (seed, cell or method) results in OUT and run only the "
                        "others")
    p.add_argument("--overwrite", action="store_true",
                   help="replace results of another run in OUT")
    _data_options(p)
    p.set_defaults(func=_cmd_run)

    p = commands.add_parser(
        "when", help="chapter 9's controlled experiments on synthetic data",
        description="Tune and run the synthetic experiments of metarec.experiments.when_study "
                    "(heterogeneity x support size, features, training users, ANIL, cost); "
                    "writes OUT/when/ (per point: results, tuned configurations, Optuna "
                    "studies).")
    p.add_argument("--points", nargs="+", help="run only these points (default: all)")
    p.add_argument("--seeds", type=at_least(0), nargs="+", help="override the seeds")
    p.add_argument("--trials", type=at_least(1), default=None,
                   help="finished Optuna trials per (point, scheme)")
    p.add_argument("--resume", action="store_true",
                   help="keep finished (point, seed) results and tuned points; run the others")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run in OUT")
    p.add_argument("--no-cost", action="store_true", help="skip the adaptation-cost table")
    p.add_argument("--out", default="results", help="results folder (default: results)")
    p.add_argument("--threads", type=at_least(1), help="TensorFlow threads")
    p.set_defaults(func=_cmd_when)


def _data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="results", help="results folder (default: results)")
    p.add_argument("--data-path", type=Path,
                   help="a custom folder in MovieLens format (ml-100k u.data or ml-1m "
                        "ratings.dat), read without checksum verification")
    p.add_argument("--new-item-year", type=at_least(1),
                   help="items released in or after this year are new (default per dataset)")
    p.add_argument("--threads", type=at_least(1),
                   help="TensorFlow threads (e.g. 1 to run two tunings side by side)")


@contextlib.contextmanager
def _locked(out: str | Path, command: str, keys: Iterable[str]) -> Iterator[None]:
    """Reserve the files ``keys`` of ``out`` for this command until it ends
    (:func:`~metarec.experiments.store.output_lock`: writable, no other live run writing)."""
    from metarec.experiments.store import output_lock

    with contextlib.ExitStack() as stack:
        for key in sorted(set(keys)):
            stack.enter_context(output_lock(out, command, key))
        yield


def _record_data(out: str | Path, config: Any, *, resume: bool = False,
                 overwrite: bool = False) -> Path:
    """Write (or check) ``OUT/NAME.provenance.json`` for benchmark ``config``, before it runs."""
    from metarec.data.movielens import data_source
    from metarec.experiments.store import keep_previous, record_provenance

    keep_previous([], resume=resume, overwrite=overwrite)  # both flags: refused, nothing written
    source = data_source(config.dataset, config.data_path)
    details = ({"synthetic_kwargs": dict(config.synthetic_kwargs)}
               if source["kind"] == "synthetic" and config.synthetic_kwargs else {})
    return record_provenance(out, config.name, source, overwrite=overwrite, **details)


def _record_when(folder: Path, *, resume: bool, overwrite: bool) -> Path:
    """``when.provenance.json``: chapter 9's points generate their own synthetic data."""
    from metarec.data.movielens import data_source
    from metarec.experiments.store import keep_previous, record_provenance

    keep_previous([], resume=resume, overwrite=overwrite)
    return record_provenance(folder, "when", data_source("synthetic"), overwrite=overwrite,
                             generator="make_synthetic with each point's arguments "
                                       "(metarec.experiments.when_study.POINTS)")


def _set_threads(n: int | None) -> None:
    if n:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)


def _cmd_list(args: argparse.Namespace) -> int:
    from metarec.experiments.benchmarks import BENCHMARKS
    from metarec.experiments.grid import grid_cells
    from metarec.experiments.methods import METHODS

    print("benchmarks:")
    for name, cfg in BENCHMARKS.items():
        kind = f"grid, {cfg.n_trials} trials/cell" if cfg.grid else f"{len(cfg.methods)} methods"
        print(f"  {name:16s} dataset={cfg.dataset} seeds={list(cfg.seeds)} {kind}")
    print("grid cells (model/scheme):")
    for cell in grid_cells():
        print(f"  {cell.name:22s} {cell.label}")
    print("recipes of the teaching chapters (methods):")
    for name, method in METHODS.items():
        print(f"  {name:16s} {method.label}")
    return 0


def _benchmark(name: str):
    from metarec.experiments.benchmarks import BENCHMARKS

    if name not in BENCHMARKS:
        raise UsageError(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)} "
                         "(see `python -m metarec experiment list`)")
    return BENCHMARKS[name]


def _cmd_tune(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from metarec.experiments.benchmarks import prepare_benchmark
    from metarec.experiments.grid import grid_cells
    from metarec.experiments.tuning import TUNING_SEED, configs_path, tune_grid

    config = _benchmark(args.name)
    if not config.grid:
        raise UsageError(f"{args.name} is not a grid benchmark; `tune` needs one (see "
                         "`python -m metarec experiment list`).")
    config = replace(config, **_data_changes(args))
    _set_threads(args.threads)
    cells = grid_cells(args.models, args.schemes)
    # One tuning per study file at a time (tunings of other models may run side by side).
    with _locked(args.out, f"python -m metarec experiment tune {args.name}",
                 [f"tune-{config.name}-{c.model}.tuner{args.tuner_seed}" for c in cells]):
        _record_data(args.out, config)
        data = prepare_benchmark(config, TUNING_SEED)
        configs = tune_grid(data, Path(args.out), config.name,
                            n_trials=args.trials or config.n_trials, cells=cells,
                            resume=args.resume, tuner_seed=args.tuner_seed, pruner=args.pruner)
    print(f"wrote {configs_path(args.out, config.name, args.tuner_seed)} ({len(configs)} cells)")
    for name, cfg in configs.items():
        print(f"  {name:22s} val MAE {cfg['val_mae']:.4f}  {cfg['n_trials']} trials "
              f"({cfg['n_pruned']} pruned)  {cfg['tuning_seconds'] / 60:.1f} min")
    return 0


def _data_changes(args: argparse.Namespace) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if args.data_path is not None:
        changes["data_path"] = str(args.data_path)
    if args.new_item_year is not None:
        changes["new_item_year"] = args.new_item_year
    return changes


def _cmd_run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from metarec.experiments.grid_study import run_grid
    from metarec.experiments.recipe_study import run_experiment, summary_table

    config = _benchmark(args.name)
    changes = {k: v for k, v in {"seeds": args.seeds, "methods": args.methods,
                                 "epochs": args.epochs, "dataset": args.dataset}.items()
               if v is not None}
    config = replace(config, **changes, **_data_changes(args))
    _set_threads(args.threads)
    out = Path(args.out)
    with _locked(out, f"python -m metarec experiment run {args.name}", [f"run-{config.name}"]):
        _record_data(out, config, resume=args.resume, overwrite=args.overwrite)
        if config.grid:
            configs = args.configs or out / f"{config.name}.configs.json"
            paths = run_grid(config, configs, out, cells=args.cells, resume=args.resume,
                             overwrite=args.overwrite)
            print("wrote " + ", ".join(str(p) for p in paths))
            return 0
        results = run_experiment(config, out_dir=out, resume=args.resume,
                                 overwrite=args.overwrite)
    print(summary_table(results, ["mae", "ndcg@3"]).to_markdown())
    print(f"wrote {out / (config.name + '.csv')} and .md")
    return 0


def _cmd_noise(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from metarec.experiments.noise import NOISE_CELLS, noise_path, noise_summary, run_noise

    config = _benchmark(args.name)
    if not config.grid:
        raise UsageError(f"{args.name} is not a grid benchmark; `noise` needs one (see "
                         "`python -m metarec experiment list`).")
    changes = {} if args.seeds is None else {"seeds": tuple(args.seeds)}
    config = replace(config, **changes, **_data_changes(args))
    _set_threads(args.threads)
    with _locked(args.out, f"python -m metarec experiment noise {args.name}",
                 [f"noise-{config.name}"]):
        _record_data(args.out, config, resume=args.resume, overwrite=args.overwrite)
        table = run_noise(config, args.out, tuner_seeds=args.tuner_seeds,
                          cells=args.cells or NOISE_CELLS, resume=args.resume,
                          overwrite=args.overwrite)
    print(f"wrote {noise_path(args.out, config.name)} ({len(table)} rows)")
    print(noise_summary(table).to_string(index=False, float_format="%.4f"))
    return 0


def _cmd_when(args: argparse.Namespace) -> int:
    from metarec.experiments import when_study as when

    _set_threads(args.threads)
    # One process per point at a time (points may run side by side in parallel processes).
    with _locked(Path(args.out) / when.BENCHMARK, "python -m metarec experiment when",
                 [f"when-{p}" for p in (args.points or when.POINTS) if p in when.POINTS]):
        _record_when(Path(args.out) / when.BENCHMARK, resume=args.resume,
                     overwrite=args.overwrite)
        paths = when.run_when(args.out, points=args.points,
                              seeds=tuple(args.seeds) if args.seeds else when.SEEDS,
                              n_trials=args.trials or when.N_TRIALS, resume=args.resume,
                              overwrite=args.overwrite, cost=not args.no_cost)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0
