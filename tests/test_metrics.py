"""Metrics: hand-computed values, agreement with scikit-learn, padded batches, ties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import mean_absolute_error, mean_squared_error, ndcg_score

from metarec.metrics import (
    hit_rate_at_k,
    mae,
    ndcg_at_k,
    precision_at_k,
    rmse,
    summarize,
    task_metrics,
)


def test_mae_rmse_by_hand():
    assert mae([1, 2, 3], [2, 2, 5]) == pytest.approx(1.0)
    assert rmse([1, 2, 3], [2, 2, 5]) == pytest.approx(math.sqrt(5 / 3))
    assert math.isnan(mae([], []))


def test_ndcg_by_hand():
    # predicted order: 5 (0.9), 1 (0.5), 3 (0.2); ideal order: 5, 3, 1
    y, s = [3, 5, 1], [0.2, 0.9, 0.5]
    dcg = 31 + 1 / math.log2(3) + 7 / 2
    idcg = 31 + 7 / math.log2(3) + 1 / 2
    assert ndcg_at_k(y, s, 3) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(y, s, 1) == pytest.approx(1.0)
    assert ndcg_at_k(y, s, 2) == pytest.approx((31 + 1 / math.log2(3)) / (31 + 7 / math.log2(3)))
    assert ndcg_at_k(y, s, 10) == ndcg_at_k(y, s, 3)  # k beyond n uses all n items
    assert ndcg_at_k([1, 4], [0.9, 0.1], 1) == pytest.approx(1 / 15)


def test_ndcg_ties_go_to_the_earlier_item():
    assert ndcg_at_k([1, 5], [0.5, 0.5], 1) == pytest.approx(1 / 31)
    assert ndcg_at_k([5, 1], [0.5, 0.5], 1) == pytest.approx(1.0)
    # three-way tie behind a clear winner: order among the tied is input order
    y, s = [2, 4, 3, 5], [0.1, 0.1, 0.1, 0.9]
    dcg = 31 + 3 / math.log2(3) + 15 / 2
    idcg = 31 + 15 / math.log2(3) + 7 / 2
    assert ndcg_at_k(y, s, 3) == pytest.approx(dcg / idcg)


def test_ndcg_zero_ideal_gain_is_zero():
    assert ndcg_at_k([0, 0, 0], [0.3, 0.2, 0.1], 3) == 0.0


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [1, 3, 5])
def test_ndcg_matches_sklearn_with_exponential_gain(seed, k):
    rng = np.random.default_rng(seed)
    y = rng.integers(1, 6, size=12).astype(float)
    s = rng.permutation(12) / 12.0  # distinct scores: sklearn averages ties, we do not
    ours = ndcg_at_k(y, s, k)
    theirs = ndcg_score([2.0**y - 1], [s], k=k)
    assert ours == pytest.approx(theirs, rel=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_mae_rmse_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y, p = rng.integers(1, 6, 20), rng.normal(3, 1, 20)
    assert mae(y, p) == pytest.approx(mean_absolute_error(y, p))
    assert rmse(y, p) == pytest.approx(math.sqrt(mean_squared_error(y, p)))


def test_precision_and_hit_rate():
    y, s = [5, 2, 4, 1], [0.9, 0.8, 0.1, 0.0]
    assert precision_at_k(y, s, 1) == 1.0
    assert precision_at_k(y, s, 2) == 0.5
    assert precision_at_k(y, s, 10) == 0.5  # 2 relevant of 4 items
    assert hit_rate_at_k(y, s, 1) == 1.0
    assert hit_rate_at_k([1, 2, 4], [0.9, 0.8, 0.1], 2) == 0.0
    assert hit_rate_at_k([1, 2, 4], [0.9, 0.8, 0.1], 3) == 1.0


def test_task_metrics_equal_per_task_functions_on_padded_batches():
    rng = np.random.default_rng(0)
    t_count, q = 40, 12
    lengths = rng.integers(1, q + 1, size=t_count)
    lengths[3] = 0  # an all-padding row
    mask = (np.arange(q)[None, :] < lengths[:, None]).astype(np.float32)
    y = np.where(mask > 0, rng.integers(1, 6, (t_count, q)), 99.0)  # padding: nonsense values
    p = np.where(mask > 0, rng.normal(3, 1, (t_count, q)), 1e9)
    out = task_metrics(y, p, mask, ks=(1, 3), ranking_extras=True)
    assert set(out) == {"mae", "rmse", "ndcg@1", "ndcg@3", "precision@1", "precision@3",
                        "hit@1", "hit@3"}
    for i in range(t_count):
        n = lengths[i]
        if n == 0:
            assert all(np.isnan(v[i]) for v in out.values())
            continue
        yi, pi = y[i, :n], p[i, :n]
        assert out["mae"][i] == pytest.approx(mae(yi, pi))
        assert out["rmse"][i] == pytest.approx(rmse(yi, pi))
        for k in (1, 3):
            assert out[f"ndcg@{k}"][i] == pytest.approx(ndcg_at_k(yi, pi, k))
            assert out[f"precision@{k}"][i] == pytest.approx(precision_at_k(yi, pi, k))
            assert out[f"hit@{k}"][i] == hit_rate_at_k(yi, pi, k)
    means = summarize(out)
    assert means["mae"] == pytest.approx(np.mean([mae(y[i, :n], p[i, :n])
                                                  for i, n in enumerate(lengths) if n]))


def test_task_metrics_ties_match_per_task_rule():
    y = np.array([[1, 5, 3, 0], [4, 4, 2, 5]], dtype=float)
    p = np.full_like(y, 2.0)
    mask = np.array([[1, 1, 1, 0], [1, 1, 1, 1]])
    out = task_metrics(y, p, mask, ks=(1,))
    assert out["ndcg@1"][0] == pytest.approx(ndcg_at_k([1, 5, 3], [2, 2, 2], 1)) == 1 / 31
    assert out["ndcg@1"][1] == pytest.approx(15 / 31)


def test_task_metrics_without_mask_and_errors():
    out = task_metrics([[5, 3]], [[5, 3]])
    assert out["mae"].tolist() == [0.0] and out["ndcg@3"].tolist() == [1.0]
    with pytest.raises(ValueError, match="NaN"):
        task_metrics([[5, 3]], [[np.nan, 3]])
    with pytest.raises(ValueError, match="NaN"):
        ndcg_at_k([5, 3], [np.nan, 3], 1)
    with pytest.raises(ValueError, match="shape"):
        task_metrics([[5, 3]], [[5, 3, 1]])
    # NaN in padding is fine
    assert task_metrics([[5, 3]], [[4, np.nan]], [[1, 0]])["mae"].tolist() == [1.0]


def test_summarize_ignores_empty_tasks():
    assert summarize({"mae": np.array([0.5, 1.0, np.nan]), "x": np.array([np.nan])}) == {
        "mae": 0.75, "x": pytest.approx(float("nan"), nan_ok=True)}
