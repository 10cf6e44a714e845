"""Under ``jit_compile`` the training step (vectorized_map built inline) matches graph mode,
and a run compiles one XLA program per distinct input shape, not one per meta-batch."""

import keras
import numpy as np

from metarec.data import FeatureEncoder, build_tasks, cold_start_split, make_synthetic
from metarec.meta import MAML
from metarec.models import MeLUNetwork, build_model


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


def test_an_xla_epoch_compiles_one_program_per_shape():
    ds = make_synthetic(n_users=60, n_items=80, seed=0)
    split = cold_start_split(ds, seed=0)
    enc = FeatureEncoder().fit(ds, split.train)
    tasks = build_tasks(split.train, enc, seed=0)  # 42 tasks: batches of 8, then one of 2
    keras.utils.set_random_seed(0)
    learner = MAML(build_model("item_mean", enc.spec), inner_lr=1e-2, jit_compile=True)
    learner.compile(keras.optimizers.Adam(1e-2))
    shapes: set = set()  # XLA compiles one program per distinct input shape
    prepare = learner.prepare

    def recording(batch):
        tensors = prepare(batch)
        shapes.add(tuple(tuple(t.shape) for t in tensors[1:3]))
        return tensors

    learner.prepare = recording
    learner.fit(tasks, epochs=2, batch_size=8, verbose=0)
    train = learner._compiled[next(iter(learner._compiled))]
    assert train.experimental_get_tracing_count() <= 2
    assert len(shapes) == 2  # [8, S] and [2, S]: two programs for the whole run
    learner.evaluate(tasks, batch_size=16)  # 16, 16, 10 tasks
    assert learner._compiled[("predict", 1)].experimental_get_tracing_count() <= 2
