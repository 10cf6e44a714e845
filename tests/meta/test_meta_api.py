"""The shape of metarec.meta after its split by idea: one public training step, hyper-parameters
that cannot go stale, the plain and the guarded adaptation curve, import paths and layout."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from metarec.data import FeatureEncoder, TaskSource, build_tasks, make_synthetic
from metarec.data.pipeline import TaskStream
from metarec.experiments.guarded import evaluate_steps_guarded
from metarec.meta import MAML, FineTune, MetaSGD, register_learner
from metarec.models import MeLUNetwork

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data():
    ds = make_synthetic(n_users=40, n_items=50, ratings_per_user=(14, 30), seed=5)
    enc = FeatureEncoder().fit(ds, ds.ratings)
    return ds, enc, build_tasks(ds.ratings, enc, min_ratings=14, max_ratings=30, seed=0)


def _learner(enc, cls=MAML, **kwargs):
    keras.utils.set_random_seed(0)
    learner = cls(MeLUNetwork(enc.spec, embedding_dim=4, hidden_units=(8,)),
                  **{"inner_lr": 0.05, "inner_steps": 1, **kwargs})
    learner.compile(keras.optimizers.Adam(1e-2))
    return learner


def test_setting_a_traced_hyper_parameter_drops_the_compiled_functions(data):
    _, enc, tasks = data
    learner = _learner(enc)
    learner.fit(tasks, epochs=1, batch_size=8, verbose=0)
    assert learner._compiled  # the training step (and validation) were traced
    learner.inner_steps = 2
    learner.first_order = True
    assert not learner._compiled
    # The next call uses the new values: the same meta-gradient as a learner built with them.
    fresh = _learner(enc, inner_steps=2, first_order=True)
    fresh.build(tasks)
    fresh.model.set_weights(learner.model.get_weights())
    batch = tasks.batch(np.arange(8))
    (loss, grads), (ref_loss, ref_grads) = learner.meta_gradients(batch), \
        fresh.meta_gradients(batch)
    assert float(loss) == pytest.approx(float(ref_loss), rel=1e-6)
    for g, h in zip(grads, ref_grads, strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(h), rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="inner_steps must be an integer >= 0"):
        learner.inner_steps = -1
    with pytest.raises(ValueError, match="inner_lr must be a finite number > 0"):
        learner.inner_lr = float("nan")


def test_adapt_is_fixed_once_built(data):
    _, enc, tasks = data
    learner = _learner(enc, cls=MetaSGD, adapt="decision")
    learner.adapt_spec = "all"  # not built yet: allowed
    learner.build(tasks)
    with pytest.raises(AttributeError, match="adapt cannot change once the learner is built"):
        learner.adapt_spec = "decision"


def test_train_step_is_public_and_overridable(data):
    _, enc, tasks = data

    class Counting(MAML):
        traced = 0

        def train_step(self, batch):
            Counting.traced += 1  # Python side effect: once per trace
            return super().train_step(batch)

    learner = _learner(enc, cls=Counting)
    reference = _learner(enc)
    learner.fit(tasks, epochs=1, batch_size=8, shuffle=False, verbose=0)
    reference.fit(tasks, epochs=1, batch_size=8, shuffle=False, verbose=0)
    assert Counting.traced >= 1
    for a, b in zip(learner.model.weights, reference.model.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # Eagerly, in the default replica context, one step moves the weights like the compiled one.
    before = [np.asarray(v).copy() for v in reference.model.trainable_variables]
    step_input = reference.prepare(tasks.batch(np.arange(8)))
    loss = reference.train_step(step_input)
    assert np.isfinite(float(loss))
    assert any(not np.array_equal(a, np.asarray(v))
               for a, v in zip(before, reference.model.trainable_variables, strict=True))
    compiled = reference.make_train_function()
    assert compiled is reference.make_train_function()  # compiled once per strategy


def test_train_step_needs_a_replica_context(data):
    _, enc, tasks = data
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        mirrored = _learner(enc)
    mirrored.build(tasks, strategy)
    with strategy.scope(), pytest.raises(RuntimeError, match="replica context"):
        mirrored.train_step(mirrored.prepare(tasks.batch(np.arange(4))))


def test_curve_plain_and_guarded_agree_with_predict_query(data):
    _, enc, tasks = data
    learner = _learner(enc, cls=FineTune, inner_steps=2)
    learner.fit(tasks, epochs=1, batch_size=8, verbose=0)
    batch = tasks.batch(np.arange(6))
    curve = learner.predict_curve(batch, 3)
    assert curve.shape == (6, 4, batch.query_y.shape[1])
    for k in range(4):
        np.testing.assert_allclose(curve[:, k], learner.predict_query(batch, steps=k),
                                   rtol=1e-5, atol=1e-6)
    for per_task in (False, True):
        plain = learner.evaluate_steps(tasks, 3, per_task=per_task)
        guarded = evaluate_steps_guarded(learner, tasks, 3, per_task=per_task)
        assert not guarded["diverged"].astype(bool).any()
        pd.testing.assert_frame_equal(plain, guarded.drop(columns="diverged"))
    with pytest.raises(TypeError, match="diverged"):
        learner.evaluate_steps(tasks, 3, diverged="nan")  # the policy lives in experiments/


def test_task_sources_and_what_fit_refuses(data):
    ds, enc, tasks = data
    stream = TaskStream.from_ratings(ds.ratings, enc, seed=0)
    assert isinstance(tasks, TaskSource) and isinstance(stream, TaskSource)
    assert stream.encoder_fingerprint == enc.fingerprint
    learner = _learner(enc)
    with pytest.raises(TypeError, match=r"must be a TaskSet or a TaskStream.*TaskBatch"):
        learner.fit(tasks.batch([0, 1]), verbose=0)
    with pytest.raises(TypeError, match="must be a TaskSet"):
        learner.evaluate(stream)


def test_public_import_paths():
    import metarec.meta as meta
    from metarec.meta.base import (  # noqa: F401  (the paths that existed before the split)
        AdaptedModel,
        AdaptSpec,
        MetaLearner,
        load_learner,
        masked_mse,
    )
    from metarec.meta.base import register_learner as from_base

    assert from_base is register_learner is meta.register_learner
    assert "register_learner" in meta.__all__


def test_distribute_imports_nothing_from_meta():
    tree = ast.parse((ROOT / "metarec" / "distribute.py").read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [n for n in names if n.startswith("metarec.meta")], names
    code = "import sys, metarec.distribute; sys.exit('metarec.meta' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_no_meta_module_over_400_lines():
    sizes = {p.name: len(p.read_text().splitlines())
             for p in (ROOT / "metarec" / "meta").glob("*.py")}
    assert max(sizes.values()) <= 400, sizes
