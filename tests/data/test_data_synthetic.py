"""The synthetic generator: contract, determinism, ground truth, documented properties."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from metarec.data import SyntheticTruth, make_synthetic


@pytest.fixture(scope="module")
def default():
    return make_synthetic()


def test_same_columns_and_dtypes_as_movielens(default, ml100k):
    for part in ("ratings", "users"):
        mine, real = getattr(default, part), getattr(ml100k, part)
        assert list(mine.columns) == list(real.columns)
        assert [str(t) for t in mine.dtypes] == [str(t) for t in real.dtypes]
    fixed = ["item_id", "title", "year"]
    assert list(default.items.columns[:3]) == fixed
    assert [str(t) for t in default.items[fixed].dtypes] == [
        str(t) for t in ml100k.items[fixed].dtypes]
    assert all(default.items[g].dtype == np.int8 for g in default.genres)
    assert list(default.items.columns[3:]) == default.genres


def test_sizes_and_ranges(default):
    assert (default.n_users, default.n_items) == (1000, 500)
    assert default.ratings["rating"].isin([1, 2, 3, 4, 5]).all()
    per_user = default.ratings.groupby("user_id").size()
    assert per_user.min() >= 15 and per_user.max() <= 300
    assert not default.ratings.duplicated(["user_id", "item_id"]).any()
    assert set(default.users["age"]) <= {1, 18, 25, 35, 45, 50, 56}
    assert default.ratings["user_id"].is_monotonic_increasing
    assert isinstance(default.truth, SyntheticTruth)


def test_deterministic_given_seed():
    a, b = make_synthetic(n_users=200, seed=3), make_synthetic(n_users=200, seed=3)
    c = make_synthetic(n_users=200, seed=4)
    for part in ("ratings", "users", "items"):
        pd.testing.assert_frame_equal(getattr(a, part), getattr(b, part))
    np.testing.assert_array_equal(a.truth.noiseless, b.truth.noiseless)
    np.testing.assert_array_equal(a.truth.user_factors, b.truth.user_factors)
    assert not a.ratings.equals(c.ratings)
    assert not np.array_equal(a.truth.user_factors, c.truth.user_factors)


def test_truth_is_consistent_with_observed_ratings(default):
    truth, r = default.truth, default.ratings
    assert truth.noiseless.shape == (default.n_ratings,)
    np.testing.assert_allclose(truth.rating(r["user_id"], r["item_id"]), truth.noiseless)
    matrix = truth.rating_matrix()
    assert matrix.shape == (1000, 500)
    np.testing.assert_allclose(matrix[r["user_id"] - 1, r["item_id"] - 1], truth.noiseless)
    corr = np.corrcoef(truth.noiseless, r["rating"])[0, 1]
    assert corr > 0.75
    residual = r["rating"].to_numpy() - truth.noiseless
    # Noise 0.5 plus rounding (uniform, var 1/12) plus clipping: RMSE well below 1.
    assert 0.4 < np.sqrt(np.mean(residual**2)) < 0.7


def test_noise_free_ratings_are_rounded_truth():
    ds = make_synthetic(n_users=100, n_items=80, ratings_per_user=(5, 40), noise=0.0, seed=1)
    expected = np.clip(np.round(ds.truth.noiseless), 1, 5)
    np.testing.assert_array_equal(ds.ratings["rating"].to_numpy(), expected)


def test_upper_bound_is_capped_at_the_number_of_items():
    ds = make_synthetic(n_users=50, n_items=30, ratings_per_user=(10, 1000), seed=0)
    assert ds.ratings.groupby("user_id").size().max() <= 30


def test_unknown_ids_raise(default):
    with pytest.raises(KeyError, match="unknown user"):
        default.truth.rating([1, 10_000], [1, 1])


def test_about_a_fifth_of_items_are_new(default):
    share = (default.items["year"] >= 1997).mean()
    assert 0.15 < share < 0.25
    assert default.items["year"].min() >= 1920 and default.items["year"].max() <= 1998


def test_ratings_per_user_are_long_tailed(default):
    per_user = default.ratings.groupby("user_id").size()
    assert per_user.mean() > 1.4 * per_user.median()
    assert per_user.quantile(0.9) > 3 * per_user.min()


def test_popular_items_get_more_ratings(default):
    per_item = default.ratings.groupby("item_id").size().reindex(default.items["item_id"],
                                                                  fill_value=0)
    corr = np.corrcoef(default.truth.item_popularity, per_item.to_numpy())[0, 1]
    assert corr > 0.5


def _feature_cluster_accuracy(ds, feature):
    """Accuracy of predicting a user's cluster by the majority cluster of their feature value."""
    frame = pd.DataFrame({"f": ds.users[feature], "z": ds.truth.user_cluster})
    return frame.groupby("f")["z"].agg(lambda z: z.value_counts().iloc[0]).sum() / len(frame)


def test_informative_controls_side_information():
    kwargs = dict(n_users=3000, n_items=300, ratings_per_user=(5, 20), seed=0)
    rich = make_synthetic(informative=1.0, **kwargs)
    poor = make_synthetic(informative=0.0, **kwargs)
    assert _feature_cluster_accuracy(rich, "occupation") > _feature_cluster_accuracy(
        poor, "occupation") + 0.15
    np.testing.assert_allclose(rich.truth.item_factors, rich.truth.item_content)
    corr_rich = np.corrcoef(rich.truth.item_factors.ravel(), rich.truth.item_content.ravel())
    corr_poor = np.corrcoef(poor.truth.item_factors.ravel(), poor.truth.item_content.ravel())
    assert corr_rich[0, 1] > 0.99 and abs(corr_poor[0, 1]) < 0.2


def test_users_cluster_around_centres(default):
    truth = default.truth
    own = np.linalg.norm(truth.user_factors - truth.cluster_centres[truth.user_cluster], axis=1)
    other = np.linalg.norm(
        truth.user_factors - truth.cluster_centres[(truth.user_cluster + 1) % 8], axis=1)
    assert np.median(own) < 0.6 * np.median(other)


@pytest.mark.parametrize("kwargs", [
    dict(ratings_per_user=(600, 700)),
    dict(ratings_per_user=(20, 10)),
    dict(ratings_per_user=(0, 10)),
    dict(informative=1.5),
    dict(noise=-1.0),
    dict(n_clusters=0),
])
def test_invalid_arguments(kwargs):
    with pytest.raises(ValueError):
        make_synthetic(n_users=10, n_items=500, **kwargs)
