"""The download cache: folder resolution, verification, download, errors, atomicity."""

from __future__ import annotations

import shutil
import urllib.error
from dataclasses import replace
from pathlib import Path

import pytest

from metarec.data import (
    DATASETS,
    ChecksumMismatchError,
    DataError,
    check_dataset,
    get_data_dir,
    load_movielens,
)
from metarec.data import cache as cache_module


def _all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# ------------------------------------------------------------------------------ folder choice


def test_data_dir_resolution_order(monkeypatch, tmp_path):
    monkeypatch.setenv("METAREC_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert get_data_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert get_data_dir() == tmp_path / "env"
    monkeypatch.delenv("METAREC_DATA_DIR")
    assert get_data_dir() == tmp_path / "xdg" / "metarec"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert get_data_dir() == tmp_path / "home" / ".cache" / "metarec"


def test_registry_entries():
    info = DATASETS["ml-100k"]
    assert info.url.endswith("/ml-100k.zip") and info.archive_name == "ml-100k.zip"
    assert info.archive_sha256.startswith("50d2a982")
    assert set(info.members) == {f"ml-100k/u.{x}" for x in
                                 ("data", "item", "user", "genre", "occupation")}
    assert set(DATASETS["ml-1m"].members) == {"ml-1m/ratings.dat", "ml-1m/users.dat",
                                              "ml-1m/movies.dat"}
    assert all(len(h) == 64 for d in DATASETS.values() for h in d.members.values())


# --------------------------------------------------------------------- valid cache, no write


def test_valid_cache_is_used_without_any_write(ml100k, write_guard):
    root = get_data_dir()
    guard = write_guard(root)
    cache_module._HASH_MEMO.clear()  # force real re-verification under the guard
    ds = load_movielens("ml-100k", download=True)
    assert ds.n_ratings == ml100k.n_ratings
    assert guard.attempts == []
    assert all(s.status == "ok" for s in check_dataset("ml-100k"))


def test_write_guard_really_blocks_writes(tmp_path, write_guard):
    guard = write_guard(tmp_path)
    with pytest.raises(PermissionError):
        (tmp_path / "x").write_text("no")
    assert guard.attempts and not (tmp_path / "x").exists()


def test_read_only_cache_with_missing_files_says_so(tmp_path, write_guard, monkeypatch):
    monkeypatch.setattr(cache_module, "_fetch", _unexpected_fetch)
    write_guard(tmp_path)
    with pytest.raises(DataError) as info:
        load_movielens("ml-100k", data_dir=tmp_path, download=True)
    assert "not writable" in str(info.value) and "METAREC_DATA_DIR" in str(info.value)


def _unexpected_fetch(url, dest):
    raise AssertionError("no download expected")


# ---------------------------------------------------------------------------------- download


def test_download_path_with_a_fake_archive(tmp_path, mlfix, fixture_registry, monkeypatch):
    server = mlfix.zip(tmp_path / "server" / "ml-100k.zip", "ml-100k")
    fixture_registry("ml-100k", archive=server)
    calls = []

    def fake_fetch(url, dest):
        calls.append(url)
        assert Path(dest).parent == root  # temporary file inside the cache folder
        shutil.copyfile(server, dest)

    root = tmp_path / "cache"
    monkeypatch.setattr(cache_module, "_fetch", fake_fetch)
    ds = load_movielens("ml-100k", data_dir=root)
    assert calls == [DATASETS["ml-100k"].url]
    assert (ds.n_users, ds.n_items, ds.n_ratings) == (4, 4, 7)
    # Only the members, in the official layout; no temporary file or archive left behind.
    assert _all_files(root) == ["ml-100k", *sorted(f"ml-100k/{f}" for f in mlfix.files["ml-100k"])]
    # Second load: already valid, no new download.
    load_movielens("ml-100k", data_dir=root)
    assert len(calls) == 1


def test_real_fetch_streams_a_url(tmp_path, mlfix, fixture_registry, monkeypatch):
    # urllib serves file:// URLs like http ones (with Content-Length): the real _fetch runs.
    server = mlfix.zip(tmp_path / "server" / "ml-100k.zip", "ml-100k")
    fixture_registry("ml-100k", archive=server)
    monkeypatch.setitem(DATASETS, "ml-100k", replace(DATASETS["ml-100k"], url=server.as_uri()))
    root = tmp_path / "cache"
    ds = load_movielens("ml-100k", data_dir=root)
    assert ds.n_ratings == 7
    assert _all_files(root) == ["ml-100k", *sorted(f"ml-100k/{f}" for f in mlfix.files["ml-100k"])]


def test_no_network_message_names_folder_and_archive(tmp_path, monkeypatch):
    def offline(url, dest):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(cache_module, "_fetch", offline)
    with pytest.raises(DataError) as info:
        load_movielens("ml-100k", data_dir=tmp_path)
    message = str(info.value)
    assert "Could not download ml-100k" in message
    assert str(tmp_path / "ml-100k.zip") in message
    assert str(tmp_path / "ml-100k") in message
    assert "METAREC_DATA_DIR" in message
    assert isinstance(info.value.__cause__, urllib.error.URLError)
    assert _all_files(tmp_path) == []


def test_interrupted_download_leaves_nothing(tmp_path, monkeypatch):
    def half_then_fail(url, dest):
        Path(dest).write_bytes(b"PK\x03\x04 partial")
        raise ConnectionResetError("connection reset by peer")

    monkeypatch.setattr(cache_module, "_fetch", half_then_fail)
    with pytest.raises(DataError, match="connection reset"):
        load_movielens("ml-100k", data_dir=tmp_path)
    assert _all_files(tmp_path) == []


def test_keyboard_interrupt_during_download_leaves_nothing(tmp_path, monkeypatch):
    def interrupted(url, dest):
        Path(dest).write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_module, "_fetch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_movielens("ml-100k", data_dir=tmp_path)
    assert _all_files(tmp_path) == []


def test_corrupt_download_is_rejected_and_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module, "_fetch",
                        lambda url, dest: Path(dest).write_bytes(b"not the archive"))
    with pytest.raises(DataError) as info:
        load_movielens("ml-100k", data_dir=tmp_path)
    message = str(info.value)
    assert DATASETS["ml-100k"].archive_sha256 in message  # expected
    assert cache_module.hashlib.sha256(b"not the archive").hexdigest() in message  # actual
    assert "It was removed" in message and "python -m metarec data download ml-100k" in message
    assert _all_files(tmp_path) == []


def test_bad_member_in_archive_installs_nothing(tmp_path, mlfix, fixture_registry, monkeypatch):
    server = mlfix.zip(tmp_path / "server" / "ml-100k.zip", "ml-100k")
    fixture_registry("ml-100k", archive=server)
    info = DATASETS["ml-100k"]
    members = dict(info.members, **{"ml-100k/u.user": "f" * 64})
    monkeypatch.setitem(DATASETS, "ml-100k", cache_module.DatasetInfo(
        info.name, info.url, info.archive_sha256, info.archive_bytes, members))
    monkeypatch.setattr(cache_module, "_fetch", lambda url, dest: shutil.copyfile(server, dest))
    root = tmp_path / "cache"
    with pytest.raises(DataError, match=r"ml-100k/u\.user in the downloaded ml-100k\.zip"):
        load_movielens("ml-100k", data_dir=root)
    assert _all_files(root) == []  # u.data etc. were verified but not installed either


def test_archive_missing_a_member(tmp_path, mlfix, fixture_registry, monkeypatch):
    files = {k: v for k, v in mlfix.files["ml-100k"].items() if k != "u.genre"}
    server = mlfix.zip(tmp_path / "server" / "ml-100k.zip", "ml-100k", files)
    fixture_registry("ml-100k", archive=server)  # registry still lists u.genre
    monkeypatch.setattr(cache_module, "_fetch", lambda url, dest: shutil.copyfile(server, dest))
    root = tmp_path / "cache"
    with pytest.raises(DataError, match=r"lacks the member\(s\) ml-100k/u\.genre"):
        load_movielens("ml-100k", data_dir=root)
    assert _all_files(root) == []


# ------------------------------------------------------------------------- manual archive


def test_manually_placed_archive_is_used(tmp_path, mlfix, fixture_registry, monkeypatch):
    archive = mlfix.zip(tmp_path / "ml-100k.zip", "ml-100k")
    fixture_registry("ml-100k", archive=archive)
    monkeypatch.setattr(cache_module, "_fetch", _unexpected_fetch)
    ds = load_movielens("ml-100k", data_dir=tmp_path, download=False)
    assert ds.n_ratings == 7
    assert (tmp_path / "ml-100k" / "u.data").read_bytes() == mlfix.files["ml-100k"]["u.data"]


def test_corrupt_manual_archive_is_kept(tmp_path, mlfix, fixture_registry, monkeypatch):
    archive = mlfix.zip(tmp_path / "ml-100k.zip", "ml-100k")
    fixture_registry("ml-100k", archive=archive)
    truncated = archive.read_bytes()[:-10]
    archive.write_bytes(truncated)  # truncated after registering
    monkeypatch.setattr(cache_module, "_fetch", _unexpected_fetch)
    with pytest.raises(ChecksumMismatchError) as info:
        load_movielens("ml-100k", data_dir=tmp_path)
    message = str(info.value)
    assert "truncated or not the official ml-100k.zip" in message
    assert DATASETS["ml-100k"].archive_sha256 in message and mlfix.sha(truncated) in message
    assert "It was left in place" in message
    assert f"load_movielens_folder({str(tmp_path / 'ml-100k')!r})" in message
    assert info.value.mismatches == [(archive, DATASETS["ml-100k"].archive_sha256,
                                      mlfix.sha(truncated))]
    assert archive.read_bytes() == truncated  # the user's file, byte-identical
    assert _all_files(tmp_path) == ["ml-100k.zip"]  # and nothing installed


def test_manual_archive_installs_only_missing_members(tmp_path, mlfix, fixture_registry,
                                                      monkeypatch):
    archive = mlfix.zip(tmp_path / "ml-100k.zip", "ml-100k")
    fixture_registry("ml-100k", archive=archive)
    folder = mlfix.write(tmp_path, "ml-100k")
    (folder / "u.user").unlink()
    before = {f: (folder / f).stat().st_ino for f in ("u.data", "u.item", "u.genre")}
    monkeypatch.setattr(cache_module, "_fetch", _unexpected_fetch)
    ds = load_movielens("ml-100k", data_dir=tmp_path, download=False)
    assert ds.n_users == 4
    assert (folder / "u.user").read_bytes() == mlfix.files["ml-100k"]["u.user"]
    # Verified existing files are not replaced, not even by identical bytes.
    assert {f: (folder / f).stat().st_ino for f in before} == before


def test_place_never_overwrites(tmp_path):
    (tmp_path / "new").write_bytes(b"ours")
    (tmp_path / "existing").write_bytes(b"theirs")
    cache_module._place(tmp_path / "new", tmp_path / "existing")
    assert (tmp_path / "existing").read_bytes() == b"theirs"
    cache_module._place(tmp_path / "new", tmp_path / "target")
    assert (tmp_path / "target").read_bytes() == b"ours"


# ---------------------------------------------------------------- cached files with problems


def test_member_checksum_mismatch_keeps_the_file(tmp_path, mlfix, fixture_registry,
                                                 write_guard, monkeypatch):
    folder = mlfix.write(tmp_path, "ml-100k")
    fixture_registry("ml-100k")
    good = mlfix.files["ml-100k"]["u.data"]
    bad = good.replace(b"\t5\t", b"\t1\t", 1)
    (folder / "u.data").write_bytes(bad)
    monkeypatch.setattr(cache_module, "_fetch", _unexpected_fetch)
    guard = write_guard(tmp_path)
    with pytest.raises(ChecksumMismatchError) as info:
        load_movielens("ml-100k", data_dir=tmp_path, download=True)
    assert guard.attempts == []  # nothing deleted, overwritten or even attempted
    message = str(info.value)
    assert f"{folder / 'u.data'} has SHA-256 {mlfix.sha(bad)}, expected {mlfix.sha(good)}" in (
        message)
    assert "Nothing was deleted or overwritten" in message
    # Option 1: the official files or archive; option 2: the custom-copy reader.
    assert f"put the files of the official ml-100k.zip at {folder}/" in message
    assert f"the archive itself at {tmp_path / 'ml-100k.zip'}" in message
    assert f"python -m metarec data download ml-100k --data-dir {tmp_path}" in message
    assert f"`metarec.data.load_movielens_folder({str(folder)!r})`" in message
    assert f"`--data-path {folder}`" in message
    assert info.value.mismatches == [(folder / "u.data", mlfix.sha(good), mlfix.sha(bad))]
    assert isinstance(info.value, DataError)
    assert (folder / "u.data").read_bytes() == bad
    assert _all_files(tmp_path) == ["ml-100k", *sorted(f"ml-100k/{f}"
                                                       for f in mlfix.files["ml-100k"])]


def test_mismatch_is_not_repaired_by_download_or_archive(tmp_path, mlfix, fixture_registry,
                                                         monkeypatch):
    root = tmp_path / "cache"
    archive = mlfix.zip(root / "ml-100k.zip", "ml-100k")  # the official (fixture) archive
    fixture_registry("ml-100k", archive=archive)
    folder = mlfix.write(root, "ml-100k")
    (folder / "u.item").write_bytes(b"my own items")
    (folder / "u.user").unlink()  # missing, but still nothing is installed
    monkeypatch.setattr(cache_module, "_fetch", _unexpected_fetch)
    with pytest.raises(ChecksumMismatchError, match=r"u\.item has SHA-256"):
        load_movielens("ml-100k", data_dir=root)
    assert (folder / "u.item").read_bytes() == b"my own items"
    assert not (folder / "u.user").exists()
    assert archive.is_file()


def test_several_mismatches_are_all_named(tmp_path, mlfix, fixture_registry):
    folder = mlfix.write(tmp_path, "ml-100k")
    fixture_registry("ml-100k")
    (folder / "u.item").write_bytes(b"a")
    (folder / "u.user").write_bytes(b"b")
    with pytest.raises(ChecksumMismatchError) as info:
        load_movielens("ml-100k", data_dir=tmp_path, download=False)
    assert {m[0].name for m in info.value.mismatches} == {"u.item", "u.user"}
    assert "move these files away" in str(info.value)
    assert (folder / "u.item").read_bytes() == b"a" and (folder / "u.user").read_bytes() == b"b"


def test_partial_real_copy_is_left_byte_identical(ml100k, tmp_path, monkeypatch):
    # The reported case: a partial official copy in the cache folder must survive a load.
    source = get_data_dir() / "ml-100k"
    folder = tmp_path / "ml-100k"
    shutil.copytree(source, folder)
    lines = (folder / "u.data").read_bytes().splitlines(keepends=True)
    partial = b"".join(lines[: len(lines) // 2])
    (folder / "u.data").write_bytes(partial)
    monkeypatch.setattr(cache_module, "_fetch", _unexpected_fetch)
    with pytest.raises(ChecksumMismatchError) as info:
        load_movielens("ml-100k", data_dir=tmp_path, download=True)
    assert str(folder / "u.data") in str(info.value)
    assert DATASETS["ml-100k"].members["ml-100k/u.data"] in str(info.value)
    assert cache_module.hashlib.sha256(partial).hexdigest() in str(info.value)
    assert (folder / "u.data").read_bytes() == partial


def test_download_false_with_missing_files(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module, "_fetch", _unexpected_fetch)
    with pytest.raises(DataError) as info:
        load_movielens("ml-100k", data_dir=tmp_path, download=False)
    message = str(info.value)
    assert "missing ml-100k/u.data" in message
    assert "python -m metarec data download ml-100k" in message
    assert "download=True" in message
    assert _all_files(tmp_path) == []


def test_check_dataset_is_read_only(tmp_path, mlfix, fixture_registry, write_guard):
    folder = mlfix.write(tmp_path, "ml-100k")
    fixture_registry("ml-100k")
    (folder / "u.genre").write_bytes(b"changed")
    (folder / "u.user").unlink()
    guard = write_guard(tmp_path)
    statuses = {s.member: s.status for s in check_dataset("ml-100k", tmp_path)}
    assert statuses["ml-100k/u.genre"] == "mismatch"
    assert statuses["ml-100k/u.user"] == "missing"
    assert statuses["ml-100k/u.data"] == "ok"
    assert guard.attempts == []
