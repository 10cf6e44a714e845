"""Helpers shared by the hidden checks of the assignments (``aN_checks.py``), autograder only.

``python -m assignments.grade generate`` ships this module in every autograder beside the
assignment's checks (otter's ``autograder_files``), so the checks import it as
``checks_support`` inside otter's grading environment; in the repository (a master notebook run
by hand) they fall back to ``assignments.checks_support``.

- random inputs: :func:`fresh_rng` (a fresh seed, printed in failure messages);
- comparisons: :func:`as_arrays`, :func:`max_rel_error`, :func:`close`;
- the sine tasks of assignments 2 and 3 in float64: :class:`SineMLP`, :func:`sine_batch`,
  :func:`sine_model`, :func:`make_loss_fn`, :func:`weights_of`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

import metarec  # noqa: F401  (before TensorFlow's first use: keeps its log lines quiet)
from metarec.data import TaskBatch
from metarec.meta import masked_mse


def fresh_rng() -> tuple[np.random.Generator, int]:
    """A generator with a fresh random seed, and the seed (for the failure messages)."""
    seed = int.from_bytes(os.urandom(4), "little")
    return np.random.default_rng(seed), seed


def as_arrays(values: Sequence[Any], what: str) -> list[np.ndarray]:
    """``values`` as numpy arrays, with a clear message for ``None`` and non-lists."""
    assert isinstance(values, list | tuple), (
        f"{what} must be a list of tensors (one per weight), got {type(values).__name__}")
    assert all(v is not None for v in values), (
        f"{what} contains None: a gradient did not reach a weight (is every weight watched "
        f"and used?)")
    return [np.asarray(tf.convert_to_tensor(v)) for v in values]


def max_rel_error(got: Sequence[np.ndarray], want: Sequence[np.ndarray]) -> float:
    """Largest ``|got - want|`` over all tensors, relative to the largest ``|want|``."""
    scale = max(float(np.max(np.abs(w))) for w in want) + 1e-12
    return max(float(np.max(np.abs(g - w))) for g, w in zip(got, want, strict=True)) / scale


def close(got: Sequence[np.ndarray], want: Sequence[np.ndarray], tol: float) -> bool:
    """Same shapes and values within ``tol`` (relative to the largest reference entry)."""
    if len(got) != len(want) or any(g.shape != w.shape for g, w in zip(got, want, strict=True)):
        return False
    return max_rel_error(got, want) <= tol


# ------------------------------------------------------------------ the sine tasks (float64)
class SineMLP(keras.Model):
    """The 1-40-40-1 ReLU network of the sine tasks, in float64 for exact comparisons."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.hidden = [keras.layers.Dense(40, activation="relu", dtype="float64")
                       for _ in range(2)]
        self.out = keras.layers.Dense(1, dtype="float64")

    def call(self, inputs: dict[str, Any]) -> Any:
        h = inputs["x"]
        for dense in self.hidden:
            h = dense(h)
        return keras.ops.squeeze(self.out(h), axis=-1)


def sine_batch(rng: np.random.Generator, n_tasks: int, k: int = 8) -> TaskBatch:
    """``n_tasks`` random sine waves (support and query of ``k`` points each)."""
    amp = rng.uniform(0.1, 5.0, (n_tasks, 1))
    phase = rng.uniform(0.0, np.pi, (n_tasks, 1))
    xs, xq = rng.uniform(-5, 5, (n_tasks, k)), rng.uniform(-5, 5, (n_tasks, k))
    ones = np.ones((n_tasks, k), np.float32)
    return TaskBatch({"x": xs[..., None]}, amp * np.sin(xs - phase), ones,
                     {"x": xq[..., None]}, amp * np.sin(xq - phase), ones.copy(),
                     np.arange(n_tasks))


def sine_model(seed: int) -> SineMLP:
    """A built :class:`SineMLP`, its weights drawn from ``seed``."""
    keras.utils.set_random_seed(seed % (2**31))
    model = SineMLP()
    model({"x": np.zeros((1, 1))})
    return model


def make_loss_fn(model: keras.Model) -> Callable:
    """``loss_fn(weights, x, y, mask)``: the masked MSE of ``model`` run with ``weights``."""
    nt = [tf.convert_to_tensor(v) for v in model.non_trainable_variables]

    def loss_fn(weights, x, y, mask):
        x = {k: tf.convert_to_tensor(v) for k, v in x.items()}
        pred, _ = model.stateless_call(list(weights), nt, x)
        return masked_mse(tf.reshape(pred, [-1]), tf.convert_to_tensor(y),
                          tf.convert_to_tensor(mask))

    return loss_fn


def weights_of(model: keras.Model) -> list[tf.Tensor]:
    """The model's trainable variables as tensors (the list a student's function takes)."""
    return [tf.convert_to_tensor(v) for v in model.trainable_variables]


# ------------------------------------------------------------------ the package's references
def reference_gradients(learner: Any, batch: TaskBatch
                        ) -> tuple[float, list[np.ndarray], list[np.ndarray]]:
    """``(meta_loss, weight_grads, extra_grads)`` of a metarec learner on ``batch``, eagerly.

    The computation of ``learner.meta_gradients(batch)`` without its ``tf.function``, whose
    trace (a new one for every learner) costs seconds per check; with ``vectorize=False`` the
    tasks run as a Python loop. ``extra_grads`` are those of the learner's own variables (the
    learning rates of Meta-SGD; empty for MAML and Reptile).
    """
    tensors = learner.prepare(batch)  # builds the learner (and its extra variables)
    theta, extra, nt = learner._values()
    loss, grads, grads_extra = learner._meta_loss_and_grads(theta, extra, nt, tensors)
    return (float(loss), [np.asarray(tf.convert_to_tensor(g)) for g in grads],
            [np.asarray(tf.convert_to_tensor(g)) for g in grads_extra])
