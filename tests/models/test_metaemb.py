"""FeatureEmbeddingMF (MetaEmb-style item cold start): shapes, config, features, adaptation."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from metarec.data import FeatureEncoder, build_tasks, make_synthetic
from metarec.meta import MAML, FineTune
from metarec.models import FeatureEmbeddingMF, hide_item_ids


@pytest.fixture(scope="module")
def data():
    ds = make_synthetic(n_users=60, n_items=40, ratings_per_user=(8, 30), seed=3)
    enc = FeatureEncoder().fit(ds, ds.ratings)
    return ds, enc


def _model(enc, seed=0):
    keras.utils.set_random_seed(seed)
    model = FeatureEmbeddingMF(enc.spec, n_factors=4)
    model.build()
    return model


def test_shapes_and_adapt_variables(data):
    ds, enc = data
    model = _model(enc)
    x = enc.transform(ds.ratings.head(7))
    assert tuple(model(x).shape) == (7,)
    adapted = sorted(v.path for v in model.trainable_variables
                     if "/item_offset" in v.path)
    assert adapted == ["feature_embedding_mf/item_offset",
                       "feature_embedding_mf/item_offset_bias"]


def test_config_round_trip(data):
    ds, enc = data
    model = _model(enc)
    x = enc.transform(ds.ratings.head(5))
    clone = FeatureEmbeddingMF.from_config(model.get_config())
    clone.build()
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone(x), model(x), rtol=1e-6)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    assert isinstance(restored, FeatureEmbeddingMF) and restored.n_factors == 4


def test_new_item_prediction_depends_on_features(data):
    ds, enc = data
    model = _model(enc)
    x = enc.transform(ds.ratings.head(1))
    x["item_id"] = np.zeros_like(x["item_id"])  # a brand-new item
    before = float(model(x)[0])
    x2 = dict(x)
    x2["item_genres"] = 1.0 - x["item_genres"]
    assert abs(float(model(x2)[0]) - before) > 1e-4


def test_adapting_item_offset_lowers_item_loss(data):
    ds, enc = data
    tasks = build_tasks(ds.ratings, enc, group_by="item_id", min_ratings=6, max_ratings=1000,
                        n_query=3, seed=0)
    assert int(hide_item_ids(tasks)[0].support_x["item_id"].max()) == 0
    model = _model(enc)
    learner = MAML(model, inner_lr=0.5, inner_steps=1, adapt=FeatureEmbeddingMF.ADAPT)
    task = tasks[0]
    loss0 = float(np.mean((model(task.support_x).numpy() - task.support_y) ** 2))
    adapted = learner.adapt(task, steps=5)
    loss1 = float(np.mean((np.asarray(adapted.predict(task.support_x)) - task.support_y) ** 2))
    assert loss1 < loss0 - 1e-3
    # only this item's offset row changed: another item's predictions are unchanged
    other = tasks[1].query_x
    assert int(other["item_id"][0]) != int(task.support_x["item_id"][0])
    np.testing.assert_allclose(np.asarray(adapted.predict(other)), model(other).numpy(),
                               atol=1e-5)


def test_trains_with_finetune(data):
    ds, enc = data
    tasks = build_tasks(ds.ratings, enc, group_by="item_id", min_ratings=6, max_ratings=1000,
                        n_query=3, seed=0)
    learner = FineTune(_model(enc), inner_lr=0.5, inner_steps=1, adapt=FeatureEmbeddingMF.ADAPT)
    learner.compile(keras.optimizers.Adam(0.01))
    hist = learner.fit(tasks, epochs=3, batch_size=16, verbose=0)
    assert np.isfinite(hist.history["loss"]).all()
    assert hist.history["loss"][-1] < hist.history["loss"][0]
