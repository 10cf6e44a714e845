"""The base recommenders of metarec.models: contract, serialisation, training, references.

Every model must build without data, return ``[N]``, survive config and ``.keras`` round
trips, run under ``stateless_call`` and inside the meta-learners' ``tf.vectorized_map``, learn
from one FineTune epoch and change its predictions when fine-tuned on a support set.
"""

from __future__ import annotations

import re

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from metarec.data import (
    FeatureEncoder,
    FeatureSpec,
    Task,
    TaskSet,
    build_tasks,
    make_synthetic,
)
from metarec.meta import MAML, FineTune
from metarec.models import (
    MODELS,
    BiasedMF,
    GlobalMean,
    IdEmbedding,
    ItemMean,
    UserLinear,
    build_model,
    fit_user_ridge,
    item_design,
    popular_items,
    ridge_predict_tasks,
)

NAMES = sorted(MODELS)


@pytest.fixture(scope="module")
def synth():
    """Small synthetic data: an encoder fitted on users 1..50, tasks of all 60 users."""
    ds = make_synthetic(n_users=60, n_items=80, ratings_per_user=(15, 40), seed=0)
    train = ds.ratings[ds.ratings["user_id"] <= 50]
    encoder = FeatureEncoder().fit(ds, train)
    tasks = build_tasks(ds.ratings, encoder, seed=0)
    return ds, train, encoder, tasks


def _rows(tasks: TaskSet) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """All support and query rows of the tasks, unpadded: what FineTune.fit pools."""
    keys = tasks[0].support_x.keys()
    x = {k: np.concatenate([t.support_x[k] for t in tasks] + [t.query_x[k] for t in tasks])
         for k in keys}
    y = np.concatenate([t.support_y for t in tasks] + [t.query_y for t in tasks])
    return x, y


def _mse(model: keras.Model, x: dict[str, np.ndarray], y: np.ndarray) -> float:
    return float(np.mean((np.asarray(model(x)) - y) ** 2))


# ---------------------------------------------------------------------------------------------
# Contract


def test_every_model_builds_from_the_ml100k_spec(ml100k):
    encoder = FeatureEncoder().fit(ml100k, ml100k.ratings)
    spec = encoder.spec
    x = encoder.transform(ml100k.ratings.head(11))
    for name in NAMES:
        model = build_model(name, spec)
        assert model.built and model.variables, name
        out = model(x)
        assert tuple(out.shape) == (11,), name
        assert np.all(np.isfinite(np.asarray(out))), name
    mf = build_model("mf", spec, n_factors=4)
    assert tuple(mf.user_embedding.embeddings.shape) == (spec.n_users, 4)
    assert tuple(mf.item_bias.embeddings.shape) == (spec.n_items, 1)


def test_build_model_rejects_unknown_names(synth):
    with pytest.raises(ValueError, match="choose one of"):
        build_model("svd++", synth[2].spec)


@pytest.mark.parametrize("name", NAMES)
def test_round_trips_stateless_call_and_adapt_regex(name, synth, tmp_path):
    _, train, encoder, _ = synth
    model = build_model(name, encoder.spec)
    # Move every weight off its initial value so the round trips test restored weights.
    rng = np.random.default_rng(0)
    for var in model.trainable_variables:
        var.assign(np.asarray(var) + 0.1 * rng.standard_normal(var.shape).astype("float32"))
    x = encoder.transform(train.head(9))
    expected = np.asarray(model(x))

    clone = type(model).from_config(model.get_config())
    clone.build()
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(np.asarray(clone(x)), expected, rtol=1e-6, atol=1e-6)

    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert type(loaded) is type(model)
    np.testing.assert_allclose(np.asarray(loaded(x)), expected, rtol=1e-6, atol=1e-6)

    out, _ = model.stateless_call([v.value for v in model.trainable_variables],
                                  [v.value for v in model.non_trainable_variables], x)
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-6, atol=1e-6)

    paths = [v.path for v in model.trainable_variables]
    chosen = [p for p in paths if re.search(type(model).ADAPT, p)]
    assert 0 < len(chosen) < len(paths), (type(model).ADAPT, paths)
    # The regex must not depend on the model's own name (first path component).
    renamed = type(model)(encoder.spec, name="user_decision_model")
    renamed.build()
    renamed_chosen = [v.path.split("/", 1)[1] for v in renamed.trainable_variables
                      if re.search(type(model).ADAPT, v.path)]
    assert renamed_chosen == [p.split("/", 1)[1] for p in chosen]


# ---------------------------------------------------------------------------------------------
# Training with the meta-learners (stateless_call inside tf.vectorized_map)


@pytest.mark.parametrize("name", NAMES)
def test_finetune_and_maml_train_and_adapt(name, synth):
    _, _, encoder, tasks = synth
    keras.utils.set_random_seed(0)
    model = build_model(name, encoder.spec)
    train = tasks.subset(range(32))
    x, y = _rows(train)

    learner = FineTune(model, inner_lr=0.05, inner_steps=5, adapt=type(model).ADAPT)
    learner.compile(keras.optimizers.SGD(0.05))
    before = _mse(model, x, y)
    history = learner.fit(train, epochs=1, batch_size=16, verbose=0)
    after = _mse(model, x, y)
    assert np.isfinite(history.history["loss"][0])
    assert after < before, (name, before, after)

    # Fine-tuning on one user's support set changes that user's predictions.
    task = tasks[-1]  # a user unseen by the encoder: id 0, the cold-start path
    assert int(task.support_x["user_id"][0]) == 0
    plain = learner.adapt(task, steps=0).predict(task.query_x)
    tuned = learner.adapt(task, steps=5).predict(task.query_x)
    np.testing.assert_allclose(plain, np.asarray(model(task.query_x)), rtol=1e-6, atol=1e-6)
    assert np.abs(tuned - plain).max() > 1e-4, name
    support_before = np.mean((learner.adapt(task, 0).predict(task.support_x) - task.support_y)
                             ** 2)
    support_after = np.mean((learner.adapt(task, 5).predict(task.support_x) - task.support_y)
                            ** 2)
    assert support_after < support_before, name

    # One MAML step per task, vectorised: the pfor path of every op of the model.
    weights = [np.asarray(v) for v in model.trainable_variables]
    maml = MAML(model, inner_lr=0.05, inner_steps=1, first_order=True,
                adapt=type(model).ADAPT)
    maml.compile(keras.optimizers.SGD(0.05))
    loss = maml.fit(tasks.subset(range(8)), epochs=1, batch_size=8, verbose=0)
    assert np.isfinite(loss.history["loss"][0])
    changed = [not np.allclose(w, np.asarray(v)) for w, v in
               zip(weights, model.trainable_variables, strict=True)]
    assert any(changed), name


def test_finetune_evaluate_personalises_vectorised(synth):
    _, _, encoder, tasks = synth
    keras.utils.set_random_seed(0)
    model = BiasedMF(encoder.spec, n_factors=4)
    learner = FineTune(model, inner_lr=0.5, inner_steps=5, adapt=BiasedMF.ADAPT)
    batch = tasks.batch(range(len(tasks) - 6, len(tasks)))  # known and unseen users
    plain = learner.predict_query(batch, steps=0)
    tuned = learner.predict_query(batch, steps=5)
    assert plain.shape == tuned.shape == batch.query_y.shape
    real = batch.query_mask > 0
    assert np.all(np.abs(tuned - plain)[real].reshape(len(batch), -1).max(axis=1) > 1e-4)
    subset = tasks.subset(range(len(tasks) - 6, len(tasks)))
    mae0 = learner.evaluate(subset, steps=0, per_task=True)["mae"].to_numpy()
    mae5 = learner.evaluate(subset, steps=5, per_task=True)["mae"].to_numpy()
    assert not np.allclose(mae0, mae5)
    # Tasks are adapted independently: the vectorised result equals one task at a time.
    single = learner.adapt(tasks[len(tasks) - 1], steps=5).predict(tasks[-1].query_x)
    np.testing.assert_allclose(tuned[-1, : tasks[-1].n_query], single, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Cold users and items


def test_id_embedding_maps_unseen_ids_to_the_mean_known_row():
    emb = IdEmbedding(4, 3, embeddings_initializer="random_normal")
    emb.build()
    table = np.asarray(emb.embeddings)
    np.testing.assert_array_equal(table[0], 0.0)  # the offset of unseen ids starts at zero
    out = np.asarray(emb(np.array([0, 2], dtype="int32")))
    np.testing.assert_allclose(out[0], table[1:].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(out[1], table[2], rtol=1e-6)
    # Adapting an unseen id moves row 0 only (the mean of the known rows is a constant).
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(emb(tf.constant([0, 0], dtype=tf.int32)))
    grad = tf.convert_to_tensor(tape.gradient(loss, emb.embeddings))
    np.testing.assert_allclose(np.asarray(grad), np.r_[[[2.0] * 3], np.zeros((3, 3))])


# ---------------------------------------------------------------------------------------------
# Closed forms and references


def test_item_mean_closed_form_equals_groupby_means(synth):
    _, train, encoder, tasks = synth
    model = ItemMean(encoder.spec, shrinkage=0.0).fit_closed_form(train, encoder)
    x = encoder.transform(train)
    pred = pd.Series(np.asarray(model(x)), index=train.index)
    means = train.groupby("item_id")["rating"].transform("mean")
    np.testing.assert_allclose(pred.to_numpy(), means.to_numpy(), rtol=1e-5)

    # Shrinkage pulls toward the global mean by lambda pseudo-ratings; new items get mu.
    lam, mu = 5.0, train["rating"].mean()
    model.fit_closed_form(train, encoder, shrinkage=lam)
    stats = train.groupby("item_id")["rating"].agg(["sum", "count"])
    shrunk = (stats["sum"] + lam * mu) / (stats["count"] + lam)
    item = int(stats.index[0])
    got = np.asarray(model(encoder.encode([1], [item])))[0]
    assert got == pytest.approx(shrunk.loc[item], rel=1e-5)
    new_item = np.asarray(model({"item_id": np.array([0], dtype="int32")}))[0]
    assert new_item == pytest.approx(mu, rel=1e-5)

    # From tasks: the pooled support and query rows, already encoded.
    pooled = ItemMean(encoder.spec, shrinkage=0.0).fit_closed_form(tasks)
    xs, ys = _rows(tasks)
    frame = pd.DataFrame({"item": xs["item_id"], "y": ys})
    known = frame["item"] > 0
    expect = frame.groupby("item")["y"].transform("mean")[known]
    np.testing.assert_allclose(np.asarray(pooled(xs))[known], expect, rtol=1e-5)

    with pytest.raises(ValueError, match="encoder"):
        ItemMean(encoder.spec).fit_closed_form(train)


def test_global_mean_closed_form(synth):
    _, train, encoder, tasks = synth
    model = GlobalMean(encoder.spec).fit_closed_form(train)
    out = np.asarray(model(encoder.transform(train.head(4))))
    np.testing.assert_allclose(out, np.full(4, train["rating"].mean()), rtol=1e-6)
    _, ys = _rows(tasks)
    assert float(GlobalMean(encoder.spec).fit_closed_form(tasks).mu) == pytest.approx(ys.mean())
    with pytest.raises(ValueError, match="no ratings"):
        GlobalMean(encoder.spec).fit_closed_form(np.zeros(0))


def test_popular_items_ordering():
    ratings = pd.DataFrame({
        "item_id": [7, 7, 7, 3, 3, 3, 5, 5, 9, 1],
        "rating": [2.0, 3.0, 2.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 1.0],
    })
    # By count; ties (7 and 3; 9 and 1) broken by the shrunk mean, then the id.
    assert popular_items(ratings, k=3).tolist() == [3, 7, 5]
    assert popular_items(ratings, k=10).tolist() == [3, 7, 5, 9, 1]
    # By plain mean (no shrinkage): 3, 5 and 9 average 5.0; ties broken by the count.
    assert popular_items(ratings, k=3, by="mean", shrinkage=0.0).tolist() == [3, 5, 9]
    # Shrinkage (mu = 3.8): 3 -> 34/8, 5 -> 29/7, 9 -> 24/6, 7 -> 26/8, 1 -> 20/6.
    assert popular_items(ratings, k=5, by="mean", shrinkage=5.0).tolist() == [3, 5, 9, 1, 7]
    # min_count drops the items rated once.
    assert popular_items(ratings, k=5, by="mean", min_count=2, shrinkage=0.0).tolist() == [
        3, 5, 7]
    with pytest.raises(ValueError, match="by must be"):
        popular_items(ratings, by="rating")
    assert popular_items(ratings.iloc[:0], k=3).tolist() == []


def _linear_task(seed: int = 0, n_support: int = 120, n_query: int = 15,
                 n_genres: int = 6, n_buckets: int = 4) -> Task:
    """A user whose ratings are linear in genres and decade plus noise."""
    rng = np.random.default_rng(seed)
    n = n_support + n_query
    genres = (rng.random((n, n_genres)) < 0.35).astype(np.float32)
    bucket = np.r_[np.arange(n_buckets), rng.integers(0, n_buckets, n - n_buckets)]
    w = rng.normal(0.0, 0.8, n_genres + n_buckets)
    y = 3.5 + item_design({"item_genres": genres, "item_features": bucket[:, None]},
                          n_buckets) @ w + rng.normal(0.0, 0.3, n)
    x = {"user_id": np.zeros(n, np.int32), "item_id": np.arange(n, dtype=np.int32),
         "user_features": np.zeros((n, 4), np.int32),
         "item_features": bucket[:, None].astype(np.int32), "item_genres": genres}
    cut = {k: (v[:n_support], v[n_support:]) for k, v in x.items()}
    return Task(user_id=1, support_x={k: v[0] for k, v in cut.items()},
                support_y=y[:n_support].astype(np.float32),
                query_x={k: v[1] for k, v in cut.items()}, query_y=y[n_support:].astype(
                    np.float32), support_items=np.arange(n_support),
                query_items=np.arange(n_support, n))


def test_user_linear_gradient_steps_approach_sklearn_ridge():
    task = _linear_task()
    spec = FeatureSpec(n_users=1, n_items=200, user_feature_sizes=[1, 1, 1, 1],
                       item_feature_sizes=[4], n_genres=6)
    model = UserLinear(spec)
    model.build()
    ridge = fit_user_ridge(task, alpha=1e-4, n_year_buckets=4)
    expected = ridge.predict(item_design(task.query_x, 4))
    untrained = np.asarray(model(task.query_x))
    assert np.abs(untrained - expected).max() > 0.5  # the test has something to show

    # Many full-batch gradient steps on the per-user parameters only (ADAPT).
    adapt = [v for v in model.trainable_variables if re.search(UserLinear.ADAPT, v.path)]
    frozen = [v for v in model.trainable_variables if not re.search(UserLinear.ADAPT, v.path)]
    sx = {k: tf.constant(v) for k, v in task.support_x.items()}
    sy = tf.constant(task.support_y)

    @tf.function
    def descend(steps):
        for _ in tf.range(steps):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(model(sx) - sy))
            for var, grad in zip(adapt, tape.gradient(loss, adapt), strict=True):
                var.assign_sub(0.3 * grad)
        return loss

    frozen_before = [np.asarray(v) for v in frozen]
    descend(tf.constant(4000))
    got = np.asarray(model(task.query_x))
    np.testing.assert_allclose(got, expected, atol=2e-3)
    for before, var in zip(frozen_before, frozen, strict=True):
        np.testing.assert_array_equal(before, np.asarray(var))


def test_ridge_predict_tasks_pads_like_task_batches(synth):
    _, _, encoder, tasks = synth
    subset = tasks.subset(range(5))
    width = encoder.spec.item_feature_sizes[0]
    pred = ridge_predict_tasks(subset, alpha=1.0, n_year_buckets=width)
    batch = subset.batch()
    assert pred.shape == batch.query_y.shape
    for row, task in enumerate(subset):
        ridge = fit_user_ridge(task, alpha=1.0, n_year_buckets=width)
        np.testing.assert_allclose(pred[row, : task.n_query],
                                   ridge.predict(item_design(task.query_x, width)), rtol=1e-5)
        assert np.all(pred[row, task.n_query:] == 0)
    one = ridge_predict_tasks(subset[0], alpha=1.0, n_year_buckets=width)
    np.testing.assert_allclose(one, pred[0, : subset[0].n_query], rtol=1e-6)
    # Ridge fits the support set better than the support mean (it uses the features).
    task = subset[0]
    fitted = fit_user_ridge(task, alpha=1.0, n_year_buckets=width).predict(
        item_design(task.support_x, width))
    assert np.mean((fitted - task.support_y) ** 2) < np.var(task.support_y)
