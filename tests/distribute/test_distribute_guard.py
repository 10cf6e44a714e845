"""The finiteness guard of the one training step holds under MirroredStrategy as on one device.

tests/scripts/distribute_guard_check.py runs in a subprocess (2 logical CPU devices must be
configured
before TensorFlow initialises): a NaN step must leave every weight and optimizer slot exactly
as it was, and KeepBestWeights must restore the best epoch on the way out of the error.

Only the 2-replica run is asked for here: the same guarantee on one device is held by
tests/bad_inputs/test_bad_inputs.py (test_diverging_fit_keeps_the_last_finite_weights: MAML and
Reptile, every weight, learner and optimizer variable unchanged and the step not counted;
test_keep_best_weights_restores_on_the_way_out_of_an_error: the restore on the way out) and
tests/meta/test_meta.py (the error names the epoch and step), in the pytest process itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "tests" / "scripts" / "distribute_guard_check.py"


def test_nan_step_is_not_applied_on_two_replicas(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.pop("TF_CONFIG", None)
    out = tmp_path / "guard.json"
    proc = subprocess.run([sys.executable, str(CHECK), str(out), "2"], env=env, capture_output=True,
                          text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = json.loads(out.read_text())
    assert {(r["replicas"], r["learner"], r["task"]) for r in records} == {
        (2, name, task) for name in ("MAML", "Reptile")
        for task in (0, 7, "keep_best")}
    for r in records:
        assert r["error"] and "that step was not applied" in r["error"], r
        if r["task"] == "keep_best":
            assert "epoch 2, step 1" in r["error"], r
            assert r["best_saved"] and r["best_restored"] and r["best_finite"], r
        else:
            assert r["unchanged"] and r["finite"] and r["iterations_kept"], r
