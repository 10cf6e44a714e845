r"""Per-user linear regression on item features: the simplest user-to-item mapping.

Each user is a linear model over the item's content features

.. math:: \phi(i) = [\text{genres}_i \,;\, \text{onehot}(\text{decade}_i)], \qquad
          \hat r_{ui} = \mu + b_u + w_u^\top \phi(i)

:class:`UserLinear` holds *one* ``w`` and ``b`` that serve as the shared initial weights of
every user: trained conventionally (``FineTune.fit``) they are the population regression;
meta-trained (``MAML``) they are the initialisation from which a few gradient steps on a
user's support set fit that user's own regression. ``mu`` (``global_bias``) is shared and not
adapted. With many steps the adapted model approaches least squares on the support set, which
:func:`fit_user_ridge` solves exactly with scikit-learn (the reference).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops
from sklearn.linear_model import Ridge

from metarec.data.features import FeatureSpec
from metarec.data.tasks import Task, TaskSet
from metarec.models.baselines import _SpecModel
from metarec.models.spec import spec_from_config

__all__ = ["UserLinear", "fit_user_ridge", "item_design", "ridge_predict_tasks"]


def item_design(x: dict[str, np.ndarray], n_year_buckets: int) -> np.ndarray:
    """The design matrix ``phi`` of :class:`UserLinear` in numpy: ``[N, G + n_year_buckets]``.

    Parameters
    ----------
    x : dict
        Encoded features with ``item_genres`` ``[N, G]`` and ``item_features`` ``[N, 1]``.
    n_year_buckets : int
        Width of the one-hot release decade (``spec.item_feature_sizes[0]``; bucket 0 =
        unknown).

    Examples
    --------
    >>> x = {"item_genres": np.array([[1.0, 0.0]]), "item_features": np.array([[2]])}
    >>> item_design(x, 3).tolist()
    [[1.0, 0.0, 0.0, 0.0, 1.0]]
    """
    genres = np.asarray(x["item_genres"], dtype=np.float64)
    bucket = np.asarray(x["item_features"]).reshape(len(genres), -1)[:, 0].astype(np.int64)
    if bucket.size and (bucket.min() < 0 or bucket.max() >= n_year_buckets):
        raise ValueError(f"Release-decade ids must lie in [0, {n_year_buckets}); got "
                         f"{bucket.min()}..{bucket.max()}. Pass n_year_buckets = "
                         "spec.item_feature_sizes[0] of the encoder that encoded the tasks.")
    return np.concatenate([genres, np.eye(n_year_buckets)[bucket]], axis=1)


@keras.saving.register_keras_serializable(package="metarec")
class UserLinear(_SpecModel):
    """A user's linear regression on item genres and release decade, ``mu + b_u + w_u . phi``.

    Parameters
    ----------
    spec : FeatureSpec
        ``n_genres`` and ``item_feature_sizes[0]`` (decades) size ``phi``.
    global_mean : float
        Initial value of the shared intercept ``mu`` (``global_bias``).

    Call
    ----
    inputs : dict with ``item_genres`` float32 ``[N, G]`` and ``item_features`` int32
        ``[N, 1]``. Returns predictions ``[N]``.

    Notes
    -----
    ``ADAPT = "/user_"`` selects ``user_weights`` ``[G + D]`` and ``user_bias`` (a scalar):
    the whole regression of the user. Only ``mu`` is shared. The model has no user id, so it
    treats a new user exactly like a known one: everything personal comes from the support set.

    Examples
    --------
    >>> model = UserLinear(encoder.spec)                              # doctest: +SKIP
    >>> learner = FineTune(model, inner_lr=0.1, inner_steps=5, adapt=UserLinear.ADAPT)
    ...                                                               # doctest: +SKIP
    """

    #: Regex (on ``variable.path``) of the per-user parameters fine-tuned on a support set.
    ADAPT: str = "/user_"
    _hyper = ("global_mean",)

    def __init__(self, spec: FeatureSpec, global_mean: float = 3.5, **kwargs: Any):
        super().__init__(**kwargs)
        self.spec = spec_from_config(spec)
        self.global_mean = float(global_mean)
        self.n_year_buckets = int(self.spec.item_feature_sizes[0])
        self.n_inputs = self.spec.n_genres + self.n_year_buckets

    def build(self, input_shape=None):
        self.mu = self.add_weight(shape=(), name="global_bias",
                                  initializer=keras.initializers.Constant(self.global_mean))
        # Zeros: the regression starts at "predict mu" and the gradient is not symmetric-stuck
        # (unlike a hidden layer), so no random init is needed.
        self.user_weights = self.add_weight(shape=(self.n_inputs,), name="user_weights",
                                            initializer="zeros")
        self.user_bias = self.add_weight(shape=(), name="user_bias", initializer="zeros")
        self.built = True

    def design(self, inputs) -> Any:
        """``phi`` as a tensor, ``[N, G + D]`` (the same columns as :func:`item_design`)."""
        decade = ops.cast(inputs["item_features"][:, 0], "int32")
        genres = ops.cast(inputs["item_genres"], "float32")
        return ops.concatenate([genres, ops.one_hot(decade, self.n_year_buckets)], axis=-1)

    def call(self, inputs):
        phi = self.design(inputs)
        return ops.sum(phi * self.user_weights, axis=-1) + self.user_bias + self.mu


def _year_buckets(tasks: list[Task], n_year_buckets: int | None) -> int:
    if n_year_buckets is not None:
        return int(n_year_buckets)
    top = max(int(np.max(np.r_[t.support_x["item_features"][:, 0],
                               t.query_x["item_features"][:, 0]])) for t in tasks)
    return top + 1


def fit_user_ridge(task: Task, alpha: float = 1.0, n_year_buckets: int | None = None) -> Ridge:
    """Fit one scikit-learn ``Ridge`` on a task's support set (the reference of UserLinear).

    Parameters
    ----------
    task : Task
        One user's task; only the support set is used.
    alpha : float
        L2 penalty on the coefficients (the intercept is not penalised). A small ``alpha``
        approaches the least-squares fit that many gradient steps of :class:`UserLinear` reach.
    n_year_buckets : int, optional
        Width of the one-hot decade; default 1 + the largest decade id of the task's support
        and query rows (pass ``spec.item_feature_sizes[0]`` for a fixed width).

    Returns
    -------
    sklearn.linear_model.Ridge
        Fitted on ``item_design(task.support_x, n_year_buckets)``; its ``n_year_buckets_``
        attribute holds the width used.

    Examples
    --------
    >>> ridge = fit_user_ridge(tasks[0], alpha=1.0)                     # doctest: +SKIP
    >>> ridge.predict(item_design(tasks[0].query_x, ridge.n_year_buckets_))  # doctest: +SKIP
    """
    if task.n_support == 0:
        raise ValueError(f"User {task.user_id} has an empty support set; a regression needs at "
                         "least one rating.")
    width = _year_buckets([task], n_year_buckets)
    ridge = Ridge(alpha=float(alpha))
    ridge.fit(item_design(task.support_x, width), np.asarray(task.support_y, np.float64))
    ridge.n_year_buckets_ = width
    return ridge


def ridge_predict_tasks(tasks: TaskSet | Task, alpha: float = 1.0,
                        n_year_buckets: int | None = None) -> np.ndarray:
    """Fit a Ridge per task on its support set and predict its query set.

    Parameters
    ----------
    tasks : TaskSet or Task
    alpha : float
        Ridge penalty (see :func:`fit_user_ridge`).
    n_year_buckets : int, optional
        One-hot decade width, shared by all tasks; default 1 + the largest decade id present.

    Returns
    -------
    ndarray of float32
        ``[Q]`` for one task; ``[T, Q]`` for a TaskSet, padded with zeros like
        ``tasks.batch()`` so ``task_metrics(batch.query_y, pred, batch.query_mask)`` applies.

    Examples
    --------
    >>> pred = ridge_predict_tasks(tasks["user_cold"], alpha=1.0)          # doctest: +SKIP
    >>> batch = tasks["user_cold"].batch()                                 # doctest: +SKIP
    >>> task_metrics(batch.query_y, pred, batch.query_mask)["mae"].mean()  # doctest: +SKIP
    """
    single = isinstance(tasks, Task)
    items = [tasks] if single else list(tasks)
    if not items:
        raise ValueError("ridge_predict_tasks got an empty TaskSet.")
    width = _year_buckets(items, n_year_buckets)
    length = max(t.n_query for t in items)
    if not single:
        length = max(length, tasks.query_length)
    out = np.zeros((len(items), length), dtype=np.float32)
    for row, task in enumerate(items):
        ridge = fit_user_ridge(task, alpha, width)
        out[row, : task.n_query] = ridge.predict(item_design(task.query_x, width))
    return out[0, : items[0].n_query] if single else out
