"""Bad inputs of the newer paths: ``python -m metarec train``, ``experiment run|tune|when``,
strategies, tuning studies and two runs writing one folder (issue 20).

The categories and their counts are part of the table of ``test_bad_inputs.py`` (``book/api.md``):
:data:`COMMAND_CASES` below. Everything runs in-process through :func:`metarec.cli.main` with
training and tuning replaced by fakes where the bookkeeping is under test, so the file is fast.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from metarec import cli
from metarec.experiments import benchmarks as benchmarks_module
from metarec.experiments import recipe_study as recipe_study_module
from metarec.experiments import store, tuning
from metarec.experiments import training as training_module

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
    (["--peer-timeout", "0"], "--peer-timeout: expected a finite number > 0, got 0"),
    (["--peer-timeout", "nan"], "--peer-timeout: expected a finite number > 0, got nan"),
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
    assert _main([*TUNE, "--trials", "4", "--out", tmp_path]) == 130
    _fake_tuning(monkeypatch)
    capsys.readouterr()
    assert _main([*TUNE, "--trials", "2", "--resume", "--out", tmp_path]) == 0
    out = capsys.readouterr().out
    assert "continuing to 4" in out and "(1 cells)" in out, out
    configs = tuning.load_configs(tuning.configs_path(tmp_path, "fair-synthetic"))
    assert configs["cells"]["item_mean/maml"]["n_trials"] == 4


# ----------------------------------------------------------------------------- error paths
def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


CONFIGS_FILES = [
    ("{not json", "not valid JSON"),
    (json.dumps({"benchmark": "fair-synthetic"}), "has no 'cells' mapping"),
    (json.dumps({"cells": {"item_mean/maml": {"model": "item_mean", "scheme": "maml",
                                              "test_steps": 1}}}), "lacks 'params'"),
    (json.dumps({"cells": {"item_mean/maml": {"model": "item_mean", "scheme": "maml",
                                              "params": 3, "test_steps": 1}}}),
     "are not a mapping"),
]
_count("commands", len(CONFIGS_FILES))


@pytest.mark.parametrize("text, match", CONFIGS_FILES, ids=[m for _, m in CONFIGS_FILES])
def test_a_damaged_configs_file_is_one_error_line(text, match, tmp_path, capsys):
    configs = _write(tmp_path / "c.configs.json", text)
    code = _main(["experiment", "run", "fair-synthetic", "--configs", configs, "--out",
                  tmp_path / "out"])
    line = _one_error_line(capsys)
    assert code == 2 and match in line and str(configs) in line and "--resume" in line, line


_count("commands")  # tune on a benchmark that is not a grid


def test_tune_on_a_recipe_benchmark_is_one_error_line(tmp_path, capsys):
    assert _main(["experiment", "tune", "quick", "--out", tmp_path]) == 2
    assert "quick is not a grid benchmark" in _one_error_line(capsys)


DATA_FOLDERS = ["missing", "a-file", "u.data-is-a-folder"]
_count("commands", 2 * len(DATA_FOLDERS))


def _data_folder(tmp_path: Path, kind: str) -> Path:
    folder = tmp_path / "data"
    if kind == "a-file":
        _write(folder, "x")
    elif kind == "u.data-is-a-folder":
        (folder / "u.data").mkdir(parents=True)
    return folder


@pytest.mark.parametrize("kind", DATA_FOLDERS)
@pytest.mark.parametrize("command", ["train", "run"])
def test_an_unusable_data_folder_is_one_error_line(command, kind, tmp_path, capsys):
    folder = _data_folder(tmp_path, kind)
    argv = (["train", "maml", "--out", tmp_path / "o"] if command == "train"
            else ["experiment", "run", "quick", "--out", tmp_path / "o"])
    assert _main([*argv, "--data-path", folder]) == 1
    assert str(folder) in _one_error_line(capsys)


def _damage_study(path: Path, how: str):
    """Damage the study file ``path`` (after a finished tuning); returns a clean-up."""
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 3])
    elif how == "corrupt":
        path.write_bytes(b"not a database " * 200)
    else:  # locked: another process is writing it
        holder = sqlite3.connect(path, timeout=0.1)
        holder.execute("BEGIN EXCLUSIVE")
        return holder.close
    return lambda: None


STUDY_FILES = [("truncated", "it is damaged"), ("corrupt", "it is damaged"),
               ("locked", "another process holds it")]
_count("studies", len(STUDY_FILES))


@pytest.mark.parametrize("how, match", STUDY_FILES, ids=[h for h, _ in STUDY_FILES])
def test_a_damaged_or_locked_study_is_one_error_line(how, match, tmp_path, monkeypatch,
                                                     capsys):
    _fake_tuning(monkeypatch)
    assert _main([*TUNE, "--trials", "2", "--out", tmp_path]) == 0
    study = tuning.study_file(tmp_path, "fair-synthetic", "item_mean")
    release = _damage_study(study, how)
    capsys.readouterr()
    try:
        code = _main([*TUNE, "--trials", "3", "--resume", "--out", tmp_path])
    finally:
        release()
    line = _one_error_line(capsys)
    assert code == 1 and str(study) in line and match in line, line


# ----------------------------------------------------------------------------- interruptions
def _interrupt_on(monkeypatch, name: str, how: str) -> list[str]:
    """Fake training of recipe studies; method ``name`` is interrupted (Ctrl-C or SIGTERM)."""
    calls = []

    def train(method, data, seed, **kwargs):
        calls.append(method.name)
        if method.name == name:
            if how == "sigterm":
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)  # the handler raises here
            raise KeyboardInterrupt
        return method.name, 0.5

    def evaluate(learner, data, scenarios, steps=None):
        return [{"scenario": s, "n_tasks": 1, "mae": 1.0, "rmse": 1.0, "ndcg@1": 0.5,
                 "ndcg@3": 0.5} for s in scenarios]

    monkeypatch.setattr(recipe_study_module, "train_method", train)
    monkeypatch.setattr(recipe_study_module, "evaluate_scenarios", evaluate)
    monkeypatch.setattr(recipe_study_module, "prepare_benchmark",
                        lambda config, seed: SimpleNamespace(dataset=SimpleNamespace(
                            name="synthetic")))
    return calls


_count("commands", 2)  # experiment run: Ctrl-C, SIGTERM


@pytest.mark.parametrize("how, status", [("ctrl-c", 130), ("sigterm", 143)])
def test_an_interrupted_run_keeps_its_rows_and_says_how_to_resume(how, status, tmp_path,
                                                                   monkeypatch, capsys):
    run = ["experiment", "run", "quick", "--methods", "popularity", "mf", "--out", tmp_path]
    _interrupt_on(monkeypatch, "mf", how)
    assert _main(run) == status
    line = _one_error_line(capsys)
    assert "--resume" in line and str(tmp_path) in line, line
    assert set(pd.read_csv(tmp_path / "quick.csv")["method"]) == {"popularity"}
    calls = _interrupt_on(monkeypatch, "none", how)
    assert _main([*run, "--resume"]) == 0 and calls == ["mf"]


# ----------------------------------------------------------------------------- concurrency
@pytest.fixture
def live_pid():
    """The id of a live process (not this one): the writer of a lock."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc.pid
    proc.kill()
    proc.wait()


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _lock(folder: Path, pid: int, key: str | None = None) -> Path:
    name = store.LOCK_NAME if key is None else f".metarec.{key}.lock"
    return _write(folder / name, json.dumps({"pid": pid, "host": socket.gethostname(),
                                             "started": "2026-01-01 00:00:00",
                                             "command": "python -m metarec train maml"}))


def _no_training(monkeypatch) -> list[str]:
    """``train`` without data or training: records the methods it would train."""
    calls = []

    def train(method, data, seed, **kwargs):
        calls.append(method.name)
        raise KeyboardInterrupt  # stop there: nothing is written

    monkeypatch.setattr(training_module, "load_dataset", lambda *a, **k: None)
    monkeypatch.setattr(training_module, "prepare", lambda *a, **k: None)
    monkeypatch.setattr(training_module, "train_method", train)
    return calls


_count("concurrency", 6)


def test_train_refuses_a_folder_another_run_is_writing(tmp_path, monkeypatch, capsys,
                                                       live_pid):
    calls = _no_training(monkeypatch)
    lock = _lock(tmp_path, live_pid)
    assert _main(["train", "maml", "--dataset", "synthetic", "--out", tmp_path]) == 2
    line = _one_error_line(capsys)
    assert f"process {live_pid}" in line and "being written by another run" in line, line
    assert calls == [] and lock.exists()  # nothing trained; the other run's lock kept
    lock.write_text(lock.read_text().replace(str(live_pid), str(_dead_pid())))  # it died
    assert _main(["train", "maml", "--dataset", "synthetic", "--out", tmp_path]) == 130
    assert calls == ["maml"]  # the stale lock was replaced, the run went on
    assert not lock.exists()  # and its own lock is removed on the way out


def test_experiment_run_refuses_a_benchmark_another_run_is_writing(tmp_path, monkeypatch,
                                                                   capsys, live_pid):
    run = ["experiment", "run", "quick", "--methods", "popularity", "--out", tmp_path]
    calls = _interrupt_on(monkeypatch, "none", "ctrl-c")
    lock = _lock(tmp_path, live_pid, "run-quick")
    assert _main(run) == 2 and calls == []
    assert "(run-quick) is being written by another run" in _one_error_line(capsys)
    lock.unlink()
    _lock(tmp_path, live_pid, "run-melu-synthetic")  # another benchmark: side by side
    assert _main(run) == 0 and calls == ["popularity"]
    assert not lock.exists()


def test_tunings_of_one_study_file_are_one_at_a_time(tmp_path, monkeypatch, capsys, live_pid):
    _fake_tuning(monkeypatch)
    _lock(tmp_path, live_pid, "tune-fair-synthetic-item_mean.tuner0")
    assert _main([*TUNE, "--trials", "2", "--out", tmp_path]) == 2
    assert "is being written by another run" in _one_error_line(capsys)
    other = ["experiment", "tune", "fair-synthetic", "--models", "mf", "--schemes", "maml"]
    assert _main([*other, "--trials", "2", "--out", tmp_path]) == 0  # another model's file


def test_when_refuses_a_point_another_run_is_writing(tmp_path, capsys, live_pid):
    from metarec.experiments import when_study

    point = next(iter(when_study.POINTS))
    _lock(tmp_path / when_study.BENCHMARK, live_pid, f"when-{point}")
    assert _main(["experiment", "when", "--points", point, "--out", tmp_path]) == 2
    assert "is being written by another run" in _one_error_line(capsys)


def test_output_lock_is_removed_on_error_and_refuses_nested_use(tmp_path):
    with pytest.raises(RuntimeError), store.output_lock(tmp_path, "a"):
        assert (tmp_path / store.LOCK_NAME).exists()
        with pytest.raises(store.FolderLocked, match=f"process {os.getpid()}"), \
                store.output_lock(tmp_path, "b"):
            pass
        raise RuntimeError("a run failing")
    assert not (tmp_path / store.LOCK_NAME).exists()


_count("commands")  # train into a folder it cannot write: refused before training


def test_train_checks_out_before_training(tmp_path, monkeypatch, capsys):
    calls = _no_training(monkeypatch)
    blocker = _write(tmp_path / "a-file", "x")
    assert _main(["train", "maml", "--dataset", "synthetic", "--out", blocker / "sub"]) == 2
    assert "Choose another --out folder" in _one_error_line(capsys) and calls == []


# ----------------------------------------------------------------------------- strategies
STRATEGY_CASES = [
    (["--strategy", "mirrored", "--devices", "100000"], "devices must be an integer in [1, "),
    (["--strategy", "default", "--devices", "2"], "for the 'mirrored' strategy only"),
]
_count("strategies", len(STRATEGY_CASES) + 3)


@pytest.mark.parametrize("extra, match", STRATEGY_CASES, ids=[" ".join(e) for e, _ in
                                                                STRATEGY_CASES])
def test_train_strategy_set_up_fails_fast(extra, match, tmp_path, monkeypatch, capsys):
    calls = _no_training(monkeypatch)
    code = _main(["train", "maml", "--dataset", "synthetic", "--out", tmp_path / "o", *extra])
    assert code == 2 and match in _one_error_line(capsys) and calls == []


@pytest.mark.parametrize("devices, error", [(0, ValueError), (True, TypeError)])
def test_make_strategy_checks_devices(devices, error):
    from metarec import distribute

    with pytest.raises(error, match="make_strategy: devices must be an integer in"):
        distribute.make_strategy("mirrored", devices=devices)


def test_fewer_tasks_than_replicas_is_refused_before_training():
    import keras
    import numpy as np

    from metarec.data import FeatureEncoder, build_tasks, make_synthetic
    from metarec.meta import MAML
    from metarec.models import build_model

    ds = make_synthetic(seed=0, n_users=30, n_items=40, ratings_per_user=(15, 25))
    encoder = FeatureEncoder().fit(ds, ds.ratings)
    tasks = build_tasks(ds.ratings, encoder, seed=0).subset(np.arange(3))
    keras.utils.set_random_seed(0)
    model = build_model("mf", encoder.spec)
    learner = MAML(model, inner_lr=0.1, adapt=model.ADAPT)
    four_replicas = SimpleNamespace(num_replicas_in_sync=4)  # refused before it is used
    with pytest.raises(ValueError, match="3 task\\(s\\) cannot feed the 4 replicas"):
        learner.fit(tasks, epochs=1, batch_size=4, verbose=0, strategy=four_replicas)


# ------------------------------------------------------- strategies: a worker that never comes
def _tf_config(monkeypatch, index: int = 0, workers: list[str] | None = None) -> list[str]:
    """TF_CONFIG of two workers on free local ports (nobody listens on them); returns them."""
    if workers is None:
        workers = []
        for _ in range(2):
            with socket.socket() as s:
                s.bind(("localhost", 0))
                workers.append(f"localhost:{s.getsockname()[1]}")
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": workers},
                                                "task": {"type": "worker", "index": index}}))
    return workers


_count("strategies")


def test_train_ends_when_a_worker_never_comes(tmp_path, monkeypatch, capsys):
    # Before: MultiWorkerMirroredStrategy() waited forever, silent and deaf to SIGTERM.
    calls = _no_training(monkeypatch)
    workers = _tf_config(monkeypatch)
    started = time.monotonic()
    code = _main(["train", "maml", "--dataset", "synthetic", "--strategy", "multi-worker",
                  "--peer-timeout", "1", "--out", tmp_path / "o"])
    assert code == 1 and time.monotonic() - started < 15
    err = capsys.readouterr().err
    assert f"waiting up to 1 s for 1 other worker(s) of TF_CONFIG ({workers[1]})" in err, err
    (line,) = [x for x in err.splitlines() if x.startswith("error:")]
    assert "Traceback" not in err
    assert f"worker 1 at {workers[1]} (connection refused)" in line, line
    assert "TF_CONFIG" in line and "--peer-timeout" in line and "within 1 s" in line, line
    assert calls == [] and not (tmp_path / "o").exists()


_count("strategies", 2)


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)],
                         ids=["SIGTERM", "SIGINT"])
def test_a_signal_ends_the_wait_for_workers(signum, status, tmp_path, monkeypatch, capsys):
    import threading

    calls = _no_training(monkeypatch)
    _tf_config(monkeypatch, index=1)
    done = threading.Event()
    # A terminal gives a process Python's default SIGINT handler; pytest-xdist's workers ignore
    # SIGINT (SIG_IGN), which would make this test wait for the whole timeout.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)

    def send():
        if not done.wait(1.0):
            os.kill(os.getpid(), signum)

    sender = threading.Thread(target=send)
    sender.start()
    started = time.monotonic()
    try:
        code = _main(["train", "maml", "--dataset", "synthetic", "--strategy", "multi-worker",
                      "--peer-timeout", "60", "--out", tmp_path / "o"])
    finally:
        done.set()
        sender.join()
        signal.signal(signal.SIGINT, previous)
    assert code == status and time.monotonic() - started < 15
    assert "no results were written" in _one_error_line(capsys) and calls == []


_count("strategies", 4)


def test_make_strategy_bounds_the_wait_for_workers(monkeypatch):
    from metarec import distribute

    workers = _tf_config(monkeypatch)
    with pytest.raises(distribute.PeersMissing, match=f"worker 1 at {workers[1]}"):
        distribute.make_strategy("multi-worker", peer_timeout=0.5)
    with pytest.raises(ValueError, match="peer_timeout must be a finite number > 0"):
        distribute.make_strategy("multi-worker", peer_timeout=0)
    _tf_config(monkeypatch, index=2, workers=workers)
    with pytest.raises(ValueError, match="task is worker 2, but its cluster lists 2 worker"):
        distribute.make_strategy("multi-worker", peer_timeout=0.5)
    _tf_config(monkeypatch, workers=[workers[0], "host-without-port"])
    with pytest.raises(ValueError, match="'host-without-port' is not a 'host:port' address"):
        distribute.make_strategy("multi-worker", peer_timeout=0.5)


_count("strategies")


def test_a_worker_whose_port_is_taken_says_so(monkeypatch):
    from metarec import distribute

    with socket.create_server(("", 0)) as taken:
        own = f"localhost:{taken.getsockname()[1]}"
        config = json.dumps({"cluster": {"worker": [own, "localhost:1"]},
                             "task": {"type": "worker", "index": 0}})
        with pytest.raises(distribute.PeersMissing, match="cannot listen on its port"):
            distribute.wait_for_peers(5, tf_config=config)


def test_workers_waiting_for_each_other_all_go_on(monkeypatch):
    import threading

    from metarec import distribute

    workers = _tf_config(monkeypatch)  # just for two free ports
    configs = [json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker",
                                                                     "index": i}})
               for i in range(2)]
    errors = []

    def worker(config):
        try:
            distribute.wait_for_peers(10, tf_config=config, poll=0.05)
        except Exception as err:  # noqa: BLE001  (reported below)
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(c,)) for c in configs]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert errors == [] and time.monotonic() - started < 5
    for address in workers:  # each port is free again for the strategy's own server
        with socket.create_server(("", int(address.rsplit(":", 1)[1]))):
            pass


# ----------------------------------------------------------------------------- provenance
def test_data_source_names_the_release_or_the_custom_file(tmp_path, mlfix):
    from metarec.data.movielens import data_source, describe_source

    official = data_source("ml-100k")
    assert official["kind"] == "official" and official["archive_sha256"].startswith("50d2a9")
    folder = mlfix.write(tmp_path, "ml-100k")
    custom = data_source("synthetic", folder)  # the format is detected, as the loader does
    digest = hashlib.sha256((folder / "u.data").read_bytes()).hexdigest()
    assert custom == {"kind": "custom", "name": "ml-100k", "path": str(folder.absolute()),
                      "rating_file": "u.data", "sha256": digest}
    assert str(folder.absolute()) in describe_source(custom)



_count("commands", 3)  # resumed on other data: run, tune; a damaged provenance file


def test_experiment_run_records_its_data_and_refuses_to_mix_two(tmp_path, monkeypatch, mlfix,
                                                               capsys):
    calls = _interrupt_on(monkeypatch, "none", "ctrl-c")
    folder = mlfix.write(tmp_path, "ml-100k")
    out = tmp_path / "out"
    run = ["experiment", "run", "quick", "--methods", "popularity", "--out", out]
    assert _main([*run, "--data-path", folder]) == 0
    record = json.loads((out / "quick.provenance.json").read_text())
    digest = hashlib.sha256((folder / "u.data").read_bytes()).hexdigest()
    assert record["benchmark"] == "quick" and record["data_source"] == {
        "kind": "custom", "name": "ml-100k", "path": str(folder.absolute()),
        "rating_file": "u.data", "sha256": digest}
    rows = (out / "quick.csv").read_bytes()
    capsys.readouterr()
    # Resumed on the generated data instead: refused before anything runs, rows untouched.
    assert _main([*run, "--methods", "popularity", "mf", "--resume"]) == 1
    line = _one_error_line(capsys)
    assert "two data sources would mix" in line and f"custom ml-100k copy {folder.absolute()}" \
        in line and "--overwrite" in line, line
    assert calls == ["popularity"] and (out / "quick.csv").read_bytes() == rows
    assert _main([*run, "--resume", "--data-path", folder]) == 0  # the same data: goes on
    assert _main([*run, "--overwrite"]) == 0  # replaced, with its new source
    assert json.loads((out / "quick.provenance.json").read_text())["data_source"]["kind"] \
        == "synthetic"
    (out / "quick.provenance.json").write_text("{trunc")
    assert _main([*run, "--resume"]) == 1
    assert "quick.provenance.json cannot be read" in _one_error_line(capsys)


def test_tune_and_when_record_their_data(tmp_path, monkeypatch, mlfix, capsys):
    from metarec.experiments import when_study

    _fake_tuning(monkeypatch)
    assert _main([*TUNE, "--trials", "2", "--out", tmp_path]) == 0
    record = json.loads((tmp_path / "fair-synthetic.provenance.json").read_text())
    assert record["data_source"] == {"kind": "synthetic", "name": "synthetic"}
    folder = mlfix.write(tmp_path, "ml-100k")
    assert _main([*TUNE, "--trials", "3", "--resume", "--data-path", folder, "--out",
                  tmp_path]) == 1
    assert "two data sources would mix" in _one_error_line(capsys)
    monkeypatch.setattr(when_study, "run_when", lambda *a, **k: [])
    assert _main(["experiment", "when", "--points", "default", "--out", tmp_path]) == 0
    record = json.loads((tmp_path / "when" / "when.provenance.json").read_text())
    assert record["data_source"]["kind"] == "synthetic" and "POINTS" in record["generator"]


def test_provenance_record_reads_back_equal(tmp_path):
    from metarec.data.movielens import data_source

    details = {"synthetic_kwargs": {"ratings_per_user": (15, 40)}}  # a tuple: a list in JSON
    first = store.record_provenance(tmp_path, "b", data_source("synthetic"), **details)
    assert store.record_provenance(tmp_path, "b", data_source("synthetic"), **details) == first
    with pytest.raises(Exception, match="two data sources would mix"):
        store.record_provenance(tmp_path, "b", data_source("ml-100k"))
