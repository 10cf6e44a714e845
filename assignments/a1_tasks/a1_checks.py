"""Hidden checks of assignment 1 (few-shot tasks and cold-start splits), autograder only.

Every check draws a fresh synthetic dataset (the seed is printed in a failure message), runs
the student's function on it and checks it against the package's reference
(:func:`metarec.data.cold_start_split`, :func:`metarec.data.build_tasks`) and against the
leakage rules: no user on both sides of a user split, no rating in both the support and the
query set of a task.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from metarec.data import FeatureEncoder, build_tasks, cold_start_split, make_synthetic

try:  # the autograder ships checks_support.py beside this module
    from checks_support import fresh_rng
except ModuleNotFoundError:  # in the repository: assignments/checks_support.py
    from assignments.checks_support import fresh_rng


def fresh_data(rng: np.random.Generator) -> Any:
    return make_synthetic(n_users=int(rng.integers(80, 150)), n_items=60,
                          ratings_per_user=(5, 40), seed=int(rng.integers(10_000)))


def _pair(out: Any, what: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    assert isinstance(out, tuple) and len(out) == 2, f"{what} must return a pair of DataFrames"
    a, b = out
    assert isinstance(a, pd.DataFrame) and isinstance(b, pd.DataFrame), (
        f"{what} must return two DataFrames (rows of the input), got "
        f"{type(a).__name__}, {type(b).__name__}")
    return a, b


# ------------------------------------------------------------------ question 1: user split
def check_split_disjoint(split_users: Callable) -> None:
    """Every rating in exactly one part, and no user in both parts."""
    rng, seed = fresh_rng()
    data = fresh_data(rng)
    ratings = data.ratings
    train, test = _pair(split_users(ratings, float(rng.uniform(0.1, 0.4)),
                                    int(rng.integers(1000))), "split_users")
    rows = np.concatenate([train.index.to_numpy(), test.index.to_numpy()])
    assert len(rows) == len(ratings) and set(rows) == set(ratings.index), (
        f"the two parts hold {len(train)} + {len(test)} rows for {len(ratings)} ratings: every "
        "rating must be in exactly one part (keep the original rows and their index)")
    both = np.intersect1d(train["user_id"].unique(), test["user_id"].unique())
    assert len(both) == 0, (
        f"{len(both)} user(s) appear in both parts (e.g. user {int(both[0])}): split the USERS, "
        "not the ratings -- a new user's ratings must all be on the test side, otherwise the "
        f"model has seen the 'new' users in training (leakage; seed {seed})")


def check_split_count(split_users: Callable) -> None:
    """As many new users as the package's ``cold_start_split``; seeded and reproducible."""
    rng, seed = fresh_rng()
    data = fresh_data(rng)
    fraction, split_seed = float(rng.uniform(0.1, 0.4)), int(rng.integers(1000))
    train, test = _pair(split_users(data.ratings, fraction, split_seed), "split_users")
    reference = cold_start_split(data, new_user_fraction=fraction, validation_fraction=0.0,
                                 warm_query=0, seed=split_seed)
    n_users = data.ratings["user_id"].nunique()
    assert test["user_id"].nunique() == len(reference.new_users), (
        f"the test part has {test['user_id'].nunique()} users; with new_fraction={fraction:.3f} "
        f"of {n_users} users it should have round({fraction:.3f} * {n_users}) = "
        f"{len(reference.new_users)} (as metarec.data.cold_start_split; seed {seed})")
    again = _pair(split_users(data.ratings, fraction, split_seed), "split_users")[1]
    assert set(again["user_id"]) == set(test["user_id"]), (
        "two calls with the same seed gave different splits: draw from "
        "np.random.default_rng(seed) so that a split can be reproduced")
    other = _pair(split_users(data.ratings, fraction, split_seed + 1), "split_users")[1]
    assert set(other["user_id"]) != set(test["user_id"]), (
        "seed and seed + 1 gave the same split: the draw must depend on the seed")


# ------------------------------------------------------------------ question 2: one task
def check_no_leakage(support_query: Callable) -> None:
    """Query of ``n_query`` rows, support = the rest: disjoint, nothing lost."""
    rng, seed = fresh_rng()
    n = int(rng.integers(15, 40))
    user = pd.DataFrame({
        "user_id": np.full(n, 7, np.int64),
        "item_id": rng.choice(1000, n, replace=False).astype(np.int64),
        "rating": rng.integers(1, 6, n).astype(np.float32),
        "timestamp": rng.integers(10**8, 10**9, n).astype(np.int64),
    }, index=rng.choice(10**6, n, replace=False))
    n_query = int(rng.integers(3, 11))
    support, query = _pair(support_query(user, n_query, int(rng.integers(1000))),
                           "support_query")
    assert len(query) == n_query, f"the query set has {len(query)} rows, expected {n_query}"
    shared = np.intersect1d(support["item_id"], query["item_id"])
    assert len(shared) == 0, (
        f"{len(shared)} query item(s) are also in the support set (e.g. item {int(shared[0])}): "
        "the adapted model would be scored on ratings it was adapted on (query leakage). The "
        "support set is the user's ratings that are NOT in the query set")
    together = np.concatenate([support.index.to_numpy(), query.index.to_numpy()])
    assert len(together) == n and set(together) == set(user.index), (
        f"support ({len(support)}) + query ({len(query)}) rows should be the user's {n} ratings, "
        f"each once (seed {seed})")


# ------------------------------------------------------------------ question 3: all tasks
def check_users_match_package(make_user_tasks: Callable) -> None:
    """The same users as ``build_tasks`` (inclusive bounds), query sets of ``n_query``."""
    rng, seed = fresh_rng()
    data = fresh_data(rng)
    counts = data.ratings["user_id"].value_counts()
    n_query = 4
    present = np.sort(counts[counts > n_query + 1].unique())
    lo = int(present[len(present) // 4])
    hi = int(present[3 * len(present) // 4])
    tasks = make_user_tasks(data.ratings, n_query, lo, hi, int(rng.integers(1000)))
    assert isinstance(tasks, dict), "make_user_tasks must return a dict user_id -> (support, query)"
    encoder = FeatureEncoder().fit(data, data.ratings)
    want = set(build_tasks(data.ratings, encoder, min_ratings=lo, max_ratings=hi,
                           n_query=n_query).user_ids.tolist())
    got = {int(u) for u in tasks}
    missing, extra = sorted(want - got), sorted(got - want)
    if missing or extra:
        detail = []
        if missing:
            detail.append(f"missing users with {sorted({int(counts[u]) for u in missing})} "
                          "ratings")
        if extra:
            detail.append(f"extra users with {sorted({int(counts[u]) for u in extra})} ratings")
        raise AssertionError(
            f"with min_ratings={lo}, max_ratings={hi}: {'; '.join(detail)}. Keep exactly the "
            "users with min_ratings <= n <= max_ratings ratings (both bounds inclusive, as "
            f"metarec.data.build_tasks; seed {seed})")
    for user, pair in tasks.items():
        _, query = _pair(pair, f"make_user_tasks(...)[{user}]")
        assert len(query) == n_query, (
            f"user {user}'s query set has {len(query)} rows, expected n_query={n_query}")
