"""Meta-learners: exact gradients against independent hand-written code, and their behaviour.

The reference computations here share no code with :mod:`metarec.meta`: a tiny tanh MLP is
re-written as plain TensorFlow ops on explicit weight tensors (copied from the Keras model), the
MAML meta-gradient is written out with nested ``GradientTape``s and with the explicit Hessian
formula, and checked against central finite differences in float64. Behavioural tests run the
learners end to end on the synthetic dataset.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers, ops

from metarec.data import (
    FeatureEncoder,
    Task,
    TaskBatch,
    TaskSet,
    build_tasks,
    cold_start_split,
    make_synthetic,
    scenario_tasks,
)
from metarec.meta import FOMAML, MAML, FineTune, MeLU, MetaSGD, Reptile, load_learner
from metarec.models.melu import MeLUNetwork

# ----------------------------------------------------------------------------------------------
# A tiny model and its independent functional twin


@keras.saving.register_keras_serializable(package="metarec_tests")
class TinyMLP(keras.Model):
    """``{"x": [N, D]}`` -> ``[N]``: one tanh hidden layer and a linear head."""

    def __init__(self, hidden: int = 4, layer_dtype: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.hidden_units, self.layer_dtype = hidden, layer_dtype
        self.hidden = layers.Dense(hidden, activation="tanh", dtype=layer_dtype, name="hidden")
        self.head = layers.Dense(1, dtype=layer_dtype, name="head")

    def call(self, inputs):
        return ops.squeeze(self.head(self.hidden(inputs["x"])), axis=-1)

    def get_config(self):
        return {**super().get_config(), "hidden": self.hidden_units,
                "layer_dtype": self.layer_dtype}


class TwoOutputs(keras.Model):
    """A broken recommender: returns ``[N, 2]`` instead of one rating per row."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.head = layers.Dense(2)

    def call(self, inputs):
        return self.head(inputs["x"])


D = 3  # input width of the tiny tasks


def tiny_model(dtype: str = "float32", seed: int = 0) -> TinyMLP:
    keras.utils.set_random_seed(seed)
    model = TinyMLP(layer_dtype=dtype)
    model({"x": np.zeros((1, D), dtype)})
    paths = [v.path.split("/", 1)[1] for v in model.trainable_variables]
    assert paths == ["hidden/kernel", "hidden/bias", "head/kernel", "head/bias"]
    return model


def f_net(w, x):
    """The functional twin of :class:`TinyMLP`: explicit weights ``[W1, b1, W2, b2]``."""
    w1, b1, w2, b2 = w
    return (tf.tanh(x @ w1 + b1) @ w2)[:, 0] + b2[0]


def f_mse(w, x, y):
    return tf.reduce_mean(tf.square(f_net(w, x) - y))


def weights_of(model) -> list[tf.Tensor]:
    return [tf.constant(v.numpy()) for v in model.trainable_variables]


def tiny_tasks(sizes, dtype=np.float32, seed=0, offset=0.0) -> list[Task]:
    """Tasks on ``{"x": [n, D]}`` with a non-linear, task-specific target."""
    rng = np.random.default_rng(seed)
    tasks = []
    for i, (s, q) in enumerate(sizes):
        a = rng.normal(size=D)
        x = rng.normal(size=(s + q, D)).astype(dtype)
        y = (np.sin(x @ a) + 0.3 * x[:, 0] ** 2 + offset + 0.1 * i).astype(dtype)
        tasks.append(Task(user_id=100 + i, support_x={"x": x[:s]}, support_y=y[:s],
                          query_x={"x": x[s:]}, query_y=y[s:],
                          support_items=np.arange(s), query_items=np.arange(s, s + q)))
    return tasks


SIZES = [(5, 4), (3, 4), (2, 2)]  # different support and query sizes: the batch is padded


def float64_batch(tasks: list[Task]) -> TaskBatch:
    batch = TaskSet(tasks).batch()
    return dataclasses.replace(
        batch, support_y=batch.support_y.astype(np.float64),
        support_mask=batch.support_mask.astype(np.float64),
        query_y=batch.query_y.astype(np.float64), query_mask=batch.query_mask.astype(np.float64))


def dense(grads) -> list[np.ndarray]:
    return [tf.convert_to_tensor(g).numpy() for g in grads]


def assert_all_close(actual, expected, rtol, atol):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=rtol, atol=atol)


# ----------------------------------------------------------------------------------------------
# Hand-written references


def hand_maml(theta, tasks, lr, steps, first_order=False):
    """Meta-loss and meta-gradient, unrolled with nested tapes over the real rows only."""
    with tf.GradientTape() as outer:
        outer.watch(theta)
        losses = []
        for t in tasks:
            w = list(theta)
            for _ in range(steps):
                with tf.GradientTape() as inner:
                    inner.watch(w)
                    support_loss = f_mse(w, t.support_x["x"], t.support_y)
                g = inner.gradient(support_loss, w)
                if first_order:
                    g = [tf.stop_gradient(gi) for gi in g]
                w = [wi - lr * gi for wi, gi in zip(w, g, strict=True)]
            losses.append(f_mse(w, t.query_x["x"], t.query_y))
        meta_loss = tf.add_n(losses) / len(losses)
    return meta_loss, outer.gradient(meta_loss, theta)


def hand_sgd(w, x, y, lr, steps):
    """``steps`` plain SGD steps on the mean squared error (no graph kept)."""
    w = list(w)
    for _ in range(steps):
        with tf.GradientTape() as tape:
            tape.watch(w)
            loss = f_mse(w, x, y)
        w = [wi - lr * gi for wi, gi in zip(w, tape.gradient(loss, w), strict=True)]
    return w


def flat(ws):
    return tf.concat([tf.reshape(w, [-1]) for w in ws], axis=0)


def unflat(vec, like):
    out, start = [], 0
    for w in like:
        n = int(np.prod(w.shape))
        out.append(tf.reshape(vec[start:start + n], w.shape))
        start += n
    return out


def hessian_formula_maml(theta, tasks, lr):
    """One-step MAML by the closed form ``mean_i (I - lr H_i) grad L_q,i(theta_i')``."""
    total = 0.0
    for t in tasks:
        v = flat(theta)
        with tf.GradientTape() as outer:
            outer.watch(v)
            with tf.GradientTape() as inner:
                inner.watch(v)
                loss = f_mse(unflat(v, theta), t.support_x["x"], t.support_y)
            g = inner.gradient(loss, v)
        hessian = outer.jacobian(g, v)
        adapted = v - lr * g
        with tf.GradientTape() as tape:
            tape.watch(adapted)
            query_loss = f_mse(unflat(adapted, theta), t.query_x["x"], t.query_y)
        gq = tape.gradient(query_loss, adapted)
        total += tf.linalg.matvec(tf.eye(v.shape[0], dtype=v.dtype) - lr * hessian, gq)
    return unflat(total / len(tasks), theta)


# ----------------------------------------------------------------------------------------------
# Exact meta-gradients (float64)


@pytest.mark.parametrize("steps", [1, 2])
def test_second_order_maml_matches_hand_written_nested_tapes(steps):
    model = tiny_model("float64")
    tasks = tiny_tasks(SIZES, np.float64)
    theta = weights_of(model)
    learner = MAML(model, inner_lr=0.3, inner_steps=steps)
    loss, grads = learner.meta_gradients(float64_batch(tasks))

    ref_loss, ref_grads = hand_maml(theta, tasks, lr=0.3, steps=steps)
    assert float(loss) == pytest.approx(float(ref_loss), rel=1e-12)
    assert_all_close(dense(grads), dense(ref_grads), rtol=1e-9, atol=1e-12)
    if steps == 1:  # a second, formula-based reference: the explicit Hessian term
        assert_all_close(dense(grads), dense(hessian_formula_maml(theta, tasks, 0.3)),
                         rtol=1e-9, atol=1e-12)


def test_maml_meta_gradient_matches_finite_differences():
    model = tiny_model("float64")
    batch = float64_batch(tiny_tasks(SIZES, np.float64))
    learner = MAML(model, inner_lr=0.3, inner_steps=2, vectorize=False)
    _, grads = learner.meta_gradients(batch)
    grads = dense(grads)
    theta = weights_of(model)
    tensors = learner._prepare(batch)

    def meta_loss_at(weights):
        # The learner's pure meta-loss function, run eagerly (meta_gradients would re-trace a
        # tf.function for every evaluation).
        loss, _, _ = learner._meta_loss_and_grads(weights, [], [], tensors)
        return float(loss)

    rng, h = np.random.default_rng(1), 1e-5
    for _ in range(2):  # random directions: each checks every coordinate at once
        direction = [rng.normal(size=w.shape) for w in theta]
        plus = meta_loss_at([w + h * d for w, d in zip(theta, direction, strict=True)])
        minus = meta_loss_at([w - h * d for w, d in zip(theta, direction, strict=True)])
        analytic = sum(float(np.sum(g * d)) for g, d in zip(grads, direction, strict=True))
        assert (plus - minus) / (2 * h) == pytest.approx(analytic, rel=1e-6, abs=1e-9)


def test_first_order_maml_is_query_gradient_at_adapted_weights():
    model = tiny_model("float64")
    tasks = tiny_tasks(SIZES, np.float64)
    theta = weights_of(model)
    _, grads = FOMAML(model, inner_lr=0.3, inner_steps=2).meta_gradients(float64_batch(tasks))

    expected = [tf.zeros_like(w) for w in theta]
    for t in tasks:
        adapted = hand_sgd(theta, t.support_x["x"], t.support_y, lr=0.3, steps=2)
        with tf.GradientTape() as tape:
            tape.watch(adapted)
            loss = f_mse(adapted, t.query_x["x"], t.query_y)
        expected = [e + g / len(tasks) for e, g in
                    zip(expected, tape.gradient(loss, adapted), strict=True)]
    assert_all_close(dense(grads), dense(expected), rtol=1e-9, atol=1e-12)


def test_second_order_differs_from_first_order():
    model = tiny_model("float64")
    batch = float64_batch(tiny_tasks(SIZES, np.float64))
    _, second = MAML(model, inner_lr=0.3, inner_steps=1).meta_gradients(batch)
    _, first = MAML(model, inner_lr=0.3, inner_steps=1, first_order=True).meta_gradients(batch)
    second, first = flat(dense(second)), flat(dense(first))
    # The Hessian term -lr * H g is a sizeable part of the meta-gradient of this tanh MLP.
    assert float(tf.norm(second - first)) > 0.05 * float(tf.norm(second))


# ----------------------------------------------------------------------------------------------
# Reptile and Meta-SGD updates


def test_reptile_update_is_phi_plus_eps_mean_of_adapted_minus_phi():
    model = tiny_model("float32")
    tasks = tiny_tasks(SIZES)
    phi = weights_of(model)
    learner = Reptile(model, inner_lr=0.1, inner_steps=3, meta_step_size=0.4)
    learner.fit(TaskSet(tasks), epochs=1, batch_size=len(tasks), verbose=0)  # SGD(0.4)

    mean_delta = [tf.zeros_like(p) for p in phi]
    for t in tasks:  # the inner loop trains on all of a task's ratings: support and query
        x = np.concatenate([t.support_x["x"], t.query_x["x"]])
        y = np.concatenate([t.support_y, t.query_y])
        w_i = hand_sgd(phi, x, y, lr=0.1, steps=3)
        mean_delta = [m + (w - p) / len(tasks) for m, w, p in
                      zip(mean_delta, w_i, phi, strict=True)]
    expected = [p + 0.4 * m for p, m in zip(phi, mean_delta, strict=True)]
    assert_all_close([v.numpy() for v in model.trainable_variables], dense(expected),
                     rtol=1e-5, atol=1e-6)
    assert not np.allclose(model.trainable_variables[0].numpy(), phi[0].numpy())


def test_metasgd_with_equal_rates_is_maml():
    model = tiny_model("float64")
    batch = float64_batch(tiny_tasks(SIZES, np.float64))
    loss_m, grads_m = MAML(model, inner_lr=0.3, inner_steps=2).meta_gradients(batch)
    learner = MetaSGD(model, inner_lr=0.3, inner_steps=2)
    loss_s, grads_s = learner.meta_gradients(batch)
    assert all(np.all(a.numpy() == 0.3) for a in learner.learning_rates)
    assert float(loss_s) == pytest.approx(float(loss_m), rel=1e-12)
    assert_all_close(dense(grads_s), dense(grads_m), rtol=1e-10, atol=1e-13)


def test_metasgd_learning_rates_get_the_right_gradient_and_change():
    model = tiny_model("float32")
    tasks = tiny_tasks(SIZES)
    theta = weights_of(model)
    learner = MetaSGD(model, inner_lr=0.2, inner_steps=1).compile(keras.optimizers.SGD(0.5))
    learner.fit(TaskSet(tasks), epochs=1, batch_size=len(tasks), verbose=0)

    # d L_q(theta - alpha * g_s) / d alpha = -g_s * grad L_q(adapted), averaged over tasks.
    expected_grad = [np.zeros(w.shape, np.float32) for w in theta]
    for t in tasks:
        with tf.GradientTape() as tape:
            tape.watch(theta)
            support_loss = f_mse(theta, t.support_x["x"], t.support_y)
        g_s = tape.gradient(support_loss, theta)
        adapted = [w - 0.2 * g for w, g in zip(theta, g_s, strict=True)]
        with tf.GradientTape() as tape:
            tape.watch(adapted)
            query_loss = f_mse(adapted, t.query_x["x"], t.query_y)
        g_q = tape.gradient(query_loss, adapted)
        for e, a, b in zip(expected_grad, g_s, g_q, strict=True):
            e -= (a * b).numpy() / len(tasks)
    rates = [a.numpy() for a in learner.learning_rates]
    assert len(rates) == 4
    # The same step moved theta by the MAML meta-gradient (with alpha = 0.2 everywhere).
    _, maml_grads = hand_maml(theta, tasks, lr=0.2, steps=1)
    assert_all_close([v.numpy() for v in model.trainable_variables],
                     [w.numpy() - 0.5 * g.numpy() for w, g in zip(theta, maml_grads, strict=True)],
                     rtol=1e-4, atol=1e-6)
    for rate, grad in zip(rates, expected_grad, strict=True):
        assert np.abs(grad).max() > 1e-4  # every rate tensor gets a non-zero gradient
        assert not np.array_equal(rate, np.full_like(rate, 0.2))
        np.testing.assert_allclose(rate, 0.2 - 0.5 * grad, rtol=1e-4, atol=1e-6)


def test_finetune_gradient_is_the_pooled_mse_gradient():
    model = tiny_model("float64")
    tasks = tiny_tasks(SIZES, np.float64)
    theta = weights_of(model)
    loss, grads = FineTune(model).meta_gradients(float64_batch(tasks))
    # Ordinary supervised learning: one mean over every real rating, support and query.
    x = np.concatenate([np.concatenate([t.support_x["x"], t.query_x["x"]]) for t in tasks])
    y = np.concatenate([np.concatenate([t.support_y, t.query_y]) for t in tasks])
    with tf.GradientTape() as tape:
        tape.watch(theta)
        expected_loss = f_mse(theta, x, y)
    assert float(loss) == pytest.approx(float(expected_loss), rel=1e-12)
    assert_all_close(dense(grads), dense(tape.gradient(expected_loss, theta)),
                     rtol=1e-10, atol=1e-13)


# ----------------------------------------------------------------------------------------------
# Synthetic data and the MeLU network


@pytest.fixture(scope="module")
def synth():
    """Default synthetic dataset, cold-start split, encoder and scenario tasks (support <= 20)."""
    ds = make_synthetic()
    split = cold_start_split(ds)
    encoder = FeatureEncoder().fit(ds, split.train)
    return ds, split, encoder, scenario_tasks(split, encoder, max_support=20)


def melu_net(encoder, seed=0) -> MeLUNetwork:
    keras.utils.set_random_seed(seed)
    return MeLUNetwork(encoder.spec, embedding_dim=4, hidden_units=(8,))


def test_melu_adapts_only_decision_layers(synth):
    _, _, encoder, tasks = synth
    model = melu_net(encoder)
    learner = MeLU(model, inner_lr=1e-3)
    task = tasks["train"][0]
    adapted = learner.adapt(task)

    paths = [v.path for v in learner.adapted_variables]
    assert paths and all("decision" in p for p in paths)
    assert len(paths) == 4  # decision_0 and decision_out, kernel and bias
    by_id = {id(v) for v in learner.adapted_variables}
    frozen_vars = [v for v in model.trainable_variables if id(v) not in by_id]
    assert any("user_feature" in v.path for v in frozen_vars)
    assert len(adapted.frozen_weights) == len(frozen_vars)
    for w, v in zip(adapted.frozen_weights, frozen_vars, strict=True):
        assert np.array_equal(np.asarray(w), v.numpy())  # embeddings untouched
    for w, v in zip(adapted.fast_weights, learner.adapted_variables, strict=True):
        assert not np.array_equal(np.asarray(w), v.numpy())  # every decision variable moved
    before = np.asarray(model(task.query_x))
    assert np.abs(adapted.predict(task.query_x) - before).max() > 1e-3


def test_melu_learns_embeddings_in_the_outer_loop(synth):
    _, _, encoder, tasks = synth
    model = melu_net(encoder)
    learner = MeLU(model, inner_lr=1e-3, inner_steps=1, vectorize=False)
    _, grads = learner.meta_gradients(tasks["train"].batch([0, 1]))
    for v, g in zip(model.trainable_variables, grads, strict=True):
        assert g is not None and np.abs(dense([g])[0]).max() > 0, v.path


def test_anil_regex_adapts_the_head_only_and_steps_by_hand(synth):
    _, _, encoder, tasks = synth
    model = melu_net(encoder)
    learner = MAML(model, inner_lr=0.05, adapt=r"decision_out")
    task = tasks["train"][3]
    adapted = learner.adapt(task, steps=1)
    head = learner.adapted_variables
    assert [v.path.rsplit("/", 2)[-2:] for v in head] == [["decision_out", "kernel"],
                                                           ["decision_out", "bias"]]
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(task.support_x) - task.support_y))
    grads = tape.gradient(loss, head)
    expected = [v.numpy() - 0.05 * g.numpy() for v, g in zip(head, grads, strict=True)]
    assert_all_close(adapted.fast_weights, expected, rtol=1e-5, atol=1e-6)
    assert len(adapted.frozen_weights) == len(model.trainable_variables) - 2


@pytest.mark.parametrize("spec", ["no_such_layer", lambda v: False])
def test_adapt_selecting_nothing_raises(synth, spec):
    _, _, encoder, tasks = synth
    learner = MAML(melu_net(encoder), adapt=spec)
    with pytest.raises(ValueError, match=r"selects no trainable variable.*decision_out"):
        learner.adapt(tasks["train"][0])


@pytest.mark.parametrize("make", [
    lambda m, v: MAML(m, inner_lr=0.05, inner_steps=1, vectorize=v),
    lambda m, v: Reptile(m, inner_lr=0.05, inner_steps=2, vectorize=v),
    lambda m, v: MetaSGD(m, inner_lr=0.05, inner_steps=1, vectorize=v),
], ids=["MAML", "Reptile", "MetaSGD"])
def test_vectorized_equals_per_task(synth, make):
    _, _, encoder, tasks = synth
    train = tasks["train"]
    sizes = [t.n_support for t in train]
    picks = [int(np.argmin(sizes)), int(np.argmax(sizes)), 5]  # very different support sizes
    batch = train.batch(picks)
    assert len(set(batch.support_mask.sum(axis=1))) == 3
    model = melu_net(encoder)
    loss_v, grads_v = make(model, True).meta_gradients(batch)
    loss_l, grads_l = make(model, False).meta_gradients(batch)
    assert float(loss_v) == pytest.approx(float(loss_l), rel=1e-5)
    grads_v, grads_l = dense(grads_v), dense(grads_l)
    assert_all_close(grads_v, grads_l, rtol=1e-4, atol=1e-6)
    embedding = [g for g, v in zip(grads_v, model.trainable_variables, strict=True)
                 if "user_feature_0" in v.path]
    assert np.abs(embedding[0]).max() > 0  # embedding (IndexedSlices) gradients are exercised


def test_per_task_loop_handles_a_smaller_last_batch():
    # 5 tasks in batches of 2: the last batch has 1 task, so the compiled step is re-traced.
    tasks = TaskSet(tiny_tasks([(3, 2), (4, 2), (2, 3), (3, 3), (5, 2)]))
    learner = MAML(tiny_model(), inner_lr=0.1, vectorize=False)
    history = learner.fit(tasks, epochs=1, batch_size=2, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    in_twos = learner.evaluate(tasks, batch_size=2)
    assert in_twos["mae"] == pytest.approx(learner.evaluate(tasks)["mae"], rel=1e-6)


def test_padding_does_not_change_predictions(synth):
    _, _, encoder, tasks = synth
    train = tasks["train"]
    task = min(train, key=lambda t: t.n_support)
    others = [t for t in train if t.n_support > task.n_support + 5][:2]
    assert len(others) == 2
    learner = MAML(melu_net(encoder), inner_lr=0.1, inner_steps=2)

    alone = learner.predict_query(TaskSet([task]).batch())[0]
    # Inside a batch of larger tasks, padded further to a larger support and query size.
    padded = TaskSet([*others, task], support_length=max(t.n_support for t in others) + 7,
                     query_length=task.n_query + 3)
    in_batch = learner.predict_query(padded.batch())[2, : task.n_query]
    by_adapt = learner.adapt(task).predict(task.query_x)

    np.testing.assert_allclose(in_batch, alone, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(by_adapt, alone, rtol=1e-5, atol=1e-5)
    unadapted = np.asarray(learner.model(task.query_x))
    assert np.abs(alone - unadapted).max() > 1e-2  # adaptation matters, so padding could too


# ----------------------------------------------------------------------------------------------
# Meta-training on synthetic tasks

LEARNERS = {
    "MAML": lambda m: MAML(m, inner_lr=0.05, inner_steps=1).compile(keras.optimizers.Adam(0.01)),
    "FOMAML": lambda m: FOMAML(m, inner_lr=0.05).compile(keras.optimizers.Adam(0.01)),
    "MetaSGD": lambda m: MetaSGD(m, inner_lr=0.05).compile(keras.optimizers.Adam(0.01)),
    "Reptile": lambda m: Reptile(m, inner_lr=0.05, inner_steps=3, meta_step_size=0.5),
    "MeLU": lambda m: MeLU(m, inner_lr=1e-3).compile(keras.optimizers.Adam(0.01)),
    "FineTune": lambda m: FineTune(m, inner_lr=0.01, inner_steps=3).compile(
        keras.optimizers.Adam(0.01)),
}


@pytest.mark.parametrize("name", list(LEARNERS))
def test_meta_training_and_adaptation_help_on_synthetic_tasks(synth, name):
    _, _, encoder, tasks = synth
    train = tasks["train"].subset(range(256))  # 8 full batches: one traced step
    test = tasks["user_cold"]
    learner = LEARNERS[name](melu_net(encoder))
    untrained = learner.evaluate(test)
    history = learner.fit(train, epochs=2, batch_size=32, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    adapted = learner.evaluate(test)
    unadapted = learner.evaluate(test, steps=0)
    # Meta-training helps on new users ...
    assert adapted["mae"] < 0.9 * untrained["mae"], (adapted, untrained)
    # ... and adapting to a new user's support set lowers the query error.
    assert adapted["rmse"] < 0.97 * unadapted["rmse"], (adapted, unadapted)


# ----------------------------------------------------------------------------------------------
# Determinism


def trained_weights(encoder, train, keras_seed, learner_seed):
    # Reptile: the vectorized inner loop and embedding gradients at the lowest tracing cost.
    learner = Reptile(melu_net(encoder, seed=keras_seed), inner_lr=0.05, inner_steps=1,
                      seed=learner_seed).compile(keras.optimizers.Adam(0.01))
    learner.fit(train, epochs=2, batch_size=16, verbose=0)
    return [v.numpy() for v in learner.model.trainable_variables]


def test_same_seed_same_weights_other_seed_other_weights(synth):
    _, _, encoder, tasks = synth
    train = tasks["train"].subset(range(48))
    first = trained_weights(encoder, train, 0, 0)
    second = trained_weights(encoder, train, 0, 0)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    # The learner seed alone (task order of the epochs) changes the result ...
    reordered = trained_weights(encoder, train, 0, 1)
    assert not all(np.array_equal(a, b) for a, b in zip(first, reordered, strict=True))
    # ... and so does the initialisation seed.
    a, b = melu_net(encoder, seed=0), melu_net(encoder, seed=1)
    x = tasks["train"][0].support_x
    assert not np.array_equal(np.asarray(a(x)), np.asarray(b(x)))


# ----------------------------------------------------------------------------------------------
# Save and load


def suffixes(variables):
    # Keras prefixes variable paths with the model name only when the model builds them
    # inside its own call, so compare the layer/variable part.
    return [v.path.split("/")[-2:] for v in variables]


def check_save_load(tmp_path, learner, tasks):
    learner.save(tmp_path / "learner")
    loaded = load_learner(tmp_path / "learner")
    assert type(loaded) is type(learner) and loaded.get_config() == learner.get_config()
    assert suffixes(loaded.adapted_variables) == suffixes(learner.adapted_variables)
    batch = tasks.batch()
    np.testing.assert_array_equal(loaded.predict_query(batch), learner.predict_query(batch))
    x = tasks[1].query_x
    np.testing.assert_array_equal(loaded.adapt(tasks[1]).predict(x),
                                  learner.adapt(tasks[1]).predict(x))
    return loaded


@pytest.mark.parametrize("cls, adapt", [(MAML, "all"), (MetaSGD, "all"), (Reptile, r"hidden")],
                         ids=["MAML", "MetaSGD", "Reptile"])
def test_save_load_gives_identical_predictions(tmp_path, cls, adapt):
    tasks = TaskSet(tiny_tasks(SIZES))
    learner = cls(tiny_model(), inner_lr=0.1, inner_steps=2, adapt=adapt)
    learner.adapt(tasks[0])  # builds the learner (and Meta-SGD's rates)
    if cls is MetaSGD:
        rng = np.random.default_rng(0)
        for rate in learner.learning_rates:
            rate.assign(rng.uniform(0.0, 0.3, size=rate.shape))
    loaded = check_save_load(tmp_path, learner, tasks)
    if cls is MetaSGD:
        assert len(loaded.learning_rates) == 4
        for a, b in zip(loaded.learning_rates, learner.learning_rates, strict=True):
            assert np.array_equal(a.numpy(), b.numpy())


def test_save_load_keeps_a_callable_adapt_selection(tmp_path):
    # A callable selection is saved as variable paths; the model here builds its variables
    # lazily (no build()), the common case for a user's Keras model.
    tasks = TaskSet(tiny_tasks(SIZES))
    learner = MetaSGD(tiny_model(), inner_lr=0.1, inner_steps=2, adapt=lambda v: "head" in v.path)
    learner.adapt(tasks[0])
    learner.learning_rates[0].assign(np.full((4, 1), 0.25, np.float32))
    loaded = check_save_load(tmp_path, learner, tasks)
    assert suffixes(loaded.adapted_variables) == [["head", "kernel"], ["head", "bias"]]


# ----------------------------------------------------------------------------------------------
# Bad inputs


def test_all_padding_support_set_names_the_users(synth):
    _, _, encoder, tasks = synth
    batch = tasks["train"].batch([0, 1, 2])
    batch.support_mask[1] = 0.0
    user = int(batch.user_ids[1])
    learner = MAML(melu_net(encoder))
    with pytest.raises(ValueError, match=rf"support set of 1 task.*empty.*users \[{user}\]"):
        learner.meta_gradients(batch)
    with pytest.raises(ValueError, match=rf"users \[{user}\]"):
        learner.predict_query(batch)


def test_adapt_with_empty_support_raises(synth):
    _, _, encoder, tasks = synth
    task = tasks["train"][0]
    learner = MAML(melu_net(encoder))
    empty_x = {k: v[:0] for k, v in task.support_x.items()}
    with pytest.raises(ValueError, match="support set is empty"):
        learner.adapt((empty_x, np.zeros(0, np.float32)))
    empty_task = dataclasses.replace(task, support_x=empty_x,
                                     support_y=np.zeros(0, np.float32))
    with pytest.raises(ValueError, match="support set is empty"):
        learner.adapt(empty_task)


@pytest.mark.parametrize("entry", ["meta_gradients", "adapt"])
@pytest.mark.parametrize("built", [False, True], ids=["fresh-model", "built-model"])
def test_features_from_another_encoder_raise(synth, built, entry):
    ds, split, encoder, good_tasks = synth
    fewer_genres = dataclasses.replace(ds, genres=ds.genres[:-3])
    other = FeatureEncoder().fit(fewer_genres, split.train)
    assert other.spec.n_genres == encoder.spec.n_genres - 3
    tasks = build_tasks(split.train, other, max_support=20)
    model = melu_net(encoder)
    if built:
        model(good_tasks["train"][0].support_x)
    learner = MAML(model)
    with pytest.raises(ValueError, match=r"(?s)do not fit model.*FeatureSpec"):
        if entry == "adapt":
            learner.adapt(tasks[0])
        else:
            learner.meta_gradients(tasks.batch([0, 1]))


def test_wrong_output_shape_raises():
    learner = MAML(TwoOutputs())
    with pytest.raises(ValueError, match=r"returned shape \(5, 2\).*one rating per row"):
        learner.meta_gradients(TaskSet(tiny_tasks(SIZES)).batch())


def test_nan_rating_raises_floating_point_error():
    tasks = tiny_tasks(SIZES)
    tasks[1].query_y[0] = np.nan
    learner = MAML(tiny_model(), inner_lr=0.1)
    with pytest.raises(FloatingPointError, match=r"MAML: .*epoch 1, step 1.*NaN"):
        learner.fit(TaskSet(tasks), epochs=1, batch_size=8, verbose=0)


@pytest.mark.parametrize("cls", [Reptile, MetaSGD])
def test_huge_inner_lr_raises_floating_point_error(cls):
    learner = cls(tiny_model(), inner_lr=1e30, inner_steps=2)
    with pytest.raises(FloatingPointError, match=rf"{cls.display_name}: .*step 1\b.*1e\+30"):
        learner.fit(TaskSet(tiny_tasks(SIZES)), epochs=1, batch_size=8, verbose=0)


def test_fit_and_evaluate_on_empty_taskset_raise():
    learner = MAML(tiny_model())
    with pytest.raises(ValueError, match=r"MAML\.fit: the TaskSet is empty"):
        learner.fit(TaskSet([]), verbose=0)
    with pytest.raises(ValueError, match=r"MAML\.evaluate: the TaskSet is empty"):
        learner.evaluate(TaskSet([]))


# ----------------------------------------------------------------------------------------------
# History and callbacks

TRAIN_SIZES = [(6, 4), (4, 4), (8, 3), (5, 4), (3, 2), (7, 4), (6, 4), (4, 3)]


def test_history_logs_loss_and_validation_metrics_per_epoch():
    train = TaskSet(tiny_tasks(TRAIN_SIZES, seed=1, offset=2.0))
    val = TaskSet(tiny_tasks(SIZES, seed=2, offset=2.0))
    learner = MAML(tiny_model(), inner_lr=0.1).compile(keras.optimizers.Adam(0.05))
    history = learner.fit(train, epochs=4, batch_size=4, validation_tasks=val, verbose=0)
    assert isinstance(history, keras.callbacks.History) and learner.history is history
    logs = history.history
    assert {"loss", "val_mae", "val_rmse"} <= set(logs)
    assert len(logs["loss"]) == len(logs["val_mae"]) == 4
    assert logs["loss"][-1] < logs["loss"][0]
    assert logs["val_mae"][-1] < logs["val_mae"][0]
    assert logs["val_mae"][-1] == pytest.approx(learner.evaluate(val)["mae"], rel=1e-6)


def early_stopping_run(stop):
    train = TaskSet(tiny_tasks(TRAIN_SIZES, seed=1))
    val = TaskSet(tiny_tasks(SIZES, seed=2))
    # A zero outer learning rate: validation cannot improve after the first epoch.
    learner = MAML(tiny_model(), inner_lr=0.1).compile(keras.optimizers.SGD(0.0))
    return learner.fit(train, epochs=10, batch_size=4, validation_tasks=val, callbacks=[stop],
                       verbose=0)


def test_early_stopping_stop_training_is_honoured():
    stop = keras.callbacks.EarlyStopping(monitor="val_mae", mode="min", patience=1)
    history = early_stopping_run(stop)
    assert len(history.history["loss"]) == 2
    assert stop.stopped_epoch == 1


def test_early_stopping_on_val_mae_works_with_default_mode():
    # fit's docstring promises that EarlyStopping(monitor="val_mae") works as is.
    stop = keras.callbacks.EarlyStopping(monitor="val_mae", patience=1)
    history = early_stopping_run(stop)
    assert len(history.history["loss"]) == 2
