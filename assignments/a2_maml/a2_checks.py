"""Hidden checks of assignment 2 (MAML), shipped only in the autograder.

Every check draws fresh random inputs (the seed is printed in a failure message, to reproduce
it), runs the student's function and the package's reference (:class:`metarec.meta.MAML`) on
them and compares values and gradients. A mismatch is diagnosed against the usual mistakes
(wrong sign, first-order gradients, the inner update on the wrong variables) so that the
message says what is wrong, not only that something is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

import metarec  # noqa: F401
from metarec.data import FeatureEncoder, TaskBatch, build_tasks, make_synthetic
from metarec.meta import MAML, masked_mse
from metarec.models import MeLUNetwork

try:  # the autograder ships checks_support.py beside this module
    import checks_support as shared
except ModuleNotFoundError:  # in the repository: assignments/checks_support.py
    from assignments import checks_support as shared


def reference_adapt(model: keras.Model, x: dict, y: np.ndarray, alpha: float, steps: int,
                    adapt: Sequence[int] | None = None) -> list[np.ndarray]:
    """The package's inner loop: ``MAML.adapt`` (all weights, the adapted ones changed)."""
    variables = model.trainable_variables
    spec = "all" if adapt is None else [variables[i] for i in adapt]
    learner = MAML(model, inner_lr=alpha, inner_steps=steps, adapt=spec)
    adapted = learner.adapt((x, y), steps=steps)
    merged = learner._merge(adapted.fast_weights, adapted.frozen_weights)
    return [np.asarray(v) for v in merged]


def reference_meta(model: keras.Model, batch: TaskBatch, alpha: float, steps: int,
                   first_order: bool, adapt: Any = "all") -> tuple[float, list[np.ndarray]]:
    """The package's meta-loss and meta-gradients (``MAML.meta_gradients``, run eagerly)."""
    learner = MAML(model, inner_lr=alpha, inner_steps=steps, first_order=first_order,
                   adapt=adapt, vectorize=False)
    loss, grads, _ = shared.reference_gradients(learner, batch)
    return loss, grads


# ------------------------------------------------------------------ question 1: inner loop
def check_inner_loop(inner_loop: Callable) -> None:
    """``inner_loop`` equals the package's inner loop on a random sine task, 1 and 3 steps."""
    rng, seed = shared.fresh_rng()
    model = shared.sine_model(seed)
    batch = shared.sine_batch(rng, 1)
    x, y = {"x": batch.support_x["x"][0]}, batch.support_y[0]
    mask = batch.support_mask[0]
    alpha = 0.01
    loss_fn = shared.make_loss_fn(model)
    theta = shared.weights_of(model)
    for steps in (1, 3):
        got = shared.as_arrays(inner_loop(loss_fn, theta, x, y, mask, alpha, steps),
                               f"inner_loop(..., steps={steps})")
        assert len(got) == len(theta), (
            f"inner_loop returned {len(got)} tensors for {len(theta)} weights: return every "
            "weight (the adapted ones updated, the others unchanged)")
        want = reference_adapt(model, x, y, alpha, steps)
        if shared.close(got, want, 1e-7):
            continue
        if steps == 1:
            with tf.GradientTape() as tape:
                tape.watch(theta)
                loss = loss_fn(theta, x, y, mask)
            up = [np.asarray(w + alpha * g) for w, g in zip(theta, tape.gradient(loss, theta),
                                                            strict=True)]
            assert not shared.close(got, up, 1e-7), (
                "wrong sign: your step goes UP the gradient (theta + alpha * grad); the inner "
                "update is theta' = theta - alpha * grad L_support(theta)")
            raise AssertionError(
                f"one inner step differs from metarec's (max relative error "
                f"{shared.max_rel_error(got, want):.2e}, seed {seed}): theta' = theta - alpha * "
                "grad of the support loss at theta")
        one = reference_adapt(model, x, y, alpha, 1)
        assert not shared.close(got, one, 1e-7), (
            "with steps=3 you return the result of ONE step: repeat the update `steps` times")
        raise AssertionError(
            f"3 inner steps differ from metarec's (max relative error "
            f"{shared.max_rel_error(got, want):.2e}, seed {seed}): each step must take the "
            "gradient at the previous step's fast weights and update those, not restart from "
            "theta")


def check_inner_adapt(inner_loop: Callable) -> None:
    """With ``adapt`` only the listed weights change, as in ``MAML(..., adapt=...)``."""
    rng, seed = shared.fresh_rng()
    model = shared.sine_model(seed)
    batch = shared.sine_batch(rng, 1)
    x, y, mask = {"x": batch.support_x["x"][0]}, batch.support_y[0], batch.support_mask[0]
    theta = shared.weights_of(model)
    adapt = [4, 5]  # the output layer's kernel and bias
    got = shared.as_arrays(
        inner_loop(shared.make_loss_fn(model), theta, x, y, mask, 0.01, 2, adapt=adapt),
        "inner_loop(..., adapt=[4, 5])")
    assert len(got) == len(theta), (
        f"inner_loop returned {len(got)} tensors for {len(theta)} weights: return every weight")
    changed = [i for i in range(len(theta)) if i not in adapt
               and not np.array_equal(got[i], np.asarray(theta[i]))]
    assert not changed, (
        f"the inner loop changed weights {changed} although adapt=[4, 5]: only the variables "
        "listed in `adapt` are fast weights; the others must be returned unchanged")
    want = reference_adapt(model, x, y, 0.01, 2, adapt=adapt)
    assert shared.close(got, want, 1e-7), (
        f"the adapted weights 4 and 5 differ from metarec's MAML(adapt=...) (max relative "
        f"error {shared.max_rel_error(got, want):.2e}, seed {seed}): take the support-loss "
        "gradient with respect to the adapted weights only, at the current fast weights")


# ------------------------------------------------------------------ question 2: meta-gradients
def _student_meta(fn: Callable, model: keras.Model, batch: TaskBatch, alpha: float, steps: int,
                  first_order: bool, adapt: Sequence[int] | None = None):
    out = fn(shared.make_loss_fn(model), shared.weights_of(model), batch, alpha, inner_steps=steps,
             first_order=first_order, adapt=adapt)
    assert isinstance(out, tuple) and len(out) == 2, (
        "maml_meta_gradients must return a pair (meta_loss, grads)")
    loss, grads = out
    return float(np.asarray(loss)), shared.as_arrays(grads, "the meta-gradients")


def check_first_order(fn: Callable) -> None:
    """First-order MAML (``first_order=True``) equals ``MAML(first_order=True)``."""
    rng, seed = shared.fresh_rng()
    model, batch = shared.sine_model(seed), shared.sine_batch(rng, 4)
    loss, got = _student_meta(fn, model, batch, 0.02, 2, True)
    want_loss, want = reference_meta(model, batch, 0.02, 2, True)
    assert abs(loss - want_loss) <= 1e-7 * max(1.0, abs(want_loss)), (
        f"meta-loss {loss:.6f} differs from metarec's {want_loss:.6f} (seed {seed}): the "
        "meta-loss is the mean over tasks of the query loss at the adapted weights")
    assert shared.close(got, want, 1e-6), (
        f"first-order meta-gradients differ from metarec's FOMAML (max relative error "
        f"{shared.max_rel_error(got, want):.2e}, seed {seed}): with first_order=True the inner "
        "gradients are constants (tf.stop_gradient) and the meta-gradient is the query "
        "gradient at the adapted weights")


def check_second_order(fn: Callable) -> None:
    """Second-order MAML equals ``MAML(first_order=False)``; diagnoses a missing Hessian term."""
    rng, seed = shared.fresh_rng()
    model, batch = shared.sine_model(seed), shared.sine_batch(rng, 4)
    loss, got = _student_meta(fn, model, batch, 0.02, 2, False)
    want_loss, want = reference_meta(model, batch, 0.02, 2, False)
    if shared.close(got, want, 1e-6) and abs(loss - want_loss) <= 1e-7 * max(1.0, abs(want_loss)):
        return
    _, first = reference_meta(model, batch, 0.02, 2, True)
    assert not shared.close(got, first, 1e-6), (
        "with first_order=False your meta-gradients equal the FIRST-order approximation: the "
        "second-order term is missing. Compute the inner gradients under the outer tape and "
        "keep them differentiable (no tf.stop_gradient, create_graph) so that the outer "
        "gradient flows through the inner updates")
    raise AssertionError(
        f"second-order meta-gradients differ from metarec's MAML (max relative error "
        f"{shared.max_rel_error(got, want):.2e}, seed {seed}; meta-loss {loss:.6f} vs "
        f"{want_loss:.6f})")


def check_recommender(fn: Callable) -> None:
    """On a small MeLU network, adapting only the decision layers (second order)."""
    rng, seed = shared.fresh_rng()
    data = make_synthetic(n_users=40, n_items=60, ratings_per_user=(15, 30),
                          seed=int(rng.integers(1000)))
    encoder = FeatureEncoder().fit(data, data.ratings)
    tasks = build_tasks(data.ratings, encoder, min_ratings=13, max_ratings=40, n_query=5,
                        seed=int(rng.integers(1000)))
    batch = tasks.batch(rng.choice(len(tasks), 3, replace=False))
    keras.utils.set_random_seed(seed % (2**31))
    model = MeLUNetwork(encoder.spec, embedding_dim=4, hidden_units=(8,), global_mean=3.5)
    model({k: v[0] for k, v in batch.support_x.items()})
    decision = [i for i, v in enumerate(model.trainable_variables) if "decision" in v.path]
    loss, got = _student_meta(fn, model, batch, 0.05, 2, False, adapt=decision)
    want_loss, want = reference_meta(model, batch, 0.05, 2, False, adapt="decision")
    if shared.close(got, want, 1e-4):
        return
    _, all_adapted = reference_meta(model, batch, 0.05, 2, False)
    assert not shared.close(got, all_adapted, 1e-4), (
        "your meta-gradients adapt ALL variables in the inner loop although adapt lists only "
        "the decision layers: the embeddings must stay at theta in the inner loop (they get "
        "their gradient in the outer loop only)")
    _, first = reference_meta(model, batch, 0.05, 2, True, adapt="decision")
    assert not shared.close(got, first, 1e-4), (
        "on the recommender your meta-gradients equal the FIRST-order approximation: keep the "
        "inner gradients differentiable when first_order=False")
    raise AssertionError(
        f"meta-gradients on the MeLU network (adapt = decision layers) differ from metarec's "
        f"(max relative error {shared.max_rel_error(got, want):.2e}, seed {seed}; meta-loss "
        f"{loss:.5f} vs {want_loss:.5f})")


# ------------------------------------------------------------------ question 3: outer step
def check_outer_step(maml_outer_step: Callable) -> None:
    """``theta - beta * grad`` on random tensors."""
    rng, seed = shared.fresh_rng()
    weights = [rng.normal(size=s) for s in [(3, 4), (4,), (2,)]]
    grads = [rng.normal(size=w.shape) for w in weights]
    beta = float(rng.uniform(0.01, 0.5))
    got = shared.as_arrays(maml_outer_step([tf.constant(w) for w in weights],
                                           [tf.constant(g) for g in grads], beta),
                           "maml_outer_step(...)")
    want = [w - beta * g for w, g in zip(weights, grads, strict=True)]
    if shared.close(got, want, 1e-12):
        return
    up = [w + beta * g for w, g in zip(weights, grads, strict=True)]
    assert not shared.close(got, up, 1e-12), (
        "wrong sign: the outer step goes UP the meta-gradient; gradient descent is "
        "theta <- theta - beta * grad")
    raise AssertionError(f"maml_outer_step differs from theta - beta * grad (seed {seed})")
