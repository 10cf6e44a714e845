"""The non-meta baseline: train conventionally on pooled ratings, fine-tune per user.

``FineTune`` trains the model with ordinary supervised learning on all ratings of the training
tasks (support and query rows pooled, mean squared error). At evaluation it adapts to each
user's support set with the meta-learners' inner loop -- ``inner_steps`` SGD steps of size
``inner_lr`` on the ``adapt`` variables. A fair comparison with a meta-learner also gives both
the same tuning budget for these test-time settings (chapter 8, :mod:`metarec.experiments.grid`):
a well-trained model with a tuned fine-tuning step is a strong baseline. With
``inner_steps=0`` it is the plain, un-personalised model.
"""

from __future__ import annotations

import tensorflow as tf

from metarec.meta.base import MetaLearner
from metarec.meta.losses import masked_mse
from metarec.meta.saving import register_learner


@register_learner
class FineTune(MetaLearner):
    """Conventional training, then per-user fine-tuning on the support set."""

    display_name = "Fine-tune"

    def _meta_loss_and_grads(self, theta, extra, nt, batch):
        sx, sy, sm, qx, qy, qm = batch

        def rows(a, b):
            # [T, S, ...] and [T, Q, ...] -> [T * (S + Q), ...]: one pooled minibatch.
            both = tf.concat([a, b], axis=1)
            return tf.reshape(both, tf.concat([[-1], tf.shape(both)[2:]], axis=0))

        x = {k: rows(sx[k], qx[k]) for k in sx}
        with tf.GradientTape() as tape:
            tape.watch(theta)
            pred, _ = self._forward(theta, nt, x)
            loss = masked_mse(pred, rows(sy, qy), rows(sm, qm))
        return loss, tape.gradient(loss, theta), []

    def _replica_share(self, batch):
        # The pooled loss is a mean over rating rows: a replica weighs by its real rows.
        _, _, sm, _, _, qm = batch
        return tf.reduce_sum(tf.cast(sm, tf.float32)) + tf.reduce_sum(tf.cast(qm, tf.float32))
