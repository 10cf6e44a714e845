"""One new user: adapt the meta-learned weights to their support ratings, then predict.

:meth:`Adapter.adapt` runs the inner loop eagerly on one user's ``(x, y)`` (or a
:class:`~metarec.data.Task`) and returns an :class:`AdaptedModel` holding that user's fast
weights -- what a service would keep per user.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from metarec._validate import check_int
from metarec.data.tasks import Task, TaskSet

__all__ = ["AdaptedModel", "Adapter"]


class AdaptedModel:
    """A model personalised to one task: the meta-learned weights after inner-loop adaptation.

    Returned by :meth:`~metarec.meta.adaptation.Adapter.adapt`; ``predict(x)`` gives ratings
    ``[N]`` for feature dict ``x`` (``[N, ...]`` per key).
    """

    def __init__(self, learner: Any, fast: list[tf.Tensor], frozen: list[tf.Tensor]):
        self.learner = learner
        self.fast_weights = fast
        self.frozen_weights = frozen

    def predict(self, x: dict[str, np.ndarray]) -> np.ndarray:
        x = {k: tf.convert_to_tensor(v) for k, v in x.items()}
        values = self.learner._merge(self.fast_weights, self.frozen_weights)
        nt = [tf.convert_to_tensor(v) for v in self.learner.model.non_trainable_variables]
        pred, _ = self.learner._forward(values, nt, x, training=False)
        return pred.numpy()


class Adapter:
    """Adaptation to one user (mixed into :class:`~metarec.meta.MetaLearner`)."""

    def adapt(self, support: Task | tuple[dict[str, np.ndarray], np.ndarray],
              steps: int | None = None) -> AdaptedModel:
        """Personalise the model to one user from their support ratings.

        ``support`` is a :class:`Task` (its support set is used) or ``(x, y)`` with feature
        dict ``x`` (``[S, ...]``) and ratings ``y`` (``[S]``). Returns an :class:`AdaptedModel`.
        """
        where = f"{self.display_name}.adapt"
        x, y = self._support_arrays(support, where, allow_empty=False)
        if steps is not None:
            steps = check_int(where, "steps", steps, 0)
        self._build(x)
        steps = self.inner_steps if steps is None else steps
        theta, extra, nt = self._values()
        fast, frozen = self._split(theta)
        xt = {k: tf.convert_to_tensor(v) for k, v in x.items()}
        fast, _ = self._adapt_task(fast, frozen, nt, xt, tf.constant(y),
                                   tf.ones_like(tf.constant(y)), steps, create_graph=False,
                                   training=False, extra=extra)
        return AdaptedModel(self, fast, frozen)

    def _support_arrays(self, support: Any, where: str,
                        allow_empty: bool) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """``adapt``'s input checks: one user's support ``(x, y)``, ``y`` as float32 ``[S]``.

        ``support`` is a :class:`Task` (checked against the learner's encoder) or a pair
        ``(x, y)``; an empty support set is refused unless ``allow_empty``.
        """
        if isinstance(support, Task):
            if support.encoder_fingerprint is not None:
                self.check_tasks(TaskSet([support]), where, "support")
            x, y = support.support_x, support.support_y
        elif isinstance(support, tuple | list) and len(support) == 2 \
                and isinstance(support[0], dict):
            x, y = support
        else:
            raise TypeError(f"{where}: support must be a Task or a pair (x, y) of a feature "
                            f"dict and ratings, got {type(support).__name__}.")
        y = np.asarray(y, np.float32)
        if y.ndim != 1:
            raise ValueError(f"{where}: the support ratings y must be 1-D [S], got shape "
                             f"{y.shape}.")
        if len(y) == 0 and not allow_empty:
            raise ValueError(f"{where}: the support set is empty; give at "
                             "least one rating (or use the un-adapted model for a new user).")
        if not np.isfinite(y).all():
            raise ValueError(f"{where}: the support ratings contain NaN or infinite values; "
                             "drop or fix those ratings.")
        rows = {k: np.shape(v)[0] if np.ndim(v) else None for k, v in x.items()}
        if any(n != len(y) for n in rows.values()):
            raise ValueError(f"{where}: every feature of x needs one row per rating "
                             f"({len(y)} ratings), got rows {rows}.")
        return x, y
