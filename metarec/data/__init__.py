"""Datasets, feature encoding, cold-start splits and few-shot tasks (numpy/pandas only).

Typical use::

    from metarec.data import load_movielens, cold_start_split, FeatureEncoder, scenario_tasks

    ds = load_movielens("ml-100k")               # verified download into the cache
    split = cold_start_split(ds, seed=0)         # warm / user-cold / item-cold / both
    encoder = FeatureEncoder().fit(ds, split.train)
    tasks = scenario_tasks(split, encoder)       # dict of TaskSet per scenario

A copy that differs from the official release (partial, filtered, edited) is never touched by
the cache; read it explicitly, without verification (warns; ``ds.custom`` is True)::

    ds = load_movielens_folder("/data/my-ml-1m")  # format detected: u.data or ratings.dat
"""

from metarec.data.cache import check_dataset, download_dataset, ensure_dataset, get_data_dir
from metarec.data.dataset import RatingsDataset, dataset_stats
from metarec.data.errors import ChecksumMismatchError, DataError
from metarec.data.features import FeatureEncoder, FeatureSpec
from metarec.data.movielens import load_movielens, load_movielens_folder, read_movielens
from metarec.data.registry import DATASETS, DatasetInfo
from metarec.data.splits import ColdStartSplit, cold_start_split, scenario_tasks
from metarec.data.synthetic import SyntheticTruth, make_synthetic

# Last: tasks.py may import names defined above from this package.
from metarec.data.tasks import Task, TaskBatch, TaskSet, TaskSource, build_tasks

__all__ = [
    "DATASETS",
    "ChecksumMismatchError",
    "ColdStartSplit",
    "DataError",
    "DatasetInfo",
    "FeatureEncoder",
    "FeatureSpec",
    "RatingsDataset",
    "SyntheticTruth",
    "Task",
    "TaskBatch",
    "TaskSet",
    "TaskSource",
    "build_tasks",
    "check_dataset",
    "cold_start_split",
    "dataset_stats",
    "download_dataset",
    "ensure_dataset",
    "get_data_dir",
    "load_movielens",
    "load_movielens_folder",
    "make_synthetic",
    "read_movielens",
    "scenario_tasks",
]
