"""Meta-SGD (Li et al., 2017): MAML with a learned learning rate for every parameter.

The inner step becomes ``theta_i = theta - alpha (*) grad L_support_i(theta)`` where ``alpha``
has the shape of ``theta`` and ``(*)`` is the element-wise product; ``alpha`` is trained by the
outer optimizer together with ``theta``.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from metarec.meta.maml import MAML
from metarec.meta.saving import register_learner


@register_learner
class MetaSGD(MAML):
    """Meta-SGD: per-parameter inner learning rates, initialised to ``inner_lr``.

    The learned rates are ``learner.learning_rates`` (one tensor per adapted variable).
    """

    display_name = "Meta-SGD"

    def _build_extra(self) -> None:
        self._alphas = [
            keras.Variable(tf.fill(v.shape, tf.constant(self.inner_lr, v.dtype)), name=f"alpha_{i}")
            for i, v in enumerate(self.adapted_variables)
        ]

    @property
    def extra_variables(self) -> list:
        return list(getattr(self, "_alphas", []))

    @property
    def learning_rates(self) -> list:
        """The learned per-parameter inner learning rates."""
        return self.extra_variables

    def _inner_update(self, fast, grads, extra):
        # extra = the rates: watched tensors in a training step (so they get gradients),
        # the variables' current values elsewhere.
        return [w - a * g for w, a, g in zip(fast, extra, grads, strict=True)]
