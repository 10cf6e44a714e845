"""Cold-start split rules, on MovieLens 100K and synthetic data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from metarec.data import FeatureEncoder, cold_start_split, scenario_tasks
from metarec.data.splits import PARTS


@pytest.fixture(scope="module")
def split(ml100k):
    return cold_start_split(ml100k, seed=0)


def _users(frame):
    return set(frame["user_id"].unique())


def _items(frame):
    return set(frame["item_id"].unique())


def test_no_new_user_or_item_in_training_or_validation(split):
    new_users, new_items = set(split.new_users), set(split.new_items)
    for part in (split.train, split.validation, split.warm_support, split.warm_query):
        assert not _users(part) & new_users
        assert not _items(part) & new_items
    assert not _users(split.train) & set(split.validation_users)
    assert not _users(split.validation) & set(split.meta_train_users)


def test_scenario_parts_contain_what_they_claim(split):
    assert _users(split.user_cold) <= set(split.new_users)
    assert _items(split.user_cold) <= set(split.existing_items)
    assert _users(split.item_cold) <= set(split.meta_train_users)
    assert _items(split.item_cold) <= set(split.new_items)
    assert _users(split.user_item_cold) <= set(split.new_users)
    assert _items(split.user_item_cold) <= set(split.new_items)
    assert _users(split.unused) <= set(split.validation_users)


def test_every_rating_is_in_exactly_one_part(split, ml100k):
    exclusive = [p for p in PARTS if p != "warm_support"]
    index = np.concatenate([split.parts[p].index.to_numpy() for p in exclusive])
    assert len(index) == ml100k.n_ratings
    assert np.array_equal(np.sort(index), np.arange(ml100k.n_ratings))
    for p in PARTS:  # rows are the dataset's rows, unchanged
        pd.testing.assert_frame_equal(split.parts[p], ml100k.ratings.loc[split.parts[p].index])


def test_warm_hold_out(split):
    assert not set(split.warm_query.index) & set(split.train.index)
    assert set(split.warm_support.index) <= set(split.train.index)
    pd.testing.assert_frame_equal(
        split.warm_support, split.train[split.train["user_id"].isin(split.warm_users)])
    query_counts = split.warm_query.groupby("user_id").size()
    assert (query_counts == 10).all()
    assert set(query_counts.index) == set(split.warm_users) == _users(split.warm_support)
    support_counts = split.warm_support.groupby("user_id").size()
    assert support_counts.min() >= 13  # still a training task after the hold-out
    assert (support_counts + query_counts).max() <= 100
    # Rule 4: exactly the meta-train users with 23..100 existing-item ratings are warm.
    n = pd.concat([split.train, split.warm_query]).groupby("user_id").size()
    assert set(n[(n >= 23) & (n <= 100)].index) == set(split.warm_users)


def test_fractions_on_ml100k(split, ml100k):
    assert len(split.new_users) == round(0.2 * 943) == 189
    assert len(split.existing_users) == 754
    assert len(split.validation_users) == round(0.1 * 754) == 75
    assert len(split.meta_train_users) == 679
    assert np.array_equal(np.union1d(split.meta_train_users, split.validation_users),
                          split.existing_users)
    assert len(split.new_items) == 351 and split.new_item_year == 1997
    assert 0.18 < len(split.new_items) / ml100k.n_items < 0.22
    assert 267 in set(split.existing_items)  # unknown release year counts as existing


def test_summary(split):
    summary = split.summary()
    assert list(summary.index) == list(PARTS)
    assert list(summary.columns) == ["ratings", "users", "items", "task_users", "description"]
    for name, frame in split.parts.items():
        assert summary.loc[name, "ratings"] == len(frame)
        assert summary.loc[name, "users"] == frame["user_id"].nunique()
    assert summary.loc["warm_query", "task_users"] == len(split.warm_users)


def test_same_seed_same_split_other_seed_other_split(ml100k):
    a, b, c = (cold_start_split(ml100k, seed=s) for s in (7, 7, 8))
    for name in PARTS:
        pd.testing.assert_frame_equal(a.parts[name], b.parts[name])
    assert np.array_equal(a.new_users, b.new_users)
    assert not np.array_equal(a.new_users, c.new_users)
    assert not np.array_equal(a.validation_users, c.validation_users)
    assert not a.warm_query.index.equals(c.warm_query.index)


def test_warm_draw_differs_by_seed_for_the_same_users(ml100k):
    # Same users (no new/validation users), only the warm hold-out is random.
    a = cold_start_split(ml100k, new_user_fraction=0.0, validation_fraction=0.0, seed=1)
    b = cold_start_split(ml100k, new_user_fraction=0.0, validation_fraction=0.0, seed=2)
    assert np.array_equal(a.warm_users, b.warm_users)
    assert not a.warm_query.index.equals(b.warm_query.index)


def test_defaults_by_dataset_and_explicit_year(synthetic_small, ml100k):
    assert cold_start_split(synthetic_small).new_item_year == 1997
    late = cold_start_split(ml100k, new_item_year=1998)
    assert len(late.new_items) == 65
    other = type(ml100k)("my-data", ml100k.ratings, ml100k.users, ml100k.items, ml100k.genres)
    with pytest.raises(ValueError, match="new_item_year"):
        cold_start_split(other)
    assert cold_start_split(other, new_item_year=1998).new_item_year == 1998
    with pytest.raises(ValueError, match="new_user_fraction"):
        cold_start_split(ml100k, new_user_fraction=1.0)


def test_no_warm_hold_out(synthetic_small):
    s = cold_start_split(synthetic_small, warm_query=0)
    assert s.warm_query.empty and s.warm_support.empty and len(s.warm_users) == 0


def test_scenario_tasks(synthetic_small):
    s = cold_start_split(synthetic_small, seed=0)
    enc = FeatureEncoder().fit(synthetic_small, s.train)
    tasks = scenario_tasks(s, enc, seed=0)
    assert list(tasks) == ["train", "validation", "warm", "user_cold", "item_cold",
                           "user_item_cold"]
    warm = tasks["warm"]
    assert len(warm) == len(s.warm_users)
    assert all(t.n_query == 10 for t in warm)
    held_out = set(zip(s.warm_query["user_id"], s.warm_query["item_id"], strict=True))
    assert all((t.user_id, int(i)) in held_out for t in warm for i in t.query_items)
    assert set(tasks["user_cold"].user_ids) <= set(s.new_users)
    assert set(tasks["item_cold"].user_ids) <= set(s.meta_train_users)
    new_items = set(s.new_items)
    assert all(set(t.query_items.tolist()) <= new_items for t in tasks["item_cold"])
    assert len(tasks["train"]) > 0 and len(tasks["user_cold"]) > 0
    again = scenario_tasks(s, enc, seed=0)
    assert all(np.array_equal(a.query_items, b.query_items)
               for a, b in zip(tasks["train"], again["train"], strict=True))
    with pytest.raises(TypeError):
        scenario_tasks(s, enc, query_ratings=s.warm_query)


def test_unknown_name_error_says_to_pass_new_item_year(ml100k):
    other = type(ml100k)("my-data", ml100k.ratings, ml100k.users, ml100k.items, ml100k.genres)
    with pytest.raises(ValueError) as info:
        cold_start_split(other)
    message = str(info.value)
    assert "'my-data'" in message and "ml-1m 1998, ml-100k 1997" in message
    assert "pass new_item_year=..." in message


def test_custom_copy_gets_the_default_of_its_format(ml100k):
    custom = type(ml100k)("ml-100k", ml100k.ratings, ml100k.users, ml100k.items, ml100k.genres,
                          source="/somewhere/my-ml-100k")
    a, b = cold_start_split(custom, seed=0), cold_start_split(ml100k, seed=0)
    assert a.new_item_year == b.new_item_year == 1997
    assert np.array_equal(a.new_users, b.new_users)


def test_official_ml100k_has_no_unrated_users(split):
    assert len(split.unrated_users) == 0
    assert split.unrated_users.dtype == np.int64


def test_users_without_ratings_are_in_no_part(ml100k):
    # A partial copy: the even user ids keep their user row but lose every rating.
    ratings = ml100k.ratings[ml100k.ratings["user_id"] % 2 == 1]
    partial = type(ml100k)("ml-100k", ratings, ml100k.users, ml100k.items, ml100k.genres)
    s = cold_start_split(partial, seed=0)
    rated = np.sort(ratings["user_id"].unique())
    unrated = np.setdiff1d(ml100k.users["user_id"], rated)
    assert len(rated) == 472 and len(unrated) == 471
    assert np.array_equal(s.unrated_users, unrated)
    assert len(s.new_users) == round(0.2 * 472) == 94  # from rated users, not all 943
    assert len(s.existing_users) == 378
    assert len(s.validation_users) == round(0.1 * 378) == 38
    assert np.array_equal(np.union1d(s.new_users, s.existing_users), rated)
    for ids in (s.new_users, s.existing_users, s.meta_train_users, s.validation_users,
                s.warm_users):
        assert not set(ids) & set(unrated)
    for frame in s.parts.values():
        assert not _users(frame) & set(unrated)
    # Every new user has data in a user-cold part.
    assert set(s.new_users) == _users(s.user_cold) | _users(s.user_item_cold)
    assert sum(len(s.parts[p]) for p in PARTS if p != "warm_support") == len(ratings)
