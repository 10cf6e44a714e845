"""The recipe study: every hand-set recipe, every seed, every scenario (a recipe benchmark).

``python -m metarec experiment run melu-ml100k`` (or ``quick``, any :data:`BENCHMARKS` entry
without ``grid``) trains each recipe of :data:`~metarec.experiments.METHODS` named by the
benchmark for each seed (:func:`~metarec.experiments.train_method`: early stopping on the
validation users, best epoch restored) and evaluates it in the four cold-start scenarios
(:func:`~metarec.experiments.evaluate_scenarios`).

The result is a tidy table: one row per (dataset, seed, method, scenario) with MAE, RMSE,
nDCG@1, nDCG@3 (task averages, :mod:`metarec.metrics`), the number of tasks and the training
time. :func:`~metarec.experiments.summary_table` turns it into mean and standard deviation
over seeds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from metarec.data.movielens import data_source
from metarec.experiments.benchmarks import (
    BENCHMARKS,
    ExperimentConfig,
    prepare_benchmark,
    validate_config,
)
from metarec.experiments.methods import get_method
from metarec.experiments.store import check_writable, keep_previous, progress_bar, write_text
from metarec.experiments.training import METRICS, SCENARIOS, evaluate_scenarios, train_method

__all__ = ["result_paths", "run_experiment", "summary_table", "write_results"]


def _run_identity(config: ExperimentConfig) -> dict[str, Any]:
    """What makes two runs comparable: everything but the seeds and methods (which resume adds)."""
    return {"benchmark": config.name, "dataset": config.dataset,
            "scenarios": list(config.scenarios), "epochs": config.epochs,
            "batch_size": config.batch_size, "patience": config.patience,
            "synthetic_kwargs": dict(config.synthetic_kwargs), "data_path": config.data_path,
            "new_item_year": config.new_item_year}


def run_experiment(config: ExperimentConfig | str, out_dir: str | Path | None = None,
                   progress: bool = True, *, resume: bool = False,
                   overwrite: bool = False) -> pd.DataFrame:
    """Run ``config`` (or the name of a :data:`BENCHMARKS` entry); return the tidy results.

    With ``out_dir``, writes ``<name>.csv`` (tidy rows), ``<name>.md`` (the summary table,
    mean ± std over seeds) and ``<name>.run.json`` (what was run), each atomically and again
    after every finished (seed, method): an error or an interruption loses at most the
    running method. Existing files are never replaced silently: ``resume=True`` keeps their
    finished (seed, method) rows and runs the others (the dataset, scenarios and training
    settings must be those of the earlier run; seeds and methods may be added),
    ``overwrite=True`` starts afresh, and otherwise a ``FileExistsError`` says so before
    anything is trained. The folder is checked for writing first, too.
    """
    if isinstance(config, str):
        if config not in BENCHMARKS:
            raise ValueError(f"Unknown benchmark {config!r}; choose from {sorted(BENCHMARKS)}.")
        config = BENCHMARKS[config]
    validate_config(config)
    methods = [get_method(m) for m in config.methods]
    rows: list[dict] = []
    done: set[tuple[int, str]] = set()
    paths = result_paths(out_dir, config.name) if out_dir is not None else None
    # Before anything runs: both flags, or another run's files without either, are refused.
    resuming = keep_previous(paths.values() if paths else (), resume=resume,
                             overwrite=overwrite)
    if paths is not None:
        check_writable(Path(out_dir))
        if resuming:
            rows, done = _previous_rows(config, paths)
        source = data_source(config.dataset, config.data_path)
        write_text(paths["run"], json.dumps({**_run_identity(config), "data_source": source},
                                            indent=2) + "\n")
    jobs = [(seed, m) for seed in config.seeds for m in methods if (seed, m.name) not in done]
    bar = progress_bar(len(jobs), enabled=progress)
    for seed in config.seeds:
        if all((seed, m.name) in done for m in methods):
            continue
        data = prepare_benchmark(config, seed)
        dataset = data.dataset
        for method in methods:
            if (seed, method.name) in done:
                continue
            bar.set_description(f"seed {seed} {method.name}")
            try:
                learner, seconds = train_method(method, data, seed, epochs=config.epochs,
                                                batch_size=config.batch_size,
                                                patience=config.patience)
                new = [{"dataset": dataset.name, "seed": seed, "method": method.name,
                        "label": method.label, **row, "train_seconds": seconds}
                       for row in evaluate_scenarios(learner, data, config.scenarios)]
            except Exception as err:
                if paths is not None and rows:
                    err.add_note(f"The {len(rows)} result rows finished before are in "
                                 f"{paths['csv']}; fix the problem and rerun with --resume "
                                 "(resume=True) to run only the missing (seed, method) pairs.")
                bar.close()
                raise
            rows.extend(new)
            if paths is not None:  # after every method: an error later loses nothing
                write_results(pd.DataFrame(rows), Path(out_dir), config.name)
            bar.update(1)
    bar.close()
    results = pd.DataFrame(rows)
    if len(results):  # the order of the config, whatever order resume found them in
        order = {(s, m.name): i for i, (s, m) in enumerate(
            (s, m) for s in config.seeds for m in methods)}
        keep = [(int(s), m) in order for s, m in zip(results["seed"], results["method"],
                                                      strict=True)]
        results = results[keep]
        rank = [order[(int(s), m)] for s, m in zip(results["seed"], results["method"],
                                                   strict=True)]
        results = results.iloc[np.argsort(rank, kind="stable")].reset_index(drop=True)
    return results


def result_paths(out_dir: str | Path, name: str) -> dict[str, Path]:
    """The files :func:`run_experiment` writes for benchmark ``name`` into ``out_dir``."""
    out_dir = Path(out_dir)
    return {"csv": out_dir / f"{name}.csv", "md": out_dir / f"{name}.md",
            "run": out_dir / f"{name}.run.json"}


def _previous_rows(config: ExperimentConfig, paths: dict[str, Path]
                   ) -> tuple[list[dict], set[tuple[int, str]]]:
    """Rows and finished (seed, method) pairs of the earlier run to continue.

    Refused (before anything runs) when the files are not a whole run or hold another run:
    another dataset, other scenarios or other training settings.
    """
    if not paths["run"].exists() or not paths["csv"].exists():
        existing = [p for p in paths.values() if p.exists()]
        raise FileExistsError(
            f"{', '.join(str(p) for p in existing)} exist(s) but not as a resumable run "
            f"({paths['run'].name} and {paths['csv'].name} are both needed); pass --overwrite "
            "to replace them or choose another --out folder.")
    try:
        before = json.loads(paths["run"].read_text())
        previous = pd.read_csv(paths["csv"])
    except (ValueError, OSError) as err:
        raise ValueError(f"Cannot resume from {paths['run']} / {paths['csv']}: {err}. Pass "
                         "--overwrite to start afresh.") from None
    now = json.loads(json.dumps(_run_identity(config)))  # tuples read back as lists
    changed = {k: (before.get(k), v) for k, v in now.items() if before.get(k) != v}
    if "data_source" in before:  # runs since the record: the same data (a custom file's hash)
        source = data_source(config.dataset, config.data_path)
        if before["data_source"] != source:
            changed["data_source"] = (before["data_source"], source)
    if changed:
        what = "; ".join(f"{k}: {a!r} then, {b!r} now" for k, (a, b) in changed.items())
        raise ValueError(f"Cannot resume {paths['csv']}: it holds another run ({what}). Pass "
                         "--overwrite to replace it, or choose another --out folder.")
    done = {(int(s), str(m)) for s, m in zip(previous["seed"], previous["method"],
                                             strict=True)}
    return previous.to_dict("records"), done


def summary_table(results: pd.DataFrame, metrics: Sequence[str] = METRICS,
                  decimals: int = 4) -> pd.DataFrame:
    """Mean ± standard deviation over seeds; rows = methods, columns = (scenario, metric).

    With a single seed the spread is undefined and only the mean is shown.
    """
    grouped = results.groupby(["method", "scenario"], sort=False)[list(metrics)]
    mean, std = grouped.mean(), grouped.std(ddof=1)
    fmt = f"{{:.{decimals}f}}"
    cells = mean.map(fmt.format)
    spread = std.notna()
    cells = cells.where(~spread, cells + " ± " + std.map(fmt.format))
    table = cells.unstack("scenario")
    order = list(dict.fromkeys(results["method"]))
    scen = [s for s in SCENARIOS if s in set(results["scenario"])]
    table = table.reindex(order)
    return table.reindex(columns=pd.MultiIndex.from_product([list(metrics), scen]))


def write_results(results: pd.DataFrame, out_dir: Path, name: str) -> tuple[Path, Path]:
    """Write ``<name>.csv`` and ``<name>.md`` into ``out_dir`` (temp file, then rename)."""
    csv_path, md_path = out_dir / f"{name}.csv", out_dir / f"{name}.md"
    write_text(csv_path, results.to_csv(index=False, float_format="%.6f"))
    seeds = sorted(results["seed"].unique().tolist())
    parts = [f"# {name}: {results['dataset'].iloc[0]}, seeds {seeds}\n"]
    for metric in METRICS:
        table = summary_table(results, [metric])
        table.columns = [c[1] for c in table.columns]
        title = "mean ± std over seeds" if len(seeds) > 1 else "one seed: no spread"
        parts.append(f"\n## {metric} ({title})\n\n{table.to_markdown()}\n")
    write_text(md_path, "".join(parts))
    return csv_path, md_path
