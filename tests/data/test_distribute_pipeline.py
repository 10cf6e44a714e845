"""Scalable task construction (metarec.data.pipeline) and the large-scale synthetic sampler."""

from __future__ import annotations

import numpy as np
import pytest

from metarec.data import FeatureEncoder, build_tasks, make_synthetic
from metarec.data import synthetic as synthetic_module
from metarec.data.pipeline import TaskStream


@pytest.fixture(scope="module")
def data():
    ds = make_synthetic(n_users=150, n_items=90, seed=0)
    return ds, FeatureEncoder().fit(ds, ds.ratings)


def test_stream_holds_the_same_users_ratings_and_features_as_build_tasks(data):
    ds, enc = data
    stream = TaskStream.from_ratings(ds.ratings, enc, seed=0)
    tasks = build_tasks(ds.ratings, enc, seed=0)
    assert sorted(stream.user_ids.tolist()) == sorted(tasks.user_ids.tolist())
    batch = stream.batch(np.arange(len(stream)))
    assert batch.query_mask.sum(axis=1).tolist() == [10] * len(stream)
    for i, user in enumerate(stream.user_ids):
        rows = ds.ratings[ds.ratings["user_id"] == user]
        expected = enc.transform(rows)
        n_s, n_q = int(batch.support_mask[i].sum()), int(batch.query_mask[i].sum())
        got = {k: np.concatenate([batch.support_x[k][i, :n_s], batch.query_x[k][i, :n_q]])
               for k in expected}
        y = np.concatenate([batch.support_y[i, :n_s], batch.query_y[i, :n_q]])
        a, b = np.argsort(expected["item_id"]), np.argsort(got["item_id"])
        for key in expected:
            np.testing.assert_array_equal(got[key][b], expected[key][a], err_msg=key)
        np.testing.assert_array_equal(y[b], rows["rating"].to_numpy()[a])
        # Padding rows are zero everywhere.
        assert not batch.support_y[i, n_s:].any() and not batch.support_x["item_id"][i, n_s:].any()


def test_stream_is_seeded_and_bucketed(data):
    ds, enc = data
    a = TaskStream.from_ratings(ds.ratings, enc, seed=1)
    b = TaskStream.from_ratings(ds.ratings, enc, seed=1)
    c = TaskStream.from_ratings(ds.ratings, enc, seed=2)
    np.testing.assert_array_equal(a.rows_item, b.rows_item)
    assert not np.array_equal(a.rows_item, c.rows_item)
    batches = list(a.batches(16, seed=0))
    assert sum(len(x) for x in batches) == len(a)
    widths = [x.support_y.shape[1] for x in batches]
    assert max(widths) == a.support_length and min(widths) < a.support_length / 2


def test_stream_dataset_prefetches_the_same_batches(data):
    ds, enc = data
    stream = TaskStream.from_ratings(ds.ratings, enc, seed=0)
    from_tf = list(stream.dataset(32, seed=3))
    direct = list(stream.batches(32, seed=3))
    assert len(from_tf) == len(direct)
    for t, d in zip(from_tf, direct, strict=True):
        np.testing.assert_array_equal(t[1].numpy(), d.support_y)
        np.testing.assert_array_equal(t[3]["item_genres"].numpy(), d.query_x["item_genres"])


def test_learner_fits_on_a_stream(data):
    import keras

    from metarec.meta import FOMAML
    from metarec.models import MeLUNetwork

    ds, enc = data
    stream = TaskStream.from_ratings(ds.ratings, enc, seed=0)
    keras.utils.set_random_seed(0)
    learner = FOMAML(MeLUNetwork(enc.spec, embedding_dim=4, hidden_units=(8,)), inner_lr=0.05)
    learner.compile(keras.optimizers.Adam(1e-2))
    losses = learner.fit(stream, epochs=3, batch_size=32, verbose=0).history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]


def test_stream_errors_name_the_fix(data):
    ds, enc = data
    with pytest.raises(ValueError, match="min_ratings"):
        TaskStream.from_ratings(ds.ratings, enc, min_ratings=5, n_query=10)
    with pytest.raises(ValueError, match="no user has"):
        TaskStream.from_ratings(ds.ratings, enc, min_ratings=500, max_ratings=600)
    with pytest.raises(ValueError, match="'rating'"):
        TaskStream.from_ratings(ds.ratings.drop(columns="rating"), enc)


def test_successive_sampling_matches_gumbel_top_k_in_law():
    rng = np.random.default_rng(0)
    log_w = rng.standard_normal(25)
    k = np.full(20_000, 4)
    rows, cols = synthetic_module._successive_sample(np.random.default_rng(1), log_w, k)
    ref_rows, ref_cols = synthetic_module._top_k_without_replacement(
        np.random.default_rng(2), np.broadcast_to(log_w, (len(k), 25)), k)
    np.testing.assert_array_equal(rows, ref_rows)  # 4 draws per row, rows ascending
    assert all(len(set(cols[r * 4:(r + 1) * 4])) == 4 for r in range(0, 20_000, 97))
    # First draws and all draws have the same item frequencies (sampling error ~0.003).
    for step in (4, 1):
        f = np.bincount(cols[::step], minlength=25) / len(cols[::step])
        g = np.bincount(ref_cols[::step], minlength=25) / len(ref_cols[::step])
        assert np.abs(f - g).max() < 0.015


def test_large_synthetic_uses_the_linear_sampler(monkeypatch):
    monkeypatch.setattr(synthetic_module, "DENSE_SAMPLING_LIMIT", 100)
    ds = make_synthetic(n_users=300, n_items=200, ratings_per_user=(5, 40), seed=0)
    counts = ds.ratings.groupby("user_id").size()
    assert counts.between(5, 40).all() and len(counts) == 300
    assert not ds.ratings.duplicated(["user_id", "item_id"]).any()
