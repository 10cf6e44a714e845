"""Command line interface: ``python -m metarec <command> ...``.

Commands::

    python -m metarec data download NAME [--data-dir DIR]     fetch + verify into the cache
    python -m metarec data verify NAME [--data-dir DIR]       check the cached files (read-only)
    python -m metarec data stats NAME [--data-dir DIR]        sizes, sparsity, distributions
    python -m metarec experiment {list,tune,run,when} ...     benchmarks (metarec.experiments.cli)
    python -m metarec train METHOD --out DIR [--strategy S]   meta-train (GPUs, machines)

``NAME`` is ``ml-100k`` or ``ml-1m`` (``stats`` also accepts ``synthetic``, the default
:func:`~metarec.data.make_synthetic` dataset).

Building the parser imports no TensorFlow (nor Keras): ``--help``, every command's ``--help``
and every argument error answer at once, without TensorFlow's log lines. A command imports
what it needs inside its handler.

Adding a command group: write ``register_<group>_commands(subparsers)`` that adds a subparser
and sets ``func`` (``args -> exit code``) with ``set_defaults``, then append it to
:data:`REGISTRARS` (or pass ``registrars`` to :func:`build_parser`). Keep the module that
defines it free of TensorFlow at import time: import heavy modules inside ``func``."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from metarec.cli_types import at_least

__all__ = ["REGISTRARS", "Terminated", "build_parser", "format_stats", "main",
           "register_data_commands"]

Registrar = Callable[[Any], None]  # receives the object returned by add_subparsers()


def register_data_commands(subparsers: Any) -> None:
    """Add ``data {download,verify,stats}`` to ``subparsers`` (from ``add_subparsers()``)."""
    from metarec.data.registry import DATASETS  # numpy and pandas, no TensorFlow

    names = sorted(DATASETS)
    data = subparsers.add_parser("data", help="download, verify and describe datasets",
                                 description="Download, verify and describe datasets.")
    commands = data.add_subparsers(dest="data_command", metavar="{download,verify,stats}",
                                   required=True)
    dir_help = ("cache folder (default: $METAREC_DATA_DIR, else $XDG_CACHE_HOME/metarec or "
                "~/.cache/metarec)")

    p = commands.add_parser("download", help="download and verify a dataset into the cache")
    p.add_argument("name", choices=names)
    p.add_argument("--data-dir", default=None, help=dir_help)
    p.set_defaults(func=_cmd_download)

    p = commands.add_parser("verify", help="check the SHA-256 of the cached files (no write)")
    p.add_argument("name", choices=names)
    p.add_argument("--data-dir", default=None, help=dir_help)
    p.set_defaults(func=_cmd_verify)

    p = commands.add_parser("stats", help="print dataset statistics")
    p.add_argument("name", choices=[*names, "synthetic"])
    p.add_argument("--data-dir", default=None, help=dir_help)
    p.add_argument("--no-download", action="store_true",
                   help="fail instead of downloading missing files")
    p.add_argument("--seed", type=at_least(0), default=0, help="seed of the synthetic dataset")
    p.set_defaults(func=_cmd_stats)


def register_experiment_commands(subparsers: Any) -> None:
    """Add ``experiment {list,tune,run,when}`` (see :mod:`metarec.experiments.cli`)."""
    from metarec.experiments.cli import register_experiment_commands as register

    register(subparsers)


def register_train_commands(subparsers: Any) -> None:
    """Add ``train`` (one method, one device or a tf.distribute strategy; :mod:`metarec.train`)."""
    from metarec.train import register_train_commands as register

    register(subparsers)


#: Functions that add command groups to the top-level parser, in order.
REGISTRARS: list[Registrar] = [register_data_commands, register_experiment_commands,
                               register_train_commands]


def build_parser(registrars: Sequence[Registrar] | None = None) -> argparse.ArgumentParser:
    """The ``python -m metarec`` parser with every registered command group."""
    parser = argparse.ArgumentParser(
        prog="python -m metarec",
        description="metarec: meta-learning for recommender systems.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in REGISTRARS if registrars is None else registrars:
        register(subparsers)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the run is (as Ctrl-C raises ``KeyboardInterrupt``), so the same
    clean-up runs: temporary files removed, finished results kept. Exit status 143."""


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While the command runs, SIGTERM raises :class:`Terminated` (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupted(args: argparse.Namespace, err: KeyboardInterrupt) -> str:
    """The one line of an interrupted command: what is kept and how to go on."""
    how = "terminated (SIGTERM)" if isinstance(err, Terminated) else "interrupted (Ctrl-C)"
    if hasattr(args, "resume"):
        return (f"{how}: the finished results are kept in {getattr(args, 'out', 'the output')}"
                "; run the same command with --resume to continue.")
    return (f"{how}: no results were written (the learner is saved at the end of training); "
            "run the same command again to train.")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    0 success; 1 a data error (missing or damaged files, a damaged tuning study), a diverged
    training or a worker of TF_CONFIG that did not come (``train --peer-timeout``);
    2 a mistake in the command (as argparse): unknown name, bad number, results that
    exist already, an output folder another run is writing; 130 interrupted (Ctrl-C), 143
    terminated (SIGTERM), with finished results kept and a line saying how to resume. Each
    error is one line on stderr, never a traceback (``METAREC_TRACEBACK=1`` shows the traceback
    of an unexpected error).

    Examples
    --------
    >>> main(["data", "stats", "synthetic"])   # doctest: +SKIP
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    from metarec.data.errors import DataError
    from metarec.train import PeersMissing

    # A user's mistake or a problem with their data gets one message, no traceback: exit 2
    # (like argparse) for a bad argument or an existing/unwritable results file, 1 for bad
    # data or a diverged training.
    with _sigterm_raises():
        try:
            return int(args.func(args) or 0)
        except KeyboardInterrupt as err:
            print(f"error: {_interrupted(args, err)}", file=sys.stderr)
            return 143 if isinstance(err, Terminated) else 130
        except DataError as err:
            _print_error(parser, err)
            return 1
        except ArithmeticError as err:  # FloatingPointError: training diverged
            _print_error(parser, err)
            return 1
        except PeersMissing as err:  # a multi-worker run: a worker of TF_CONFIG never came
            _print_error(parser, err)
            return 1
        except (ValueError, TypeError, OSError) as err:
            _print_error(parser, err)
            return 2
        except Exception as err:  # an unforeseen case: still one line (the bug report's)
            if os.environ.get("METAREC_TRACEBACK"):
                raise
            print(f"error: unexpected {type(err).__name__}: {err} (set METAREC_TRACEBACK=1 to "
                  "see where; please report it)", file=sys.stderr)
            return 1


def _print_error(parser: argparse.ArgumentParser, err: BaseException) -> None:
    notes = " ".join(getattr(err, "__notes__", []))
    print(f"error: {err}{' ' + notes if notes else ''}", file=sys.stderr)


# ----------------------------------------------------------------------------------------------
# data commands


def _cmd_download(args: argparse.Namespace) -> int:
    from metarec.data.cache import ensure_dataset
    from metarec.data.registry import get_info

    folder = ensure_dataset(args.name, args.data_dir, download=True)
    print(f"{args.name}: {len(get_info(args.name).members)} files verified in {folder}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from metarec.data.cache import check_dataset, get_data_dir

    statuses = check_dataset(args.name, args.data_dir)
    print(f"{args.name} in {get_data_dir(args.data_dir)}")
    width = max(len(s.member) for s in statuses)
    for s in statuses:
        if s.status == "ok":
            print(f"  ok        {s.member:<{width}}  sha256 {s.actual}")
        elif s.status == "missing":
            print(f"  MISSING   {s.member}")
        else:
            print(f"  MISMATCH  {s.member:<{width}}  sha256 {s.actual}, expected {s.expected}")
    bad = [s for s in statuses if s.status != "ok"]
    if bad:
        mismatched = [s for s in bad if s.status == "mismatch"]
        print(f"{len(bad)} of {len(statuses)} files missing or different from the official "
              f"{args.name} release.")
        if mismatched:
            print("Nothing was changed. A file that differs is never replaced: move it away "
                  f"first, then run `python -m metarec data download {args.name}`; or, if it "
                  "is your own (e.g. partial) copy, use it as a custom folder with "
                  "`--data-path FOLDER` (experiment commands) or "
                  "`metarec.data.load_movielens_folder(FOLDER)` in Python.")
        else:
            print(f"Run `python -m metarec data download {args.name}` to fetch the missing "
                  "files.")
        return 1
    print(f"all {len(statuses)} files verified")
    return 0


def _cmd_stats(args: argparse.Namespace) -> int:
    if args.name == "synthetic":
        from metarec.data.synthetic import make_synthetic

        dataset = make_synthetic(seed=args.seed)
    else:
        from metarec.data.movielens import load_movielens

        dataset = load_movielens(args.name, args.data_dir, download=not args.no_download)
    print(format_stats(dataset.stats()))
    return 0


def _number(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def format_stats(stats: dict[str, Any]) -> str:
    """Human-readable table of :func:`metarec.data.dataset_stats` output."""
    lines = [
        f"dataset             {stats['name']}",
        f"users               {stats['users']}",
        f"items               {stats['items']}",
        f"ratings             {stats['ratings']}",
        f"sparsity            {100 * stats['sparsity']:.2f}% of user x item pairs unrated",
        f"mean rating         {stats['mean_rating']:.3f}",
        "rating distribution",
    ]
    total = max(stats["ratings"], 1)
    for value, count in stats["rating_counts"].items():
        lines.append(f"  {_number(value):<17} {count:>7}  {100 * count / total:5.1f}%")
    quantile_names = list(stats["ratings_per_user"])
    lines.append(" " * 18 + "".join(f"{q:>7}" for q in quantile_names))
    for label, key in (("ratings per user", "ratings_per_user"),
                       ("ratings per item", "ratings_per_item")):
        lines.append(f"{label:<18}" + "".join(f"{_number(v):>7}" for v in stats[key].values()))
    lo, hi = stats["melu_bounds"]
    kept = stats["melu_users"]
    lines.append(f"MeLU protocol ({lo}..{hi} ratings per user): {kept} of {stats['users']} "
                 f"users kept ({100 * kept / max(stats['users'], 1):.1f}%)")
    return "\n".join(lines)
