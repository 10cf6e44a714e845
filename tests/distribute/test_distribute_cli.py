"""``python -m metarec train``: same files on one device and under MirroredStrategy; reload."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metarec.train import OUTPUT_FILES, STRATEGIES, run_training

ROOT = Path(__file__).resolve().parents[2]


def test_train_command_same_files_one_and_two_devices_and_reload(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.pop("TF_CONFIG", None)
    script = ROOT / "tests" / "scripts" / "distribute_train_check.py"
    proc = subprocess.run([sys.executable, str(script),
                           str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one, two = tmp_path / "one", tmp_path / "two"
    for folder in (one, two):
        assert sorted(p.name for p in folder.iterdir()) == sorted(OUTPUT_FILES)
        assert (folder / "learner" / "model.keras").is_file()
    runs = [json.loads((f / "run.json").read_text()) for f in (one, two)]
    assert [r["replicas"] for r in runs] == [1, 2]
    assert runs[0]["communicated_bytes_per_step"] == runs[1]["communicated_bytes_per_step"] > 0
    # Same data, same batches, same initial weights: the epoch is the same to float rounding.
    h1, h2 = (pd.read_csv(f / "history.csv") for f in (one, two))
    np.testing.assert_allclose(h2["loss"], h1["loss"], rtol=1e-4)
    r1, r2 = (pd.read_csv(f / "results.csv") for f in (one, two))
    assert list(r1.columns) == list(r2.columns) and list(r1["scenario"]) == list(r2["scenario"])
    np.testing.assert_allclose(r2["mae"], r1["mae"], rtol=1e-3)
    check = json.loads((tmp_path / "check.json").read_text())
    assert check["mirrored_variables"] and check["replicas"] == 2
    mae = r2.set_index("scenario").loc["user_cold", "mae"]
    assert check["reloaded_under_strategy_mae"] == pytest.approx(mae, abs=1e-5)
    assert check["reloaded_plain_mae"] == pytest.approx(mae, abs=1e-5)
    assert np.isfinite(check["continued_mae"])


def test_train_refuses_to_replace_another_run(tmp_path):
    (tmp_path / "results.csv").write_text("mine\n")
    with pytest.raises(FileExistsError, match="--overwrite"):
        run_training("fomaml", tmp_path, dataset="synthetic", epochs=1)
    assert (tmp_path / "results.csv").read_text() == "mine\n"


def test_command_line_strategies_are_the_strategies_and_parse():
    from metarec import distribute
    from metarec.cli import build_parser

    assert STRATEGIES == distribute.STRATEGIES
    args = build_parser().parse_args(["train", "maml", "--strategy", "multi-worker", "--out", "x"])
    assert args.strategy == "multi-worker" and args.batch_size == 32
