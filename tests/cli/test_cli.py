"""``python -m metarec data ...``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest

from metarec import cli
from metarec.data import cache as cache_module
from metarec.data import dataset_stats, make_synthetic

ROOT = Path(__file__).resolve().parents[2]


def test_stats_ml100k(ml100k, capsys):
    assert cli.main(["data", "stats", "ml-100k"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "users               943" in lines
    assert "items               1682" in lines
    assert "ratings             100000" in lines
    assert "sparsity            93.70% of user x item pairs unrated" in lines
    assert "  4                   34174   34.2%" in lines
    assert lines[lines.index(next(x for x in lines if x.startswith("ratings per user"))) - 1] \
        .split() == ["min", "10%", "25%", "50%", "75%", "90%", "max"]
    per_user = next(x for x in lines if x.startswith("ratings per user")).split()[3:]
    assert per_user[0] == "20" and per_user[-1] == "737" and per_user[3] == "65"
    per_item = next(x for x in lines if x.startswith("ratings per item")).split()[3:]
    assert per_item[0] == "1" and per_item[-1] == "583"
    assert "MeLU protocol (13..100 ratings per user): 582 of 943 users kept (61.7%)" in lines


def test_stats_synthetic(capsys):
    assert cli.main(["data", "stats", "synthetic"]) == 0
    out = capsys.readouterr().out
    stats = dataset_stats(make_synthetic())
    assert f"ratings             {stats['ratings']}" in out
    assert f"{stats['melu_users']} of 1000 users kept" in out


def test_verify(ml100k, capsys, tmp_path):
    assert cli.main(["data", "verify", "ml-100k"]) == 0
    out = capsys.readouterr().out
    assert out.count("  ok  ") == 5 and "all 5 files verified" in out
    assert cli.main(["data", "verify", "ml-1m", "--data-dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "MISSING   ml-1m/ratings.dat" in out and "python -m metarec data download ml-1m" in out


def test_download_and_errors(tmp_path, mlfix, fixture_registry, monkeypatch, capsys):
    server = mlfix.zip(tmp_path / "server" / "ml-100k.zip", "ml-100k")
    fixture_registry("ml-100k", archive=server)
    monkeypatch.setattr(cache_module, "_fetch", lambda url, dest: shutil.copyfile(server, dest))
    root = tmp_path / "cache"
    assert cli.main(["data", "download", "ml-100k", "--data-dir", str(root)]) == 0
    assert f"ml-100k: 5 files verified in {root / 'ml-100k'}" in capsys.readouterr().out

    def offline(url, dest):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(cache_module, "_fetch", offline)
    assert cli.main(["data", "download", "ml-100k", "--data-dir", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Could not download ml-100k")
    assert cli.main(["data", "stats", "ml-1m", "--data-dir", str(tmp_path), "--no-download"]) == 1
    assert "python -m metarec data download ml-1m" in capsys.readouterr().err


def test_bad_arguments_exit_with_usage(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["data", "stats", "ml-20m"])
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        cli.main([])


def test_more_command_groups_can_be_registered(monkeypatch, capsys):
    def register_hello(subparsers):
        p = subparsers.add_parser("hello")
        p.add_argument("--name", default="world")
        p.set_defaults(func=lambda args: print(f"hello {args.name}") or 0)

    monkeypatch.setattr(cli, "REGISTRARS", [*cli.REGISTRARS, register_hello])
    assert cli.main(["hello", "--name", "meta"]) == 0
    assert capsys.readouterr().out == "hello meta\n"
    assert cli.main(["data", "stats", "synthetic"]) == 0  # data commands still there


def test_python_dash_m_and_no_tensorflow_in_the_data_layer():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    code = ("import sys, metarec.data, metarec.metrics, metarec.cli; "
            "assert 'tensorflow' not in sys.modules, 'data layer imported TensorFlow'")
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT)
    result = subprocess.run([sys.executable, "-m", "metarec", "data", "stats", "synthetic"],
                            capture_output=True, text=True, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "users               1000" in result.stdout
