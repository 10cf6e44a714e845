"""MAML (Finn et al., 2017) and its first-order approximation.

Pseudocode of one outer step, as the code below follows it::

    for each task i in the meta-batch (vectorized):
        theta_i = theta                                   # fast weights start at theta
        repeat inner_steps times:
            theta_i = theta_i - alpha * grad L_support_i(theta_i)
        loss_i = L_query_i(theta_i)
    theta = theta - beta * grad_theta mean_i(loss_i)      # the outer optimizer

Second-order MAML differentiates through the inner steps (the Hessian term); first-order MAML
treats the inner gradients as constants, so the meta-gradient is the query gradient at the
adapted weights.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from metarec.meta.base import AdaptSpec, MetaLearner
from metarec.meta.core import TracedHyperParameter
from metarec.meta.saving import register_learner


@register_learner
class MAML(MetaLearner):
    """Model-Agnostic Meta-Learning on any Keras model.

    Parameters
    ----------
    model : keras.Model
        The recommender to meta-train (see :class:`~metarec.meta.base.MetaLearner`).
    inner_lr : float
        Inner-loop step size ``alpha``.
    inner_steps : int
        Inner-loop gradient steps per task.
    first_order : bool
        Drop the second-order terms (FOMAML).
    adapt : "all", regex, callable or list of variables
        Which variables the inner loop adapts.

    Examples
    --------
    >>> learner = MAML(MeLUNetwork(spec), inner_lr=5e-3, inner_steps=1)   # doctest: +SKIP
    >>> learner.compile(keras.optimizers.Adam(1e-3))                      # doctest: +SKIP
    >>> history = learner.fit(train_tasks, epochs=10, batch_size=32)      # doctest: +SKIP
    >>> learner.evaluate(test_tasks)                                      # doctest: +SKIP
    {'mae': ..., 'rmse': ..., 'ndcg@1': ..., 'ndcg@3': ...}
    """

    display_name = "MAML"
    first_order = TracedHyperParameter(lambda where, v: bool(v),
                                       "Drop the second-order terms (first-order MAML).")

    def __init__(self, model: keras.Model, inner_lr: float = 0.01, inner_steps: int = 1,
                 first_order: bool = False, adapt: AdaptSpec = "all", **kwargs: Any):
        super().__init__(model, inner_lr=inner_lr, inner_steps=inner_steps, adapt=adapt,
                         **kwargs)
        self.first_order = first_order

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "first_order": self.first_order}

    def _meta_loss_and_grads(self, theta, extra, nt, batch):
        with tf.GradientTape() as tape:
            tape.watch(theta)
            tape.watch(extra)
            fast0, frozen = self._split(theta)

            def query_loss_after_adaptation(task):
                sx, sy, sm, qx, qy, qm = task
                # extra (Meta-SGD's rates) is watched: the meta-gradient reaches it too.
                fast, nt_i = self._adapt_task(list(fast0), frozen, nt, sx, sy, sm,
                                              self.inner_steps,
                                              create_graph=not self.first_order, extra=extra)
                loss, _ = self._task_loss(fast, frozen, nt_i, qx, qy, qm)
                return loss

            meta_loss = tf.reduce_mean(self._map_tasks(query_loss_after_adaptation, batch))
        grads = tape.gradient(meta_loss, list(theta) + list(extra))
        return meta_loss, grads[: len(theta)], grads[len(theta):]


@register_learner
class FOMAML(MAML):
    """First-order MAML: :class:`MAML` with ``first_order=True``."""

    display_name = "FOMAML"

    def __init__(self, model: keras.Model, inner_lr: float = 0.01, inner_steps: int = 1,
                 first_order: bool = True, adapt: AdaptSpec = "all", **kwargs: Any):
        super().__init__(model, inner_lr=inner_lr, inner_steps=inner_steps,
                         first_order=first_order, adapt=adapt, **kwargs)


@register_learner
class MeLU(MAML):
    """MeLU (Lee et al., KDD 2019): MAML that adapts only the decision layers.

    The embeddings are shared by all users and learned in the outer loop; the decision layers
    (variables whose path contains ``"decision"``, as named by
    :class:`~metarec.models.MeLUNetwork`) are personalised in the inner loop. Defaults are the
    paper's: local learning rate 5e-6, 5 local steps (MeLU-5; use ``inner_steps=1`` for
    MeLU-1), global Adam learning rate 5e-5 (the default of :meth:`compile`), batch 32.
    """

    display_name = "MeLU"

    def __init__(self, model: keras.Model, inner_lr: float = 5e-6, inner_steps: int = 5,
                 first_order: bool = False, adapt: AdaptSpec = "decision", **kwargs: Any):
        super().__init__(model, inner_lr=inner_lr, inner_steps=inner_steps,
                         first_order=first_order, adapt=adapt, **kwargs)

    def compile(self, optimizer=None) -> MeLU:
        """Outer optimizer; the paper's Adam(5e-5) by default."""
        return super().compile(keras.optimizers.Adam(5e-5) if optimizer is None else optimizer)
