"""Bit-identity check of meta-training: six learners, one device and MirroredStrategy.

    python tools/bit_identity.py --out DIR               # DIR/one.npz and DIR/mirrored.npz
    python tools/bit_identity.py --mode one --out F.npz  # one mode only (run in a subprocess)
    python tools/bit_identity.py --compare A.npz B.npz   # np.array_equal per array

Trains six learners, small but real (2 epochs, seed 0): MAML on sine waves (a 1-40-40-1
network, second order), and on MovieLens 100K (``METAREC_DATA_DIR``) MF + MAML, MeLU network
with ids + MeLU, NeuMF + Reptile, MF + Meta-SGD and MeLU network + FineTune, each with
validation tasks. ``one`` trains on one device; ``mirrored`` under ``MirroredStrategy`` with 2
logical CPU devices (model, learner and optimizer created in ``strategy.scope()``). Every
model weight, learner variable (Meta-SGD's rates), optimizer variable (``optimizer.variables``:
the step counter and every slot) and validation history is saved into one ``.npz``.

Only public API that exists in every version of the package is used (``learner.fit``), so the
same script runs against an older checkout (``PYTHONPATH=/path/to/old``) to compare before and
after a refactoring: every array must be ``np.array_equal`` (NaN equal to NaN: the sine
tasks' nDCG is undefined).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

EPOCHS = 2
N_TRAIN, N_VALIDATION = 150, 40  # 150 = 4 full meta-batches of 32 and one of 22
LEARNERS = ("sine_maml", "mf_maml", "melu_ids_melu", "neumf_reptile", "mf_metasgd",
            "melu_finetune")


def _sine_tasks(n_tasks: int, seed: int):
    import numpy as np

    from metarec.data import Task, TaskSet

    rng = np.random.default_rng(seed)
    amplitude = rng.uniform(0.1, 5.0, size=(n_tasks, 1))
    phase = rng.uniform(0.0, np.pi, size=(n_tasks, 1))
    xs, xq = rng.uniform(-5, 5, size=(n_tasks, 10)), rng.uniform(-5, 5, size=(n_tasks, 10))

    def wave(x):
        return (amplitude * np.sin(x - phase)).astype(np.float32)

    ys, yq = wave(xs), wave(xq)
    return TaskSet([Task(i, {"x": xs[i, :, None].astype(np.float32)}, ys[i],
                         {"x": xq[i, :, None].astype(np.float32)}, yq[i], np.arange(10),
                         np.arange(10)) for i in range(n_tasks)])


def _sine_model():
    import keras

    class SineMLP(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.hidden = [keras.layers.Dense(40, activation="relu") for _ in range(2)]
            self.out = keras.layers.Dense(1)

        def call(self, inputs):
            h = inputs["x"]
            for dense in self.hidden:
                h = dense(h)
            return keras.ops.squeeze(self.out(h), axis=-1)

    return SineMLP()


def _movielens():
    from metarec.data import FeatureEncoder, build_tasks, cold_start_split, load_movielens

    ds = load_movielens("ml-100k", download=False)
    split = cold_start_split(ds, seed=0)
    encoder = FeatureEncoder().fit(ds, split.train)
    train = build_tasks(split.train, encoder, seed=0)
    validation = build_tasks(split.validation, encoder, seed=0)
    mean = float(split.train["rating"].mean())
    return (encoder.spec, mean, train.subset(range(min(N_TRAIN, len(train)))),
            validation.subset(range(min(N_VALIDATION, len(validation)))))


def _make(name: str, spec, mean: float):
    """A fresh, compiled learner (seeded initial weights)."""
    import keras

    from metarec import meta
    from metarec.models import build_model

    keras.utils.set_random_seed(0)
    if name == "sine_maml":
        learner = meta.MAML(_sine_model(), inner_lr=0.01, inner_steps=1)
        learner.compile(keras.optimizers.Adam(1e-3))
        return learner
    if name == "mf_maml":
        model = build_model("mf", spec, global_mean=mean)
        learner = meta.MAML(model, inner_lr=0.1, inner_steps=2, adapt=model.ADAPT)
        learner.compile(keras.optimizers.Adam(1e-2))
    elif name == "melu_ids_melu":
        model = build_model("melu_ids", spec, global_mean=mean)
        learner = meta.MeLU(model, inner_lr=5e-3, inner_steps=2)
        learner.compile(keras.optimizers.Adam(1e-3))
    elif name == "neumf_reptile":
        model = build_model("neumf", spec, global_mean=mean)
        learner = meta.Reptile(model, inner_lr=0.05, inner_steps=3, meta_step_size=0.5)
        learner.compile()  # SGD(meta_step_size)
    elif name == "mf_metasgd":
        model = build_model("mf", spec, global_mean=mean)
        learner = meta.MetaSGD(model, inner_lr=0.1, inner_steps=1, adapt=model.ADAPT)
        learner.compile(keras.optimizers.Adam(1e-2))
    else:  # melu_finetune
        model = build_model("melu", spec, global_mean=mean)
        learner = meta.FineTune(model, inner_lr=0.01, inner_steps=3, adapt="decision")
        learner.compile(keras.optimizers.Adam(1e-3))
    return learner


def train_all(mode: str) -> dict:
    """Train every learner in ``mode`` ("one" or "mirrored"); returns name -> array."""
    from metarec import distribute

    strategy = distribute.make_strategy("mirrored", devices=2) if mode == "mirrored" else None
    import numpy as np

    spec, mean, train, validation = _movielens()
    sine_train, sine_validation = _sine_tasks(200, 2), _sine_tasks(50, 3)
    arrays = {}
    for name in LEARNERS:
        tasks, val = (sine_train, sine_validation) if name == "sine_maml" else (train, validation)
        if strategy is None:
            learner = _make(name, spec, mean)
        else:
            with strategy.scope():
                learner = _make(name, spec, mean)
        history = learner.fit(tasks, epochs=EPOCHS, batch_size=32 if name != "sine_maml" else 25,
                              validation_tasks=val, verbose=0, strategy=strategy)
        for i, v in enumerate(learner.model.weights):
            arrays[f"{name}/model/{i:02d}:{v.path}"] = np.asarray(v)
        for i, v in enumerate(learner.extra_variables):
            arrays[f"{name}/extra/{i:02d}"] = np.asarray(v)
        for i, v in enumerate(learner.optimizer.variables):
            arrays[f"{name}/optimizer/{i:02d}:{v.path}"] = np.asarray(v)
        for key, values in history.history.items():
            arrays[f"{name}/history/{key}"] = np.asarray(values, dtype=np.float64)
        print(f"{mode}: {name} done, final loss {history.history['loss'][-1]:.6f}",
              file=sys.stderr)
    return arrays


def compare(a_path: Path, b_path: Path) -> int:
    """Print ``np.array_equal`` per array of two files; 0 when every array is equal."""
    import numpy as np

    with np.load(a_path) as a, np.load(b_path) as b:
        keys_a, keys_b = set(a.files), set(b.files)
        differ = 0
        for key in sorted(keys_a | keys_b):
            if key not in keys_a or key not in keys_b:
                print(f"MISSING in {'A' if key not in keys_a else 'B'}: {key}")
                differ += 1
                continue
            x, y = a[key], b[key]
            nan_ok = x.dtype.kind == "f" and y.dtype.kind == "f"
            same = x.shape == y.shape and np.array_equal(x, y, equal_nan=nan_ok)
            if not same:
                gap = (float(np.nanmax(np.abs(x - y))) if x.shape == y.shape else float("nan"))
                print(f"DIFFERS: {key} (max |a - b| = {gap:.3g})")
                differ += 1
        print(f"{len(keys_a | keys_b)} arrays compared, {differ} differ "
              f"({a_path} vs {b_path})")
    return int(differ > 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="output folder (or .npz file with --mode)")
    parser.add_argument("--mode", choices=("one", "mirrored"), help="run one mode only")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"))
    args = parser.parse_args(argv)
    if args.compare:
        return compare(*args.compare)
    if args.out is None:
        parser.error("--out is required (or --compare A B)")
    if args.mode:
        import numpy as np

        arrays = train_all(args.mode)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_name(f".{args.out.name}.tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, args.out)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for mode in ("one", "mirrored"):  # a fresh process each: logical devices need it
        proc = subprocess.run([sys.executable, __file__, "--mode", mode, "--out",
                               str(args.out / f"{mode}.npz")], check=False)
        if proc.returncode != 0:
            return proc.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
