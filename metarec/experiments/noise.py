"""The tuning noise of the fair grid: how much a cell's test MAE moves when only the tuner does.

A cell's result depends on the configuration its Optuna study chose, and that choice depends
on the TPE sampler's random draws. To measure this, a few cells (:data:`NOISE_CELLS`) are
tuned again with other tuner seeds (``python -m metarec experiment tune NAME --tuner-seed k``:
same search space, same budget, same data and training seed; only the sampler's seed differs,
:func:`~metarec.experiments.tuning.sampler_seed`). Tuner seed 0 is the grid's own study.
Each tuner seed's choice is then trained and evaluated over the benchmark's seeds with the
grid runner (:func:`~metarec.experiments.grid_study.run_grid`, unchanged), and the test MAE of every
(cell, tuner seed, seed, scenario, test user) is written to
``<benchmark>.tuning-noise.csv.gz``. The spread across tuner seeds, seeds and users held
fixed, is the **noise floor** of the protocol (:func:`noise_summary`; the verdict's
``tuning_noise`` and ``noise_floor`` in :mod:`metarec.experiments.verdict` read the same
file): a difference between two cells smaller than it may be the tuner's doing.

Files under ``out_dir`` (``python -m metarec experiment noise NAME``):

* ``<benchmark>-noise/tuner<k>.{users.csv.gz,curves.csv,support.csv,runs.csv}``: the grid
  runner's files for tuner seed ``k``'s choices (resumable per (seed, cell));
* ``<benchmark>.tuning-noise.csv.gz``: one row per (cell, tuner seed, seed, scenario, test
  user) with the test metrics at the chosen test-time steps (the grid runner's per-user rows
  plus ``tuner_seed``); the chosen configurations are in the tuner seeds' configs files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pandas as pd

from metarec.experiments.benchmarks import ExperimentConfig
from metarec.experiments.grid import Cell
from metarec.experiments.grid_study import output_paths, run_grid
from metarec.experiments.store import write_frame
from metarec.experiments.tuning import configs_path, load_configs

#: Cells re-tuned for the noise study: the MeLU network (conventional, MAML, the MeLU recipe:
#: ``melu/melu`` vs ``melu/maml`` is the null control, the same algorithm on the same network)
#: and the item-mean model (conventional and MAML).
NOISE_CELLS = ("melu/finetune", "melu/maml", "melu/melu", "item_mean/finetune",
               "item_mean/maml")
#: Tuner (TPE sampler) seeds of the noise study; 0 is the grid's own study.
TUNER_SEEDS = (0, 1, 2)
#: The models and schemes whose product is :data:`NOISE_CELLS` (for ``experiment tune``).
NOISE_MODELS = ("melu", "item_mean")
NOISE_SCHEMES = ("finetune", "maml", "melu")


def noise_folder(out_dir: str | Path, benchmark: str) -> Path:
    """``out_dir/<benchmark>-noise``: the grid runner's files of every tuner seed."""
    return Path(out_dir) / f"{benchmark}-noise"


def noise_path(out_dir: str | Path, benchmark: str) -> Path:
    """``out_dir/<benchmark>.tuning-noise.csv.gz``: the noise study's per-user results."""
    return Path(out_dir) / f"{benchmark}.tuning-noise.csv.gz"


def run_noise(config: ExperimentConfig, out_dir: str | Path, *,
              tuner_seeds: Sequence[int] = TUNER_SEEDS, cells: Sequence[str] = NOISE_CELLS,
              resume: bool = False, overwrite: bool = False,
              progress: bool = True) -> pd.DataFrame:
    """Train every tuner seed's choice of ``cells`` over ``config.seeds``; write the results.

    The choices are read from :func:`~metarec.experiments.tuning.configs_path` of each tuner
    seed (``<benchmark>.configs.json`` for 0, ``<benchmark>.tuner<k>.configs.json`` else),
    so tune first. ``resume`` keeps finished (tuner seed, seed, cell) runs; ``overwrite``
    replaces an earlier noise run. Returns the table written to :func:`noise_path`.
    """
    if not tuner_seeds or len(set(tuner_seeds)) != len(tuner_seeds):
        raise ValueError(f"tuner_seeds must be distinct and not empty, got {list(tuner_seeds)}.")
    for name in cells:
        Cell.parse(name)
    out_dir = Path(out_dir)
    folder = noise_folder(out_dir, config.name)
    for k in tuner_seeds:
        path = configs_path(out_dir, config.name, k)
        if not path.exists():
            raise FileNotFoundError(
                f"{path} does not exist: tune the noise cells with tuner seed {k} first "
                f"(`python -m metarec experiment tune {config.name} --tuner-seed {k} --models "
                f"{' '.join(NOISE_MODELS)} --schemes {' '.join(NOISE_SCHEMES)} --out "
                f"{out_dir}`).")
        configs = load_configs(path)
        missing = [c for c in cells if c not in configs["cells"]]
        if missing:
            raise ValueError(f"{path} has no finished study for {', '.join(missing)}: tune "
                             f"them with --tuner-seed {k} (and --resume) first.")
    for k in tuner_seeds:
        if progress:
            print(f"tuning noise: training tuner seed {k}'s choices", flush=True)
        run_grid(replace(config, name=f"tuner{k}"), configs_path(out_dir, config.name, k),
                 folder, cells=list(cells), resume=resume, overwrite=overwrite,
                 progress=progress)
    table = noise_table(folder, tuner_seeds, cells)
    write_frame(table, noise_path(out_dir, config.name))
    return table


def noise_table(folder: Path, tuner_seeds: Sequence[int], cells: Sequence[str]) -> pd.DataFrame:
    """The grid runner's per-user rows of every tuner seed, with a ``tuner_seed`` column.

    One row per (cell, tuner seed, seed, scenario, test user), ordered by cell (as given),
    tuner seed and seed.
    """
    frames = []
    for k in tuner_seeds:
        users = pd.read_csv(output_paths(folder, f"tuner{k}")["users"])
        users = users[users["cell"].isin(cells)]
        frames.append(users.assign(tuner_seed=k))
    table = pd.concat(frames, ignore_index=True)
    first = ["cell", "model", "scheme", "tuner_seed", "seed", "scenario", "user_id"]
    table = table[first + [c for c in table.columns if c not in first]]
    order = {c: i for i, c in enumerate(cells)}
    table = table.sort_values(["cell", "tuner_seed", "seed"],
                              key=lambda col: col.map(order) if col.name == "cell" else col,
                              kind="stable")
    return table.reset_index(drop=True)


def noise_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per (cell, scenario): the test MAE of each tuner seed and its spread (a printout).

    A tuner seed's test MAE is the mean over seeds of the user-averaged MAE (the grid
    table's number); ``range`` is the largest minus the smallest, ``std`` their standard
    deviation: what tuning alone moves a cell's result by, seeds and users held fixed.
    """
    per_seed = table.groupby(["cell", "scenario", "tuner_seed", "seed"], sort=False)["mae"].mean()
    per_tuner = (per_seed.groupby(level=["cell", "scenario", "tuner_seed"], sort=False).mean()
                 .unstack("tuner_seed"))
    per_tuner.columns = [f"tuner_{k}" for k in per_tuner.columns]
    values = per_tuner.to_numpy()
    per_tuner["range"] = values.max(axis=1) - values.min(axis=1)
    per_tuner["std"] = values.std(axis=1, ddof=1) if values.shape[1] > 1 else float("nan")
    return per_tuner.reset_index()


__all__ = ["NOISE_CELLS", "NOISE_MODELS", "NOISE_SCHEMES", "TUNER_SEEDS", "noise_folder",
           "noise_path", "noise_summary", "noise_table", "run_noise"]
