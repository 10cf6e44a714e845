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
