"""metarec.evidence: MeLU's evidence score (popularity x gradient norm) and the model-free
stand-in (popularity x rating entropy), checked against independent computations."""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from scipy import stats

from metarec.data import FeatureEncoder, build_tasks, make_synthetic
from metarec.evidence import (
    entropy_scores,
    gradient_norm_scores,
    popularity,
    rating_gradient_norms,
)
from metarec.meta import MAML, NeuralProcess
from metarec.models import MeLUNetwork


@pytest.fixture(scope="module")
def setup():
    ds = make_synthetic(n_users=40, n_items=30, ratings_per_user=(14, 24), seed=3)
    enc = FeatureEncoder().fit(ds, ds.ratings)
    tasks = build_tasks(ds.ratings, enc, min_ratings=14, max_ratings=24, seed=0)
    keras.utils.set_random_seed(0)
    net = MeLUNetwork(enc.spec, embedding_dim=4, hidden_units=(8,), global_mean=3.5)
    learner = MAML(net, inner_lr=0.05, inner_steps=1, adapt="/decision")
    learner.compile(keras.optimizers.Adam(1e-2))
    learner.fit(tasks, epochs=1, batch_size=8, verbose=0)
    return ds.ratings, enc, learner


def test_gradient_norms_match_one_tape_per_rating(setup):
    ratings, enc, learner = setup
    rows = ratings.iloc[:6]
    fast = rating_gradient_norms(learner, rows, enc, batch_size=4)  # two batches, one ragged
    x = enc.transform(rows)
    for j in range(len(rows)):
        with tf.GradientTape() as tape:
            pred = learner.model({k: tf.constant(v[j:j + 1]) for k, v in x.items()})
            loss = (tf.reshape(pred, []) - float(rows["rating"].iloc[j])) ** 2
        grads = tape.gradient(loss, learner.adapted_variables)
        by_hand = float(tf.sqrt(tf.add_n([tf.reduce_sum(g ** 2) for g in grads])))
        np.testing.assert_allclose(fast[j], by_hand, rtol=1e-4)
    # Only the adapted (decision) variables count: the embeddings are not in the norm.
    assert all("decision" in v.path for v in learner.adapted_variables)


def test_gradient_norm_score_is_scaled_popularity_times_scaled_mean_norm(setup):
    ratings, enc, learner = setup
    scores = gradient_norm_scores(learner, ratings, enc)
    norms = pd.Series(rating_gradient_norms(learner, ratings, enc)).groupby(
        ratings["item_id"].to_numpy()).mean()
    counts = ratings["item_id"].value_counts()
    expected = (counts / counts.max()) * (norms / norms.max())
    pd.testing.assert_series_equal(scores.sort_index(), expected.sort_index(),
                                   check_names=False, rtol=1e-5)
    assert scores.between(0, 1).all() and set(scores.index) == set(ratings["item_id"])
    # A cap on the ratings per item estimates the mean from fewer rows: same items, same
    # popularity part, reproducible with its seed.
    capped = gradient_norm_scores(learner, ratings, enc, max_per_item=3, seed=1)
    assert set(capped.index) == set(scores.index)
    pd.testing.assert_series_equal(
        capped, gradient_norm_scores(learner, ratings, enc, max_per_item=3, seed=1))
    assert not capped.equals(scores)


def test_entropy_score_matches_scipy(setup):
    ratings, _, _ = setup
    scores = entropy_scores(ratings)
    ent = ratings.groupby("item_id")["rating"].apply(
        lambda r: stats.entropy(r.value_counts().to_numpy()))
    pop = popularity(ratings)
    expected = (pop / pop.max()) * (ent / ent.max())
    pd.testing.assert_series_equal(scores.sort_index(), expected.sort_index(),
                                   check_names=False, rtol=1e-9)


def test_bad_inputs_get_clear_errors(setup):
    ratings, enc, learner = setup
    with pytest.raises(ValueError, match="lack the column"):
        entropy_scores(ratings.drop(columns="rating"))
    with pytest.raises(ValueError, match="empty"):
        gradient_norm_scores(learner, ratings.iloc[:0], enc)
    with pytest.raises(TypeError, match="DataFrame"):
        popularity(ratings.to_numpy())
    with pytest.raises(ValueError, match="max_per_item"):
        gradient_norm_scores(learner, ratings, enc, max_per_item=0)
    bad = ratings.iloc[:4].assign(rating=[1.0, np.nan, 3.0, 4.0])
    with pytest.raises(ValueError, match="NaN"):
        entropy_scores(bad)
    keras.utils.set_random_seed(0)
    net = MeLUNetwork(enc.spec, embedding_dim=4, hidden_units=(8,), global_mean=3.5)
    with pytest.raises(ValueError, match="adapts no weight"):
        rating_gradient_norms(NeuralProcess(net, representation_dim=4), ratings.iloc[:4], enc)
