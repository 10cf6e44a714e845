"""``python -m metarec train`` on one device and on 2 logical CPU devices, then reloading.

Run by tests/distribute/test_distribute_cli.py in a subprocess (logical devices must be
configured before
TensorFlow initialises): ``python tests/scripts/distribute_train_check.py OUT_DIR``. Writes
OUT_DIR/check.json with the reloaded learners' user-cold MAE.

The synthetic dataset is generated smaller than the command's default (:data:`SMALL`, as in
tests/experiments/test_fair.py): the check is about the files, the strategy and reloading, not
the data, and every cold-start part still has users.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import metarec  # noqa: F401  (quiet TensorFlow logs, before tensorflow)
from metarec import distribute

#: Size of the synthetic dataset ``--dataset synthetic`` loads here.
SMALL = {"n_users": 300, "n_items": 200}


def main(out: Path) -> int:
    """Train twice, reload under the strategy and outside it; write out/check.json."""
    distribute.configure_logical_cpus(2)
    from metarec.cli import main as cli
    from metarec.data import make_synthetic
    from metarec.experiments import training

    # load_dataset("synthetic") of the train command and of this check: the smaller dataset.
    training.make_synthetic = functools.partial(make_synthetic, **SMALL)

    common = ["train", "fomaml", "--dataset", "synthetic", "--epochs", "1", "--seed", "1"]
    assert cli([*common, "--out", str(out / "one")]) == 0
    assert cli([*common, "--strategy", "mirrored", "--devices", "2", "--out",
                str(out / "two")]) == 0

    from metarec.experiments import load_dataset, prepare
    from metarec.meta import load_learner

    data = prepare(load_dataset("synthetic", seed=1), 1)
    strategy = distribute.make_strategy("mirrored")
    with strategy.scope():  # loading under a strategy: mirrored variables
        mirrored = load_learner(out / "two" / "learner")
    plain = load_learner(out / "two" / "learner")
    steps = json.loads((out / "two" / "run.json").read_text())
    check = {
        "mirrored_variables": all(
            distribute._tf_variable(v).__class__.__name__ == "MirroredVariable"
            for v in mirrored.model.trainable_variables),
        "reloaded_under_strategy_mae": mirrored.evaluate(data.tasks["user_cold"])["mae"],
        "reloaded_plain_mae": plain.evaluate(data.tasks["user_cold"])["mae"],
        "replicas": steps["replicas"],
    }
    # Training continues under the strategy after loading (one more epoch).
    with strategy.scope():
        mirrored.compile()
    mirrored.fit(data.tasks["train"], epochs=1, verbose=0, strategy=strategy)
    check["continued_mae"] = mirrored.evaluate(data.tasks["user_cold"])["mae"]
    (out / "check.json").write_text(json.dumps(check, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
