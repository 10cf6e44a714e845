"""Bad inputs of the newer paths: ``python -m metarec train``, ``experiment run|tune|when``,
strategies, tuning studies and two runs writing one folder (issue 20).

The categories and their counts are part of the table of ``test_bad_inputs.py`` (``book/api.md``):
:data:`COMMAND_CASES` below. Everything runs in-process through :func:`metarec.cli.main` with
training and tuning replaced by fakes where the bookkeeping is under test, so the file is fast.
"""

from __future__ import annotations

import pytest

from metarec import cli
from metarec.experiments import benchmarks as benchmarks_module
from metarec.experiments import tuning

#: Inputs tried by the tests of this file, by category (the table of bad inputs counts them).
COMMAND_CASES: dict[str, int] = {}


def _count(category: str, n: int = 1) -> None:
    COMMAND_CASES[category] = COMMAND_CASES.get(category, 0) + n


def _main(argv: list[str]) -> int:
    """``cli.main(argv)``'s exit status, argparse's own errors included."""
    try:
        return cli.main([str(a) for a in argv])
    except SystemExit as exit_:
        return int(exit_.code)


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")
             or ": error:" in line]
    assert len(lines) == 1, err
    return lines[0]


# ----------------------------------------------------------------------------- commands
TRAIN_NUMBERS = [
    (["--epochs", "-1"], "--epochs: expected an integer >= 1, got -1"),
    (["--epochs", "0"], "--epochs: expected an integer >= 1, got 0"),
    (["--batch-size", "0"], "--batch-size: expected an integer >= 1, got 0"),
    (["--seed", "-1"], "--seed: expected an integer >= 0, got -1"),
    (["--patience", "-2"], "--patience: expected an integer >= 0, got -2"),
    (["--devices", "0"], "--devices: expected an integer >= 1, got 0"),
]
_count("commands", len(TRAIN_NUMBERS))


@pytest.mark.parametrize("extra, match", TRAIN_NUMBERS, ids=[" ".join(e) for e, _ in
                                                               TRAIN_NUMBERS])
def test_train_numbers_are_range_checked(extra, match, tmp_path, capsys):
    code = _main(["train", "maml", "--dataset", "synthetic", "--out", tmp_path / "o", *extra])
    assert code == 2
    assert match in _one_error_line(capsys)
    assert not (tmp_path / "o").exists()  # nothing trained, nothing written


# ----------------------------------------------------------------------------- studies
def _fake_tuning(monkeypatch, stop_at: int | None = None):
    """Tuning without training: trial k scores k; trial ``stop_at`` is interrupted."""

    def objective_of(cell, data, seed, batch_size, epochs=None, pool=None):
        def objective(trial):
            if trial.number == stop_at:
                raise KeyboardInterrupt
            trial.set_user_attr("test_steps", 1)
            trial.set_user_attr("val_ndcg@3", 0.5)
            return float(trial.number)
        return objective

    monkeypatch.setattr(tuning, "_objective", objective_of)
    monkeypatch.setattr(tuning, "tuning_view", lambda data: data)
    monkeypatch.setattr(benchmarks_module, "prepare_benchmark", lambda config, seed: None)


_count("studies")  # a resumed study with fewer trials
TUNE = ["experiment", "tune", "fair-synthetic", "--models", "item_mean", "--schemes", "maml"]


def test_resumed_study_with_fewer_trials_continues_to_the_larger(tmp_path, monkeypatch,
                                                                  capsys):
    _fake_tuning(monkeypatch, stop_at=2)
    with pytest.raises(KeyboardInterrupt):
        _main([*TUNE, "--trials", "4", "--out", tmp_path])
    _fake_tuning(monkeypatch)
    capsys.readouterr()
    assert _main([*TUNE, "--trials", "2", "--resume", "--out", tmp_path]) == 0
    out = capsys.readouterr().out
    assert "continuing to 4" in out and "(1 cells)" in out, out
    configs = tuning.load_configs(tuning.configs_path(tmp_path, "fair-synthetic"))
    assert configs["cells"]["item_mean/maml"]["n_trials"] == 4
