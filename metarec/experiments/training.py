"""Train a configured method on one seed's data and evaluate it: the core of every study.

The protocol (MeLU, Lee et al. 2019, on MovieLens; see ``metarec.data.splits``):

1. ``seed`` fixes the cold-start split (new users, validation users, warm hold-out), the task
   draws (support/query), each model's initialisation and the task order of training
   (:func:`~metarec.experiments.prepare`);
2. a method -- a hand-set recipe (:class:`~metarec.experiments.Method`) or a tuned grid cell
   (:func:`~metarec.experiments.train_tuned`) -- is trained on the meta-training tasks
   (existing users, existing items), with early stopping on the validation users' tasks; the
   weights of the best validation MAE are restored (:func:`~metarec.experiments.train_method`,
   :class:`~metarec.experiments.KeepBestWeights`);
3. it is evaluated by adapting to each test user's support set and scoring the query set: in
   the four scenarios -- warm, user-cold, item-cold, user-and-item-cold --
   (:func:`~metarec.experiments.evaluate_scenarios`), or per user after 0..``MAX_TEST_STEPS``
   inner steps on several task sets at once (:func:`~metarec.experiments.evaluate_groups`),
   e.g. the same new users with 1 to 20 support ratings
   (:func:`~metarec.experiments.support_size_tasks`).

The studies (:mod:`~metarec.experiments.recipe_study`, :mod:`~metarec.experiments.grid_study`,
:mod:`~metarec.experiments.when_study`) and ``python -m metarec train`` are thin layers that
loop over seeds and methods and store what these functions return
(:mod:`~metarec.experiments.store`).

Example
-------
::

    data = prepare(load_dataset("ml-100k"), seed=0)
    learner, seconds = train_method("maml", data, seed=0)
    rows = evaluate_scenarios(learner, data)        # one dict per scenario: mae, rmse, ndcg@k
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

from metarec.data import (
    ColdStartSplit,
    FeatureEncoder,
    RatingsDataset,
    TaskSet,
    build_tasks,
    cold_start_split,
    load_movielens,
    load_movielens_folder,
    make_synthetic,
    scenario_tasks,
)
from metarec.experiments.grid import MAX_TEST_STEPS, PATIENCE, Cell, cell_method
from metarec.experiments.guarded import evaluate_steps_guarded
from metarec.experiments.methods import Method, get_method
from metarec.meta import MetaLearner

__all__ = [
    "DATASET_NAMES",
    "KeepBestWeights",
    "METRICS",
    "PreparedData",
    "SCENARIOS",
    "SUPPORT_SIZES",
    "diverged_epochs",
    "epochs_run",
    "evaluate_groups",
    "evaluate_scenarios",
    "load_dataset",
    "prepare",
    "support_size_tasks",
    "train_method",
    "train_tuned",
]

SCENARIOS = ("warm", "user_cold", "item_cold", "user_item_cold")
#: Datasets :func:`load_dataset` knows by name (``path`` reads a custom MovieLens-format folder).
DATASET_NAMES = ("synthetic", "ml-100k", "ml-1m")
METRICS = ("mae", "rmse", "ndcg@1", "ndcg@3")
#: Support sizes (ratings per new user) of the support-size sweeps of chapters 8 and 9.
SUPPORT_SIZES = (1, 2, 3, 5, 10, 20)


def load_dataset(name: str, seed: int = 0, path: str | Path | None = None,
                 **synthetic_kwargs) -> RatingsDataset:
    """``"synthetic"`` (generated with ``seed``), a MovieLens name (checksummed cached download),
    or, with ``path``, a custom folder in MovieLens format (no checksum check; it warns that
    results are not comparable with the official release)."""
    if path is not None:
        return load_movielens_folder(path, name=None if name == "synthetic" else name)
    if name == "synthetic":
        return make_synthetic(seed=seed, **synthetic_kwargs)
    return load_movielens(name)


@dataclass
class PreparedData:
    """Everything a method needs for one seed: split, fitted encoder, tasks per part."""

    dataset: RatingsDataset
    split: ColdStartSplit
    encoder: FeatureEncoder
    tasks: dict[str, TaskSet]

    @property
    def train_mean(self) -> float:
        """Mean rating of the training part: the starting intercept/output bias of models."""
        return float(self.split.train["rating"].mean())


def prepare(dataset: RatingsDataset, seed: int,
            new_item_year: int | None = None) -> PreparedData:
    """Cold-start split, encoder fitted on the training part, and the tasks of every part.

    ``new_item_year``: items released in or after it are new (default: the dataset's).
    """
    split = cold_start_split(dataset, seed=seed, new_item_year=new_item_year)
    encoder = FeatureEncoder().fit(dataset, split.train)
    return PreparedData(dataset, split, encoder, scenario_tasks(split, encoder, seed=seed))


class KeepBestWeights(keras.callbacks.Callback):
    """Restore, at the end of training, the weights of the epoch with the lowest ``monitor``.

    Unlike ``EarlyStopping(restore_best_weights=True)`` it also restores when training runs
    all its epochs, and it includes the learner's own variables (Meta-SGD's learning rates).
    """

    def __init__(self, learner: MetaLearner, monitor: str = "val_mae"):
        super().__init__()
        self.learner, self.monitor = learner, monitor
        self.best, self.weights = float("inf"), None

    def _variables(self):
        return list(self.learner.model.weights) + list(self.learner.extra_variables)

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and value < self.best:
            self.best = value
            self.weights = [v.numpy().copy() for v in self._variables()]

    def on_train_end(self, logs=None):
        if self.weights is not None:
            for var, value in zip(self._variables(), self.weights, strict=True):
                var.assign(value)


def train_method(method: Method | str, data: PreparedData, seed: int, *,
                 epochs: int | None = None, batch_size: int = 32, patience: int = 3,
                 verbose: int = 0,
                 callbacks: Sequence[keras.callbacks.Callback] = (),
                 strategy: Any = None, bucket: bool = False,
                 learner: MetaLearner | None = None,
                 validation_diverged: str = "worst") -> tuple[MetaLearner, float]:
    """Build and train one method; returns the learner and the training time in seconds.

    Training stops early when the validation users' MAE has not improved for ``patience``
    epochs, and the weights of the best epoch are restored. An epoch whose validation
    predictions are NaN (adaptation diverges on a validation user) counts as the worst score
    and is never restored (``validation_diverged="worst"``, ``MetaLearner.fit``); the
    number of such epochs is :func:`diverged_epochs`. The tuner passes ``"raise"`` (a
    diverging configuration is a failed trial). ``callbacks`` (Keras callbacks,
    e.g. a ``keras.callbacks.LambdaCallback`` that logs every epoch) are called too; they see
    ``loss`` and ``val_mae``, ``val_rmse``, ``val_ndcg@k`` in the epoch logs. ``epochs``
    overrides the method's (not a closed-form method's 0). The epoch logs are in
    ``learner.history.history`` (``learner.history`` is None when no epoch ran).

    ``strategy`` (a ``tf.distribute.Strategy``): the model, learner and optimizer are created
    in its scope and every meta-batch is split over its replicas (:mod:`metarec.distribute`);
    ``bucket`` groups tasks by support size (``MetaLearner.fit``).

    ``learner``: an untrained learner in the state ``method.build(spec, seed=seed,
    global_mean=data.train_mean)`` returns (the tuner passes a reset one whose graphs are
    already compiled, ``metarec.experiments.learner_pool.LearnerPool``); default:
    built here.
    """
    method = get_method(method) if isinstance(method, str) else method
    if learner is not None and strategy is not None:
        raise ValueError("train_method: pass a prebuilt learner or a strategy, not both (a "
                         "distributed learner must be built in the strategy's scope).")
    if learner is None:
        # Mirrored variables must be created in the strategy's scope.
        scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
        with scope:
            learner = method.build(data.encoder.spec, seed=seed, global_mean=data.train_mean)
    start = time.perf_counter()
    if hasattr(learner.model, "fit_closed_form"):
        learner.model.fit_closed_form(data.split.train, data.encoder)
    n_epochs = method.epochs if epochs is None or method.epochs == 0 else epochs
    if n_epochs > 0:
        stop = keras.callbacks.EarlyStopping(monitor="val_mae", mode="min", patience=patience)
        best = KeepBestWeights(learner)
        learner.fit(data.tasks["train"], epochs=n_epochs, batch_size=batch_size,
                    validation_tasks=data.tasks["validation"],
                    callbacks=[stop, best, *callbacks],
                    verbose=verbose, strategy=strategy, bucket=bucket,
                    validation_diverged=validation_diverged)
    return learner, time.perf_counter() - start


def train_tuned(cell: Cell, tuned: Mapping[str, Any], data: PreparedData, seed: int, *,
                epochs: int | None = None, batch_size: int = 32
                ) -> tuple[Method, MetaLearner, float]:
    """Train grid ``cell`` with its tuned configuration; the method, learner and seconds.

    ``tuned`` is the cell's entry of a configs file (:func:`~metarec.experiments.load_configs`):
    ``params`` (the hyper-parameters) and ``test_steps`` (the inner steps chosen on validation
    users), as tuning chose them (``metarec.experiments.tuning``). Training follows
    :func:`train_method` with the grid's patience; ``epochs`` caps it (default: the grid's).
    """
    method = cell_method(cell, tuned["params"], test_steps=tuned["test_steps"])
    learner, seconds = train_method(method, data, seed, epochs=epochs, batch_size=batch_size,
                                    patience=PATIENCE)
    return method, learner, seconds


def epochs_run(learner: MetaLearner) -> int:
    """The number of epochs the learner's last ``fit`` ran (0 if it was never fitted)."""
    return len(learner.history.history["loss"]) if learner.history else 0


def diverged_epochs(learner: MetaLearner) -> int:
    """Epochs of the learner's last ``fit`` whose validation predictions were NaN (scored as
    the worst, never restored; 0 if it was never fitted or ran with ``"raise"``)."""
    if not learner.history:
        return 0
    return int(sum(learner.history.history.get("val_diverged", [])))


def evaluate_scenarios(learner: MetaLearner, data: PreparedData,
                       scenarios: Sequence[str] = SCENARIOS,
                       steps: int | None = None) -> list[dict]:
    """One row per scenario with the task-averaged metrics (``steps``: the learner's)."""
    rows = []
    for scenario in scenarios:
        result = learner.evaluate(data.tasks[scenario], steps=steps)
        rows.append({"scenario": scenario, "n_tasks": len(data.tasks[scenario]),
                     **{m: result[m] for m in METRICS}})
    return rows


#: The ratings of each part of the split that :func:`support_size_tasks` can draw users from.
_SUPPORT_PARTS = {"validation": "validation", "user_cold": "user_cold",
                  "item_cold": "item_cold", "user_item_cold": "user_item_cold"}


def support_size_tasks(data: PreparedData, sizes: Sequence[int],
                       scenario: str = "user_cold", seed: int = 0,
                       n_query: int = 10) -> dict[int, TaskSet]:
    """One task set per support size in ``sizes``: the same users and query sets in each.

    Only users of ``scenario`` (a test scenario, or ``"validation"`` for the validation users)
    with at least ``max(sizes) + n_query`` ratings are kept; the support set of size ``n`` is
    the first ``n`` of one fixed random order (``seed``) of the user's other ratings.
    Returns ``{n: TaskSet}`` in the order of ``sizes``.
    """
    if scenario not in _SUPPORT_PARTS:
        raise ValueError(f"support_size_sweep: scenario must be one of "
                         f"{sorted(_SUPPORT_PARTS)}.")
    ratings = getattr(data.split, _SUPPORT_PARTS[scenario])
    out = {}
    for n in sizes:
        tasks = build_tasks(ratings, data.encoder, min_ratings=max(sizes) + n_query,
                            max_ratings=100, n_query=n_query, support_size=n, seed=seed)
        if len(tasks) == 0:
            raise ValueError(f"No {scenario} user has {max(sizes) + n_query} ratings; "
                             "use smaller sizes.")
        out[int(n)] = tasks
    return out


def evaluate_groups(learner: Any, groups: dict[str, TaskSet],
                    scale: tuple[float, float], ks: Sequence[int] = (1, 3),
                    ranking_extras: bool = False) -> pd.DataFrame:
    """Per-task metrics after 0..MAX_TEST_STEPS steps for several task sets in one pass.

    The task sets are joined into one padded batch, so the adaptation curve is compiled once
    per learner instead of once per task-set shape (tracing dominated the run time).
    ``group`` says which set each row comes from. Predictions are clipped to the rating
    ``scale``, and a user whose adapted predictions are NaN is scored with the un-adapted
    model's (flagged in ``diverged``): what a guarded recommender would serve. ``ks`` and
    ``ranking_extras`` choose the ranking metrics (:func:`metarec.metrics.task_metrics`).
    """
    names = [name for name, tasks in groups.items() for _ in range(len(tasks))]
    joined = TaskSet([task for tasks in groups.values() for task in tasks])
    table = evaluate_steps_guarded(learner, joined, MAX_TEST_STEPS, batch_size=len(joined),
                                   per_task=True, diverged="fallback", clip=scale, ks=ks,
                                   ranking_extras=ranking_extras)
    # evaluate_steps_guarded keeps the task order within every step count.
    table["group"] = np.tile(names, MAX_TEST_STEPS + 1)
    return table
