"""Losses of the meta-learners' inner and outer loops (padding rows excluded)."""

from __future__ import annotations

import tensorflow as tf

__all__ = ["masked_mse"]


def masked_mse(pred: tf.Tensor, y: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Mean squared error over the real (mask 1) rows; 0 when there is none. Shapes ``[N]``.

    Examples
    --------
    >>> float(masked_mse(tf.constant([1.0, 9.0]), tf.constant([2.0, 0.0]),
    ...                  tf.constant([1.0, 0.0])))
    1.0
    """
    # Tasks store float32; a float64 model (for numerical checks) gets its own precision.
    y, mask = tf.cast(y, pred.dtype), tf.cast(mask, pred.dtype)
    return tf.reduce_sum(mask * tf.square(pred - y)) / tf.maximum(tf.reduce_sum(mask), 1.0)
