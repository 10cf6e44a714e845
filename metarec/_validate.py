"""Argument checks shared by the public entry points: one clear message per bad value.

Every message names the function, the argument, the valid range and the value received, e.g.
``MAML: inner_lr must be a finite number > 0, got nan.`` Booleans are refused where a number
is expected (``True`` is an ``int`` to Python, never what a user meant by a step count).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any


def check_int(where: str, name: str, value: Any, low: int, high: int | None = None,
              why: str = "") -> int:
    """``value`` as an ``int`` if it is an integer in ``[low, high]``; else a clear error."""
    bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
    reason = f" {why}" if why else ""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{where}: {name} must be an integer {bounds}{reason}, got {value!r} "
                        f"({type(value).__name__}).")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{where}: {name} must be an integer {bounds}{reason}, got {value}.")
    return int(value)


def check_positive(where: str, name: str, value: Any, why: str = "") -> float:
    """``value`` as a ``float`` if it is a finite number > 0; else a clear error."""
    reason = f" {why}" if why else ""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{where}: {name} must be a finite number > 0{reason}, got {value!r} "
                        f"({type(value).__name__}).")
    if not math.isfinite(float(value)) or value <= 0:
        raise ValueError(f"{where}: {name} must be a finite number > 0{reason}, got {value}.")
    return float(value)


def check_ks(where: str, ks: Any) -> tuple[int, ...]:
    """The nDCG cut-offs ``ks`` as a tuple of ints >= 1 (a non-empty sequence); else a clear
    error."""
    if isinstance(ks, int | str) or not isinstance(ks, Sequence) or not ks:
        raise TypeError(f"{where}: ks must be a non-empty sequence of cut-offs such as (1, 3), "
                        f"got {ks!r}.")
    return tuple(check_int(where, "every k of ks", k, 1) for k in ks)


RATING_COLUMNS = ("user_id", "item_id", "rating")


def rating_frame(where: str, ratings: Any, hint: str) -> Any:
    """``ratings[["user_id", "item_id", "rating"]]`` as a copy with float64 ratings, or a clear
    error: not a DataFrame, a missing column, no rows, or a missing / NaN / infinite rating
    (the first bad row is named). ``hint`` says what to pass instead, e.g. "the training
    ratings, e.g. ColdStartSplit.train"."""
    import numpy as np
    import pandas as pd

    if not isinstance(ratings, pd.DataFrame):
        raise TypeError(f"{where}: ratings must be a DataFrame with columns user_id, item_id, "
                        f"rating ({hint}), got {type(ratings).__name__}.")
    missing = [c for c in RATING_COLUMNS if c not in ratings.columns]
    if missing:
        raise ValueError(f"{where}: ratings lack the column(s) {missing}; pass a ratings "
                         f"DataFrame (user_id, item_id, rating): {hint}.")
    if ratings.empty:
        raise ValueError(f"{where}: ratings are empty; pass {hint}.")
    frame = ratings[list(RATING_COLUMNS)].copy()
    frame["rating"] = pd.to_numeric(frame["rating"], errors="coerce").astype(np.float64)
    bad = ~np.isfinite(frame["rating"].to_numpy())
    if bad.any():
        row = frame.index[np.flatnonzero(bad)[0]]
        raise ValueError(f"{where}: {int(bad.sum())} rating(s) are missing, NaN or infinite "
                         f"(first at row {row!r}); drop or fix them first.")
    return frame

