"""Bad and edge inputs, tried systematically: what does a user get for each?

Every entry of :data:`CASES` is one bad input and the clear error it must get (type and a
phrase of the message naming the problem and the fix); the tests below run them all, plus the
losses that used to happen (a diverging ``fit`` leaving NaN weights, a runner that threw away
or overwrote results) and property-based tests (Hypothesis) of the metrics, task
construction and loaders in ``test_bad_inputs_properties.py``.

``book/api.md`` shows the table of :func:`summary_table` (what each category of bad input
gets); ``test_docs_table_is_current`` fails when it is stale. Regenerate it with
``PYTHONPATH=. python tests/bad_inputs/test_bad_inputs.py``.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from metarec import cli
from metarec.data import FeatureEncoder, build_tasks, cold_start_split, make_synthetic
from metarec.data.errors import DataError
from metarec.data.movielens import read_movielens
from metarec.data.pipeline import TaskStream
from metarec.data.tasks import Task, TaskSet
from metarec.experiments import (
    ExperimentConfig,
    KeepBestWeights,
    diverged_epochs,
    get_method,
    run_experiment,
)
from metarec.experiments import recipe_study as recipe_study_module
from metarec.experiments.guarded import evaluate_steps_guarded
from metarec.meta import MAML, MetaSGD, Reptile, load_learner
from metarec.metrics import NonFinitePredictionError, ndcg_at_k, task_metrics
from metarec.models import build_model

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"n_users": 120, "n_items": 80, "ratings_per_user": (15, 40)}


# ----------------------------------------------------------------------------- shared data
@pytest.fixture(scope="module")
def world():
    """A small synthetic dataset, its split, encoder and tasks, and a trained MAML(mf)."""
    ds = make_synthetic(seed=0, **SMALL)
    split = cold_start_split(ds, seed=0)
    encoder = FeatureEncoder().fit(ds, split.train)
    tasks = build_tasks(split.train, encoder, seed=0)
    train = tasks.subset(np.arange(32))
    keras.utils.set_random_seed(0)
    model = build_model("mf", encoder.spec)
    learner = MAML(model, inner_lr=0.1, adapt=model.ADAPT)
    learner.fit(train, epochs=1, batch_size=16, verbose=0)
    return {"ds": ds, "split": split, "encoder": encoder, "tasks": tasks, "train": train,
            "learner": learner}


# ----------------------------------------------------------------------------- the case table
@dataclass(frozen=True)
class Case:
    """One bad input: ``call(world)`` must raise ``error`` with ``match`` in the message."""

    category: str
    what: str
    call: Callable[[dict], object]
    error: type[BaseException]
    match: str


CATEGORIES = {
    "learner hyper-parameters": "TypeError/ValueError at construction naming the argument "
                                "and its valid range",
    "fit, evaluate, adapt arguments": "TypeError/ValueError naming the argument and its valid "
                                      "range, before any computation",
    "tasks of another encoder": "ValueError naming both encoder fingerprints and which "
                                "encoder to use",
    "task construction": "TypeError/ValueError naming the argument and its valid range; "
                         "duplicate ratings refused (leakage)",
    "streams": "TaskStream.from_ratings: the errors of build_tasks (one shared validation, "
               "same messages)",
    "metrics": "TypeError/ValueError for NaN ratings, 2-D input, bad k; nDCG of negative "
               "ratings refused (one task) or NaN (batch)",
    "data files": "DataError naming the right file (and line) and the fix",
    "saved learners": "FileNotFoundError/ValueError naming the damaged file and what is wrong",
    "experiment runs": "error before training; finished results are kept and resumable",
    "command line": "one line on stderr, no traceback, exit status 2",
    "commands": "`train`, `experiment run|tune|when`: every number range-checked, every error "
                "one `error:` line (exit status 1 or 2; interrupted: 130/143, finished "
                "results kept, how to resume), never a traceback; results on other data than "
                "their `NAME.provenance.json` refused",
    "concurrency": "a folder (or benchmark, study file, point) another live run is writing "
                   "is refused before anything runs; a dead run's lock is replaced",
    "strategies": "`--devices` bounded, fewer tasks than replicas refused: ValueError "
                  "before training (no hang, no NaN loss); a multi-worker peer that never "
                  "comes: one `error:` line naming it and TF_CONFIG after `--peer-timeout` "
                  "(exit status 1), Ctrl-C/SIGTERM end the wait (130/143)",
    "studies": "a resumed tuning study keeps its larger budget; a damaged configs file or "
               "study is one `error:` line",
    "diverging training": "FloatingPointError; the model keeps its last finite weights; "
                          "NaN validation predictions: NonFinitePredictionError, or with "
                          "validation_diverged='worst' an epoch scored inf, never restored",
}


def _learner(cls=MAML, **kwargs):
    def make(w):
        model = w["learner"].model
        return cls(model, **kwargs)
    return make


def _fit(**kwargs):
    return lambda w: w["learner"].fit(w["train"], **{"epochs": 1, "verbose": 0, **kwargs})


def _tasks(**kwargs):
    return lambda w: build_tasks(w["split"].train, w["encoder"], **kwargs)


def _other_encoder_tasks(w):
    other = FeatureEncoder().fit(w["ds"], w["split"].train.iloc[: len(w["split"].train) // 2])
    return build_tasks(w["split"].user_cold, other, seed=0)


def _foreign_adapt(w):
    learner = MAML(w["learner"].model, adapt=w["learner"].model.trainable_variables[:1]
                   + [keras.Variable(np.zeros(2, np.float32), name="elsewhere")])
    return learner.adapt(w["train"][0])


def _dup_ratings(w):
    ratings = w["split"].train
    return pd.concat([ratings, ratings.iloc[:1]], ignore_index=True)


@dataclass(frozen=True)
class TaskArgumentCase:
    """A bad argument of task construction: ``kwargs`` (and ``ratings(w)``, the ratings passed)
    must raise ``error`` with ``match``; ``stream``: TaskStream takes these arguments too."""

    what: str
    kwargs: dict
    error: type[BaseException]
    match: str
    ratings: Callable[[dict], pd.DataFrame] = lambda w: w["split"].train
    stream: bool = True


#: Every bad input of task construction; build_tasks and TaskStream.from_ratings share one
#: validation (metarec.data.tasks.check_task_arguments), so both get every case that applies.
TASK_ARGUMENT_CASES: list[TaskArgumentCase] = [
    *[TaskArgumentCase(f"{k}={v!r}", {k: v}, err, msg, stream=k not in ("support_size",
                                                                         "group_by"))
      for k, v, err, msg in [
          ("n_query", 0, ValueError, "n_query must be an integer >= 1"),
          ("n_query", -3, ValueError, "n_query must be an integer >= 1"),
          ("n_query", 2.0, TypeError, "n_query must be an integer >= 1"),
          ("max_support", 0, ValueError, "max_support must be an integer >= 1"),
          ("max_support", -5, ValueError, "max_support must be an integer >= 1"),
          ("support_size", 0, ValueError, "support_size must be an integer >= 1"),
          ("min_ratings", 0, ValueError, "min_ratings must be an integer >= 1"),
          ("max_ratings", -1, ValueError, "max_ratings must be an integer >= 1"),
          ("seed", -1, ValueError, "seed must be an integer >= 0"),
          ("group_by", "title", ValueError, "group_by must be 'user_id' or 'item_id'")]],
    TaskArgumentCase("min_ratings > max_ratings", {"min_ratings": 50, "max_ratings": 20},
                     ValueError, "keeps no user"),
    TaskArgumentCase("min_ratings <= n_query", {"min_ratings": 5, "n_query": 10},
                     ValueError, "would leave users with an empty support set"),
    TaskArgumentCase("support_size and max_support together",
                     {"support_size": 3, "max_support": 5}, ValueError, "not both",
                     stream=False),
    TaskArgumentCase("a (user, item) pair rated twice", {}, ValueError, "rated more than once",
                     ratings=lambda w: _dup_ratings(w)),
    TaskArgumentCase("query_ratings repeating a support rating",
                     {"query_ratings": "train[:3]"}, ValueError,
                     "in ratings and query_ratings", stream=False),
    TaskArgumentCase("ratings without a rating column", {}, ValueError,
                     "lack the column 'rating'",
                     ratings=lambda w: w["split"].train.drop(columns="rating")),
]


def _build_with(build: Callable, case: TaskArgumentCase) -> Callable[[dict], object]:
    def call(w):
        kwargs = {k: (w["split"].train.iloc[:3] if v == "train[:3]" else v)
                  for k, v in case.kwargs.items()}
        return build(case.ratings(w), w["encoder"], **kwargs)
    return call


CASES: list[Case] = [
    # learner hyper-parameters
    *[Case("learner hyper-parameters", f"inner_lr={v!r}", _learner(inner_lr=v), err,
           "inner_lr must be a finite number > 0")
      for v, err in [(math.nan, ValueError), (math.inf, ValueError), (-0.1, ValueError),
                     (0.0, ValueError), ("0.1", TypeError), (None, TypeError)]],
    *[Case("learner hyper-parameters", f"inner_steps={v!r}", _learner(inner_steps=v), err,
           "inner_steps must be an integer >= 0")
      for v, err in [(-1, ValueError), (1.5, TypeError), (True, TypeError)]],
    Case("learner hyper-parameters", "seed=-1", _learner(seed=-1), ValueError,
         "seed must be an integer >= 0"),
    Case("learner hyper-parameters", "adapt=3", _learner(adapt=3), TypeError,
         "adapt must be 'all', a regular expression"),
    Case("learner hyper-parameters", "adapt='[unclosed'", _learner(adapt="[unclosed"),
         ValueError, "not a valid regular expression"),
    Case("learner hyper-parameters", "adapt= another model's variables", _foreign_adapt,
         ValueError, "not trainable variables of model"),
    Case("learner hyper-parameters", "recipe outer_lr=nan",
         lambda w: get_method("maml").with_(outer_lr=math.nan), ValueError,
         "outer_lr must be a finite number > 0"),
    Case("learner hyper-parameters", "model=None", lambda w: MAML(None), TypeError,
         "model must be a keras.Model"),
    Case("learner hyper-parameters", "Reptile meta_step_size=nan",
         _learner(Reptile, meta_step_size=math.nan), ValueError,
         "meta_step_size must be a finite number > 0"),
    Case("learner hyper-parameters", "MetaSGD inner_lr=inf", _learner(MetaSGD, inner_lr=math.inf),
         ValueError, "inner_lr must be a finite number > 0"),
    # fit, evaluate, adapt arguments
    *[Case("fit, evaluate, adapt arguments", f"fit({k}={v!r})", _fit(**{k: v}), err, msg)
      for k, v, err, msg in [
          ("epochs", 0, ValueError, "epochs must be an integer >= 1"),
          ("epochs", 2.5, TypeError, "epochs must be an integer >= 1"),
          ("batch_size", 0, ValueError, "batch_size must be an integer >= 1"),
          ("batch_size", -4, ValueError, "batch_size must be an integer >= 1"),
          ("verbose", 5, ValueError, "verbose must be an integer in [0, 2]"),
          ("validation_batch_size", 0, ValueError, "validation_batch_size must be")]],
    Case("fit, evaluate, adapt arguments", "fit(a TaskBatch)",
         lambda w: w["learner"].fit(w["train"].batch([0, 1]), verbose=0), TypeError,
         "a TaskBatch: pass the TaskSet"),
    Case("fit, evaluate, adapt arguments", "fit(empty TaskSet)",
         lambda w: w["learner"].fit(TaskSet([]), verbose=0), ValueError, "is empty"),
    Case("fit, evaluate, adapt arguments", "evaluate(steps=-1)",
         lambda w: w["learner"].evaluate(w["train"], steps=-1), ValueError,
         "steps must be an integer >= 0"),
    Case("fit, evaluate, adapt arguments", "evaluate(ks=3)",
         lambda w: w["learner"].evaluate(w["train"], ks=3), TypeError,
         "ks must be a non-empty sequence"),
    Case("fit, evaluate, adapt arguments", "evaluate(ks=(0,))",
         lambda w: w["learner"].evaluate(w["train"], ks=(0,)), ValueError,
         "every k of ks must be an integer >= 1"),
    Case("fit, evaluate, adapt arguments", "evaluate(batch_size=0)",
         lambda w: w["learner"].evaluate(w["train"], batch_size=0), ValueError,
         "batch_size must be an integer >= 1"),
    Case("fit, evaluate, adapt arguments", "evaluate_steps(max_steps=-2)",
         lambda w: w["learner"].evaluate_steps(w["train"], -2), ValueError,
         "max_steps must be an integer >= 0"),
    Case("fit, evaluate, adapt arguments", "evaluate_steps_guarded(clip=(5, 1))",
         lambda w: evaluate_steps_guarded(w["learner"], w["train"], 1, clip=(5, 1)),
         ValueError, "clip must be (low, high) with low < high"),
    Case("fit, evaluate, adapt arguments", "adapt(steps=-1)",
         lambda w: w["learner"].adapt(w["train"][0], steps=-1), ValueError,
         "steps must be an integer >= 0"),
    Case("fit, evaluate, adapt arguments", "adapt(NaN rating)",
         lambda w: w["learner"].adapt((w["train"][0].support_x,
                                       np.full(w["train"][0].n_support, np.nan))),
         ValueError, "contain NaN or infinite"),
    Case("fit, evaluate, adapt arguments", "adapt(x and y of different lengths)",
         lambda w: w["learner"].adapt((w["train"][0].support_x,
                                       w["train"][0].support_y[:2])),
         ValueError, "one row per rating"),
    Case("fit, evaluate, adapt arguments", "adapt(a DataFrame)",
         lambda w: w["learner"].adapt(w["split"].train), TypeError,
         "support must be a Task or a pair"),
    # tasks of another encoder
    Case("tasks of another encoder", "evaluate(tasks of another encoder)",
         lambda w: w["learner"].evaluate(_other_encoder_tasks(w)), ValueError,
         "encoded by another FeatureEncoder"),
    Case("tasks of another encoder", "fit(tasks of another encoder)",
         lambda w: w["learner"].fit(_other_encoder_tasks(w), verbose=0), ValueError,
         "encoded by another FeatureEncoder"),
    Case("tasks of another encoder", "adapt(task of another encoder)",
         lambda w: w["learner"].adapt(_other_encoder_tasks(w)[0]), ValueError,
         "encoded by another FeatureEncoder"),
    Case("tasks of another encoder", "one TaskSet mixing two encoders",
         lambda w: TaskSet([w["train"][0], _other_encoder_tasks(w)[0]]), ValueError,
         "different FeatureEncoders"),
    # task construction (build_tasks) and the same cases for TaskStream (streams)
    *[Case("task construction", f"build_tasks({c.what})", _build_with(build_tasks, c), c.error,
           c.match) for c in TASK_ARGUMENT_CASES],
    *[Case("streams", f"TaskStream.from_ratings({c.what})",
           _build_with(TaskStream.from_ratings, c), c.error, c.match)
      for c in TASK_ARGUMENT_CASES if c.stream],
    Case("streams", "TaskStream.from_ratings(n_buckets=0)",
         lambda w: TaskStream.from_ratings(w["split"].train, w["encoder"], n_buckets=0),
         ValueError, "n_buckets must be an integer >= 1"),
    Case("task construction", "cold_start_split(seed=-1)",
         lambda w: cold_start_split(w["ds"], seed=-1), ValueError, "seed must be an integer >= 0"),
    # metrics
    Case("metrics", "ndcg_at_k with a NaN true rating",
         lambda w: ndcg_at_k([5, np.nan, 3], [1, 2, 3], 2), ValueError,
         "True ratings contain NaN"),
    Case("metrics", "ndcg_at_k on a 2-D batch",
         lambda w: ndcg_at_k([[5, 4], [3, 1]], [[1, 2], [3, 4]], 2), ValueError,
         "use task_metrics"),
    Case("metrics", "ndcg_at_k with negative ratings",
         lambda w: ndcg_at_k([-1, 2, 3], [1, 2, 3], 2), ValueError, "needs ratings >= 0"),
    Case("metrics", "ndcg_at_k(k=0)", lambda w: ndcg_at_k([1, 2], [1, 2], 0), ValueError,
         "k must be an integer >= 1"),
    Case("metrics", "ndcg_at_k(k=1.5)", lambda w: ndcg_at_k([1, 2], [1, 2], 1.5), TypeError,
         "k must be an integer >= 1"),
    Case("metrics", "task_metrics with a NaN true rating",
         lambda w: task_metrics([[5.0, np.nan]], [[1.0, 2.0]]), ValueError,
         "True ratings contain NaN"),
    Case("metrics", "task_metrics(ks=3)",
         lambda w: task_metrics([[1.0, 2.0]], [[1.0, 2.0]], ks=3), TypeError,
         "ks must be a sequence"),
]


def summary_table() -> str:
    """The markdown table of ``book/api.md``: categories, inputs tried, what the user gets."""
    counts = {c: 0 for c in CATEGORIES}
    for case in CASES:
        counts[case.category] += 1
    for category, n in EXTRA_CASES.items():
        counts[category] += n
    from test_bad_inputs_commands import COMMAND_CASES

    for category, n in COMMAND_CASES.items():
        counts[category] += n
    lines = ["| kind of bad input | inputs tried | what the user gets |", "|---|---:|---|"]
    lines += [f"| {c} | {counts[c]} | {CATEGORIES[c]} |" for c in CATEGORIES]
    from test_bad_inputs_properties import PROPERTY_EXAMPLES

    lines.append(f"| generated (Hypothesis): metrics, tasks, loader rows | "
                 f"{sum(PROPERTY_EXAMPLES.values())} | the properties above hold for every "
                 f"generated input, or the clear error |")
    return "\n".join(lines)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.category}: {c.what}" for c in CASES])
def test_bad_input_gets_a_clear_error(case, world):
    with pytest.raises(case.error) as info:
        case.call(world)
    assert case.match in str(info.value), str(info.value)
    assert type(info.value) is case.error or issubclass(type(info.value), case.error)


@pytest.mark.parametrize("case", [c for c in TASK_ARGUMENT_CASES if c.stream],
                         ids=[c.what for c in TASK_ARGUMENT_CASES if c.stream])
def test_build_tasks_and_task_stream_share_rules_and_messages(case, world):
    messages = []
    for build, where in ((build_tasks, "build_tasks"),
                         (TaskStream.from_ratings, "TaskStream.from_ratings")):
        with pytest.raises(case.error) as info:
            _build_with(build, case)(world)
        assert str(info.value).startswith(f"{where}: "), str(info.value)
        messages.append(str(info.value).removeprefix(f"{where}: "))
    assert messages[0] == messages[1]


def test_stream_cases_cover_every_argument_it_takes():
    import inspect

    stream_args = set(inspect.signature(TaskStream.from_ratings).parameters)
    for case in TASK_ARGUMENT_CASES:
        assert case.stream == (set(case.kwargs) <= stream_args), case.what


# ----------------------------------------------------------------------------- explicit cases
#: Inputs the explicit tests below try, by category (for the docs table).
EXTRA_CASES = {"diverging training": 5, "saved learners": 6, "experiment runs": 9,
               "command line": 6, "data files": 4, "tasks of another encoder": 1,
               "metrics": 1}


def _weights(learner):
    return [np.array(v) for v in [*learner.model.weights, *learner.extra_variables,
                                  *learner.optimizer.variables]]


def _with_nan_rating(tasks: TaskSet) -> TaskSet:
    tasks = tasks.subset(np.arange(len(tasks)))
    tasks._qy = tasks._qy.copy()
    tasks._qy[0, 0] = np.nan
    return tasks


def test_diverging_fit_keeps_the_last_finite_weights(world):
    for cls in (MAML, Reptile):  # the two kinds of outer step
        keras.utils.set_random_seed(0)
        model = build_model("mf", world["encoder"].spec)
        learner = cls(model, inner_lr=0.1, adapt=model.ADAPT)
        learner.fit(world["train"], epochs=1, batch_size=16, verbose=0)
        before = _weights(learner)
        with pytest.raises(FloatingPointError, match="keeps its last finite weights"):
            learner.fit(_with_nan_rating(world["train"]), epochs=1, batch_size=16,
                        shuffle=False, verbose=0)
        after = _weights(learner)
        assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True)), cls
        assert int(learner.optimizer.iterations) == 2  # the skipped step is not counted


class _Line(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(1)

    def call(self, x):
        return self.dense(x["x"])[:, 0]


def test_diverging_fit_under_xla_keeps_the_last_finite_weights():
    # jit_compile=True takes the tf.cond variant of the guard (XLA does not check numerics).
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(8, 5, 1)).astype(np.float32)
    tasks = TaskSet([Task(i, {"x": xs[i]}, 2 * xs[i, :, 0], {"x": xs[i]}, 2 * xs[i, :, 0],
                          np.arange(5), np.arange(5)) for i in range(8)])
    keras.utils.set_random_seed(0)
    learner = MAML(_Line(), inner_lr=0.1, jit_compile=True)
    learner.fit(tasks, epochs=1, batch_size=8, verbose=0)
    before = _weights(learner)
    with pytest.raises(FloatingPointError, match="keeps its last finite weights"):
        learner.fit(_with_nan_rating(tasks), epochs=1, batch_size=8, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, _weights(learner), strict=True))


def test_keep_best_weights_restores_on_the_way_out_of_an_error(world):
    keras.utils.set_random_seed(0)
    model = build_model("mf", world["encoder"].spec)
    learner = MAML(model, inner_lr=0.1, adapt=model.ADAPT)
    tasks = world["train"].subset(np.arange(32))
    best = KeepBestWeights(learner)

    class PoisonAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            tasks._qy = tasks._qy.copy()
            tasks._qy[:, 0] = np.nan  # epoch 2 diverges at its first step

    with pytest.raises(FloatingPointError):
        learner.fit(tasks, epochs=3, batch_size=16, verbose=0,
                    validation_tasks=world["train"].subset(np.arange(8)),
                    callbacks=[best, PoisonAfterFirstEpoch()])
    assert best.weights is not None
    restored = [np.array(v) for v in best._variables()]
    assert all(np.array_equal(a, b) for a, b in zip(best.weights, restored, strict=True))
    assert all(np.isfinite(w).all() for w in restored)


# ----------------------------------------------------------------------------- saved learners
def test_saved_learner_keeps_the_fingerprint(world, tmp_path):
    world["learner"].save(tmp_path / "l")
    loaded = load_learner(tmp_path / "l")
    assert loaded.encoder_fingerprint == world["encoder"].fingerprint
    with pytest.raises(ValueError, match="encoded by another FeatureEncoder"):
        loaded.evaluate(_other_encoder_tasks(world))


@pytest.mark.parametrize("damage, error, match", [
    (lambda p: (p / "learner.json").write_text("{not json"), ValueError,
     r"learner\.json is damaged"),
    (lambda p: (p / "learner.json").write_text(json.dumps({"class": "Nope", "config": {}})),
     ValueError, "names the learner class 'Nope'"),
    (lambda p: (p / "model.keras").write_bytes((p / "model.keras").read_bytes()[:200]),
     ValueError, r"model\.keras exists but cannot be loaded"),
    (lambda p: (p / "model.keras").unlink(), FileNotFoundError, r"model\.keras is missing"),
    (lambda p: (p / "learner_variables.npz").unlink(), FileNotFoundError,
     r"learner_variables\.npz is missing"),
    (lambda p: (p / "learner_variables.npz").write_bytes(b"PK\x03\x04 truncated"), ValueError,
     r"learner_variables\.npz exists but does not hold"),
])
def test_damaged_save_names_the_file(world, tmp_path, damage, error, match):
    keras.utils.set_random_seed(0)
    model = build_model("mf", world["encoder"].spec)
    learner = MetaSGD(model, inner_lr=0.1, adapt=model.ADAPT)
    learner._build(world["train"][0].support_x)
    path = learner.save(tmp_path / "saved")
    damage(path)
    with pytest.raises(error, match=match):
        load_learner(path)


# ----------------------------------------------------------------------------- experiment runs
def _config(**changes) -> ExperimentConfig:
    base = {"name": "tiny", "dataset": "synthetic", "methods": ("popularity", "mf"),
            "seeds": (0,), "epochs": 1, "synthetic_kwargs": SMALL}
    return ExperimentConfig(**{**base, **changes})


def _fail_on(monkeypatch, name):
    """Replace training and evaluation by fakes (the runner's bookkeeping is under test);
    method ``name`` diverges. Returns the list of methods trained."""
    calls = []

    def train(method, data, seed, **kwargs):
        calls.append(method.name)
        if method.name == name:
            raise FloatingPointError(f"{name} diverged")
        return method.name, 0.5

    def evaluate(learner, data, scenarios, steps=None):
        return [{"scenario": s, "n_tasks": 1, "mae": 1.0, "rmse": 1.0, "ndcg@1": 0.5,
                 "ndcg@3": 0.5} for s in scenarios]

    monkeypatch.setattr(recipe_study_module, "train_method", train)
    monkeypatch.setattr(recipe_study_module, "evaluate_scenarios", evaluate)
    return calls


def test_a_diverging_method_loses_nothing_and_resumes(tmp_path, monkeypatch):
    calls = _fail_on(monkeypatch, "mf")
    with pytest.raises(FloatingPointError) as info:
        run_experiment(_config(), out_dir=tmp_path, progress=False)
    assert "--resume" in " ".join(info.value.__notes__)
    kept = pd.read_csv(tmp_path / "tiny.csv")
    assert set(kept["method"]) == {"popularity"} and len(kept) == 4
    monkeypatch.undo()
    calls = _fail_on(monkeypatch, "none")
    results = run_experiment(_config(), out_dir=tmp_path, progress=False, resume=True)
    assert calls == ["mf"]  # only the missing (seed, method) ran
    assert results["method"].tolist() == ["popularity"] * 4 + ["mf"] * 4
    assert len(pd.read_csv(tmp_path / "tiny.csv")) == 8


def test_runs_never_replace_another_runs_results(tmp_path, monkeypatch):
    calls = _fail_on(monkeypatch, "none")
    run_experiment(_config(methods=("popularity",)), out_dir=tmp_path, progress=False)
    before = (tmp_path / "tiny.csv").read_bytes()
    with pytest.raises(FileExistsError, match="--resume .* --overwrite"):
        run_experiment(_config(methods=("popularity",), seeds=(1,)), out_dir=tmp_path,
                       progress=False)
    with pytest.raises(ValueError, match="it holds another run .*synthetic_kwargs"):
        run_experiment(_config(methods=("popularity",), synthetic_kwargs={"n_users": 150}),
                       out_dir=tmp_path, progress=False, resume=True)
    assert (tmp_path / "tiny.csv").read_bytes() == before and calls == ["popularity"]
    run_experiment(_config(methods=("popularity",), seeds=(1,)), out_dir=tmp_path,
                   progress=False, overwrite=True)
    assert set(pd.read_csv(tmp_path / "tiny.csv")["seed"]) == {1}


def test_runner_checks_before_training(tmp_path, monkeypatch):
    calls = _fail_on(monkeypatch, "none")
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(OSError, match="Choose another --out folder"):
        run_experiment(_config(), out_dir=blocker / "sub", progress=False)
    with pytest.raises(ValueError, match="duplicate seeds"):
        run_experiment(_config(seeds=(0, 0)), out_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        run_experiment(_config(seeds=(-1,)), out_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="unknown dataset 'ml-10m'"):
        run_experiment(_config(dataset="ml-10m"), out_dir=tmp_path, progress=False)
    assert calls == [] and blocker.read_text() == "x"


# ----------------------------------------------------------------------------- command line
@pytest.mark.parametrize("argv, match", [
    (["experiment", "run", "nope"], "unknown benchmark 'nope'"),
    (["experiment", "run", "quick", "--seeds", "-1"], "expected an integer >= 0"),
    (["experiment", "run", "quick", "--seeds", "0", "0", "--out", "{tmp}"], "duplicate seeds"),
    (["experiment", "run", "quick", "--methods", "nope", "--out", "{tmp}"],
     "Unknown method 'nope'"),
    (["experiment", "run", "quick", "--dataset", "ml-10m"], "invalid choice: 'ml-10m'"),
    (["experiment", "run", "quick", "--epochs", "0"], "expected an integer >= 1"),
])
def test_cli_mistakes_get_one_line_and_status_2(argv, match, tmp_path, capsys, monkeypatch):
    _fail_on(monkeypatch, "none")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    try:
        code = cli.main(argv)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2
    assert match in err and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(("error:", "python -m metarec"))


# ----------------------------------------------------------------------------- data files
def _broken(mlfix, tmp_path, fname, data):
    files = dict(mlfix.files["ml-100k"])
    files[fname] = data
    return mlfix.write(tmp_path, "ml-100k", files)


def test_loader_blames_the_right_file(tmp_path, mlfix):
    folder = _broken(mlfix, tmp_path / "a", "u.item", b"")
    with pytest.raises(DataError, match="u.item is empty") as info:
        read_movielens("ml-100k", folder)
    assert "u.data" not in str(info.value)
    items = mlfix.files["ml-100k"]["u.item"].split(b"\n")
    folder = _broken(mlfix, tmp_path / "b", "u.item", b"\n".join(items[:2]) + b"\n")
    with pytest.raises(DataError) as info:
        read_movielens("ml-100k", folder)
    message = str(info.value)
    assert f"is not listed in {folder / 'u.item'}" in message
    assert f"move {folder / 'u.item'} away" in message  # the advice is about u.item
    assert f"move {folder / 'u.data'} away" not in message


def test_a_present_but_unreadable_file_is_not_called_missing(tmp_path, mlfix):
    folder = mlfix.write(tmp_path, "ml-100k")
    (folder / "u.user").unlink()
    (folder / "u.user").mkdir()
    with pytest.raises(DataError, match="exists but cannot be read") as info:
        read_movielens("ml-100k", folder)
    assert "missing" not in str(info.value)


def test_duplicate_ratings_are_refused_by_the_loader(tmp_path, mlfix):
    data = mlfix.files["ml-100k"]["u.data"] + b"1\t1\t4\t881250999\n"
    folder = _broken(mlfix, tmp_path, "u.data", data)
    with pytest.raises(DataError, match=r"user 1, item 1 on lines \[1, 8\]"):
        read_movielens("ml-100k", folder)


def test_duplicate_ratings_never_land_in_support_and_query(world):
    tasks = build_tasks(world["split"].train, world["encoder"], seed=3)
    for task in tasks:
        assert not set(task.support_items) & set(task.query_items)


def test_task_metrics_give_no_ndcg_for_negative_ratings():
    # Regression targets (sine waves) keep MAE and RMSE; nDCG is undefined there: NaN.
    out = task_metrics([[-2.0, 1.0], [3.0, 1.0]], [[1.0, 2.0], [3.0, 1.0]], ks=(1,))
    assert np.isnan(out["ndcg@1"][0]) and out["ndcg@1"][1] == 1.0
    assert out["mae"].tolist() == [2.0, 0.0]


def test_docs_table_is_current():
    text = (ROOT / "book" / "api.md").read_text()
    assert summary_table() in text, ("book/api.md's table of bad inputs is stale; regenerate "
                                     "it with `PYTHONPATH=. python "
                                     "tests/bad_inputs/test_bad_inputs.py`")


def test_fit_scores_a_diverged_validation_epoch_as_the_worst(world):
    """validation_diverged="worst": an epoch whose validation predictions are NaN scores
    val_mae = inf, is flagged, and is never the epoch KeepBestWeights restores."""
    keras.utils.set_random_seed(0)
    model = build_model("mf", world["encoder"].spec)
    learner = MAML(model, inner_lr=0.1, adapt=model.ADAPT)
    validation = world["train"].subset(np.arange(8))
    evaluate, calls = learner.evaluate, []

    def diverges_on_second_call(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise NonFinitePredictionError("Predictions contain NaN: the model diverged.")
        return evaluate(*args, **kwargs)

    learner.evaluate = diverges_on_second_call
    best = KeepBestWeights(learner)
    history = learner.fit(world["train"], epochs=3, batch_size=16, verbose=0,
                          validation_tasks=validation, callbacks=[best],
                          validation_diverged="worst").history
    assert history["val_diverged"] == [0.0, 1.0, 0.0]
    assert history["val_mae"][1] == math.inf and math.isfinite(history["val_mae"][2])
    assert diverged_epochs(learner) == 1
    assert best.best == min(history["val_mae"][0], history["val_mae"][2])
    # The default policy raises the error (and the tuner's diverging trial stays failed).
    calls.clear()
    with pytest.raises(NonFinitePredictionError, match="Predictions contain NaN"):
        learner.fit(world["train"], epochs=2, batch_size=16, verbose=0,
                    validation_tasks=validation)
    with pytest.raises(ValueError, match="validation_diverged must be 'raise' or 'worst'"):
        learner.fit(world["train"], epochs=1, verbose=0, validation_diverged="skip")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    print(summary_table())
