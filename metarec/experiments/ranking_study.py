"""Ranking metrics of chosen grid cells: precision, recall, hit rate and MAP at k, per test user.

The grid runner (:mod:`~metarec.experiments.grid_study`) stores MAE, RMSE and nDCG@1/3 per test
user. This study retrains chosen cells with their tuned configuration for every seed -- training
is deterministic, so a seed gives the grid's model again -- and scores every test user of every
scenario at the cell's chosen test-time steps with the ranking metrics of
:func:`metarec.metrics.task_metrics` (``ranking_extras``): ``precision@k``, ``recall@k``,
``hit@k`` and ``ap@k`` (MAP@k is the mean of ``ap@k`` over the users who have a relevant query
item), a query item being relevant when its true rating is at least
:data:`~metarec.metrics.RELEVANCE_THRESHOLD` (4 stars). The tasks are evaluated in the same
joined batch as the grid runner's, and ``mae`` is kept: it re-checks that the rows come from
the grid's models (chapter 8 compares it with the stored per-user MAE).

Command line (one TensorFlow thread, as the grid's runs)::

    python -m metarec.experiments.ranking_study fair-ml100k \\
        --configs book/results/fair-ml100k.configs.json \\
        --cells item_mean/metasgd wide_deep/finetune --out book/results/fair-ml100k.ranking.csv.gz
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from metarec.experiments.benchmarks import ExperimentConfig, prepare_benchmark
from metarec.experiments.grid import Cell
from metarec.experiments.grid_study import sweep_cells
from metarec.experiments.store import progress_bar, write_frame
from metarec.experiments.training import (
    SCENARIOS,
    SUPPORT_SIZES,
    evaluate_groups,
    support_size_tasks,
    train_tuned,
)

__all__ = ["RANKING_KS", "score_cells"]

#: Cut-offs of the ranking metrics. nDCG@1 and @3 are the grid's; the other metrics are read
#: at 5, half of a 10-rating query set.
RANKING_KS = (1, 3, 5)


def score_cells(config: ExperimentConfig, configs: dict[str, Any], cells: Sequence[str],
                seeds: Sequence[int] | None = None, ks: Sequence[int] = RANKING_KS,
                progress: bool = True) -> pd.DataFrame:
    """Per (seed, cell, scenario, test user): the metrics at the cell's chosen test steps.

    ``configs`` is a loaded configs file (:func:`~metarec.experiments.load_configs`);
    ``cells`` names some of its cells; ``seeds`` defaults to ``config.seeds``. Columns:
    ``seed``, ``cell``, ``model``, ``scheme``, ``scenario``, ``user_id``, ``steps``, ``mae``,
    ``rmse``, ``ndcg@k``, ``precision@k``, ``recall@k``, ``hit@k``, ``ap@k``, ``diverged``.
    """
    unknown = [c for c in cells if c not in configs["cells"]]
    if unknown:
        raise ValueError(f"cells {unknown} have no tuned configuration; choose from "
                         f"{sorted(configs['cells'])}")
    swept = set(sweep_cells(configs))
    seeds = list(config.seeds if seeds is None else seeds)
    frames = []
    bar = progress_bar(len(seeds) * len(cells), enabled=progress)
    for seed in seeds:
        data = prepare_benchmark(config, seed)
        ratings = data.split.train["rating"]
        scale = (float(ratings.min()), float(ratings.max()))
        for name in cells:
            bar.set_description(f"seed {seed} {name}")
            cfg = configs["cells"][name]
            cell = Cell(cfg["model"], cfg["scheme"])
            method, learner, _ = train_tuned(cell, cfg, data, seed, batch_size=config.batch_size)
            # The grid runner's joined batch (its padding), so the predictions are the same.
            groups = {scenario: data.tasks[scenario] for scenario in SCENARIOS}
            if name in swept:
                sizes = support_size_tasks(data, SUPPORT_SIZES, "user_cold", seed)
                groups.update({f"support_{n}": tasks for n, tasks in sizes.items()})
            table = evaluate_groups(learner, groups, scale, ks=ks, ranking_extras=True)
            chosen = table[(table["steps"] == method.test_steps)
                           & table["group"].isin(SCENARIOS)]
            frames.append(chosen.rename(columns={"group": "scenario"}).assign(
                seed=seed, cell=name, model=cell.model, scheme=cell.scheme))
            bar.update(1)
    bar.close()
    out = pd.concat(frames, ignore_index=True)
    first = ["seed", "cell", "model", "scheme", "scenario", "user_id", "steps"]
    return out[first + [c for c in out.columns if c not in first]]


def main(argv: Sequence[str] | None = None) -> int:
    from metarec.experiments.benchmarks import BENCHMARKS
    from metarec.experiments.tuning import load_configs

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("benchmark", choices=[n for n, c in BENCHMARKS.items() if c.grid])
    parser.add_argument("--configs", required=True, type=Path, help="the tuned configs file")
    parser.add_argument("--cells", nargs="+", required=True, help="cells to score")
    parser.add_argument("--seeds", nargs="+", type=int, help="default: the benchmark's")
    parser.add_argument("--out", required=True, type=Path, help="CSV file (.csv.gz: gzip)")
    parser.add_argument("--threads", type=int, default=1,
                        help="TensorFlow threads (default 1, as the grid's runs)")
    args = parser.parse_args(argv)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    table = score_cells(BENCHMARKS[args.benchmark], load_configs(args.configs), args.cells,
                        args.seeds)
    write_frame(table, args.out)
    print(f"wrote {args.out}: {len(table)} rows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
