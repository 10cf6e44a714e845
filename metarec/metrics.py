r"""Rating-prediction and ranking metrics, per task (numpy only).

Definitions (one task = one user's query set of ``n`` ratings :math:`r_j` with predictions
:math:`\hat r_j`):

* **MAE** :math:`= \frac1n \sum_j |\hat r_j - r_j|`.
* **RMSE** :math:`= \sqrt{\frac1n \sum_j (\hat r_j - r_j)^2}`.
* **nDCG@k** (MeLU's definition, Lee et al. 2019): rank the items by predicted score,
  descending; ties are broken by a *stable* sort, i.e. the item that comes first in the input
  is ranked first. With gain :math:`2^{r} - 1` and discount :math:`\log_2(1 + \text{rank})`,
  rank starting at 1,

  .. math::

      \mathrm{DCG@k} = \sum_{j=1}^{\min(k, n)} \frac{2^{r_{\pi(j)}} - 1}{\log_2(1 + j)}, \qquad
      \mathrm{nDCG@k} = \frac{\mathrm{DCG@k}}{\mathrm{IDCG@k}},

  where :math:`\pi` orders by predicted score and IDCG@k is the DCG@k of the order by true
  rating (descending). If IDCG@k = 0 (every true gain is 0, i.e. all ratings are 0) nDCG@k is
  defined as 0.
* **Binary relevance** (Precision, Recall, HitRate, AP): an item is *relevant* when its true
  rating is at least :math:`r^\star`, by default :data:`RELEVANCE_THRESHOLD` :math:`= 4` (4 or 5
  stars on MovieLens' 1-5 scale). The ranking and its tie rule are those of nDCG. Write
  :math:`m = \min(k, n)` (the list is cut at the task's length: a query set of 3 items has a
  top-3, not a top-10), :math:`\mathrm{rel}_j = [r_{\pi(j)} \ge r^\star]` and
  :math:`R = \sum_{j=1}^{n} \mathrm{rel}_j` for the number of relevant items of the task. Then

  .. math::

      \mathrm{P@k} = \frac{1}{m} \sum_{j=1}^{m} \mathrm{rel}_j, \qquad
      \mathrm{R@k} = \frac{1}{R} \sum_{j=1}^{m} \mathrm{rel}_j, \qquad
      \mathrm{HR@k} = \Big[\sum_{j=1}^{m} \mathrm{rel}_j > 0\Big],

  .. math::

      \mathrm{AP@k} = \frac{1}{\min(R, k)} \sum_{j=1}^{m} \mathrm{rel}_j\, \mathrm{P@j},
      \qquad \mathrm{MAP@k} = \text{mean of AP@k over users}.

  Precision divides by the length of the list actually ranked, :math:`m`, not by :math:`k`
  (torcheval's ``limit_k_to_size=True``; dividing by :math:`k` gives a lower value when
  :math:`n < k`, the two agree when :math:`n \ge k`). Recall divides by all relevant items of
  the task, so a perfect ranking has R@k :math:`< 1` when :math:`R > k`. AP@k divides by
  :math:`\min(R, k)`, the number of relevant items an ideal top :math:`k` can hold (the variant
  of Kaggle's ``apk``): the ideal order scores exactly 1, a missed relevant item always costs,
  and a user is not punished for having more relevant items than :math:`k` (dividing by
  :math:`R` would); dividing by the number of hits instead would give 1 to a top :math:`k` that
  holds one relevant item, in first place, and misses all the others. With :math:`k \ge n` it
  equals scikit-learn's ``average_precision_score`` (for distinct scores).

  **Users without a relevant item** (:math:`R = 0`): P@k and HR@k are 0 (well defined: the
  list holds no liked item, and no ranking could do better), while R@k and AP@k are 0/0 and
  returned as **NaN**, so :func:`summarize` leaves those users out of the mean R@k and MAP@k
  (the ``'skip'`` choice of torchmetrics' and torcheval's retrieval metrics, whose default
  counts them as 0 and so mixes the data into the score). Report how many users were left
  out, and compare all metrics on the users with :math:`R > 0` when the means must cover
  the same users.

  **Ties** in the predicted scores go to the earlier item, as for nDCG (scikit-learn's
  ``ndcg_score`` averages over tied orders instead), so a constant predictor is scored on the
  input order.

A task with no rating (an all-padding row of a batch) gets NaN for every metric;
:func:`summarize` averages over tasks ignoring NaN, so every user counts once (MeLU's averaging),
whatever their number of query ratings.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "RELEVANCE_THRESHOLD",
    "NonFinitePredictionError",
    "average_precision_at_k",
    "hit_rate_at_k",
    "mae",
    "ndcg_at_k",
    "precision_at_k",
    "recall_at_k",
    "rmse",
    "summarize",
    "task_metrics",
]

class NonFinitePredictionError(ValueError):
    """Predictions are NaN (or, after adaptation, infinite): the model diverged or got invalid
    input. A ``ValueError``, so callers that catch bad input still catch it; training loops
    catch this class alone to apply a divergence policy (``MetaLearner.fit``)."""


#: Ratings at or above this value are relevant for precision, recall, hit rate and AP.
RELEVANCE_THRESHOLD = 4.0


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if t.ndim != 1 or p.ndim != 1:
        # Flattening a [T, Q] batch would rank all tasks' items as one list: refuse it.
        raise ValueError(f"y_true and y_pred must be one task's 1-D arrays [n], got shapes "
                         f"{t.shape} and {p.shape}; for a padded batch [T, Q] use task_metrics.")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must have the same size, got {t.size} and "
                         f"{p.size}.")
    if np.isnan(t).any():
        raise ValueError("True ratings contain NaN: a rating is missing or invalid; drop or "
                         "fix that row (a metric of a NaN rating is undefined).")
    if np.isnan(p).any():
        raise NonFinitePredictionError("Predictions contain NaN: the model diverged or got "
                                       "invalid input.")
    return t, p


def _check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise TypeError(f"k must be an integer >= 1, got {k!r} ({type(k).__name__}).")
    if k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k}.")
    return int(k)


def _check_gains(t: np.ndarray) -> None:
    if (t < 0).any():
        raise ValueError(f"nDCG needs ratings >= 0 (gain 2^r - 1 of a negative rating is "
                         f"negative, the score would leave [0, 1]); got {float(t.min())}. "
                         "Shift the ratings to start at 0 or more.")


def mae(y_true, y_pred) -> float:
    """Mean absolute error of one task.

    Parameters
    ----------
    y_true, y_pred : array-like [n]

    Examples
    --------
    >>> mae([1, 2, 3], [2, 2, 5])
    1.0
    """
    t, p = _pair(y_true, y_pred)
    return float(np.mean(np.abs(p - t))) if t.size else float("nan")


def rmse(y_true, y_pred) -> float:
    """Root mean squared error of one task.

    Examples
    --------
    >>> rmse([1, 2, 3], [2, 2, 5])   # sqrt((1 + 0 + 4) / 3)
    1.2909944487358056
    """
    t, p = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((p - t) ** 2))) if t.size else float("nan")


def _ranking(y_true: np.ndarray, y_score: np.ndarray) -> np.ndarray:
    """True ratings in predicted order; stable sort on -score = earlier item first on ties."""
    return y_true[np.argsort(-y_score, kind="stable")]


def _discounts(n: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, n + 2))


def ndcg_at_k(y_true, y_score, k: int) -> float:
    """nDCG@k of one task, MeLU's definition (gain 2^r - 1; see the module docstring).

    Parameters
    ----------
    y_true : array-like [n]
        True ratings.
    y_score : array-like [n]
        Predicted scores; ties go to the earlier item.
    k : int
        Cut-off (``min(k, n)`` positions are used).

    Returns
    -------
    float
        In [0, 1]; 0 when IDCG@k is 0; NaN for an empty task.

    Examples
    --------
    >>> ndcg_at_k([5, 3, 1], [0.9, 0.5, 0.1], k=3)     # perfect order
    1.0
    >>> round(ndcg_at_k([5, 3, 1], [0.1, 0.5, 0.9], k=1), 4)   # (2^1-1) / (2^5-1)
    0.0323
    """
    k = _check_k(k)
    t, s = _pair(y_true, y_score)
    _check_gains(t)
    if t.size == 0:
        return float("nan")
    m = min(k, t.size)
    disc = _discounts(m)
    dcg = float(np.sum((2.0 ** _ranking(t, s)[:m] - 1.0) * disc))
    idcg = float(np.sum((2.0 ** np.sort(t)[::-1][:m] - 1.0) * disc))
    return dcg / idcg if idcg > 0 else 0.0


def _check_threshold(threshold: object) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, int | float | np.integer
                                                     | np.floating):
        raise TypeError(f"threshold must be a real number (the lowest relevant rating), got "
                        f"{threshold!r} ({type(threshold).__name__}).")
    if np.isnan(threshold):
        raise ValueError("threshold is NaN: no rating would be relevant; pass the lowest "
                         "rating that counts as relevant, e.g. 4 on a 1-5 scale.")
    return float(threshold)


def _relevance(y_true, y_score, k: int, threshold: float
               ) -> tuple[np.ndarray, int, int] | None:
    """Checked inputs -> (relevance of the top min(k, n) in ranked order, R, k); None if n = 0."""
    k = _check_k(k)
    threshold = _check_threshold(threshold)
    t, s = _pair(y_true, y_score)
    if t.size == 0:
        return None
    return _ranking(t, s)[: min(k, t.size)] >= threshold, int(np.sum(t >= threshold)), k


def precision_at_k(y_true, y_score, k: int, threshold: float = RELEVANCE_THRESHOLD) -> float:
    r"""Precision@k of one task: the share of relevant items among the top ``min(k, n)``.

    An item is relevant when its true rating is ``>= threshold``; the list is cut at the
    task's length ``n``, so the denominator is ``min(k, n)``, not ``k`` (module docstring).

    Parameters
    ----------
    y_true : array-like [n]
        True ratings.
    y_score : array-like [n]
        Predicted scores; ties go to the earlier item (as in :func:`ndcg_at_k`).
    k : int
        Cut-off, ``>= 1``.
    threshold : float
        Lowest relevant rating (default :data:`RELEVANCE_THRESHOLD`, 4).

    Returns
    -------
    float
        In [0, 1]; 0 for a task without a relevant item; NaN for an empty task.

    Examples
    --------
    >>> precision_at_k([5, 2, 4, 1], [0.9, 0.8, 0.1, 0.0], k=2)
    0.5
    >>> precision_at_k([5, 2, 4, 1], [0.9, 0.8, 0.1, 0.0], k=10)   # 2 relevant of n = 4
    0.5
    """
    top = _relevance(y_true, y_score, k, threshold)
    return float("nan") if top is None else float(np.mean(top[0]))


def recall_at_k(y_true, y_score, k: int, threshold: float = RELEVANCE_THRESHOLD) -> float:
    r"""Recall@k of one task: the share of the task's relevant items that reach the top k.

    :math:`\mathrm{R@k} = \frac1R \sum_{j \le \min(k, n)} [r_{\pi(j)} \ge r^\star]`, with
    :math:`R` the number of items of the task rated ``>= threshold`` (all of them, not only
    those in the top k).

    Parameters
    ----------
    y_true : array-like [n]
        True ratings.
    y_score : array-like [n]
        Predicted scores; ties go to the earlier item (as in :func:`ndcg_at_k`).
    k : int
        Cut-off, ``>= 1``.
    threshold : float
        Lowest relevant rating (default :data:`RELEVANCE_THRESHOLD`, 4).

    Returns
    -------
    float
        In [0, 1]; NaN when the task has no relevant item (0/0: :func:`summarize` then leaves
        the task out of the mean) or no item at all.

    Examples
    --------
    >>> recall_at_k([5, 2, 4, 1], [0.9, 0.8, 0.1, 0.0], k=2)   # 1 of the 2 relevant items
    0.5
    >>> recall_at_k([3, 2, 1], [0.9, 0.8, 0.1], k=2)           # no relevant item
    nan
    """
    top = _relevance(y_true, y_score, k, threshold)
    if top is None or top[1] == 0:
        return float("nan")
    rel, n_relevant, _ = top
    return float(np.sum(rel) / n_relevant)


def hit_rate_at_k(y_true, y_score, k: int, threshold: float = RELEVANCE_THRESHOLD) -> float:
    """HitRate@k of one task: 1.0 if any of the top-k predicted items is relevant, else 0.0.

    An item is relevant when its true rating is ``>= threshold``. The mean over users is the
    share of users with at least one liked item in their top k.

    Parameters
    ----------
    y_true : array-like [n]
        True ratings.
    y_score : array-like [n]
        Predicted scores; ties go to the earlier item (as in :func:`ndcg_at_k`).
    k : int
        Cut-off, ``>= 1`` (``min(k, n)`` positions are used).
    threshold : float
        Lowest relevant rating (default :data:`RELEVANCE_THRESHOLD`, 4).

    Returns
    -------
    float
        0.0 or 1.0; 0.0 for a task without a relevant item; NaN for an empty task.

    Examples
    --------
    >>> hit_rate_at_k([5, 2, 4, 1], [0.0, 0.8, 0.1, 0.9], k=2)
    0.0
    >>> hit_rate_at_k([5, 2, 4, 1], [0.0, 0.8, 0.1, 0.9], k=3)
    1.0
    """
    top = _relevance(y_true, y_score, k, threshold)
    return float("nan") if top is None else float(np.any(top[0]))


def average_precision_at_k(y_true, y_score, k: int,
                           threshold: float = RELEVANCE_THRESHOLD) -> float:
    r"""AP@k of one task: precision at each relevant position of the top k, averaged.

    .. math::

        \mathrm{AP@k} = \frac{1}{\min(R, k)} \sum_{j=1}^{\min(k, n)}
        [r_{\pi(j)} \ge r^\star] \, \mathrm{P@j},

    with :math:`R` the number of relevant items of the task. The denominator
    :math:`\min(R, k)` makes the ideal order (relevant items first) score exactly 1; the module
    docstring compares it with the other variants. MAP@k is the mean of AP@k over users:
    ``summarize`` of the ``ap@k`` column of :func:`task_metrics` with ``ranking_extras``.

    Parameters
    ----------
    y_true : array-like [n]
        True ratings.
    y_score : array-like [n]
        Predicted scores; ties go to the earlier item (as in :func:`ndcg_at_k`).
    k : int
        Cut-off, ``>= 1``.
    threshold : float
        Lowest relevant rating (default :data:`RELEVANCE_THRESHOLD`, 4).

    Returns
    -------
    float
        In [0, 1]; NaN when the task has no relevant item (left out of MAP@k by
        :func:`summarize`) or no item at all.

    Examples
    --------
    >>> # relevant items at ranks 1 and 3: (1/1 + 2/3) / min(2, 3)
    >>> round(average_precision_at_k([5, 2, 4, 1], [0.9, 0.8, 0.1, 0.0], k=3), 4)
    0.8333
    >>> average_precision_at_k([5, 2, 4, 1], [0.9, 0.8, 0.1, 0.0], k=1)   # 1 / min(2, 1)
    1.0
    """
    top = _relevance(y_true, y_score, k, threshold)
    if top is None or top[1] == 0:
        return float("nan")
    rel, n_relevant, k = top
    hits = np.cumsum(rel)
    positions = np.arange(1, rel.size + 1)
    return float(np.sum(hits[rel] / positions[rel]) / min(n_relevant, k))


def task_metrics(
    y_true,
    y_pred,
    mask=None,
    ks: Sequence[int] = (1, 3),
    ranking_extras: bool = False,
    threshold: float = RELEVANCE_THRESHOLD,
) -> dict[str, np.ndarray]:
    """Per-task metrics of a padded batch, vectorised over tasks.

    Parameters
    ----------
    y_true, y_pred : array-like [T, Q]
        True ratings and predictions (padding entries may hold anything finite).
    mask : array-like [T, Q], optional
        1 for a real rating, 0 for padding (default: all real).
    ks : sequence of int
        Cut-offs for ``ndcg@k``.
    ranking_extras : bool
        Also return ``precision@k``, ``recall@k``, ``hit@k`` and ``ap@k`` for each ``k``
        (relevant: true rating ``>= threshold``). Off by default, so the learners' evaluation
        tables keep their columns.
    threshold : float
        Lowest relevant rating for the extras (default :data:`RELEVANCE_THRESHOLD`, 4).

    Returns
    -------
    dict of str to float64 array [T]
        ``mae``, ``rmse``, ``ndcg@k`` for each ``k`` (plus the extras). Values are identical to
        :func:`mae`, :func:`rmse`, :func:`ndcg_at_k` applied to each task's unpadded entries
        (padding is ranked after every real item, so it never changes a ranking). A task with
        no real entry gets NaN; so does ``ndcg@k`` of a task with a negative rating (regression
        targets such as sine waves), where nDCG is undefined. ``recall@k`` and ``ap@k`` are NaN
        for a task without a relevant item, so ``summarize(...)["ap@k"]`` is MAP@k over the
        tasks that have one.

    Examples
    --------
    >>> y = [[5, 3, 0], [4, 4, 2]]
    >>> p = [[4.5, 3.5, 9.9], [4, 4, 2]]
    >>> m = [[1, 1, 0], [1, 1, 1]]
    >>> task_metrics(y, p, m)["mae"].tolist()
    [0.5, 0.0]
    >>> task_metrics(y, p, m, ks=(1,), ranking_extras=True)["ap@1"].tolist()
    [1.0, 1.0]
    """
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if t.ndim != 2 or t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must both have shape [T, Q], got {t.shape} and "
                         f"{p.shape}.")
    w = np.ones_like(t) if mask is None else np.asarray(mask, dtype=np.float64)
    if w.shape != t.shape:
        raise ValueError(f"mask must have shape {t.shape}, got {w.shape}.")
    real = w > 0
    if np.isnan(t[real]).any():
        raise ValueError("True ratings contain NaN at real (mask 1) entries: a rating is "
                         "missing or invalid; drop or fix that row.")
    if np.isnan(p[real]).any():
        raise NonFinitePredictionError("Predictions contain NaN: the model diverged or got "
                                       "invalid input.")
    if isinstance(ks, int | np.integer | str):
        raise TypeError(f"ks must be a sequence of cut-offs such as (1, 3), got {ks!r}.")
    ks = [_check_k(k) for k in ks]
    if ranking_extras:
        threshold = _check_threshold(threshold)
    n = real.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        err = np.where(real, p - t, 0.0)
        out: dict[str, np.ndarray] = {
            "mae": np.abs(err).sum(axis=1) / n,
            "rmse": np.sqrt((err**2).sum(axis=1) / n),
        }
    empty = n == 0
    negative = (real & (t < 0)).any(axis=1)
    # Padding sorts last: score -inf, and the stable sort keeps real -inf scores first.
    order = np.argsort(-np.where(real, p, -np.inf), axis=1, kind="stable")
    ranked_true = np.take_along_axis(np.where(real, t, 0.0), order, axis=1)
    ranked_real = np.take_along_axis(real, order, axis=1)
    gains = np.where(ranked_real, 2.0**ranked_true - 1.0, 0.0)
    ideal = -np.sort(-np.where(real, 2.0**t - 1.0, 0.0), axis=1)  # padding gain 0 sorts last
    width = t.shape[1]
    if ranking_extras:
        n_relevant = (real & (t >= threshold)).sum(axis=1)
        has_relevant = n_relevant > 0
        ranked_relevant = ranked_real & (ranked_true >= threshold)
        # precision at each position j (1-based) of the ranking, counting hits up to j
        precision_at = np.cumsum(ranked_relevant, axis=1) / np.arange(1, width + 1)
    for k in ks:
        m = min(k, width)
        disc = _discounts(m)
        dcg = (gains[:, :m] * disc).sum(axis=1)
        idcg = (ideal[:, :m] * disc).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            ndcg = np.where(idcg > 0, dcg / idcg, 0.0)
        # nDCG is undefined for a task with a negative rating (a negative gain could push it
        # outside [0, 1]): NaN, like an empty task, never a wrong number.
        out[f"ndcg@{k}"] = np.where(empty | negative, np.nan, ndcg)
        if ranking_extras:
            relevant = ranked_real[:, :m] & (ranked_true[:, :m] >= threshold)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[f"precision@{k}"] = np.where(
                    empty, np.nan, relevant.sum(axis=1) / np.minimum(k, n))
            out[f"hit@{k}"] = np.where(empty, np.nan, relevant.any(axis=1).astype(float))
            hits = ranked_relevant[:, :m]
            with np.errstate(invalid="ignore", divide="ignore"):
                out[f"recall@{k}"] = np.where(has_relevant, hits.sum(axis=1) / n_relevant,
                                              np.nan)
                ap_sum = np.where(hits, precision_at[:, :m], 0.0).sum(axis=1)
                out[f"ap@{k}"] = np.where(has_relevant,
                                          ap_sum / np.minimum(n_relevant, k), np.nan)
    return out


def summarize(per_task: dict[str, np.ndarray]) -> dict[str, float]:
    """Mean of each per-task metric over tasks (NaN tasks, i.e. empty ones, ignored).

    Examples
    --------
    >>> summarize({"mae": np.array([0.5, 1.0, np.nan])})
    {'mae': 0.75}
    """
    out = {}
    for name, values in per_task.items():
        values = np.asarray(values, dtype=np.float64)
        out[name] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
    return out
