"""Under ``jit_compile`` the training step (vectorized_map built inline) matches graph mode."""

import keras
import numpy as np

from metarec.data import FeatureEncoder, build_tasks, cold_start_split, make_synthetic
from metarec.meta import MAML
from metarec.models import MeLUNetwork


def _learner(tasks_spec, jit):
    keras.utils.set_random_seed(0)
    learner = MAML(MeLUNetwork(tasks_spec), inner_lr=1e-3, inner_steps=1, jit_compile=jit)
    learner.compile(keras.optimizers.Adam(1e-4))
    return learner


def test_xla_training_losses_match_graph_mode():
    ds = make_synthetic(n_users=60, n_items=80, seed=0)
    split = cold_start_split(ds, seed=0)
    enc = FeatureEncoder().fit(ds, split.train)
    tasks = build_tasks(split.train, enc, seed=0)
    batches = [tasks.batch(range(i, i + 4)) for i in (0, 4, 8)]
    losses = {}
    for jit in (False, True):
        learner = _learner(enc.spec, jit)
        step = learner.make_train_function()
        losses[jit] = [float(step(learner.prepare(b))) for b in batches]
    np.testing.assert_allclose(losses[True], losses[False], rtol=1e-4)
