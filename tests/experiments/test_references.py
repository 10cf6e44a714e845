"""The conventional references of chapter 8: item-kNN with baselines and the global refit."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest

from metarec.data import make_synthetic
from metarec.experiments import ExperimentConfig, cell_method, prepare, train_method
from metarec.experiments import grid as grid_module
from metarec.experiments.references import (
    KNN_MODEL,
    knn_predictions,
    pooled_ratings,
    reference_paths,
    refit,
    run_references,
    task_ratings,
)
from metarec.experiments.training import SCENARIOS, PreparedData
from metarec.models.knn import KNNBaseline

SMALL = {"n_users": 300, "n_items": 200}
MF = {"model": "mf", "scheme": "finetune", "test_steps": 2, "val_mae": 0.9,
      "params": {"inner_lr": 0.05, "outer_lr": 0.003, "adapt": "all"}}
ITEM_MEAN = {"model": "item_mean", "scheme": "finetune", "test_steps": 3, "val_mae": 0.9,
             "params": {"inner_lr": 0.1, "outer_lr": 0.001, "adapt": "user"}}


@pytest.fixture(scope="module")
def dataset():
    return make_synthetic(seed=0, **SMALL)


@pytest.fixture(scope="module")
def data(dataset):
    return prepare(dataset, seed=0)


# The lowered epoch cap comes from conftest.py (its `data` is replaced by this module's).
pytestmark = pytest.mark.usefixtures("few_grid_epochs")


def _frame(rows):
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating"])


# ------------------------------------------------------------------------------ kNN
def _hand_knn(ratings: pd.DataFrame, k: int, shrinkage: float, reg_i: float, reg_u: float,
              n_epochs: int, min_k: int = 1):
    """The formulas of metarec.models.knn written out with loops: (predict, baseline)."""
    users, items = sorted(ratings.user_id.unique()), sorted(ratings.item_id.unique())
    r = {(u, i): float(x) for u, i, x in ratings[["user_id", "item_id", "rating"]].itertuples(
        index=False)}
    mu = np.mean(list(r.values()))
    bu, bi = dict.fromkeys(users, 0.0), dict.fromkeys(items, 0.0)
    for _ in range(n_epochs):
        for i in items:
            raters = [u for u in users if (u, i) in r]
            bi[i] = sum(r[u, i] - mu - bu[u] for u in raters) / (reg_i + len(raters))
        for u in users:
            rated = [i for i in items if (u, i) in r]
            bu[u] = sum(r[u, i] - mu - bi[i] for i in rated) / (reg_u + len(rated))

    def base(u, i):
        return mu + bu.get(u, 0.0) + bi.get(i, 0.0)

    def sim(i, j):
        if i == j:
            return 1.0
        common = [u for u in users if (u, i) in r and (u, j) in r]
        if len(common) < 2:
            return 0.0
        ei = np.array([r[u, i] - base(u, i) for u in common])
        ej = np.array([r[u, j] - base(u, j) for u in common])
        den = math.sqrt((ei ** 2).sum() * (ej ** 2).sum())
        rho = (ei * ej).sum() / den if den > 0 else 0.0
        return rho * (len(common) - 1) / (len(common) - 1 + shrinkage)

    def predict(u, i):
        if u not in bu or i not in bi:
            return base(u, i)
        neigh = sorted(((sim(i, j), j) for j in items if (u, j) in r),
                       key=lambda t: -t[0])[:k]
        pos = [(s, j) for s, j in neigh if s > 0]
        if len(pos) < min_k or not pos:
            return base(u, i)
        return base(u, i) + sum(s * (r[u, j] - base(u, j)) for s, j in pos) / sum(
            s for s, _ in pos)

    return predict, base


def test_knn_fallbacks_equal_a_computation_on_paper():
    # A rated X=4, Y=2; B rated X=5. mu = 11/3; one ALS round without regularisation:
    # b_X = 5/6, b_Y = -5/3, b_A = -1/4, b_B = 1/2. X and Y share one rater: similarity 0.
    ratings = _frame([("A", "X", 4), ("A", "Y", 2), ("B", "X", 5)])
    knn = KNNBaseline(reg_items=0, reg_users=0, n_epochs=1).fit(ratings, rating_scale=(1, 5))
    assert knn.global_mean == pytest.approx(11 / 3)
    np.testing.assert_allclose(knn.item_bias[["X", "Y"]], [5 / 6, -5 / 3])
    np.testing.assert_allclose(knn.user_bias[["A", "B"]], [-1 / 4, 1 / 2])
    users, items = ["B", "C", "A", "C"], ["Y", "X", "Z", "Z"]
    expected = [11 / 3 + 1 / 2 - 5 / 3,  # no neighbour with similarity > 0: the baseline
                11 / 3 + 5 / 6,          # unknown user: mu + b_i
                11 / 3 - 1 / 4,          # unknown item: mu + b_u
                11 / 3]                  # both unknown: mu
    np.testing.assert_allclose(knn.predict(users, items), expected)
    np.testing.assert_allclose(knn.baseline(users, items), expected)
    assert knn.neighbours_used(users, items).tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("k,shrinkage", [(2, 0.0), (3, 5.0), (40, 100.0)])
def test_knn_equals_the_hand_computation(k, shrinkage):
    rng = np.random.default_rng(1)
    rows = [(u, i, float(rng.integers(1, 6))) for u in range(9) for i in range(7)
            if rng.random() < 0.7]
    ratings = _frame(rows)
    knn = KNNBaseline(k=k, shrinkage=shrinkage, reg_items=2, reg_users=3, n_epochs=4)
    knn.fit(ratings.sample(frac=1, random_state=0), rating_scale=(1, 5))  # row order: no matter
    predict, base = _hand_knn(ratings, k, shrinkage, 2, 3, 4)
    users = [u for u in range(10) for _ in range(8)]  # user 9 and item 7 are unknown
    items = [i for _ in range(10) for i in range(8)]
    hand = np.clip([predict(u, i) for u, i in zip(users, items, strict=True)], 1, 5)
    np.testing.assert_allclose(knn.predict(users, items), hand, atol=1e-9)
    np.testing.assert_allclose(knn.baseline(users, items),
                               [base(u, i) for u, i in zip(users, items, strict=True)])
    assert (knn.neighbours_used(users, items) > 0).any()  # the neighbour term was exercised


def test_knn_bad_inputs_are_named():
    good = _frame([(1, 1, 4.0), (1, 2, 3.0), (2, 1, 5.0)])
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        KNNBaseline(k=0)
    with pytest.raises(ValueError, match="min_k=5 > k=2"):
        KNNBaseline(k=2, min_k=5)
    with pytest.raises(ValueError, match="unknown similarity 'cosine'"):
        KNNBaseline(similarity="cosine")
    with pytest.raises(ValueError, match="shrinkage must be a finite number >= 0"):
        KNNBaseline(shrinkage=-1)
    with pytest.raises(RuntimeError, match="call fit"):
        KNNBaseline().predict([1], [1])
    with pytest.raises(ValueError, match=r"lack the column\(s\) \['rating'\]"):
        KNNBaseline().fit(good.drop(columns="rating"))
    with pytest.raises(ValueError, match="empty"):
        KNNBaseline().fit(good.iloc[:0])
    with pytest.raises(ValueError, match="NaN"):
        KNNBaseline().fit(good.assign(rating=[4.0, np.nan, 5.0]))
    with pytest.raises(ValueError, match="more than once.*drop_duplicates"):
        KNNBaseline().fit(pd.concat([good, good.iloc[:1]]))
    with pytest.raises(ValueError, match="rating_scale"):
        KNNBaseline().fit(good, rating_scale=(5, 1))
    with pytest.raises(ValueError, match="same length"):
        KNNBaseline().fit(good).predict([1, 2], [1])


# ------------------------------------------------------------------------ references
def test_task_ratings_are_the_tasks_rows(data):
    support, query = task_ratings(data.tasks["item_cold"], data.dataset.ratings)
    tasks = data.tasks["item_cold"]
    assert len(support) == sum(t.n_support for t in tasks)
    np.testing.assert_array_equal(query["item_id"], np.concatenate([t.query_items
                                                                     for t in tasks]))
    np.testing.assert_allclose(support["rating"], np.concatenate([t.support_y for t in tasks]))
    with pytest.raises(ValueError, match="not rows of the given ratings"):
        task_ratings(tasks, data.split.train)


def test_pools_hold_every_support_rating_and_no_query_rating(data):
    ratings = data.dataset.ratings
    for scenarios in [("warm",), ("item_cold",), SCENARIOS]:
        pool = pooled_ratings(data, scenarios)
        supports = [task_ratings(data.tasks[s], ratings)[0] for s in scenarios if s != "warm"]
        assert len(pool) == len(data.split.train) + sum(len(s) for s in supports)
        pairs = set(zip(pool.user_id, pool.item_id, strict=True))
        for s in SCENARIOS:
            support, query = task_ratings(data.tasks[s], ratings)
            assert not pairs & set(zip(query.user_id, query.item_id, strict=True)), s
            if s in scenarios:  # warm support = training ratings
                assert set(zip(support.user_id, support.item_id, strict=True)) <= pairs
    # A broken split whose training part holds test ratings is refused, not silently used.
    leaky = dataclasses.replace(data.split, train=pd.concat([data.split.train,
                                                             data.split.user_cold]))
    with pytest.raises(ValueError, match="query rating"):
        pooled_ratings(PreparedData(data.dataset, leaky, data.encoder, data.tasks), ["warm"])
    with pytest.raises(ValueError, match="Unknown scenario"):
        pooled_ratings(data, ["cold"])


def _with_other_query_ratings(dataset, data):
    """The same dataset with every test query rating replaced (6 - r): split and tasks stay."""
    queries = pd.concat([task_ratings(data.tasks[s], dataset.ratings)[1] for s in SCENARIOS])
    key = pd.MultiIndex.from_frame(dataset.ratings[["user_id", "item_id"]])
    hit = key.isin(pd.MultiIndex.from_frame(queries[["user_id", "item_id"]]))
    ratings = dataset.ratings.copy()
    ratings.loc[hit, "rating"] = 6.0 - ratings.loc[hit, "rating"]
    return dataclasses.replace(dataset, ratings=ratings), int(hit.sum())


def test_references_use_no_query_rating(dataset, data):
    other, changed = _with_other_query_ratings(dataset, data)
    assert changed == sum(t.n_query for s in SCENARIOS for t in data.tasks[s])
    other_data = prepare(other, seed=0)
    for s in SCENARIOS:  # same users, rows and order; only the query ratings differ
        a, b = data.tasks[s], other_data.tasks[s]
        assert [t.user_id for t in a] == [t.user_id for t in b]
        assert all((x.query_items == y.query_items).all() for x, y in zip(a, b, strict=True))
        assert not np.allclose(a.batch().query_y, b.batch().query_y)
    for scenarios in [("item_cold",), SCENARIOS]:
        before, after = knn_predictions(data, scenarios), knn_predictions(other_data, scenarios)
        for s in scenarios:
            np.testing.assert_array_equal(before[s], after[s])
    for cfg in (ITEM_MEAN, MF):
        a = refit(data, cfg, SCENARIOS, seed=0)
        b = refit(other_data, cfg, SCENARIOS, seed=0)
        for x, y in zip(a.learner.model.weights, b.learner.model.weights, strict=True):
            np.testing.assert_array_equal(x.numpy(), y.numpy())


def test_refit_without_new_ratings_is_the_grid_cell_and_is_deterministic(data):
    # Warm users' support sets are training ratings: the warm refit is the conventional cell.
    result = refit(data, MF, ["warm"], seed=0)
    method = cell_method(grid_module.Cell("mf", "finetune"), MF["params"], MF["test_steps"])
    learner, _ = train_method(method, data, 0, patience=grid_module.PATIENCE)
    for x, y in zip(result.learner.model.weights, learner.model.weights, strict=True):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    steps = result.test_steps
    np.testing.assert_allclose(result.learner.evaluate(result.tasks["warm"], steps=steps)["mae"],
                               learner.evaluate(data.tasks["warm"], steps=steps)["mae"])
    # Pooling the new items' support ratings gives most new items their own id.
    pooled = refit(data, MF, ["item_cold"], seed=0)
    assert (data.tasks["item_cold"].batch().query_x["item_id"] == 0).all()  # grid: all unknown
    batch = pooled.tasks["item_cold"].batch()
    assert (batch.query_x["item_id"][batch.query_mask > 0] > 0).mean() > 0.5
    with pytest.raises(ValueError, match="not a conventional cell"):
        refit(data, {**MF, "scheme": "maml"}, ["warm"], seed=0)


def _configs(path):
    path.write_text(json.dumps({"benchmark": "tiny", "max_test_steps": 10, "cells": {
        "item_mean/finetune": ITEM_MEAN, "mf/finetune": MF}}))
    return path


def test_run_references_writes_the_grid_format_resumes_and_never_overwrites(tmp_path):
    configs = _configs(tmp_path / "tiny.configs.json")
    config = ExperimentConfig("tiny", dataset="synthetic", grid=True, seeds=(0,),
                              synthetic_kwargs=SMALL)
    out = tmp_path / "out"
    paths = run_references(config, configs, out, models=["item_mean"], pools=("scenario", "all"),
                           progress=False)
    assert paths == list(reference_paths(out, "tiny").values())
    users = pd.read_csv(paths[0])
    assert list(users.columns) == ["seed", "cell", "model", "scheme", "scenario", "user_id",
                                   "mae", "rmse", "ndcg@1", "ndcg@3", "diverged"]
    assert set(users["cell"]) == {f"{KNN_MODEL}/baseline", f"{KNN_MODEL}/baseline_all",
                                  "item_mean/refit", "item_mean/refit_all"}
    data = prepare(make_synthetic(seed=0, **SMALL), seed=0)
    for _cell, part in users.groupby("cell"):  # every test user of every scenario, once
        for s in SCENARIOS:
            assert part[part.scenario == s].user_id.tolist() == data.tasks[s].user_ids.tolist()
    runs = pd.read_csv(paths[2])
    assert set(runs[runs.cell == "item_mean/refit"]["pool"]) == set(SCENARIOS)
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temporary file left"
    with pytest.raises(FileExistsError, match="--resume"):
        run_references(config, configs, out, models=["item_mean"], progress=False)
    before = paths[0].read_bytes()
    run_references(config, configs, out, models=["item_mean"], pools=("scenario", "all"),
                   resume=True, progress=False)  # nothing left to do
    assert paths[0].read_bytes() == before
    with pytest.raises(ValueError, match="neumf/finetune has no tuned configuration"):
        run_references(config, configs, tmp_path / "x", models=["neumf"], progress=False)
    with pytest.raises(ValueError, match="Unknown pool 'users'"):
        run_references(config, configs, tmp_path / "x", pools=("users",), progress=False)
    with pytest.raises(ValueError, match="Duplicate seeds"):
        run_references(dataclasses.replace(config, seeds=(0, 0)), configs, tmp_path / "x",
                       progress=False)
    with pytest.raises(ValueError, match="nothing to run"):
        run_references(config, configs, tmp_path / "x", models=[], knn=False, progress=False)
