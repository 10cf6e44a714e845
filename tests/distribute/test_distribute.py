"""Distributed meta-training (metarec.distribute) and bucketing by support size.

The exactness checks run tests/scripts/distribute_check.py in subprocesses: 2 logical CPU devices
for
MirroredStrategy, 2 worker processes on localhost ports for MultiWorkerMirroredStrategy. One
step under the strategy must give the single-device step's weights to float32 tolerance.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from metarec.data import FeatureEncoder, build_tasks, make_synthetic
from metarec.data.buckets import bucket_ids, bucketed_batches, padding_cost, trim_batch

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "tests" / "scripts" / "distribute_check.py"
# Bounds for a busy 2-core machine; a hung collective must not hang the suite.
MIRRORED_TIMEOUT = 900
WORKERS_TIMEOUT = 900


def _env() -> dict[str, str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.pop("TF_CONFIG", None)
    return env


def _assert_exact(results: dict, learners: tuple[str, ...]) -> None:
    assert results["replicas"] == 2
    assert set(results["learners"]) == set(learners)
    for name, r in results["learners"].items():
        # The step moved the weights (else equality would prove nothing) ...
        assert r["max_update"] > 1e-2, (name, r)
        # ... and both sides moved them the same way, to float32 rounding.
        assert r["max_abs_diff"] <= 1e-6 + 1e-5 * r["max_update"], (name, r)
        assert abs(r["loss"] - r["reference_loss"]) <= 1e-5 * abs(r["reference_loss"]), (name, r)


# Every learner class's distributed path is held to exactness by one of the two checks below;
# a learner is checked once, under the cheaper strategy where that suffices (the multi-worker
# check runs two processes, so each learner there costs twice):
# * mirrored: MAML (second order), Reptile (its own outer update), MeLU (no strategy= passed:
#   fit finds the learner's own strategy), FineTune (its replica share counts rating rows);
# * multi-worker: Meta-SGD (MAML's second-order meta-gradient plus its extra variables, which
#   must be mirrored and all-reduced across the workers).
# FOMAML is MAML with first_order=True: the same train_step and all-reduce as MAML; its
# distributed training is also checked end to end under MirroredStrategy by
# tests/distribute/test_distribute_cli.py (the train command trains fomaml on 1 and 2 devices).
MIRRORED_LEARNERS = ("MAML", "Reptile", "MeLU", "FineTune")
MULTI_WORKER_LEARNERS = ("MetaSGD",)


def test_mirrored_step_equals_single_device_step(tmp_path):
    out = tmp_path / "mirrored.json"
    proc = subprocess.run([sys.executable, str(CHECK), "mirrored", str(out),
                           ",".join(MIRRORED_LEARNERS)], env=_env(),
                          capture_output=True, text=True, timeout=MIRRORED_TIMEOUT, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _assert_exact(json.loads(out.read_text()), MIRRORED_LEARNERS)


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def test_multi_worker_step_equals_single_device_step(tmp_path):
    learners = MULTI_WORKER_LEARNERS
    workers = [f"localhost:{p}" for p in _free_ports(2)]
    out = tmp_path / "workers.json"
    procs = []
    try:
        for index in range(2):
            env = _env()
            env["TF_CONFIG"] = json.dumps({"cluster": {"worker": workers},
                                           "task": {"type": "worker", "index": index}})
            procs.append(subprocess.Popen(
                [sys.executable, str(CHECK), "multi-worker", str(out), ",".join(learners)],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        outputs = [p.communicate(timeout=WORKERS_TIMEOUT) for p in procs]
    finally:
        for p in procs:  # on a timeout or an error, no worker is left behind
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err[-3000:]
    _assert_exact(json.loads(out.read_text()), learners)


# ---------------------------------------------------------------------------- buckets


@pytest.fixture(scope="module")
def encoded():
    ds = make_synthetic(n_users=120, n_items=80, ratings_per_user=(13, 60), seed=0)
    enc = FeatureEncoder().fit(ds, ds.ratings)
    return enc, build_tasks(ds.ratings, enc, min_ratings=13, max_ratings=60, seed=0)


@pytest.fixture(scope="module")
def tasks(encoded):
    return encoded[1]


def test_bucketed_batches_cover_every_task_once_and_pad_less(tasks):
    batches = list(bucketed_batches(tasks, 16, seed=1))
    users = np.concatenate([b.user_ids for b in batches])
    assert sorted(users.tolist()) == sorted(tasks.user_ids.tolist())
    sizes = {t.user_id: t.n_support for t in tasks}
    for b in batches:
        longest = max(sizes[u] for u in b.user_ids)
        assert b.support_y.shape[1] == longest  # padded to its own longest support set
        assert b.support_mask.sum() == sum(sizes[u] for u in b.user_ids)
    cost = padding_cost(tasks, 16, seed=1)
    assert cost["real"] <= cost["padded_bucketed"] < cost["padded_global"]
    assert cost["saved"] > 0.2  # support sizes 3..50: most global padding is avoidable
    assert sum(b.support_y.size for b in batches) == cost["padded_bucketed"]


def test_bucket_ids_group_similar_sizes():
    sizes = np.array([1, 2, 3, 10, 11, 12, 50, 51])
    ids = bucket_ids(sizes, 3)
    assert ids.min() == 0 and ids.max() == 2
    assert np.all(np.diff(ids[np.argsort(sizes)]) >= 0)  # buckets are ordered by size
    with pytest.raises(ValueError, match="n_buckets"):
        bucket_ids(sizes, 0)


def test_trimmed_batch_gives_the_same_meta_loss(encoded):
    import keras

    from metarec.meta import MAML
    from metarec.models import MeLUNetwork

    enc, tasks = encoded
    keras.utils.set_random_seed(0)
    learner = MAML(MeLUNetwork(enc.spec, embedding_dim=4, hidden_units=(8,)), inner_lr=0.05,
                   inner_steps=2)
    batch = tasks.batch(np.arange(8))
    trimmed = trim_batch(batch)
    assert trimmed.support_y.shape[1] < batch.support_y.shape[1]
    full_loss, full_grads = learner.meta_gradients(batch)
    trim_loss, trim_grads = learner.meta_gradients(trimmed)
    np.testing.assert_allclose(float(trim_loss), float(full_loss), rtol=1e-5)
    for a, b in zip(full_grads, trim_grads, strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-6)


def test_fit_with_buckets_trains(encoded):
    import keras

    from metarec.meta import FOMAML
    from metarec.models import MeLUNetwork

    enc, tasks = encoded
    keras.utils.set_random_seed(0)
    learner = FOMAML(MeLUNetwork(enc.spec, embedding_dim=4, hidden_units=(8,)), inner_lr=0.05)
    learner.compile(keras.optimizers.Adam(1e-2))
    history = learner.fit(tasks, epochs=3, batch_size=16, verbose=0, bucket=True)
    losses = history.history["loss"]
    assert len(losses) == 3 and np.isfinite(losses).all()
    assert losses[-1] < losses[0]


def test_strategy_errors_name_the_fix():
    from metarec import distribute

    with pytest.raises(ValueError, match="choose from"):
        distribute.make_strategy("tpu")
    with pytest.raises(ValueError, match="TF_CONFIG"):
        env = dict(os.environ)
        os.environ.pop("TF_CONFIG", None)
        try:
            distribute.make_strategy("multi-worker")
        finally:
            os.environ.clear()
            os.environ.update(env)
    assert distribute.make_strategy("default").num_replicas_in_sync == 1
