"""Shared fixtures: the real MovieLens 100K, small MovieLens-format fixtures, a write guard.

MovieLens comes from the normal cache resolution (``METAREC_DATA_DIR``; CI points it at a
read-only copy). Tests that need it FAIL with the loader's message when it is unavailable.
"""

from __future__ import annotations

import hashlib
import os
import sys
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from metarec.data import DATASETS, DataError, load_movielens, make_synthetic

# ----------------------------------------------------------------------------------------------
# Write guard: an audit hook that makes any write under watched folders fail (and records it).
# Tests run as root, for whom chmod does not make a folder read-only, so a hook it is.

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_MUTATING_EVENTS = {
    "os.remove", "os.rmdir", "os.mkdir", "os.rename", "os.chmod", "os.chown", "os.truncate",
    "os.link", "os.symlink", "os.utime", "shutil.rmtree", "tempfile.mkstemp",
    "tempfile.mkdtemp",
}


class WriteGuard:
    """Records (and blocks with ``PermissionError``) writes under the watched folders."""

    def __init__(self) -> None:
        self.roots: list[str] = []
        self.attempts: list[tuple[str, str]] = []

    def _watched(self, path: object) -> str | None:
        if isinstance(path, int) or path is None:
            return None
        try:
            text = os.path.abspath(os.fsdecode(os.fspath(path)))  # type: ignore[arg-type]
        except TypeError:
            return None
        for root in self.roots:
            if text == root or text.startswith(root + os.sep):
                return text
        return None

    def hook(self, event: str, args: tuple) -> None:
        if not self.roots:
            return
        if event == "open":
            path, mode, flags = args
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & _WRITE_FLAGS)
            paths = [path] if writes else []
        elif event in _MUTATING_EVENTS:
            paths = [a for a in args if isinstance(a, (str, bytes, os.PathLike))]
        else:
            return
        for path in paths:
            hit = self._watched(path)
            if hit is not None:
                self.attempts.append((event, hit))
                raise PermissionError(13, f"write blocked by the test write guard ({event})", hit)


_GUARD = WriteGuard()
sys.addaudithook(_GUARD.hook)  # permanent by design of audit hooks; inert while roots is empty


@pytest.fixture
def write_guard() -> Iterator[Callable[[Path], WriteGuard]]:
    """``guard = write_guard(folder)``: block and record writes under ``folder`` for the test."""

    def watch(folder: Path) -> WriteGuard:
        _GUARD.roots.append(os.path.abspath(folder))
        return _GUARD

    _GUARD.attempts.clear()
    try:
        yield watch
    finally:
        _GUARD.roots.clear()
        _GUARD.attempts.clear()


# ----------------------------------------------------------------------------------------------
# Real data


@pytest.fixture(scope="session")
def ml100k():
    """MovieLens 100K through the default cache resolution; fails (never skips) if unavailable."""
    try:
        return load_movielens("ml-100k", download=True)
    except DataError as err:
        problem = str(err)
    # Outside the except block, so the report shows the message, not a chained traceback.
    pytest.fail(f"MovieLens 100K is required by this test and could not be loaded: {problem}",
                pytrace=False)


@pytest.fixture(scope="session")
def synthetic_small():
    """A small synthetic dataset (fast) for split/feature/task tests."""
    return make_synthetic(n_users=300, n_items=200, ratings_per_user=(15, 120), seed=0)


# ----------------------------------------------------------------------------------------------
# MovieLens-format fixtures written by the tests themselves (never the real files).

ML100K_GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                 "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                 "Romance", "Sci-Fi", "Thriller", "War", "Western"]


def _flags(*names: str) -> str:
    return "|".join("1" if g in names else "0" for g in ML100K_GENRES)


ML100K_FIXTURE: dict[str, bytes] = {
    "u.genre": ("".join(f"{g}|{i}\n" for i, g in enumerate(ML100K_GENRES)) + "\n").encode(),
    "u.occupation": b"administrator\nartist\nstudent\nother\n",
    "u.user": b"1|24|M|student|85711\n2|53|F|other|94043\n3|17|M|artist|T8H1N\n"
              b"4|56|F|administrator|01002\n",
    "u.item": "".join([
        "1|Toy Story (1995)|01-Jan-1995||http://x|"
        + _flags("Animation", "Children's", "Comedy") + "\n",
        "2|Misérables, Les (1995)|01-Jan-1995||http://x|" + _flags("Drama", "Musical") + "\n",
        "3|unknown||||" + _flags("unknown") + "\n",
        "4|Contact (1997)|11-Jul-1997||http://x|" + _flags("Drama", "Sci-Fi") + "\n",
    ]).encode("latin-1"),
    "u.data": b"1\t1\t5\t881250949\n1\t2\t3\t881250950\n2\t1\t4\t881250951\n"
              b"2\t4\t2\t881250952\n3\t3\t1\t881250953\n4\t4\t5\t881250954\n"
              b"3\t1\t4\t881250955\n",
}

ML1M_FIXTURE: dict[str, bytes] = {
    "users.dat": b"1::F::1::10::48067\n2::M::56::16::70072\n3::M::25::15::55117\n",
    "movies.dat": (
        "1::Toy Story (1995)::Animation|Children's|Comedy\n"
        "2::Misérables, Les (1995)::Drama|Musical\n"
        "3::Grumpier Old Men (1995)::Comedy|Romance\n"
        "4::Contact (1997)::Drama|Sci-Fi\n"
    ).encode("latin-1"),
    "ratings.dat": b"1::1::5::978300760\n1::3::3::978302109\n2::2::4::978301968\n"
                   b"2::4::5::978300275\n3::1::1::978824291\n",
}

FIXTURES = {"ml-100k": ML100K_FIXTURE, "ml-1m": ML1M_FIXTURE}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_fixture(root: Path, name: str, files: dict[str, bytes] | None = None) -> Path:
    """Write the fixture files of ``name`` to ``root/name``; returns that folder."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    for fname, data in (files or FIXTURES[name]).items():
        (folder / fname).write_bytes(data)
    return folder


def build_zip(path: Path, name: str, files: dict[str, bytes] | None = None) -> Path:
    """A zip laid out like the official archive (members ``name/<file>``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for fname, data in (files or FIXTURES[name]).items():
            zf.writestr(f"{name}/{fname}", data)
    return path


@pytest.fixture
def fixture_registry(monkeypatch) -> Callable[..., None]:
    """``fixture_registry(name, files=None, archive=None)``: make DATASETS[name] describe the
    fixture files (and the archive at ``archive``) instead of the official release."""

    def patch(name: str, files: dict[str, bytes] | None = None, archive: Path | None = None):
        files = files or FIXTURES[name]
        info = DATASETS[name]
        members = {f"{name}/{fname}": _sha(data) for fname, data in files.items()}
        archive_sha = _sha(archive.read_bytes()) if archive is not None else "0" * 64
        size = archive.stat().st_size if archive is not None else 0
        monkeypatch.setitem(DATASETS, name, replace(info, members=members,
                                                    archive_sha256=archive_sha,
                                                    archive_bytes=size))

    return patch


class MovieLensFixtures:
    """Helpers to write MovieLens-format fixtures (exposed through the ``mlfix`` fixture)."""

    files = FIXTURES
    write = staticmethod(write_fixture)
    zip = staticmethod(build_zip)
    sha = staticmethod(_sha)


@pytest.fixture
def mlfix() -> type[MovieLensFixtures]:
    return MovieLensFixtures
