"""Reptile (Nichol et al., 2018): move the initialisation towards each task's adapted weights.

Pseudocode of one outer step::

    for each task i in the meta-batch (vectorized):
        W_i = phi
        repeat inner_steps times:                       # plain SGD on the task's ratings
            W_i = W_i - alpha * grad L_i(W_i)
    phi = phi + epsilon * mean_i(W_i - phi)

``epsilon`` is the meta step size. The update is handed to the outer optimizer as the
pseudo-gradient ``phi - mean_i(W_i)``: with the default ``SGD(epsilon)`` optimizer this is
exactly the rule above; any other Keras optimizer (e.g. Adam) may be used instead.
During meta-training each task's inner loop uses all its ratings (support and query); at
evaluation it adapts on the support set only.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from metarec._validate import check_positive
from metarec.meta.base import AdaptSpec, MetaLearner
from metarec.meta.saving import register_learner


@register_learner
class Reptile(MetaLearner):
    """Reptile meta-learner.

    Parameters
    ----------
    model : keras.Model
        The recommender.
    inner_lr : float
        SGD step size of the inner loop.
    inner_steps : int
        Inner SGD steps per task (Reptile needs more than one; 5 by default).
    meta_step_size : float
        ``epsilon``, the fraction of the way towards the adapted weights (default optimizer).
    adapt : "all", regex, callable or list of variables
        The variables adapted (and hence meta-learned); the others stay at their values.
    """

    display_name = "Reptile"

    def __init__(self, model: keras.Model, inner_lr: float = 0.01, inner_steps: int = 5,
                 meta_step_size: float = 0.1, adapt: AdaptSpec = "all", **kwargs: Any):
        super().__init__(model, inner_lr=inner_lr, inner_steps=inner_steps, adapt=adapt,
                         **kwargs)
        self.meta_step_size = check_positive(self.display_name, "meta_step_size",
                                             meta_step_size)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "meta_step_size": self.meta_step_size}

    def compile(self, optimizer=None) -> Reptile:
        """Outer optimizer for the pseudo-gradient; ``SGD(meta_step_size)`` by default."""
        if optimizer is None:
            optimizer = keras.optimizers.SGD(self.meta_step_size)
        return super().compile(optimizer)

    def _meta_loss_and_grads(self, theta, extra, nt, batch):
        sx, sy, sm, qx, qy, qm = batch
        x = {k: tf.concat([sx[k], qx[k]], axis=1) for k in sx}
        y = tf.concat([sy, qy], axis=1)
        mask = tf.concat([sm, qm], axis=1)
        phi, frozen = self._split(theta)

        def adapted_minus_phi(task):
            x_i, y_i, m_i = task
            w_i, nt_i = self._adapt_task(list(phi), frozen, nt, x_i, y_i, m_i,
                                         self.inner_steps, create_graph=False, extra=extra)
            loss, _ = self._task_loss(w_i, frozen, nt_i, x_i, y_i, m_i)
            return [w - p for w, p in zip(w_i, phi, strict=True)], loss

        deltas, losses = self._map_tasks(adapted_minus_phi, (x, y, mask))
        pseudo = [-tf.reduce_mean(d, axis=0) for d in deltas]
        grads = self._merge(pseudo, [None] * len(frozen))
        return tf.reduce_mean(losses), grads, []
