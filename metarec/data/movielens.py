"""MovieLens 100K and 1M: verified download (via :mod:`metarec.data.cache`) and parsing.

Two ways in:

* :func:`load_movielens` -- the official release, checksum-verified in the cache folder
  (downloaded if needed). This is what results should be reported on.
* :func:`load_movielens_folder` -- any folder in MovieLens format (a partial, filtered or
  edited copy), read **without** checksum verification. The format (ml-100k ``u.data`` or
  ml-1m ``ratings.dat``) is detected, a ``UserWarning`` says the results are not comparable
  with the official release, and the dataset keeps the format's ``name`` (so format defaults
  such as the new-item year of :func:`~metarec.data.cold_start_split` apply) with
  ``source`` set to the folder (``dataset.custom`` is ``True``).

Both datasets are decoded into the same :class:`~metarec.data.dataset.RatingsDataset` tables:

==============  ================================  ==========================================
field           ml-100k (``u.*``, ``|``/tab)       ml-1m (``*.dat``, ``::``)
==============  ================================  ==========================================
gender          ``u.user`` M/F                     ``users.dat`` M/F
age             raw age, bucketed to ml-1m codes   age code (1, 18, 25, 35, 45, 50, 56)
occupation      name from ``u.user``               code 0..20 mapped to its ml-1m README name
zip_prefix      first character of the zip code    first character of the zip code
genres          19 flags, names from ``u.genre``   ``|``-separated names (18 genres)
year            release date ``01-Jan-1995``       ``(1995)`` at the end of the title
title           Latin-1 decoded                    Latin-1 decoded
==============  ================================  ==========================================

ml-100k ages are bucketed as ml-1m does: <18 -> 1, 18-24 -> 18, 25-34 -> 25, 35-44 -> 35,
45-49 -> 45, 50-55 -> 50, 56+ -> 56. A malformed row raises :class:`DataError` with the file,
the line number, the offending text and the fix.
"""

from __future__ import annotations

import csv
import io
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from metarec.data.cache import ensure_dataset, sha256_file
from metarec.data.dataset import RatingsDataset
from metarec.data.errors import DataError
from metarec.data.registry import get_info

__all__ = [
    "AGE_CODES",
    "ML1M_GENRES",
    "ML1M_OCCUPATIONS",
    "RatingsDataset",
    "age_to_code",
    "data_source",
    "describe_source",
    "load_movielens",
    "load_movielens_folder",
    "read_movielens",
]

#: ml-1m age codes; each is the lower bound of its bucket ("1" means under 18).
AGE_CODES: tuple[int, ...] = (1, 18, 25, 35, 45, 50, 56)

#: ml-1m occupation codes (index) -> name, from the ml-1m README.
ML1M_OCCUPATIONS: tuple[str, ...] = (
    "other or not specified", "academic/educator", "artist", "clerical/admin",
    "college/grad student", "customer service", "doctor/health care", "executive/managerial",
    "farmer", "homemaker", "K-12 student", "lawyer", "programmer", "retired", "sales/marketing",
    "scientist", "self-employed", "technician/engineer", "tradesman/craftsman", "unemployed",
    "writer",
)

#: The 18 genres of ml-1m ``movies.dat``, in the README's order.
ML1M_GENRES: tuple[str, ...] = (
    "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
)

_UNIT_SEP = "\x1f"  # replaces the two-character "::" so pandas' fast C parser can be used
_DATE_YEAR = re.compile(r"^\d{1,2}-[A-Za-z]{3}-(\d{4})$")
_TITLE_YEAR = r"\((\d{4})\)\s*$"
# Format name -> the ratings file that identifies a folder in that format.
_FORMAT_FILES: dict[str, str] = {"ml-100k": "u.data", "ml-1m": "ratings.dat"}
# Format name -> every file the parser reads.
_FORMAT_MEMBERS: dict[str, tuple[str, ...]] = {
    "ml-100k": ("u.data", "u.item", "u.user", "u.genre", "u.occupation"),
    "ml-1m": ("ratings.dat", "users.dat", "movies.dat"),
}
# Format name -> the file of each table (to blame the right file in messages).
_FORMAT_MEMBERS_BY_ROLE: dict[str, dict[str, str]] = {
    "ml-100k": {"ratings": "u.data", "items": "u.item", "users": "u.user"},
    "ml-1m": {"ratings": "ratings.dat", "items": "movies.dat", "users": "users.dat"},
}


def age_to_code(age: np.ndarray | Sequence[int]) -> np.ndarray:
    """Bucket raw ages into ml-1m age codes.

    Examples
    --------
    >>> age_to_code([7, 18, 24, 25, 49, 50, 56, 73]).tolist()
    [1, 18, 18, 25, 45, 50, 56, 56]
    """
    edges = np.asarray(AGE_CODES[1:])
    return np.asarray(AGE_CODES, dtype=np.int64)[
        np.searchsorted(edges, np.asarray(age), side="right")
    ]


def load_movielens(
    name: str, data_dir: str | os.PathLike[str] | None = None, download: bool = True
) -> RatingsDataset:
    """Load MovieLens 100K or 1M from the cache, downloading and verifying it if needed.

    Parameters
    ----------
    name : {"ml-100k", "ml-1m"}
    data_dir : path-like, optional
        Cache folder; default ``$METAREC_DATA_DIR``, else ``~/.cache/metarec``
        (see :func:`metarec.data.get_data_dir`).
    download : bool
        Download from the publisher if the files are missing. With ``False`` a missing file
        raises :class:`DataError` saying how to download.

    Returns
    -------
    RatingsDataset
        ``ratings`` [N rows], ``users`` [n_users rows], ``items`` [n_items rows], ``genres``.

    Raises
    ------
    ChecksumMismatchError
        A file in the cache folder differs from the official release (it is left untouched);
        the message offers :func:`load_movielens_folder` for a custom copy.
    DataError
        Missing files, failed download or malformed row; the message names the fix.

    Examples
    --------
    >>> ds = load_movielens("ml-100k")                       # doctest: +SKIP
    >>> ds                                                   # doctest: +SKIP
    RatingsDataset('ml-100k': 943 users, 1682 items, 100000 ratings, 19 genres)
    """
    info = get_info(name)
    root = ensure_dataset(info.name, data_dir, download=download)
    return read_movielens(info.name, root)


def load_movielens_folder(
    path: str | os.PathLike[str], name: str | None = None
) -> RatingsDataset:
    """Load a custom copy in MovieLens format from ``path``, without checksum verification.

    For copies that differ from the official release (a partial download, a filtered or edited
    copy): nothing is verified, downloaded or written. A ``UserWarning`` says that results on it
    are not comparable with the official release. On the command line: ``--data-path PATH``.

    Parameters
    ----------
    path : path-like
        The folder holding ``u.data``, ``u.item``, ``u.user``, ``u.genre``, ``u.occupation``
        (ml-100k format) or ``ratings.dat``, ``users.dat``, ``movies.dat`` (ml-1m format).
    name : {"ml-100k", "ml-1m"}, optional
        The format; detected from ``u.data`` / ``ratings.dat`` when not given.

    Returns
    -------
    RatingsDataset
        ``name`` is the format (so format defaults apply, e.g. the new-item year of
        :func:`~metarec.data.cold_start_split`); ``source`` is the absolute folder and
        ``custom`` is ``True``. Users without ratings stay in ``users``.

    Raises
    ------
    DataError
        Not a folder, format not recognisable, missing file or malformed row.
    ValueError
        Unknown ``name``.

    Examples
    --------
    >>> ds = load_movielens_folder("/data/my-ml-1m")        # doctest: +SKIP
    UserWarning: Reading /data/my-ml-1m as a custom ml-1m copy without checksum verification...
    >>> ds.name, ds.custom                                  # doctest: +SKIP
    ('ml-1m', True)
    """
    folder = Path(path).expanduser().absolute()
    if name is None:
        name = _detect_format(folder)
    elif name not in _FORMAT_FILES:
        raise ValueError(f"Unknown MovieLens format {name!r}; choose 'ml-100k' or 'ml-1m'.")
    dataset = read_movielens(name, folder)
    dataset.source = str(folder)
    warnings.warn(
        f"Reading {folder} as a custom {name} copy without checksum verification: results on "
        f"it are not comparable with the official MovieLens release (published numbers or runs "
        f"on the verified data). Use load_movielens({name!r}) for the official release.",
        UserWarning, stacklevel=2,
    )
    return dataset


def read_movielens(name: str, folder: str | os.PathLike[str]) -> RatingsDataset:
    """Parse an extracted MovieLens folder, without checksum verification and silently.

    This is the parser behind :func:`load_movielens` (official data) and
    :func:`load_movielens_folder` (custom copies: use that one, it warns and marks the dataset
    as custom); exposed for fixtures.

    Parameters
    ----------
    name : {"ml-100k", "ml-1m"}
    folder : path-like
        The folder holding ``u.data`` etc. (ml-100k) or ``ratings.dat`` etc. (ml-1m).

    Examples
    --------
    >>> read_movielens("ml-100k", "/path/to/ml-100k")        # doctest: +SKIP
    """
    folder = Path(folder)
    if name == "ml-100k":
        return _read_ml100k(folder)
    if name == "ml-1m":
        return _read_ml1m(folder)
    raise ValueError(f"Unknown MovieLens dataset {name!r}; choose 'ml-100k' or 'ml-1m'.")


def data_source(name: str, path: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Where a run's ratings come from, for ``run.json`` and summary lines (provenance).

    Parameters
    ----------
    name : str
        ``"synthetic"``, ``"ml-100k"`` or ``"ml-1m"`` (the dataset, or with ``path`` the format;
        ``"synthetic"`` with ``path`` detects the format as :func:`load_movielens_folder`).
    path : path-like, optional
        A custom folder in MovieLens format (``--data-path``).

    Returns
    -------
    dict of str to str
        ``kind`` is ``"official"`` (``name``, the release's ``archive_sha256`` and the
        ``ratings_sha256`` of its rating file: the loader verifies both before use),
        ``"custom"`` (``name`` the format, the absolute ``path``, the ``rating_file`` and its
        ``sha256`` now) or ``"synthetic"``.

    Examples
    --------
    >>> data_source("ml-100k")["archive_sha256"][:12]
    '50d2a982c669'
    >>> data_source("synthetic")
    {'kind': 'synthetic', 'name': 'synthetic'}
    """
    if path is not None:
        folder = Path(path).expanduser().absolute()
        fmt = name if name in _FORMAT_FILES else _detect_format(folder)
        rating_file = folder / _FORMAT_FILES[fmt]
        try:
            digest = sha256_file(rating_file)
        except OSError as err:
            raise DataError(f"{rating_file} cannot be read ({err.strerror or err}); pass a "
                            "folder in MovieLens format with --data-path.") from None
        return {"kind": "custom", "name": fmt, "path": str(folder),
                "rating_file": rating_file.name, "sha256": digest}
    if name not in _FORMAT_FILES:  # generated (make_synthetic): nothing read from disk
        return {"kind": "synthetic", "name": name}
    info = get_info(name)
    member = next(m for m in info.members if m.endswith(f"/{_FORMAT_FILES[name]}"))
    return {"kind": "official", "name": name, "archive_sha256": info.archive_sha256,
            "ratings_sha256": info.members[member]}


def describe_source(source: dict[str, str]) -> str:
    """One line for :func:`data_source`'s record, e.g. ``official ml-100k (sha256 50d2a982...)``
    or ``custom ml-100k copy /data/x (u.data sha256 1a2b3c4d...)``."""
    if source["kind"] == "official":
        return f"official {source['name']} (sha256 {source['archive_sha256'][:12]}...)"
    if source["kind"] == "custom":
        return (f"custom {source['name']} copy {source['path']} ({source['rating_file']} "
                f"sha256 {source['sha256'][:12]}...)")
    return source["name"]


def _detect_format(folder: Path) -> str:
    expected = " or ".join(f"{f} ({n} format)" for n, f in _FORMAT_FILES.items())
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder. Pass the folder that holds {expected}.")
    found = [n for n, f in _FORMAT_FILES.items() if (folder / f).is_file()]
    if len(found) == 1:
        return found[0]
    if not found:
        raise DataError(f"{folder} holds neither {expected}, so its MovieLens format is "
                        f"unknown. Pass the folder that holds the files themselves.")
    raise DataError(f"{folder} holds both {expected}; pass name='ml-100k' or name='ml-1m'.")


# ----------------------------------------------------------------------------------------------
# ml-100k


def _read_ml100k(folder: Path) -> RatingsDataset:
    name = "ml-100k"
    genres = _read_ml100k_genres(folder / "u.genre")
    occupations = _read_lines(folder / "u.occupation", name)

    path = folder / "u.user"
    users = _read_table(path, "|", {"user_id": int, "age": int, "gender": str,
                                    "occupation": str, "zip": str}, "latin-1", name)
    _check(path, users, ~users["gender"].isin(["M", "F"]), "gender must be M or F", name)
    _check(path, users, users["age"] <= 0, "age must be a positive integer", name)
    _check(path, users, ~users["occupation"].isin(occupations),
           "occupation is not listed in u.occupation", name)
    users = pd.DataFrame({
        "user_id": users["user_id"].astype("int64"),
        "gender": users["gender"].astype(str),
        "age": age_to_code(users["age"].to_numpy()),
        "occupation": users["occupation"].astype(str),
        "zip_prefix": users["zip"].astype(str).str[:1],
    })

    path = folder / "u.item"
    columns: dict[str, type] = {"item_id": int, "title": str, "release_date": str,
                                "video_release_date": str, "url": str}
    columns.update({g: int for g in genres})
    raw_items = _read_table(path, "|", columns, "latin-1", name)
    flags = raw_items[genres].to_numpy()
    _check(path, raw_items, ~np.isin(flags, (0, 1)).all(axis=1), "genre flags must be 0 or 1",
           name)
    dates = raw_items["release_date"].astype(str)
    year_text = dates.str.extract(_DATE_YEAR.pattern, expand=False)
    _check(path, raw_items, (dates != "") & year_text.isna(),
           "release date must look like 01-Jan-1995 or be empty", name)
    items = pd.DataFrame({
        "item_id": raw_items["item_id"].astype("int64"),
        "title": raw_items["title"].astype(str),
        "year": pd.to_numeric(year_text).astype("Int64"),
    })
    items = pd.concat([items, pd.DataFrame(flags.astype(np.int8), columns=genres)], axis=1)

    path = folder / "u.data"
    ratings = _read_table(path, "\t", {"user_id": int, "item_id": int, "rating": int,
                                       "timestamp": int}, "latin-1", name)
    return _finish(name, path, ratings, users, items, genres)


def _read_ml100k_genres(path: Path) -> list[str]:
    genres = []
    for lineno, line in _numbered_lines(path, "ml-100k"):
        if not line.strip():
            continue  # u.genre ends with a blank line
        parts = line.split("|")
        if len(parts) != 2 or parts[1].strip() != str(len(genres)) or not parts[0]:
            _raise_row(path, lineno, line, f"expected 'name|{len(genres)}'", "ml-100k")
        genres.append(parts[0])
    if not genres:
        raise DataError(f"{path} lists no genre. {_fix_text(path, 'ml-100k')}")
    return genres


# ----------------------------------------------------------------------------------------------
# ml-1m


def _read_ml1m(folder: Path) -> RatingsDataset:
    name = "ml-1m"
    path = folder / "users.dat"
    raw_users = _read_table(path, "::", {"user_id": int, "gender": str, "age": int,
                                         "occupation": int, "zip": str}, "latin-1", name)
    _check(path, raw_users, ~raw_users["gender"].isin(["M", "F"]), "gender must be M or F",
           name)
    _check(path, raw_users, ~raw_users["age"].isin(AGE_CODES),
           f"age must be one of the codes {list(AGE_CODES)}", name)
    _check(path, raw_users, ~raw_users["occupation"].between(0, len(ML1M_OCCUPATIONS) - 1),
           f"occupation must be a code 0..{len(ML1M_OCCUPATIONS) - 1}", name)
    users = pd.DataFrame({
        "user_id": raw_users["user_id"].astype("int64"),
        "gender": raw_users["gender"].astype(str),
        "age": raw_users["age"].astype("int64"),
        "occupation": np.asarray(ML1M_OCCUPATIONS, dtype=object)[raw_users["occupation"]],
        "zip_prefix": raw_users["zip"].astype(str).str[:1],
    })
    users["occupation"] = users["occupation"].astype(str)

    path = folder / "movies.dat"
    raw_items = _read_table(path, "::", {"item_id": int, "title": str, "genres": str},
                            "latin-1", name)
    genres = list(ML1M_GENRES)
    multi_hot = raw_items["genres"].astype(str).str.get_dummies(sep="|")
    unknown = [g for g in multi_hot.columns if g not in genres]
    if unknown:
        _check(path, raw_items, multi_hot[unknown].any(axis=1),
               f"unknown genre (expected '|'-separated names from {genres})", name)
    _check(path, raw_items, raw_items["genres"] == "", "the genre list is empty", name)
    titles = raw_items["title"].astype(str)
    items = pd.DataFrame({
        "item_id": raw_items["item_id"].astype("int64"),
        "title": titles,
        "year": pd.to_numeric(titles.str.extract(_TITLE_YEAR, expand=False)).astype("Int64"),
    })
    flags = multi_hot.reindex(columns=genres, fill_value=0).to_numpy().astype(np.int8)
    items = pd.concat([items, pd.DataFrame(flags, columns=genres)], axis=1)

    path = folder / "ratings.dat"
    ratings = _read_table(path, "::", {"user_id": int, "item_id": int, "rating": int,
                                       "timestamp": int}, "latin-1", name)
    return _finish(name, path, ratings, users, items, genres)


# ----------------------------------------------------------------------------------------------
# Shared parsing helpers


def _finish(name: str, path: Path, ratings: pd.DataFrame, users: pd.DataFrame,
            items: pd.DataFrame, genres: list[str]) -> RatingsDataset:
    """Validate ratings against the user/item tables and assemble the dataset."""
    files = _FORMAT_MEMBERS_BY_ROLE[name]
    for table, role in ((users, "users"), (items, "items"), (ratings, "ratings")):
        if len(table) == 0:
            raise DataError(f"{path.parent / files[role]} holds no row (an empty file). "
                            f"{_fix_text(path.parent / files[role], name)}")
    _check(path, ratings, ~ratings["rating"].between(1, 5), "rating must be 1..5", name)
    for key, role in (("user_id", "users"), ("item_id", "items")):
        table = users if role == "users" else items
        other = path.parent / files[role]
        bad = ~ratings[key].isin(table[key])
        if bad.any():
            # The rating names an id the user/item file lacks: usually that file is truncated
            # or edited, so blame (and suggest replacing) that file, not the ratings file.
            row = int(np.flatnonzero(np.asarray(bad))[0])
            lineno = int(ratings.index[row]) + 1
            text = dict(_numbered_lines(path, name))[lineno]
            raise DataError(
                f"{path}, line {lineno}: {text!r} ({key.split('_')[0]} id "
                f"{int(ratings[key].iloc[row])} is not listed in {other}; {int(bad.sum())} "
                f"rating(s) name ids missing there, it lists {len(table)} ids up to "
                f"{int(table[key].max())}). If {other.name} is truncated or edited, "
                f"{_fix_text(other, name)[0].lower()}{_fix_text(other, name)[1:]}")
    dup = ratings.duplicated(["user_id", "item_id"], keep=False)
    if dup.any():
        # One rating in two rows could land in both the support and the query set of a task.
        first = ratings[dup].iloc[0]
        lines = (ratings.index[dup & (ratings["user_id"] == first["user_id"])
                               & (ratings["item_id"] == first["item_id"])] + 1).tolist()
        raise DataError(
            f"{path} rates the same (user, item) pair more than once: user "
            f"{int(first['user_id'])}, item {int(first['item_id'])} on lines {lines} "
            f"({int(ratings.duplicated(['user_id', 'item_id']).sum())} duplicate row(s) in all). "
            "A duplicate could put one rating into both the support and the query set of a "
            "task; keep one row per pair (e.g. the latest). " + _fix_text(path, name))
    ratings = ratings.astype({"user_id": "int64", "item_id": "int64", "rating": "float32",
                              "timestamp": "int64"})
    # One canonical order (user, time, item) so that every seeded step downstream is stable.
    ratings = ratings.sort_values(["user_id", "timestamp", "item_id"], kind="stable")
    users = users.sort_values("user_id", kind="stable").reset_index(drop=True)
    items = items.sort_values("item_id", kind="stable").reset_index(drop=True)
    for table, key, fname in ((users, "user_id", "user"), (items, "item_id", "item")):
        dup = table[key].duplicated()
        if dup.any():
            raise DataError(f"{name}: the {fname} file lists {fname} id "
                            f"{int(table.loc[dup, key].iloc[0])} twice. "
                            f"{_fix_text(path.parent, name)}")
    return RatingsDataset(name=name, ratings=ratings.reset_index(drop=True), users=users,
                          items=items, genres=list(genres)).validate()


def _fix_text(path: Path, name: str) -> str:
    return (f"The file is corrupt or not in {name} format: fix it, or move {path} away and run "
            f"`python -m metarec data download {name}` (or load with download=True) to get "
            f"a verified copy.")


def _raise_row(path: Path, lineno: int, text: str, reason: str, name: str) -> None:
    shown = text if len(text) <= 200 else text[:200] + "..."
    raise DataError(f"Malformed row in {path}, line {lineno}: {shown!r} ({reason}). "
                    f"{_fix_text(path, name)}")


def _numbered_lines(path: Path, name: str):
    """(line number, text) pairs; only "\\n" ends a line (Latin-1 text may contain \\x85)."""
    text = _read_bytes(path, name).decode("latin-1")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [(i + 1, line.rstrip("\r")) for i, line in enumerate(lines)]


def _read_bytes(path: Path, name: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        files = ", ".join(_FORMAT_MEMBERS.get(name, ()))
        raise DataError(f"{path} is missing. Run `python -m metarec data download {name}` "
                        f"(or load with download=True); a custom copy in {name} format needs "
                        f"all of {files}.") from None
    except OSError as err:  # present but unreadable: a folder, no permission, an I/O error
        raise DataError(f"{path} exists but cannot be read ({err.strerror or err}). Make it "
                        f"a readable {name} file.") from None


def _read_lines(path: Path, name: str) -> list[str]:
    return [line for _, line in _numbered_lines(path, name) if line.strip()]


def _check(path: Path, frame: pd.DataFrame, bad: pd.Series | np.ndarray, reason: str,
           name: str) -> None:
    """Raise for the first row flagged ``bad``; rows are file lines (no header, no skips)."""
    bad = np.asarray(bad, dtype=bool)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        lineno = int(frame.index[row]) + 1
        _raise_row(path, lineno, dict(_numbered_lines(path, name))[lineno], reason, name)


def _read_table(path: Path, sep: str, columns: dict[str, type], encoding: str,
                name: str) -> pd.DataFrame:
    """Parse a headerless delimited file with pandas' C parser; locate any malformed line.

    ``columns`` maps column name -> ``int`` or ``str``. Row ``i`` of the result is line
    ``i + 1`` of the file (blank lines are kept, and rejected as malformed).
    """
    raw = _read_bytes(path, name)
    if not raw.strip():
        raise DataError(f"{path} is empty (0 rows). {_fix_text(path, name)}")
    fast_sep = sep
    if len(sep) > 1:
        if _UNIT_SEP.encode() not in raw:
            raw = raw.replace(sep.encode(), _UNIT_SEP.encode())
            fast_sep = _UNIT_SEP
        else:
            fast_sep = ""  # cannot use the fast path; the line scan below reports the problem
    frame = None
    if fast_sep:
        try:
            frame = pd.read_csv(
                io.BytesIO(raw), sep=fast_sep, header=None, names=list(columns),
                dtype={c: (np.int64 if t is int else str) for c, t in columns.items()},
                encoding=encoding, quoting=csv.QUOTE_NONE, skip_blank_lines=False,
                na_filter=False, index_col=False, engine="c",
            )
        except (ValueError, UnicodeDecodeError):  # pandas' ParserError is a ValueError
            frame = None
        # Too few fields do not make pandas fail (they read as ""): count separators instead.
        if frame is not None and raw.count(fast_sep.encode()) != (len(columns) - 1) * len(frame):
            frame = None
    if frame is None:
        _raise_first_bad_line(path, sep, columns, name)
        raise DataError(f"{path} could not be parsed. {_fix_text(path, name)}")
    return frame


def _raise_first_bad_line(path: Path, sep: str, columns: dict[str, type], name: str) -> None:
    n_fields = len(columns)
    for lineno, line in _numbered_lines(path, name):
        fields = line.split(sep)
        if len(fields) != n_fields:
            _raise_row(path, lineno, line,
                       f"expected {n_fields} fields separated by {sep!r}, found {len(fields)}",
                       name)
        for (col, kind), value in zip(columns.items(), fields, strict=True):
            if kind is int and not re.fullmatch(r"\s*[+-]?\d+\s*", value):
                _raise_row(path, lineno, line, f"{col} must be an integer, got {value!r}", name)
