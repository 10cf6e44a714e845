"""Metrics: hand-computed values, agreement with scikit-learn and with a brute-force reference,
padded batches, ties, bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import (
    average_precision_score,
    mean_absolute_error,
    mean_squared_error,
    ndcg_score,
    precision_score,
    recall_score,
    top_k_accuracy_score,
)

from metarec.metrics import (
    average_precision_at_k,
    hit_rate_at_k,
    mae,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
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
                        "hit@1", "hit@3", "recall@1", "recall@3", "ap@1", "ap@3"}
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
            for name, fn in (("recall", recall_at_k), ("ap", average_precision_at_k)):
                assert out[f"{name}@{k}"][i] == pytest.approx(fn(yi, pi, k), nan_ok=True)
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


# --- Precision, recall, hit rate and AP at k -------------------------------------------------


def _brute_force(y, s, k, threshold=4.0):
    """Straightforward reference: rank with Python's sort (ties: earlier item first), count."""
    order = sorted(range(len(y)), key=lambda i: (-s[i], i))
    top = order[:k]
    relevant = [i for i in range(len(y)) if y[i] >= threshold]
    hits = [i for i in top if y[i] >= threshold]
    precision = len(hits) / len(top)
    hit = 1.0 if hits else 0.0
    if not relevant:
        return precision, float("nan"), hit, float("nan")
    recall = len(hits) / len(relevant)
    found, total = 0, 0.0
    for position, i in enumerate(top, start=1):
        if y[i] >= threshold:
            found += 1
            total += found / position
    return precision, recall, hit, total / min(len(relevant), k)


def _all_four(y, s, k, threshold=4.0):
    return (precision_at_k(y, s, k, threshold), recall_at_k(y, s, k, threshold),
            hit_rate_at_k(y, s, k, threshold), average_precision_at_k(y, s, k, threshold))


def test_recall_and_average_precision_by_hand():
    # ranked: 5 (0.9), 2 (0.8), 4 (0.1), 1 (0.0); relevant (>= 4): ranks 1 and 3, R = 2
    y, s = [5, 2, 4, 1], [0.9, 0.8, 0.1, 0.0]
    assert recall_at_k(y, s, 1) == 0.5
    assert recall_at_k(y, s, 2) == 0.5
    assert recall_at_k(y, s, 3) == 1.0
    assert average_precision_at_k(y, s, 1) == 1.0  # 1/1, over min(R, 1) = 1
    assert average_precision_at_k(y, s, 2) == 0.5  # 1/1, over min(R, 2) = 2
    assert average_precision_at_k(y, s, 3) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision_at_k(y, s, 10) == pytest.approx((1 + 2 / 3) / 2)  # k > n
    # relevant at ranks 2 and 4 of 4, R = 3 (the third relevant item, rated 4, ranks 5th)
    y, s = [1, 5, 2, 4, 4], [0.9, 0.8, 0.7, 0.6, 0.5]
    assert average_precision_at_k(y, s, 4) == pytest.approx((1 / 2 + 2 / 4) / 3)
    assert recall_at_k(y, s, 4) == pytest.approx(2 / 3)
    assert precision_at_k(y, s, 4) == 0.5
    # the threshold is inclusive and can be changed: with 5 only, one relevant item at rank 2
    assert average_precision_at_k(y, s, 4, threshold=5) == 0.5
    assert recall_at_k(y, s, 1, threshold=5) == 0.0
    assert average_precision_at_k(y, s, 1, threshold=4.5) == 0.0


def test_ideal_order_scores_one_and_more_relevant_than_k_is_not_punished():
    y = np.array([5, 4, 5, 4, 1, 2, 3])
    ideal = y.astype(float)  # scores equal to the ratings: relevant items first
    for k in range(1, 9):
        assert average_precision_at_k(y, ideal, k) == 1.0
        assert precision_at_k(y, ideal, k) == min(4, k) / min(k, 7)
        assert recall_at_k(y, ideal, k) == min(4, k) / 4  # < 1 while k < R: recall's nature
    worst = -ideal
    assert average_precision_at_k(y, worst, 3) == 0.0
    assert average_precision_at_k(y, worst, 7) == pytest.approx(
        (1 / 4 + 2 / 5 + 3 / 6 + 4 / 7) / 4)


def test_users_without_a_relevant_item():
    y, s = [3, 2, 1], [0.1, 0.2, 0.3]
    assert precision_at_k(y, s, 2) == 0.0
    assert hit_rate_at_k(y, s, 2) == 0.0
    assert math.isnan(recall_at_k(y, s, 2))
    assert math.isnan(average_precision_at_k(y, s, 2))
    # the batch helper and summarize: NaN rows are left out of the mean recall and MAP
    out = task_metrics([[3, 2, 1], [5, 1, 1]], [[0.1, 0.2, 0.3], [0.0, 0.5, 0.4]], ks=(1, 3),
                       ranking_extras=True)
    assert np.isnan(out["ap@3"][0]) and out["ap@3"][1] == pytest.approx(1 / 3)
    means = summarize(out)
    assert means["ap@3"] == pytest.approx(1 / 3)  # MAP@3 over the one user with R > 0
    assert means["precision@1"] == 0.0 and means["hit@3"] == 0.5  # both users count


def test_empty_task_is_nan_like_the_other_metrics():
    for fn in (precision_at_k, recall_at_k, hit_rate_at_k, average_precision_at_k):
        assert math.isnan(fn([], [], 3))


def test_ties_go_to_the_earlier_item():
    assert _all_four([1, 5], [0.5, 0.5], 1) == (0.0, 0.0, 0.0, 0.0)
    assert _all_four([5, 1], [0.5, 0.5], 1) == (1.0, 1.0, 1.0, 1.0)
    # a constant predictor is scored on the input order
    y = [2, 4, 3, 5]
    assert average_precision_at_k(y, [0.0] * 4, 4) == pytest.approx((1 / 2 + 2 / 4) / 2)


@pytest.mark.parametrize("seed", range(40))
def test_match_brute_force_reference_on_random_inputs(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 15))
    y = rng.integers(1, 6, size=n).astype(float)
    # few distinct score values: many ties
    s = rng.integers(0, 4, size=n).astype(float) if seed % 2 else rng.normal(size=n)
    threshold = float(rng.choice([3.0, 4.0, 4.5, 5.0]))
    for k in (1, 2, 3, 5, 10, 20):
        ours, ref = _all_four(y, s, k, threshold), _brute_force(y, s, k, threshold)
        for a, b in zip(ours, ref, strict=True):
            assert a == pytest.approx(b, rel=1e-12, nan_ok=True)


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("k", [1, 3, 5, 12])
def test_precision_and_recall_match_sklearn_on_the_top_k_as_predicted_positives(seed, k):
    # Retrieving the top k is a binary classification: predicted positive = in the top k.
    # sklearn's precision and recall of that classification are P@k and R@k (k <= n or k > n).
    rng = np.random.default_rng(100 + seed)
    n = 12
    y = rng.integers(1, 6, size=n).astype(float)
    y[0] = 5.0  # at least one relevant item: recall is defined
    s = rng.permutation(n) / n
    relevant = (y >= 4).astype(int)
    in_top = np.zeros(n, dtype=int)
    in_top[np.argsort(-s)[:k]] = 1
    assert precision_at_k(y, s, k) == pytest.approx(precision_score(relevant, in_top))
    assert recall_at_k(y, s, k) == pytest.approx(recall_score(relevant, in_top))


@pytest.mark.parametrize("seed", range(20))
def test_average_precision_over_the_whole_list_matches_sklearn(seed):
    # With k >= n, min(R, k) = R and AP@k is the classical (uninterpolated) AP of the full
    # ranking, which is scikit-learn's average_precision_score for distinct scores.
    rng = np.random.default_rng(200 + seed)
    n = int(rng.integers(2, 30))
    y = rng.integers(1, 6, size=n).astype(float)
    y[rng.integers(n)] = 4.0
    s = rng.permutation(n).astype(float)
    theirs = average_precision_score((y >= 4).astype(int), s)
    for k in (n, n + 5):
        assert average_precision_at_k(y, s, k) == pytest.approx(theirs, rel=1e-12)


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("k", [1, 2, 5])
def test_hit_rate_with_one_relevant_item_matches_sklearn_top_k_accuracy(seed, k):
    # Leave-one-out: with exactly one relevant item, HitRate@k is whether that item is among
    # the k highest scores, which is top-k accuracy of one sample whose classes are the items.
    # (With several relevant items the two differ: top-k accuracy has one true label.)
    rng = np.random.default_rng(300 + seed)
    n = 8
    target = int(rng.integers(n))
    y = np.full(n, 2.0)
    y[target] = 5.0
    s = rng.permutation(n) / n
    theirs = top_k_accuracy_score([target], s[None, :], k=k, labels=np.arange(n))
    assert hit_rate_at_k(y, s, k) == theirs


def test_ranking_extras_keep_the_default_columns_and_values():
    rng = np.random.default_rng(1)
    y = rng.integers(1, 6, (20, 10)).astype(float)
    p = rng.normal(3, 1, (20, 10))
    mask = (rng.random((20, 10)) < 0.8).astype(float)
    plain = task_metrics(y, p, mask)
    extra = task_metrics(y, p, mask, ranking_extras=True)
    assert list(plain) == ["mae", "rmse", "ndcg@1", "ndcg@3"]
    for name, values in plain.items():
        np.testing.assert_array_equal(extra[name], values)


@pytest.mark.parametrize("fn", [precision_at_k, recall_at_k, hit_rate_at_k,
                                average_precision_at_k])
def test_bad_inputs_raise_clear_errors(fn):
    y, s = [5, 3, 1], [0.3, 0.2, 0.1]
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        fn(y, s, 0)
    with pytest.raises(TypeError, match="k must be an integer"):
        fn(y, s, 1.5)
    with pytest.raises(TypeError, match="k must be an integer"):
        fn(y, s, True)
    with pytest.raises(ValueError, match="same size"):
        fn(y, s[:2], 1)
    with pytest.raises(ValueError, match="Predictions contain NaN"):
        fn(y, [0.3, np.nan, 0.1], 1)
    with pytest.raises(ValueError, match="True ratings contain NaN"):
        fn([5, np.nan, 1], s, 1)
    with pytest.raises(ValueError, match="1-D"):
        fn([y], [s], 1)
    with pytest.raises(ValueError, match="threshold is NaN"):
        fn(y, s, 1, threshold=float("nan"))
    with pytest.raises(TypeError, match="threshold must be a real number"):
        fn(y, s, 1, threshold="4")
    with pytest.raises(ValueError, match="threshold is NaN"):
        task_metrics([y], [s], ranking_extras=True, threshold=float("nan"))


@pytest.mark.parametrize("threshold", [4.0, 5.0])
def test_task_metrics_extras_match_brute_force_with_ties_and_padding(threshold):
    rng = np.random.default_rng(7)
    t_count, q = 30, 9
    lengths = rng.integers(0, q + 1, size=t_count)
    mask = np.arange(q)[None, :] < lengths[:, None]
    y = np.where(mask, rng.integers(1, 6, (t_count, q)), 5.0)  # padding rated 5: must not count
    p = np.where(mask, rng.integers(0, 3, (t_count, q)), 9.0)  # ties; padding scored highest
    ks = (1, 4, 12)
    out = task_metrics(y, p, mask, ks=ks, ranking_extras=True, threshold=threshold)
    for i, n in enumerate(lengths):
        for k in ks:
            got = tuple(out[f"{name}@{k}"][i] for name in ("precision", "recall", "hit", "ap"))
            if n == 0:
                assert all(np.isnan(got))
                continue
            ref = _brute_force(list(y[i, :n]), list(p[i, :n]), k, threshold)
            for a, b in zip(got, ref, strict=True):
                assert a == pytest.approx(b, rel=1e-12, nan_ok=True)
