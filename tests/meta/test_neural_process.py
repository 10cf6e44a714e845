"""NeuralProcess (metarec/meta/neural_process.py): the representation ignores padding and the
order of the support ratings, an empty support set gives the prior, training lowers the query
loss, a seed reproduces a run, and bad inputs get clear errors."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from metarec.data import FeatureEncoder, Task, TaskSet, build_tasks, make_synthetic
from metarec.meta import ConditionedModel, NeuralProcess, load_learner
from metarec.models import BiasedMF, MeLUNetwork


@pytest.fixture(scope="module")
def data():
    ds = make_synthetic(n_users=40, n_items=50, ratings_per_user=(14, 30), seed=5)
    enc = FeatureEncoder().fit(ds, ds.ratings)
    tasks = build_tasks(ds.ratings, enc, min_ratings=14, max_ratings=30, seed=0)
    return ds, enc, tasks


def _learner(enc, seed: int = 0, **kwargs) -> NeuralProcess:
    keras.utils.set_random_seed(0)
    net = MeLUNetwork(enc.spec, embedding_dim=4, hidden_units=(8,), global_mean=3.5)
    learner = NeuralProcess(net, representation_dim=6, encoder_units=(8,), seed=seed, **kwargs)
    learner.compile(keras.optimizers.Adam(1e-2))
    return learner


@pytest.fixture(scope="module")
def trained(data):
    _, enc, tasks = data
    learner = _learner(enc)
    before = learner.evaluate(tasks)["mae"]
    history = learner.fit(tasks, epochs=4, batch_size=8, verbose=0)
    return learner, before, history


def test_untrained_learner_predicts_as_its_network(data):
    # FiLM maps start at zero: before training the learner is exactly the MeLU network.
    _, enc, tasks = data
    learner = _learner(enc)
    batch = tasks.batch(np.arange(5))
    pred = learner.predict_query(batch)
    for t in range(5):
        x = {k: v[t] for k, v in batch.query_x.items()}
        np.testing.assert_allclose(pred[t], np.asarray(learner.model(x)), rtol=1e-6)


def test_training_lowers_the_query_loss(data, trained):
    _, _, tasks = data
    learner, before, history = trained
    losses = history.history["loss"]
    assert losses[-1] < losses[0]
    after = learner.evaluate(tasks)["mae"]
    assert after < before
    # Reading the support set helps on the tasks it was trained on.
    assert after < learner.evaluate(tasks, steps=0)["mae"]


def test_padding_never_influences_the_representation(data, trained):
    _, _, tasks = data
    learner, _, _ = trained
    batch = tasks.batch(np.arange(6))
    ref = learner.predict_query(batch)
    # Pad to a longer support set and fill every padding row with extreme values.
    wide = tasks.subset(np.arange(6))
    wide = TaskSet(wide.tasks, wide.support_length + 7, wide.query_length)
    noisy = wide.batch()
    pad = noisy.support_mask == 0
    assert pad.any()
    noisy.support_y[pad] = 1e6
    for value in noisy.support_x.values():  # valid feature rows of the wrong users and items
        value[pad] = value[::-1][pad] if value.dtype.kind == "f" else value[::-1, :1].repeat(
            value.shape[1], axis=1)[pad]
    np.testing.assert_allclose(learner.predict_query(noisy), ref, rtol=1e-5, atol=1e-5)
    # And one task on its own, unpadded, through adapt:
    for t in range(6):
        single = learner.adapt(tasks[t]).predict(tasks[t].query_x)
        np.testing.assert_allclose(single, ref[t, : tasks[t].n_query], rtol=1e-5, atol=1e-5)


def test_the_order_of_the_support_ratings_does_not_matter(data, trained):
    _, _, tasks = data
    learner, _, _ = trained
    rng = np.random.default_rng(1)
    for task in tasks.tasks[:4]:
        perm = rng.permutation(task.n_support)
        shuffled = dataclasses.replace(
            task, support_x={k: v[perm] for k, v in task.support_x.items()},
            support_y=task.support_y[perm], support_items=task.support_items[perm])
        a = learner.adapt(task)
        b = learner.adapt(shuffled)
        np.testing.assert_allclose(np.asarray(a.representation), np.asarray(b.representation),
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(a.predict(task.query_x), b.predict(task.query_x), rtol=1e-5)


def test_empty_support_set_gives_the_prior(data, trained):
    _, _, tasks = data
    learner, _, _ = trained
    task = tasks[0]
    empty = dataclasses.replace(task, support_x={k: v[:0] for k, v in task.support_x.items()},
                                support_y=task.support_y[:0], support_items=task.support_items[:0])
    prior = learner.predict_query(tasks.batch([0]), steps=0)[0]
    adapted = learner.adapt(empty)
    assert isinstance(adapted, ConditionedModel)
    np.testing.assert_allclose(np.asarray(adapted.representation),
                               np.asarray(learner.extra_variables[0]))
    np.testing.assert_allclose(adapted.predict(task.query_x), prior, rtol=1e-6)
    # In a batch beside other tasks (evaluate pads it; no error, the prior's predictions).
    mixed = TaskSet([empty, tasks[1]], tasks.support_length, tasks.query_length)
    pred = learner.predict_query(mixed.batch())
    np.testing.assert_allclose(pred[0], prior, rtol=1e-6)
    assert np.isfinite(learner.evaluate(mixed)["mae"])


def test_steps_zero_is_the_prior_and_every_positive_count_is_one_pass(data, trained):
    _, _, tasks = data
    learner, _, _ = trained
    curve = learner.evaluate_steps(tasks, max_steps=3)
    assert curve["mae"].iloc[0] == pytest.approx(learner.evaluate(tasks, steps=0)["mae"])
    assert curve["mae"].iloc[1] == pytest.approx(learner.evaluate(tasks)["mae"])
    assert curve["mae"].iloc[1:].nunique() == 1
    assert learner.adapted_variables == []


def test_a_seed_reproduces_a_run_and_another_seed_changes_it(data):
    _, enc, tasks = data
    runs = []
    for _ in range(2):
        learner = _learner(enc, seed=3)
        history = learner.fit(tasks.subset(np.arange(16)), epochs=1, batch_size=8, verbose=0)
        runs.append((history.history["loss"], learner.predict_query(tasks.batch(np.arange(4)))))
    assert runs[0][0] == runs[1][0]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    # The learner's seed sets its own initial weights (the encoder's), not the network's.
    first, other = _learner(enc, seed=3), _learner(enc, seed=4)
    for learner in (first, other):
        learner.build(tasks)
    assert not np.array_equal(np.asarray(first.extra_variables[1]),
                              np.asarray(other.extra_variables[1]))
    np.testing.assert_array_equal(first.model.get_weights()[0], other.model.get_weights()[0])


def test_save_and_load_give_the_same_predictions(data, trained, tmp_path):
    _, _, tasks = data
    learner, _, _ = trained
    learner.save(tmp_path / "np")
    loaded = load_learner(tmp_path / "np")
    assert isinstance(loaded, NeuralProcess)
    assert loaded.get_config() == learner.get_config()
    batch = tasks.batch(np.arange(5))
    np.testing.assert_allclose(loaded.predict_query(batch), learner.predict_query(batch),
                               rtol=1e-6)
    np.testing.assert_allclose(loaded.predict_query(batch, steps=0),
                               learner.predict_query(batch, steps=0), rtol=1e-6)


def test_bad_inputs_get_clear_errors(data, trained):
    _, enc, tasks = data
    with pytest.raises(TypeError, match="model must be a MeLUNetwork"):
        NeuralProcess(BiasedMF(enc.spec))
    with pytest.raises(ValueError, match="no hidden decision layer"):
        NeuralProcess(MeLUNetwork(enc.spec, hidden_units=()))
    net = MeLUNetwork(enc.spec, embedding_dim=4, hidden_units=(8,))
    with pytest.raises(ValueError, match="adapt='decision' has no meaning"):
        NeuralProcess(net, adapt="decision")
    with pytest.raises(ValueError, match="representation_dim must be an integer >= 1"):
        NeuralProcess(net, representation_dim=0)
    with pytest.raises(ValueError, match="encoder_units must be a sequence of positive"):
        NeuralProcess(net, encoder_units=(8, 0))
    with pytest.raises(ValueError, match="not built yet"):
        NeuralProcess(net).adapt(({k: v[:0] for k, v in tasks[0].support_x.items()}, []))
    learner, _, _ = trained
    task = tasks[0]
    with pytest.raises(ValueError, match="NaN or infinite"):
        learner.adapt((task.support_x, np.full(task.n_support, np.nan)))
    with pytest.raises(ValueError, match="one row per rating"):
        learner.adapt((task.support_x, task.support_y[:-1]))
    with pytest.raises(TypeError, match="support must be a Task or a pair"):
        learner.adapt(task.support_y)
    with pytest.raises(ValueError, match="steps must be an integer >= 0"):
        learner.adapt(task, steps=-1)
    with pytest.raises(TypeError, match="tasks must be a TaskSet"):
        learner.evaluate(tasks.batch([0]))
    other = FeatureEncoder().fit(*(lambda d: (d, d.ratings))(
        make_synthetic(n_users=30, n_items=40, ratings_per_user=(14, 20), seed=9)))
    foreign = Task(**{**dataclasses.asdict(task), "encoder_fingerprint": other.fingerprint})
    with pytest.raises(ValueError, match="another FeatureEncoder"):
        learner.adapt(foreign)
