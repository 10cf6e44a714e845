"""FeatureEncoder: vocabularies from training ratings only, OOV id 0, serialisation."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest

from metarec.data import FeatureEncoder, FeatureSpec, cold_start_split


@pytest.fixture(scope="module")
def fitted(ml100k):
    split = cold_start_split(ml100k, seed=0)
    return split, FeatureEncoder().fit(ml100k, split.train)


def test_keys_shapes_and_dtypes(fitted, ml100k):
    split, enc = fitted
    x = enc.transform(split.user_cold)
    n = len(split.user_cold)
    assert set(x) == {"user_id", "item_id", "user_features", "item_features", "item_genres"}
    assert x["user_id"].shape == (n,) and x["user_id"].dtype == np.int32
    assert x["item_id"].shape == (n,) and x["item_id"].dtype == np.int32
    assert x["user_features"].shape == (n, 4) and x["user_features"].dtype == np.int32
    assert x["item_features"].shape == (n, 1) and x["item_features"].dtype == np.int32
    assert x["item_genres"].shape == (n, 19) and x["item_genres"].dtype == np.float32


def test_spec_counts_training_vocabularies_plus_oov(fitted, ml100k):
    split, enc = fitted
    spec = enc.spec
    assert spec.n_users == split.train["user_id"].nunique() + 1
    assert spec.n_items == split.train["item_id"].nunique() + 1
    train_users = ml100k.users[ml100k.users["user_id"].isin(split.train["user_id"])]
    assert spec.user_feature_sizes == [train_users[f].nunique() + 1 for f in
                                       ("gender", "age", "occupation", "zip_prefix")]
    assert spec.item_feature_sizes == [9]  # 1920s..1990s seen in training, plus OOV
    assert spec.n_genres == 19
    x = enc.transform(ml100k.ratings)
    assert x["user_id"].max() == spec.n_users - 1 and x["item_id"].max() == spec.n_items - 1
    assert (x["user_features"].max(axis=0) < np.array(spec.user_feature_sizes)).all()


def test_new_users_and_items_are_oov_but_keep_side_information(fitted, ml100k):
    split, enc = fitted
    x = enc.transform(split.user_cold)
    assert (x["user_id"] == 0).all()
    assert (x["item_id"][~split.user_cold["item_id"].isin(split.train["item_id"])] == 0).all()
    # Side information of new users is encoded; a category unseen in training becomes 0.
    assert (x["user_features"][:, :2] > 0).all()  # both genders, all ages seen in training
    users = ml100k.users.set_index("user_id")
    train_occupations = set(users.loc[split.train["user_id"].unique(), "occupation"])
    unseen = ~users.loc[split.user_cold["user_id"], "occupation"].isin(train_occupations)
    assert unseen.any()  # ml-100k seed 0: one occupation occurs only among new users
    np.testing.assert_array_equal(x["user_features"][:, 2] == 0, unseen.to_numpy())
    y = enc.transform(split.item_cold)
    assert (y["item_id"] == 0).all() and (y["user_id"] > 0).all()
    assert (y["item_features"] > 0).all()  # 1990s seen in training
    genres = ml100k.items.set_index("item_id").loc[split.item_cold["item_id"], ml100k.genres]
    np.testing.assert_array_equal(y["item_genres"], genres.to_numpy(np.float32))
    t = enc.transform(split.train)
    assert (t["user_id"] > 0).all() and (t["item_id"] > 0).all()


def test_ids_follow_sorted_vocabularies(fitted):
    split, enc = fitted
    x = enc.transform(split.train)
    users = np.sort(split.train["user_id"].unique())
    np.testing.assert_array_equal(
        x["user_id"], np.searchsorted(users, split.train["user_id"].to_numpy()) + 1)


def test_unseen_categories_and_unknown_years_map_to_zero(synthetic_small):
    ds = synthetic_small
    users = ds.users.copy()
    users.loc[users["user_id"] == 1, "occupation"] = "astronaut"
    items = ds.items.copy()
    items["year"] = items["year"].astype("Int64")
    items.loc[items["item_id"] == 2, "year"] = pd.NA
    items.loc[items["item_id"] == 3, "year"] = 1890
    ds2 = type(ds)(ds.name, ds.ratings, users, items, ds.genres)
    train = ds.ratings[(ds.ratings["user_id"] != 1) & ~ds.ratings["item_id"].isin([2, 3])]
    enc = FeatureEncoder().fit(ds2, train)
    assert "astronaut" not in enc.user_feature_vocabs["occupation"]
    x = enc.encode([1, 2, 2], [2, 3, 1])
    assert x["user_id"][0] == 0 and x["user_features"][0, 2] == 0
    assert x["user_features"][0, 0] > 0  # gender still known
    assert x["item_features"][:, 0].tolist()[:2] == [0, 0]  # unknown year, unseen decade
    assert x["item_features"][2, 0] > 0


def test_ids_outside_the_dataset_are_all_zero(fitted):
    _, enc = fitted
    x = enc.encode([999_999], [888_888])
    assert all(not v.any() for v in x.values())


def test_vocabulary_only_from_training_ratings(synthetic_small):
    ds = synthetic_small
    train = ds.ratings[ds.ratings["item_id"] <= 100]
    enc = FeatureEncoder().fit(ds, train)
    assert enc.item_vocab == sorted(train["item_id"].unique().tolist())
    x = enc.encode([1] * 2, [50, 150])
    assert x["item_id"][0] > 0 and x["item_id"][1] == 0


def test_serialisation_round_trips(fitted, ml100k):
    _, enc = fitted
    x = enc.transform(ml100k.ratings)
    for clone in (FeatureEncoder.from_dict(json.loads(json.dumps(enc.to_dict()))),
                  FeatureEncoder.from_json(enc.to_json()),
                  pickle.loads(pickle.dumps(enc))):
        y = clone.transform(ml100k.ratings)
        for key in x:
            assert y[key].dtype == x[key].dtype
            np.testing.assert_array_equal(y[key], x[key])
        assert clone.spec == enc.spec
    assert FeatureSpec.from_dict(json.loads(json.dumps(enc.spec.to_dict()))) == enc.spec


def test_fitting_is_deterministic(fitted, ml100k):
    split, enc = fitted
    again = FeatureEncoder().fit(ml100k, split.train.sample(frac=1.0, random_state=1))
    assert again.to_dict() == enc.to_dict()


def test_errors():
    with pytest.raises(RuntimeError, match="not fitted"):
        FeatureEncoder().transform(pd.DataFrame({"user_id": [1], "item_id": [1]}))
    with pytest.raises(ValueError, match="no ratings"):
        from metarec.data import make_synthetic
        ds = make_synthetic(n_users=20, n_items=30, ratings_per_user=(5, 10))
        FeatureEncoder().fit(ds, ds.ratings.iloc[:0])
