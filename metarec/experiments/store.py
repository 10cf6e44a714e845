"""Results files of a study: how they are written, and what happens to an earlier run's files.

Every study (:mod:`~metarec.experiments.recipe_study`, :mod:`~metarec.experiments.grid_study`,
:mod:`~metarec.experiments.when_study`) and ``python -m metarec train`` store their results
through this module, so they all keep the same promises (CONTRIBUTING.md, "Never lose a
user's file"):

* :func:`~metarec.experiments.check_writable`: the output folder is checked *before* any
  training, so an unwritable ``--out`` costs seconds, not hours;
* :func:`~metarec.experiments.atomic_replace` (and :func:`~metarec.experiments.write_text`,
  :func:`~metarec.experiments.write_frame`): a file is written to a temporary file beside it
  and renamed, so it is never half-written, even when the process is killed;
* :func:`~metarec.experiments.keep_previous`: the resume/overwrite policy. Files of an earlier
  run are continued only with ``resume`` (``--resume``), replaced only with ``overwrite``
  (``--overwrite``), and otherwise refused with a ``FileExistsError`` before anything runs;
* ``output_lock``: one run writes a folder at a time. A lock
  file holding the writer's process id is created before anything runs and removed on exit;
  another run into the same folder is refused (``FolderLocked``)
  unless the lock is stale (its process is dead);
* ``progress_bar``: the bar over a study's (seed, method or cell) jobs;
* ``record_provenance``: ``NAME.provenance.json`` beside a benchmark's results names the data
  they were computed on (official release with its checksum, or a custom folder with the
  sha256 of its rating file, or synthetic data), as ``run.json`` does for ``train``; a
  resumed run on other data is refused, so results of two data sources never mix.

Example
-------
::

    files = [out / "mine.csv", out / "mine.run.json"]
    check_writable(out)                      # OSError now, not after training
    if keep_previous(files, resume=resume, overwrite=overwrite):
        rows = pd.read_csv(files[0])         # continue the earlier run
    ...
    write_frame(pd.DataFrame(rows), files[0])  # after every finished job
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "LOCK_NAME",
    "FolderLocked",
    "atomic_replace",
    "check_writable",
    "keep_previous",
    "output_lock",
    "progress_bar",
    "record_provenance",
    "write_frame",
    "write_tables",
    "write_text",
]


def check_writable(out_dir: str | Path) -> None:
    """Create ``out_dir`` if needed and check a file can be written there (before training).

    Raises ``OSError`` naming the folder and the fix (another ``--out``).
    """
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".write-test-"):
            pass
    except OSError as err:
        raise OSError(f"Cannot write results into {out_dir}: {err.strerror or err}. Choose "
                      "another --out folder (nothing was trained).") from None


#: The lock file of a folder a run is writing (see ``output_lock``).
LOCK_NAME = ".metarec.lock"


class FolderLocked(OSError):
    """Another run, still alive, is writing the output folder."""


def _holder(path: Path) -> dict[str, Any]:
    try:
        holder = json.loads(path.read_text())
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {}  # being written this instant, or damaged: judged by its pid (none: stale)


def _alive(holder: dict[str, Any]) -> bool:
    """Whether the process of a lock may still run (another machine's: assumed alive)."""
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    if holder.get("host") != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


@contextlib.contextmanager
def output_lock(out_dir: str | Path, command: str = "", key: str | None = None) -> Iterator[Path]:
    """Reserve ``out_dir`` (or its files named by ``key``) for this run: checked writable, then
    locked until the block ends.

    The lock is the file :data:`LOCK_NAME` in ``out_dir`` (``.metarec.<key>.lock`` with a
    ``key``: runs writing different files of one folder, such as two benchmarks in
    ``results/``, go side by side), created exclusively and holding this process's id, host,
    start time and ``command``; it is removed on exit (also on an error or Ctrl-C). A lock
    whose process is dead (killed run) is stale: it is replaced. Raises ``OSError``
    (:func:`check_writable`) or :class:`FolderLocked`, naming the other run and the fix,
    before anything runs.

    Example
    -------
    ::

        with output_lock(out, "python -m metarec train maml"):
            ...  # train, then write the results files
    """
    out_dir = Path(out_dir)
    check_writable(out_dir)
    path = out_dir / (LOCK_NAME if key is None else f".metarec.{key}.lock")
    mine = {"pid": os.getpid(), "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": command}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _holder(path)
            if _alive(holder):
                what = out_dir if key is None else f"{out_dir} ({key})"
                raise FolderLocked(
                    f"{what} is being written by another run (process {holder['pid']} on "
                    f"{holder.get('host', '?')} since {holder.get('started', '?')}: "
                    f"{holder.get('command') or 'a metarec command'}). Wait for it to finish "
                    f"or choose another --out folder; if that run no longer exists, remove "
                    f"{path}.") from None
            path.unlink(missing_ok=True)  # stale: its process is dead
            continue
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(mine))
        break
    else:
        raise FolderLocked(f"Could not lock {out_dir}: {path} keeps reappearing (another run "
                           "starting at the same moment?); choose another --out folder.")
    try:
        yield path
    finally:
        if _holder(path).get("pid") == os.getpid():
            path.unlink(missing_ok=True)


def atomic_replace(path: str | Path, write: Callable[[str], None]) -> None:
    """Create ``path`` by ``write(temporary path)`` then a rename: never a half-written file.

    The temporary file lies in ``path``'s folder (a rename across file systems would not be
    atomic). If ``write`` raises, or the process is interrupted, the temporary file is removed
    and ``path`` keeps its earlier contents. The file gets the permissions of a normally
    created one (the user's umask), not the temporary file's 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (:func:`atomic_replace`)."""
    atomic_replace(path, lambda tmp: Path(tmp).write_text(text))


def write_frame(frame: pd.DataFrame, path: str | Path) -> None:
    """Write ``frame`` as CSV (gzip if the name ends in ``.gz``) atomically, floats as ``%.6f``.

    The same results give the same bytes: no index column, six decimals, and neither a
    timestamp nor a file name (the temporary file's, random) in the gzip header.
    """
    path = Path(path)
    if path.suffix == ".gz":
        data = gzip.compress(frame.to_csv(index=False, float_format="%.6f").encode(), mtime=0)
        atomic_replace(path, lambda tmp: Path(tmp).write_bytes(data))
    else:
        atomic_replace(path, lambda tmp: frame.to_csv(tmp, index=False, float_format="%.6f"))


def keep_previous(files: Iterable[str | Path], *, resume: bool = False,
                  overwrite: bool = False, resumable: bool = True) -> bool:
    """The resume/overwrite policy: whether to continue the earlier run whose ``files`` exist.

    ``files`` are the results files a run writes. Returns True when the run must keep and
    continue them (``resume`` and some exist), False when it starts afresh (none exists, or
    ``overwrite``: the caller replaces them). Raises before anything runs:

    * ``ValueError`` if both ``resume`` and ``overwrite`` are set;
    * ``FileExistsError`` if some exist and neither is set, naming the files and the flags
      (``--resume`` only when the run is ``resumable``).
    """
    if resume and overwrite:
        raise ValueError("Pass --resume (resume=True: continue the run in the output folder) "
                         "or --overwrite (overwrite=True: replace it), not both.")
    existing = [Path(p) for p in files if Path(p).exists()]
    if not existing or overwrite:
        return False
    if resume and resumable:
        return True
    again = ("Pass --resume (resume=True) to continue that run, --overwrite (overwrite=True) "
             "to replace it," if resumable else
             "Pass --overwrite (overwrite=True) to replace it")
    raise FileExistsError(
        f"{', '.join(str(p) for p in existing)} already exist(s), maybe the results of "
        f"another run. {again} or choose another --out folder.")


def record_provenance(out_dir: str | Path, name: str, source: dict[str, Any], *,
                      overwrite: bool = False, **details: Any) -> Path:
    """Write ``out_dir/NAME.provenance.json``: the data source of benchmark ``name``'s results.

    ``source`` is :func:`metarec.data.movielens.data_source`'s record; ``details`` are added
    as they are (e.g. ``synthetic_kwargs``). The file's content depends on the data only (no
    time, no command), so the runs and tunings of one benchmark, side by side or one after
    the other, write the same file. Called before anything runs.

    Raises
    ------
    metarec.data.errors.DataError
        The file exists and names another source (or cannot be read), unless ``overwrite``:
        the results in ``out_dir`` were computed on other data, and continuing would mix them.
    """
    from metarec.data.errors import DataError
    from metarec.data.movielens import describe_source

    path = Path(out_dir) / f"{name}.provenance.json"
    # As it reads back from the file (tuples become lists), to compare with an earlier one.
    record = json.loads(json.dumps({"benchmark": name, "data_source": source, **details}))
    if path.exists() and not overwrite:
        try:
            earlier = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise DataError(f"{path} cannot be read ({err}); it records the data of the "
                            "results beside it. Restore it, or choose another --out "
                            "folder.") from None
        if earlier == record:
            return path
        before = (describe_source(earlier["data_source"]) if isinstance(earlier, dict)
                  and isinstance(earlier.get("data_source"), dict)
                  and "kind" in earlier["data_source"] else repr(earlier))
        raise DataError(
            f"{path} says the results of {name!r} in {Path(out_dir)} were computed on "
            f"{before}{_details(earlier)}, but this run reads {describe_source(source)}"
            f"{_details(record)}: results of two data sources would mix. Use the same data, "
            "choose another --out folder, or pass --overwrite to replace the earlier "
            "results.")
    write_text(path, json.dumps(record, indent=1, sort_keys=True) + "\n")
    return path


def _details(record: Any) -> str:
    if not isinstance(record, dict):
        return ""
    extra = {k: v for k, v in record.items() if k not in ("benchmark", "data_source")}
    return f" ({extra})" if extra else ""


class _NoBar:
    """The progress bar's interface, doing nothing (``progress=False``)."""

    def update(self, n: int = 1) -> None: ...
    def set_description(self, text: str) -> None: ...
    def set_postfix_str(self, text: str) -> None: ...
    def close(self) -> None: ...


def write_tables(frames: dict[str, list[pd.DataFrame]], paths: dict[str, Path],
                 leading: Sequence[str]) -> None:
    """Write each non-empty list of ``frames`` to ``paths[key]`` (atomically) as one table.

    Columns named in ``leading`` that the table has come first, in that order (the identifying
    columns of a study's files); the others follow in their own order.
    """
    import pandas as pd  # at call time: the command line imports this module without pandas

    for key, parts in frames.items():
        if not parts:
            continue
        frame = pd.concat(parts, ignore_index=True)
        first = [c for c in leading if c in frame.columns]
        write_frame(frame[first + [c for c in frame.columns if c not in first]], paths[key])


def progress_bar(total: int, enabled: bool = True) -> Any:
    """A text progress bar over ``total`` jobs on stdout (tqdm), or a silent stand-in.

    Both have ``update(n)``, ``set_description(text)``, ``set_postfix_str(text)`` and
    ``close()``.
    """
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, file=sys.stdout, ascii=True, unit="run")
