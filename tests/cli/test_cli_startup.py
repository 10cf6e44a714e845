"""The command line starts without TensorFlow: ``--help`` and argument errors answer at once.

Each check runs in a fresh interpreter, because the test process itself has imported
TensorFlow already. No wall time is asserted (the machine may be busy); what makes the
command line slow and noisy -- importing TensorFlow -- is asserted absent instead.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import metarec

ROOT = Path(__file__).resolve().parents[2]

# TensorFlow's C++ log lines (absl/glog format) and absl's notice before its log is set up.
TF_LOG_LINE = re.compile(
    r"^[IWEF]\d{4} |oneDNN|absl::InitializeLog|cuda_dnn|cpu_feature_guard", re.M)


def fresh_python(*args: str) -> subprocess.CompletedProcess[str]:
    """Run this interpreter on ``args`` with the worktree first on the path and TensorFlow's
    log level left unset, so that any TensorFlow import would show its log lines."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"]])
def test_help_prints_no_tensorflow_log_lines(argv):
    result = fresh_python("-m", "metarec", *argv)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m metarec"), result.stdout
    assert not TF_LOG_LINE.search(result.stderr), result.stderr
    assert result.stderr == "", result.stderr


def test_parser_help_and_argument_errors_import_no_tensorflow():
    # Every command's --help and a few argument errors, in one fresh interpreter; then neither
    # TensorFlow nor Keras may have been imported.
    code = r"""
import argparse, contextlib, io, os, sys
import metarec
assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2", "import metarec must quieten TensorFlow"
assert "tensorflow" not in sys.modules, "import metarec imported TensorFlow"
from metarec import cli
parser = cli.build_parser()
assert "tensorflow" not in sys.modules, "building the parser imported TensorFlow"

def commands(parser, prefix=()):
    # Every path of sub-commands: (), ("data",), ("data", "stats"), ...
    yield prefix
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*prefix, name))

def exit_code(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            cli.main(argv)
        except SystemExit as stop:
            return stop.code, out.getvalue() + err.getvalue()
    raise AssertionError(f"{argv} did not stop in the parser")

paths = list(commands(parser))
for path in paths:
    code, text = exit_code([*path, "--help"])
    assert code == 0 and "usage: python -m metarec" in text, (path, code, text)
for argv in (["data", "stats", "ml-20m"], ["train"], ["train", "maml"],
             ["train", "maml", "--out", "x", "--strategy", "tpu"],
             ["experiment", "run", "recipes", "--seeds", "-1"], ["no-such-command"], []):
    code, text = exit_code(argv)
    assert code == 2 and "error:" in text, (argv, code, text)
loaded = sorted(m for m in ("tensorflow", "keras") if m in sys.modules)
assert not loaded, f"the command line imported {loaded}"
print(len(paths), "commands")
"""
    result = fresh_python("-c", code)
    assert result.returncode == 0, result.stdout + result.stderr
    # (), data x3, experiment x4, train: every one answered --help.
    assert int(result.stdout.split()[0]) >= 11, result.stdout
    assert not TF_LOG_LINE.search(result.stderr), result.stderr


@pytest.mark.parametrize("name", metarec._SUBMODULES)
def test_every_part_is_an_attribute(name):
    module = getattr(metarec, name)
    assert module.__name__ == f"metarec.{name}"
    assert name in dir(metarec)


def test_unknown_attribute_is_an_attribute_error():
    name = "nope"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        getattr(metarec, name)


def test_the_package_docstring_names_every_part():
    # One list item per part: "- :mod:`metarec.data`: ..." (or ``metarec.cli`` where the book's
    # API reference has no section to link to).
    named = set(re.findall(r"^- (?::mod:`|``)metarec\.(\w+)`", metarec.__doc__, re.M))
    assert named == set(metarec._SUBMODULES)
