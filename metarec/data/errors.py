"""The one exception type of the data layer.

Every problem with data on disk (missing file, wrong checksum, malformed row, no network) raises
:class:`DataError` with a message that names the problem *and* the fix, so a notebook or a CI
log tells the reader what to do next.
"""

from __future__ import annotations

__all__ = ["DataError"]


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
