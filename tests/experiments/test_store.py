"""Results files (metarec.experiments.store): atomic writes, the resume/overwrite policy."""

from __future__ import annotations

import gzip
import os
import stat

import pandas as pd
import pytest

from metarec.experiments.store import (
    atomic_replace,
    check_writable,
    keep_previous,
    progress_bar,
    write_frame,
    write_text,
)


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("error", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path, error):
    path = tmp_path / "results.csv"
    path.write_text("finished rows\n")

    def half_then_fail(tmp):
        with open(tmp, "w") as f:
            f.write("half a ro")
        raise error

    with pytest.raises(type(error)):
        atomic_replace(path, half_then_fail)
    assert path.read_text() == "finished rows\n"
    assert _leftovers(tmp_path) == []
    # A first write that fails leaves no file at all.
    with pytest.raises(type(error)):
        atomic_replace(tmp_path / "new.csv", half_then_fail)
    assert not (tmp_path / "new.csv").exists() and _leftovers(tmp_path) == []


def test_the_file_appears_only_when_complete(tmp_path):
    path = tmp_path / "sub" / "run.json"
    seen = []

    def write(tmp):
        with open(tmp, "w") as f:
            f.write("{}")
        seen.append(path.exists())  # not yet visible under its name

    atomic_replace(path, write)
    assert seen == [False] and path.read_text() == "{}"
    write_text(path, "[1]\n")
    assert path.read_text() == "[1]\n" and _leftovers(path.parent) == []


def test_files_get_the_users_umask_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644


def test_write_frame_same_results_same_bytes(tmp_path):
    frame = pd.DataFrame({"seed": [0, 1], "mae": [0.123456789, 1 / 3], "diverged": [False, True]})
    write_frame(frame, tmp_path / "a.csv.gz")
    first = (tmp_path / "a.csv.gz").read_bytes()
    write_frame(frame, tmp_path / "a.csv.gz")  # no timestamp in the gzip header
    assert (tmp_path / "a.csv.gz").read_bytes() == first
    text = gzip.decompress(first).decode()
    assert text == "seed,mae,diverged\n0,0.123457,False\n1,0.333333,True\n"
    write_frame(frame, tmp_path / "a.csv")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "a.csv"),
                                  pd.read_csv(tmp_path / "a.csv.gz"))


def test_keep_previous_starts_when_nothing_exists(tmp_path):
    files = [tmp_path / "x.csv", tmp_path / "x.run.json"]
    for resume, overwrite in [(False, False), (True, False), (False, True)]:
        assert keep_previous(files, resume=resume, overwrite=overwrite) is False
    assert not any(f.exists() for f in files)


def test_keep_previous_refuses_both_flags_before_looking(tmp_path):
    with pytest.raises(ValueError, match="--resume .*--overwrite .*not both"):
        keep_previous([tmp_path / "missing.csv"], resume=True, overwrite=True)


def test_keep_previous_never_replaces_silently(tmp_path):
    mine = tmp_path / "x.csv"
    mine.write_text("mine\n")
    files = [mine, tmp_path / "x.run.json"]
    with pytest.raises(FileExistsError, match=r"x\.csv already exist.*--resume .*--overwrite"):
        keep_previous(files)
    assert mine.read_text() == "mine\n"
    assert keep_previous(files, resume=True) is True
    assert keep_previous(files, overwrite=True) is False
    assert mine.read_text() == "mine\n"  # the policy decides; it never deletes


def test_keep_previous_of_a_run_that_cannot_resume(tmp_path):
    (tmp_path / "results.csv").write_text("mine\n")
    for resume in (False, True):
        with pytest.raises(FileExistsError, match="--overwrite") as info:
            keep_previous([tmp_path / "results.csv"], resume=resume, resumable=False)
        assert "--resume" not in str(info.value)
    assert keep_previous([tmp_path / "results.csv"], overwrite=True, resumable=False) is False


def test_check_writable_creates_the_folder_and_leaves_nothing(tmp_path):
    out = tmp_path / "a" / "b"
    check_writable(out)
    assert out.is_dir() and list(out.iterdir()) == []
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(OSError, match="Choose another --out folder"):
        check_writable(blocker / "sub")
    assert blocker.read_text() == "x"


def test_progress_bar_on_and_off(capsys):
    quiet = progress_bar(3, enabled=False)
    quiet.set_description("seed 0")
    quiet.set_postfix_str("1 s")
    quiet.update(1)
    quiet.close()
    assert capsys.readouterr().out == ""
    bar = progress_bar(2)
    bar.set_description("seed 0 mf")
    bar.update(2)
    bar.close()
    assert "seed 0 mf" in capsys.readouterr().out
