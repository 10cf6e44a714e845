"""The exception types of the data layer.

Every problem with data on disk (missing file, wrong checksum, malformed row, no network) raises
:class:`DataError` with a message that names the problem *and* the fix, so a notebook or a CI
log tells the reader what to do next. A checksum mismatch of a file the user put in place raises
the subclass :class:`ChecksumMismatchError`, which also carries the paths and checksums.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ChecksumMismatchError", "DataError"]


class DataError(RuntimeError):
    """A dataset cannot be found, downloaded, verified or parsed.

    The message always says how to fix it (where to put a file, which command to run).

    Examples
    --------
    >>> try:
    ...     raise DataError("ml-100k/u.data is missing; run `python -m metarec data download "
    ...                     "ml-100k`.")
    ... except RuntimeError as err:
    ...     print(type(err).__name__)
    DataError
    """


class ChecksumMismatchError(DataError):
    """Files in the cache folder differ from the official release; they were left untouched.

    Raised by :func:`~metarec.data.ensure_dataset` (and so by
    :func:`~metarec.data.load_movielens`) when a member file or a manually placed
    archive has another SHA-256 than the registered one. The package never deletes or
    overwrites such a file: the message lists the two ways forward (put the official files in
    place, or read the folder as a custom copy with
    :func:`~metarec.data.load_movielens_folder`).

    Attributes
    ----------
    mismatches : list of (Path, str, str)
        ``(path, expected SHA-256, actual SHA-256)`` of every mismatched file.

    Examples
    --------
    >>> err = ChecksumMismatchError("u.data differs", [(Path("u.data"), "a" * 64, "b" * 64)])
    >>> err.mismatches[0][0].name, isinstance(err, DataError)
    ('u.data', True)
    """

    def __init__(self, message: str, mismatches: list[tuple[Path, str, str]]) -> None:
        super().__init__(message)
        self.mismatches = list(mismatches)
