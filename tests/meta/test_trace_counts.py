"""How many programs a run builds (issue 21): traces of the learner's ``tf.function``s.

A whole epoch of ``fit`` (meta-batches of 8 tasks and a last smaller batch of 2) traces the
training step at most twice: once for the full batches and once with relaxed shapes for any
other shape (``reduce_retracing``); later epochs, ``evaluate``, ``evaluate_steps`` and
``adapt`` add no training-step trace, and each evaluation function is traced at most twice.
(Under XLA one program is compiled per distinct input shape: ``test_xla_programs.py``.)
``fit`` builds the optimizer's slots before the first step, so creating them
inside the step no longer costs a second trace; the numbers are the same as with slots
created inside the step (bit-identical weights).
"""

import keras
import numpy as np
import pytest

from metarec.data import FeatureEncoder, build_tasks, cold_start_split, make_synthetic
from metarec.meta import MAML, FineTune, MetaSGD, Reptile
from metarec.models import build_model

#: Traces of one compiled function per run: the full meta-batch and one shape-relaxed trace.
MAX_TRACES = 2


@pytest.fixture(scope="module")
def setup():
    ds = make_synthetic(n_users=60, n_items=80, seed=0)
    split = cold_start_split(ds, seed=0)
    enc = FeatureEncoder().fit(ds, split.train)
    tasks = build_tasks(split.train, enc, seed=0)
    assert len(tasks) % 8 != 0  # an epoch ends with a smaller meta-batch
    return enc, tasks


def _learner(cls, enc, **kwargs):
    keras.utils.set_random_seed(0)
    learner = cls(build_model("item_mean", enc.spec), inner_lr=1e-2, **kwargs)
    learner.compile(keras.optimizers.Adam(1e-2))
    return learner


def _traces(learner) -> dict[str, int]:
    return {(k[0] if isinstance(k, tuple) else k): f.experimental_get_tracing_count()
            for k, f in learner._compiled.items()}


@pytest.fixture(scope="module")
def maml(setup):
    """A MAML learner after one epoch, with the training step's traces of that epoch."""
    enc, tasks = setup
    learner = _learner(MAML, enc)
    learner.fit(tasks, epochs=1, batch_size=8, verbose=0)
    return learner, _traces(learner)["train"]


def test_an_epoch_of_maml_traces_the_training_step_at_most_twice(setup, maml):
    _, tasks = setup
    learner, first_epoch = maml
    assert first_epoch <= MAX_TRACES
    learner.fit(tasks, epochs=1, batch_size=8, verbose=0)
    assert _traces(learner)["train"] == first_epoch  # later epochs reuse the graphs


@pytest.mark.parametrize("cls, kwargs, bucket", [
    (Reptile, {"inner_steps": 1}, True),
    (FineTune, {}, False),
], ids=["reptile-bucketed", "finetune"])
def test_an_epoch_traces_the_training_step_at_most_twice(setup, cls, kwargs, bucket):
    enc, tasks = setup
    learner = _learner(cls, enc, **kwargs)
    learner.fit(tasks, epochs=1, batch_size=8, verbose=0, bucket=bucket)
    first_epoch = _traces(learner)["train"]
    assert first_epoch <= MAX_TRACES
    learner.fit(tasks, epochs=1, batch_size=8, verbose=0, bucket=bucket)
    assert _traces(learner)["train"] == first_epoch


def test_evaluation_and_adapt_trace_at_most_twice(setup, maml):
    _, tasks = setup
    learner, _ = maml
    train = _traces(learner)["train"]
    for _ in range(2):  # batches of 16, 16 and 10 tasks
        learner.evaluate(tasks, batch_size=16)
        learner.evaluate_steps(tasks, 1, batch_size=16)
    for task in tasks.tasks[:5]:  # eager: no compiled function
        learner.adapt(task).predict(task.query_x)
    counts = _traces(learner)
    assert counts == {"train": train, "predict": counts["predict"], "curve": counts["curve"]}
    assert counts["predict"] <= MAX_TRACES and counts["curve"] <= MAX_TRACES


def test_bucketed_epochs_repeat_a_handful_of_shapes(setup):
    _, tasks = setup
    shapes = {(b.support_y.shape, b.query_y.shape)
              for epoch in range(5)
              for b in tasks.training_batches(8, seed=epoch, bucket=True)}
    lengths = {s for (_, s), _ in shapes}
    assert all(s % 8 == 0 or s == tasks.support_length for s in lengths)
    assert len(shapes) <= 2 * (-(-tasks.support_length // 8))


def test_optimizer_built_before_the_step_gives_the_same_weights(setup):
    enc, tasks = setup
    tasks = tasks.subset(range(32))  # full meta-batches only: one trace each
    fitted = _learner(MetaSGD, enc)  # the learner's own variables (rates) get slots too
    fitted.fit(tasks, epochs=1, batch_size=8, verbose=0)
    manual = _learner(MetaSGD, enc)  # slots created inside the first step, as before
    step = manual.make_train_function()
    for batch in tasks.training_batches(8, seed=manual.seed):
        step(manual.prepare(batch))
    assert _traces(fitted)["train"] == 1
    assert _traces(manual)["train"] == 2  # the trace that fit saves
    for a, b in zip(fitted.model.weights + fitted.extra_variables,
                    manual.model.weights + manual.extra_variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
