"""Property-based bad-input tests (Hypothesis): metrics, task construction, loader rows.

Each property says what a user gets for *every* generated input: a number with the documented
properties, or one clear error (never a raw numpy/pandas error, never a silently wrong value).
Derandomized with small example counts, so CI is deterministic and fast; no model training
inside these loops.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metarec.data import FeatureEncoder, make_synthetic
from metarec.data.errors import DataError
from metarec.data.movielens import read_movielens
from metarec.data.tasks import build_tasks
from metarec.metrics import mae, ndcg_at_k, rmse, task_metrics

#: Examples per property (the docs table counts them).
PROPERTY_EXAMPLES = {"metrics": 60, "metrics_nan": 30, "tasks": 40, "loader": 40}

FAST = {"derandomize": True, "deadline": None, "database": None,
        "suppress_health_check": [HealthCheck.function_scoped_fixture,
                                  HealthCheck.too_slow]}

ratings_1d = st.lists(st.sampled_from([0.0, 1.0, 2.0, 3.0, 4.0, 5.0]), min_size=1,
                      max_size=12)


@settings(max_examples=PROPERTY_EXAMPLES["metrics"], **FAST)
@given(data=st.data(), k=st.integers(1, 15))
def test_ndcg_is_in_unit_interval_and_agrees_with_task_metrics(data, k):
    y = data.draw(ratings_1d)
    scores = data.draw(st.lists(st.floats(-10, 10, allow_nan=False), min_size=len(y),
                                max_size=len(y)))
    value = ndcg_at_k(y, scores, k)
    assert 0.0 <= value <= 1.0 + 1e-12
    batch = task_metrics([y], [scores], ks=(k,))
    assert batch[f"ndcg@{k}"][0] == pytest.approx(value)
    assert batch["mae"][0] == pytest.approx(mae(y, scores))
    assert batch["rmse"][0] == pytest.approx(rmse(y, scores))


@settings(max_examples=PROPERTY_EXAMPLES["metrics_nan"], **FAST)
@given(y=ratings_1d, where=st.integers(0, 11), shape2d=st.booleans())
def test_nan_ratings_and_batches_get_one_clear_error(y, where, shape2d):
    y = np.asarray(y)
    if shape2d:  # one task's function on a batch: refused, never flattened into one list
        with pytest.raises(ValueError, match="use task_metrics"):
            ndcg_at_k(np.stack([y, y]), np.stack([y, y]), 1)
        return
    y[where % len(y)] = np.nan
    for call in (lambda: ndcg_at_k(y, np.arange(len(y)), 3), lambda: mae(y, np.ones(len(y))),
                 lambda: task_metrics([y], [np.ones(len(y))])):
        with pytest.raises(ValueError, match="True ratings contain NaN"):
            call()


@pytest.fixture(scope="module")
def small():
    ds = make_synthetic(seed=1, n_users=40, n_items=60, ratings_per_user=(5, 30))
    return ds, FeatureEncoder().fit(ds, ds.ratings)


@settings(max_examples=PROPERTY_EXAMPLES["tasks"], **FAST)
@given(n_query=st.integers(-3, 12), min_ratings=st.integers(-2, 30),
       max_ratings=st.integers(-2, 40), max_support=st.one_of(st.none(), st.integers(-2, 8)),
       seed=st.integers(0, 5))
def test_build_tasks_gives_valid_tasks_or_names_the_argument(small, n_query, min_ratings,
                                                             max_ratings, max_support, seed):
    ds, encoder = small
    try:
        tasks = build_tasks(ds.ratings, encoder, n_query=n_query, min_ratings=min_ratings,
                            max_ratings=max_ratings, max_support=max_support, seed=seed)
    except ValueError as err:
        names = ("n_query", "min_ratings", "max_ratings", "max_support")
        assert any(name in str(err) for name in names), str(err)
        assert (n_query < 1 or min_ratings < 1 or max_ratings < 1 or min_ratings > max_ratings
                or (max_support is not None and max_support < 1) or min_ratings <= n_query)
        return
    assert n_query >= 1 and 1 <= min_ratings <= max_ratings
    for task in tasks:
        assert task.n_query == n_query and task.n_support >= 1
        assert min_ratings <= task.n_support + task.n_query or max_support is not None
        if max_support is not None:
            assert task.n_support <= max_support
        # one rating is never in both sets
        assert not set(task.support_items) & set(task.query_items)
        assert task.encoder_fingerprint == encoder.fingerprint


@settings(max_examples=PROPERTY_EXAMPLES["loader"], **FAST)
@given(file=st.sampled_from(["u.data", "u.item", "u.user"]), line=st.integers(0, 6),
       field=st.integers(0, 7),
       value=st.sampled_from(["", "x", "-1", "99", "3.5", "0", "|", "\t", "5 5", "NaN"]))
def test_corrupted_loader_rows_load_or_get_a_data_error(tmp_path_factory, mlfix, file, line,
                                                        field, value):
    files = dict(mlfix.files["ml-100k"])
    sep = "\t" if file == "u.data" else "|"
    lines = files[file].decode("latin-1").split("\n")
    row = line % (len(lines) - 1)
    fields = lines[row].split(sep)
    fields[field % len(fields)] = value
    lines[row] = sep.join(fields)
    files[file] = "\n".join(lines).encode("latin-1")
    folder = mlfix.write(tmp_path_factory.mktemp("ml"), "ml-100k", files)
    try:
        ds = read_movielens("ml-100k", folder)
    except DataError as err:  # the only error a user gets, naming a file of the folder
        assert str(folder) in str(err)
        return
    assert ds.ratings["rating"].between(1, 5).all()
    assert not ds.ratings.duplicated(["user_id", "item_id"]).any()
    assert isinstance(ds.ratings, pd.DataFrame)
