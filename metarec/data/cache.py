"""The download cache: folder resolution, checksummed download, atomic extraction.

Cache folder (first that applies):

1. the ``data_dir`` argument;
2. the environment variable ``METAREC_DATA_DIR``;
3. ``$XDG_CACHE_HOME/metarec``, else ``~/.cache/metarec``.

Layout: the folder holds what the official zip extracts to, e.g. ``<dir>/ml-100k/u.data``.

Rules (:func:`ensure_dataset`):

* If every member file the registry lists is present and has the registered SHA-256, the folder
  is used as is and **nothing is written** (the folder may be read-only, e.g. in CI).
  Verification results are memoised in memory per (path, size, mtime, inode), so repeated loads
  in one process hash each file once.
* **A file the package did not write in the same call is never deleted or overwritten.** A
  member with a wrong SHA-256 (a partial, edited or other-version copy) stops the load with
  :class:`~metarec.data.ChecksumMismatchError` before anything is written; the message
  names the file and both checksums and the two ways forward: put the official files (or the
  official archive) in place, or read the folder as a custom copy without verification with
  :func:`~metarec.data.load_movielens_folder` (``--data-path`` on the command line).
* Missing members are restored from ``<dir>/<name>.zip`` if that archive exists (a manually
  downloaded copy; it is verified first, and a wrong checksum raises
  :class:`~metarec.data.ChecksumMismatchError` and leaves the archive in place), else
  downloaded when ``download=True``. Only missing members are installed, never on top of an
  existing file.
* Download: stream the publisher's URL into a temporary file inside the cache folder, verify
  the archive's SHA-256, extract the needed members into a temporary folder, verify each
  member's SHA-256, then move each missing one into place atomically (a hard link, which fails
  rather than replace a file that appeared meanwhile). The package's own temporary files (the
  partial download, a downloaded archive that fails its checksum, the extraction folder) are
  removed on any exception, so an interrupted download never leaves a half-written file.

Every failure raises :class:`~metarec.data.errors.DataError` naming the fix.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from metarec.data.errors import ChecksumMismatchError, DataError
from metarec.data.registry import DatasetInfo, get_info

__all__ = [
    "ENV_VAR",
    "MemberStatus",
    "check_dataset",
    "download_dataset",
    "ensure_dataset",
    "get_data_dir",
    "sha256_file",
]

#: Environment variable that overrides the default cache folder.
ENV_VAR = "METAREC_DATA_DIR"

_CHUNK = 1 << 20
# (path, size, mtime_ns, inode) -> sha256; lets repeated loads skip re-hashing unchanged files.
_HASH_MEMO: dict[tuple[str, int, int, int], str] = {}


def get_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The cache folder: ``data_dir``, else ``$METAREC_DATA_DIR``, else the user cache.

    Parameters
    ----------
    data_dir : path-like, optional
        Explicit folder; wins over everything else.

    Returns
    -------
    Path
        Absolute path (not created, not required to exist).

    Examples
    --------
    >>> get_data_dir("/tmp/movielens")
    PosixPath('/tmp/movielens')
    """
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser().absolute()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser().absolute()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return (base / "metarec").absolute()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks (memoised per size/mtime/inode).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x"
    >>> _ = p.write_bytes(b"abc")
    >>> sha256_file(p)[:16]
    'ba7816bf8f01cfea'
    """
    path = Path(path)
    st = path.stat()
    key = (str(path.absolute()), st.st_size, st.st_mtime_ns, st.st_ino)
    if key not in _HASH_MEMO:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
        _HASH_MEMO[key] = digest.hexdigest()
    return _HASH_MEMO[key]


@dataclass(frozen=True)
class MemberStatus:
    """Verification result of one member file.

    ``status`` is ``"ok"``, ``"missing"`` or ``"mismatch"``; ``actual`` is the file's SHA-256
    (``None`` when missing).
    """

    member: str
    path: Path
    status: str
    expected: str
    actual: str | None


def check_dataset(
    name: str, data_dir: str | os.PathLike[str] | None = None
) -> list[MemberStatus]:
    """Verify the member files of ``name`` in the cache folder; read-only.

    Returns
    -------
    list of MemberStatus
        One entry per registered member, in registry order.

    Examples
    --------
    >>> [s.status for s in check_dataset("ml-100k", "/nonexistent")][:2]
    ['missing', 'missing']
    """
    info = get_info(name)
    root = get_data_dir(data_dir)
    result = []
    for member, expected in info.members.items():
        path = root / member
        if not path.is_file():
            result.append(MemberStatus(member, path, "missing", expected, None))
            continue
        actual = sha256_file(path)
        status = "ok" if actual == expected else "mismatch"
        result.append(MemberStatus(member, path, status, expected, actual))
    return result


def ensure_dataset(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
) -> Path:
    """Make sure the verified member files of ``name`` are in the cache; return its folder.

    Parameters
    ----------
    name : str
        A key of :data:`~metarec.data.registry.DATASETS` (``"ml-100k"``, ``"ml-1m"``).
    data_dir : path-like, optional
        Cache folder (see :func:`get_data_dir`).
    download : bool
        Allow downloading from the publisher when files are missing. A manually placed
        archive ``<dir>/<name>.zip`` is used (verified and extracted) even when ``False``.

    Returns
    -------
    Path
        ``<dir>/<name>``, holding every registered member with the registered SHA-256.

    Raises
    ------
    ChecksumMismatchError
        A member file or the manually placed archive differs from the official release. The
        file is left untouched; the message names it, both checksums and the fixes.
    DataError
        Files missing and ``download=False``; download failed (no network); downloaded archive
        corrupt; member missing from the archive; cache folder not writable.

    Examples
    --------
    >>> folder = ensure_dataset("ml-100k")          # doctest: +SKIP
    >>> sorted(p.name for p in folder.iterdir())    # doctest: +SKIP
    ['README', 'u.data', ...]
    """
    info = get_info(name)
    root = get_data_dir(data_dir)
    statuses = check_dataset(name, root)
    if all(s.status == "ok" for s in statuses):
        return root / info.name  # valid cache: no write at all
    mismatched = [s for s in statuses if s.status == "mismatch"]
    if mismatched:
        # Never "repair" by deleting or overwriting: the file may be the user's only copy.
        raise _mismatch_error(info, root, mismatched)

    missing = [s.member for s in statuses if s.status == "missing"]
    archive = root / info.archive_name
    if archive.is_file():
        _install_local_archive(info, archive, root, missing)
    elif download:
        _download_and_install(info, root, missing)
    else:
        raise DataError(
            f"{info.name} is not in the cache folder {root}: missing "
            f"{', '.join(missing)}. {_how_to_get(info, root)}"
        )
    # A file may have appeared while we installed (another process): judge what is there now.
    statuses = check_dataset(name, root)
    mismatched = [s for s in statuses if s.status == "mismatch"]
    if mismatched:
        raise _mismatch_error(info, root, mismatched)
    still_missing = [s.member for s in statuses if s.status == "missing"]
    if still_missing:
        raise DataError(
            f"{', '.join(still_missing)} could not be installed in {root}. "
            f"{_how_to_get(info, root)}"
        )
    return root / info.name


def download_dataset(name: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Download (if needed) and verify ``name``; same as ``ensure_dataset(download=True)``."""
    return ensure_dataset(name, data_dir, download=True)


# ----------------------------------------------------------------------------------------------
# Internals


def _how_to_get(info: DatasetInfo, root: Path) -> str:
    return (
        f"Download it with `python -m metarec data download {info.name} --data-dir {root}` "
        f"(or pass download=True). Without internet, download {info.url} elsewhere and put it "
        f"at {root / info.archive_name} (it is verified and extracted on the next load), or put "
        f"the extracted files at {root / info.name}/ (e.g. {root / next(iter(info.members))}), "
        f"or set {ENV_VAR} to a folder that holds them."
    )


def _try_remove(path: Path) -> bool:
    """Remove one of the package's own temporary files (never a user's file)."""
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return True
    except OSError:
        return False


def _custom_copy_hint(folder: Path) -> str:
    return (
        f"read the folder as a custom copy without checksum verification (results are not "
        f"comparable with the official release): "
        f"`metarec.data.load_movielens_folder({str(folder)!r})` in Python, or "
        f"`--data-path {folder}` on the command line."
    )


def _mismatch_error(
    info: DatasetInfo, root: Path, mismatched: list[MemberStatus]
) -> ChecksumMismatchError:
    folder = root / info.name
    files = "; ".join(
        f"{s.path} has SHA-256 {s.actual}, expected {s.expected}" for s in mismatched
    )
    these, the_file = (("this file", "the file") if len(mismatched) == 1
                       else ("these files", "the files"))
    message = (
        f"{files}: not {the_file} of the official {info.archive_name} (a partial, edited or "
        f"other-version copy). Nothing was deleted or overwritten. Either\n"
        f"(1) use the official release: move {these} away, then put the files of the official "
        f"{info.archive_name} at {folder}/ or the archive itself at {root / info.archive_name} "
        f"(it is verified and extracted on the next load), or run "
        f"`python -m metarec data download {info.name} --data-dir {root}`; or\n"
        f"(2) {_custom_copy_hint(folder)}"
    )
    return ChecksumMismatchError(
        message, [(s.path, s.expected, s.actual or "") for s in mismatched]
    )


def _make_root(info: DatasetInfo, root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
        # Probe writability: a read-only cache must fail here, not halfway through a download.
        fd, probe = tempfile.mkstemp(dir=root, prefix=f".{info.name}.", suffix=".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise DataError(
            f"The cache folder {root} is not writable ({err}), so {info.name} cannot be "
            f"downloaded there. Pass data_dir=... (or --data-dir) or set {ENV_VAR} to a "
            f"writable folder, or put the extracted files at {root / info.name}/."
        ) from err


def _fetch(url: str, dest: Path) -> None:
    """Stream ``url`` into the existing file ``dest``, with a progress bar.

    Tests replace this function to simulate the network.
    """
    request = urllib.request.Request(url, headers={"User-Agent": "metarec"})
    with urllib.request.urlopen(request, timeout=60) as response, open(dest, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                  desc=url.rsplit("/", 1)[-1]) as bar:
            while chunk := response.read(1 << 16):
                out.write(chunk)
                bar.update(len(chunk))


def _download_and_install(info: DatasetInfo, root: Path, missing: list[str]) -> None:
    _make_root(info, root)
    fd, tmp_name = tempfile.mkstemp(dir=root, prefix=f".{info.archive_name}.", suffix=".part")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            _fetch(info.url, tmp)
        except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
            raise DataError(
                f"Could not download {info.name} from {info.url} ({err}); missing "
                f"{', '.join(missing)}. If this machine has no internet, download the archive "
                f"elsewhere and put it at {root / info.archive_name} (it is verified and "
                f"extracted on the next load), or put the extracted files at "
                f"{root / info.name}/, or set {ENV_VAR} to a folder that holds them."
            ) from err
        actual = sha256_file(tmp)
        if actual != info.archive_sha256:
            size = tmp.stat().st_size
            raise DataError(
                f"The downloaded {info.archive_name} has SHA-256 {actual} ({size} bytes), "
                f"expected {info.archive_sha256} ({info.archive_bytes} bytes): the download was "
                f"corrupted or the file changed on the server. It was removed. Retry "
                f"`python -m metarec data download {info.name}`; if it keeps failing, download "
                f"{info.url} by hand, check its SHA-256 and put it at "
                f"{root / info.archive_name}."
            )
        _extract_members(info, tmp, root, f"the downloaded {info.archive_name}", missing)
    finally:
        _try_remove(tmp)


def _install_local_archive(
    info: DatasetInfo, archive: Path, root: Path, missing: list[str]
) -> None:
    actual = sha256_file(archive)
    if actual != info.archive_sha256:
        # The user put this archive here: report it, never delete it.
        raise ChecksumMismatchError(
            f"The archive {archive} has SHA-256 {actual}, expected {info.archive_sha256}: it is "
            f"truncated or not the official {info.archive_name}. It was left in place and "
            f"nothing was installed. Either\n"
            f"(1) move it away, then download {info.url} again and put it at {archive}, or run "
            f"`python -m metarec data download {info.name} --data-dir {root}`; or\n"
            f"(2) if it holds your own copy, extract it and "
            f"{_custom_copy_hint(root / info.name)}",
            [(archive, info.archive_sha256, actual)],
        )
    _make_root(info, root)
    _extract_members(info, archive, root, str(archive), missing)


def _extract_members(
    info: DatasetInfo, archive: Path, root: Path, source: str, missing: list[str]
) -> None:
    """Extract and verify every registered member, then put the ``missing`` ones in place.

    Existing files are never replaced (see :func:`_place`).
    """
    tmpdir = Path(tempfile.mkdtemp(dir=root, prefix=f".{info.name}.extract-"))
    try:
        try:
            zf = zipfile.ZipFile(archive)
        except (zipfile.BadZipFile, OSError) as err:
            raise DataError(
                f"{source} is not a readable zip archive ({err}). Delete it and run "
                f"`python -m metarec data download {info.name}`."
            ) from err
        with zf:
            names = set(zf.namelist())
            absent = [m for m in info.members if m not in names]
            if absent:
                raise DataError(
                    f"{source} lacks the member(s) {', '.join(absent)}, so it is not the "
                    f"official {info.archive_name}. Delete it and run "
                    f"`python -m metarec data download {info.name}`, or download {info.url} "
                    f"by hand and put it at {root / info.archive_name}."
                )
            for member, expected in info.members.items():
                dest = tmpdir / member
                dest.parent.mkdir(parents=True, exist_ok=True)
                digest = hashlib.sha256()
                with zf.open(member) as src, open(dest, "wb") as out:
                    while chunk := src.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                if digest.hexdigest() != expected:
                    raise DataError(
                        f"{member} in {source} has SHA-256 {digest.hexdigest()}, expected "
                        f"{expected}: the archive is not the official {info.archive_name}. "
                        f"Nothing was installed. Delete it and run "
                        f"`python -m metarec data download {info.name}`."
                    )
        # Everything verified: only now touch the real cache, one atomic step per file.
        for member in missing:
            final = root / member
            final.parent.mkdir(parents=True, exist_ok=True)
            _place(tmpdir / member, final)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _place(src: Path, final: Path) -> None:
    """Move ``src`` to ``final`` atomically unless ``final`` exists (then leave both alone).

    ``os.link`` fails if the target exists, so a file that appeared meanwhile is never
    overwritten; ``ensure_dataset`` verifies it afterwards.
    """
    try:
        os.link(src, final)
    except FileExistsError:
        return
    except OSError:  # no hard links on this file system: check, then rename
        if not final.exists():
            os.replace(src, final)

