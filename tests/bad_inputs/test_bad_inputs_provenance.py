"""Provenance of ``python -m metarec train`` (issue 20): ``run.json`` and the summary line
name the data source, here a custom ``--data-path`` folder (absolute path and the sha256 of its
rating file). Apart from ``test_bad_inputs_commands.py`` because it trains (one epoch)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from metarec import cli
from metarec.experiments import store
from metarec.experiments import training as training_module


def test_train_records_a_custom_data_path(tmp_path, mlfix, monkeypatch, capsys):
    from metarec.data import make_synthetic

    folder = mlfix.write(tmp_path, "ml-100k")

    def load(name, seed=0, path=None, **kwargs):  # synthetic ratings "read from" the folder
        dataset = make_synthetic(seed=seed, n_users=300, n_items=200,
                                 ratings_per_user=(15, 120))
        dataset.source = str(Path(path).absolute())
        return dataset

    monkeypatch.setattr(training_module, "load_dataset", load)
    out = tmp_path / "out"
    assert cli.main([str(a) for a in ["train", "maml", "--epochs", "1", "--data-path", folder,
                                         "--out", out]]) == 0
    run = json.loads((out / "run.json").read_text())
    digest = hashlib.sha256((folder / "u.data").read_bytes()).hexdigest()
    assert run["data_source"]["kind"] == "custom" and run["data_source"]["sha256"] == digest
    assert run["data_source"]["path"] == str(folder.absolute())
    assert f"custom ml-100k copy {folder.absolute()}" in capsys.readouterr().out
    assert not (out / store.LOCK_NAME).exists()
