r"""Which items to ask a new user about: evidence-candidate scores.

A new user can be asked to rate a few items at sign-up; their answers become the support set.
MeLU (Lee et al., 2019) asks about its *evidence candidates*: items that many users can rate
(popular) and whose ratings move the personalised model (discriminative). Two scores of an item
:math:`i` are offered here, each the product of two parts scaled to :math:`[0, 1]` by their
maximum over the items:

* :func:`gradient_norm_scores`, **MeLU's score**, as we read the paper: popularity times the
  mean norm of the gradient of the item's rating losses with respect to the model's *adapted*
  (local) variables, at the trained initialisation :math:`\theta`,

  .. math::

      s_i = \frac{n_i}{\max_j n_j} \cdot \frac{g_i}{\max_j g_j}, \qquad
      g_i = \frac{1}{n_i} \sum_{u \in U_i}
            \big\lVert \nabla_{\phi} \, (f_\theta(\mathbf x_{ui}) - r_{ui})^2 \big\rVert_2 ,

  with :math:`n_i` the item's number of training ratings, :math:`U_i` its raters and
  :math:`\phi` the adapted variables (the norm over all of them together). An item whose
  ratings the model predicts badly, through weights the local update moves, scores high.
* :func:`entropy_scores`, a **model-free stand-in**: popularity times the entropy of the
  item's ratings over the rating values (items whose ratings are spread out tell users apart).

Both take the training ratings only (one row per rating: ``user_id``, ``item_id``,
``rating``); an item without training ratings gets no score. Chapter 10 compares them with
random questions on the same new users.

Example
-------
>>> scores = gradient_norm_scores(learner, data.split.train, data.encoder)   # doctest: +SKIP
>>> scores.nlargest(5)                                                       # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf

from metarec._validate import rating_frame

_HINT = "the training ratings, e.g. data.split.train"


def _scaled(values: pd.Series) -> pd.Series:
    """Divide by the maximum (a constant zero series stays zero)."""
    top = float(values.max())
    return values / top if top > 0 else values * 0.0


def popularity(ratings: pd.DataFrame) -> pd.Series:
    """Number of training ratings per item (``item_id`` index), as float."""
    ratings = rating_frame("popularity", ratings, _HINT)
    return ratings.groupby("item_id").size().astype(float).rename("popularity")


def entropy_scores(ratings: pd.DataFrame) -> pd.Series:
    """Scaled popularity times scaled rating entropy per item (the model-free stand-in).

    The entropy is the Shannon entropy (natural log) of the item's distribution of rating
    values. Returns a Series indexed by ``item_id`` with values in ``[0, 1]``.
    """
    ratings = rating_frame("entropy_scores", ratings, _HINT)
    counts = ratings.groupby("item_id")["rating"].value_counts().unstack(fill_value=0)
    n = counts.sum(axis=1).astype(float)
    share = counts.div(n, axis=0)
    entropy = -(share * np.log(share.where(share > 0, 1.0))).sum(axis=1)
    return (_scaled(n) * _scaled(entropy)).rename("entropy_score")


def rating_gradient_norms(learner: Any, ratings: pd.DataFrame, encoder: Any,
                          batch_size: int = 512) -> np.ndarray:
    r"""Per rating, :math:`\lVert \nabla_\phi (f_\theta(\mathbf x) - r)^2 \rVert_2` [N].

    ``learner`` is a trained gradient-based meta-learner (or fine-tuner): its model gives
    :math:`f_\theta` and its ``adapted_variables`` the variables :math:`\phi` of the local
    update. ``encoder`` is the data's :class:`~metarec.data.FeatureEncoder`. Computed in
    batches of ``batch_size`` ratings with per-example Jacobians of the predictions (the
    squared error's gradient is :math:`2 (f - r) \nabla_\phi f`).
    """
    ratings = rating_frame("rating_gradient_norms", ratings, _HINT)
    if batch_size < 1:
        raise ValueError(f"rating_gradient_norms: batch_size must be >= 1, got {batch_size}.")
    model = learner.model
    x_all = encoder.transform(ratings)
    y_all = ratings["rating"].to_numpy(np.float32)
    if not hasattr(learner, "_adapt_idx") or learner._adapt_idx is None:
        learner._build({k: v[:1] for k, v in x_all.items()})  # an untrained learner
    variables = learner.adapted_variables
    if not variables:
        raise ValueError(f"rating_gradient_norms: {type(learner).__name__} adapts no weight "
                         "(e.g. a neural process), so there is no local gradient to measure; "
                         "use a gradient-based learner or entropy_scores.")

    @tf.function(reduce_retracing=True)
    def norms(x: dict[str, tf.Tensor], y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            pred = tf.reshape(model(x, training=False), [-1])
        jac = tape.jacobian(pred, variables, experimental_use_pfor=True)
        sq = tf.add_n([tf.reduce_sum(tf.reshape(j, [tf.shape(pred)[0], -1]) ** 2, axis=1)
                       for j in jac])
        return 2.0 * tf.abs(pred - y) * tf.sqrt(sq)

    out = []
    for start in range(0, len(y_all), batch_size):
        part = {k: tf.convert_to_tensor(v[start:start + batch_size]) for k, v in x_all.items()}
        out.append(norms(part, tf.convert_to_tensor(y_all[start:start + batch_size])).numpy())
    return np.concatenate(out)


def gradient_norm_scores(learner: Any, ratings: pd.DataFrame, encoder: Any,
                         batch_size: int = 512, max_per_item: int | None = None,
                         seed: int = 0) -> pd.Series:
    """MeLU's evidence score per item: scaled popularity times scaled mean gradient norm.

    See the module docstring for the formula and :func:`rating_gradient_norms` for
    ``learner``, ``encoder`` and ``batch_size``. ``max_per_item`` estimates each item's mean
    gradient norm from at most that many of its ratings (drawn with ``seed``), which bounds
    the cost by the number of items; popularity always counts every rating. Returns a Series
    indexed by ``item_id`` with values in ``[0, 1]``.
    """
    ratings = rating_frame("gradient_norm_scores", ratings, _HINT)
    n = popularity(ratings)
    used = ratings
    if max_per_item is not None:
        if max_per_item < 1:
            raise ValueError(f"gradient_norm_scores: max_per_item must be >= 1 or None, got "
                             f"{max_per_item}.")
        shuffled = ratings.sample(frac=1.0, random_state=seed)
        used = shuffled.groupby("item_id", sort=False).head(max_per_item)
    grads = rating_gradient_norms(learner, used, encoder, batch_size)
    if not np.isfinite(grads).all():
        raise ValueError("gradient_norm_scores: some gradient norms are NaN or infinite; the "
                         "model's predictions diverge on these ratings (check its weights).")
    frame = pd.DataFrame({"item_id": used["item_id"].to_numpy(), "g": grads})
    mean_norm = frame.groupby("item_id")["g"].mean().reindex(n.index)
    return (_scaled(n) * _scaled(mean_norm)).rename("gradient_norm_score")


__all__ = ["entropy_scores", "gradient_norm_scores", "popularity", "rating_gradient_norms"]
