"""Hidden checks of assignment 3 (Reptile and Meta-SGD), shipped only in the autograder.

Every check draws fresh random inputs (the seed is printed in a failure message), runs the
student's function and the package's reference (:class:`metarec.meta.Reptile`,
:class:`metarec.meta.MetaSGD`) on them and compares the values and gradients; a mismatch is
diagnosed against the usual mistakes (wrong sign, adapting on the support set only, rates that
get no gradient).
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

import metarec  # noqa: F401
from metarec.data import TaskBatch
from metarec.meta import MetaSGD, Reptile, masked_mse

try:  # the autograder ships checks_support.py beside this module
    import checks_support as shared
except ModuleNotFoundError:  # in the repository: assignments/checks_support.py
    from assignments import checks_support as shared


def reference_reptile(model: keras.Model, batch: TaskBatch, alpha: float, steps: int,
                      epsilon: float) -> list[np.ndarray]:
    """The package's Reptile step: ``phi - epsilon * pseudo_gradient`` (run eagerly)."""
    learner = Reptile(model, inner_lr=alpha, inner_steps=steps, meta_step_size=epsilon,
                      vectorize=False)
    _, pseudo, _ = shared.reference_gradients(learner, batch)
    return [np.asarray(w) - epsilon * g
            for w, g in zip(shared.weights_of(model), pseudo, strict=True)]


def adapt_on(model: keras.Model, x: dict, y: np.ndarray, alpha: float, steps: int
             ) -> list[np.ndarray]:
    """Plain SGD on ``(x, y)`` (the package's inner loop)."""
    learner = Reptile(model, inner_lr=alpha, inner_steps=steps)
    adapted = learner.adapt((x, y), steps=steps)
    return [np.asarray(v) for v in learner._merge(adapted.fast_weights, adapted.frozen_weights)]


def _student_reptile(fn: Callable, model: keras.Model, batch: TaskBatch, alpha: float,
                     steps: int, epsilon: float) -> list[np.ndarray]:
    got = shared.as_arrays(
        fn(shared.make_loss_fn(model), shared.weights_of(model), batch, alpha, steps, epsilon),
        "reptile_step(...)")
    n = len(model.trainable_variables)
    assert len(got) == n, f"reptile_step returned {len(got)} tensors for {n} weights"
    return got


def check_reptile(fn: Callable) -> None:
    """One Reptile step equals the package's on a random sine meta-batch."""
    rng, seed = shared.fresh_rng()
    model, batch = shared.sine_model(seed), shared.sine_batch(rng, 4)
    alpha, steps, epsilon = 0.01, 3, float(rng.uniform(0.1, 0.9))
    got = _student_reptile(fn, model, batch, alpha, steps, epsilon)
    want = reference_reptile(model, batch, alpha, steps, epsilon)
    if shared.close(got, want, 1e-7):
        return
    theta = [np.asarray(w) for w in shared.weights_of(model)]
    mirrored = [2 * t - w for t, w in zip(theta, want, strict=True)]
    assert not shared.close(got, mirrored, 1e-7), (
        "wrong sign: your step moves AWAY from the adapted weights; Reptile is "
        "phi <- phi + epsilon * mean_i (W_i - phi)")
    support_only = TaskBatch(batch.support_x, batch.support_y, batch.support_mask,
                             batch.query_x, batch.query_y, np.zeros_like(batch.query_mask),
                             batch.user_ids)
    assert not shared.close(got, reference_reptile(model, support_only, alpha, steps, epsilon),
                     1e-7), (
        "your inner loop adapts on the support set only: during meta-training Reptile's inner "
        "loop uses ALL of a task's ratings (support and query concatenated, with their masks)")
    raise AssertionError(
        f"the Reptile step differs from metarec's Reptile (max relative error "
        f"{shared.max_rel_error(got, want):.2e}, seed {seed}): W_i = `inner_steps` SGD steps "
        "from phi on task i's ratings; phi + epsilon * mean_i (W_i - phi)")


def check_reptile_direction(fn: Callable) -> None:
    """One task, epsilon = 1: the step lands on the task's adapted weights."""
    rng, seed = shared.fresh_rng()
    model, batch = shared.sine_model(seed), shared.sine_batch(rng, 1)
    # An empty query set (mask 0): the task's ratings are its support set alone.
    batch.query_mask[:] = 0.0
    got = _student_reptile(fn, model, batch, 0.01, 2, 1.0)
    want = adapt_on(model, {"x": batch.support_x["x"][0]}, batch.support_y[0], 0.01, 2)
    if shared.close(got, want, 1e-7):
        return
    theta = [np.asarray(w) for w in shared.weights_of(model)]
    mirrored = [2 * t - w for t, w in zip(theta, want, strict=True)]
    assert not shared.close(got, mirrored, 1e-7), (
        "wrong sign: with one task and epsilon = 1 Reptile must land ON the adapted weights "
        "W (phi + 1 * (W - phi) = W); yours lands on 2 phi - W")
    raise AssertionError(
        f"with one task and epsilon = 1 the step should give the task's adapted weights "
        f"(max relative error {shared.max_rel_error(got, want):.2e}, seed {seed})")


def _metasgd_case(seed: int, rng: np.random.Generator):
    model, batch = shared.sine_model(seed), shared.sine_batch(rng, 3)
    learner = MetaSGD(model, inner_lr=0.01, inner_steps=2, vectorize=False)
    learner.prepare(batch)  # builds the learner (its rates)
    rates = [rng.uniform(0.001, 0.02, tuple(a.shape)) for a in learner.learning_rates]
    for a, r in zip(learner.learning_rates, rates, strict=True):
        a.assign(r)
    return model, batch, rates, shared.reference_gradients(learner, batch)


def _student_metasgd(fn: Callable, model: keras.Model, rates: list[np.ndarray],
                     batch: TaskBatch):
    out = fn(shared.make_loss_fn(model), shared.weights_of(model),
             [tf.constant(r) for r in rates], batch, inner_steps=2)
    assert isinstance(out, tuple) and len(out) == 3, (
        "metasgd_meta_gradients must return (meta_loss, weight_grads, rate_grads)")
    return out


def check_metasgd_weights(fn: Callable) -> None:
    """Meta-loss and weight gradients equal the package's Meta-SGD."""
    rng, seed = shared.fresh_rng()
    model, batch, rates, (want_loss, want_w, _) = _metasgd_case(seed, rng)
    loss, grads_w, _ = _student_metasgd(fn, model, rates, batch)
    got = shared.as_arrays(grads_w, "the weight gradients")
    assert abs(float(np.asarray(loss)) - want_loss) <= 1e-7 * max(1.0, abs(want_loss)), (
        f"meta-loss {float(np.asarray(loss)):.6f} differs from metarec's {want_loss:.6f} "
        f"(seed {seed}): the inner step is w - rate * grad with the per-parameter rates")
    assert shared.close(got, want_w, 1e-6), (
        f"the weight gradients differ from metarec's MetaSGD (max relative error "
        f"{shared.max_rel_error(got, want_w):.2e}, seed {seed}): the inner steps must stay "
        "differentiable (second order), with the element-wise rates")


def check_metasgd_rates(fn: Callable) -> None:
    """The gradients of the learned rates equal the package's Meta-SGD."""
    rng, seed = shared.fresh_rng()
    model, batch, rates, (_, _, want_a) = _metasgd_case(seed, rng)
    _, _, grads_a = _student_metasgd(fn, model, rates, batch)
    assert isinstance(grads_a, list | tuple) and len(grads_a) == len(rates), (
        "return one rate gradient per rate tensor")
    missing = [i for i, g in enumerate(grads_a) if g is None]
    assert not missing, (
        "no gradient reaches the learning rates (None): watch the rates with the outer tape "
        "and use them, without tf.stop_gradient, in the inner update w - rate * grad")
    got = shared.as_arrays(grads_a, "the rate gradients")
    assert max(float(np.max(np.abs(g))) for g in got) > 0, (
        "the rate gradients are all zero: the rates must enter the inner update w - rate * grad "
        "as differentiable tensors (no tf.stop_gradient)")
    assert shared.close(got, want_a, 1e-6), (
        f"the rate gradients differ from metarec's MetaSGD (max relative error "
        f"{shared.max_rel_error(got, want_a):.2e}, seed {seed})")
