"""Helpers for the book's notebooks: numbers quoted in the text, visible in plain Jupyter too.

The book's chapters quote computed numbers in their prose with MyST's ``{glue:text}`` role. In
the built HTML the role shows the number; a reader who opens the notebook in Jupyter sees only
the raw role. :func:`glue` stores the value for the role (``myst_nb.glue``) *and* prints it in
the cell's output, so both readers see every quoted number, next to the code that computes it.

Example
-------
>>> from metarec.notebook import glue
>>> glue("n_trials", 32, display=False)  # doctest: +SKIP
n_trials = 32   (quoted in the text)
"""

from __future__ import annotations

import numbers
from typing import Any

__all__ = ["format_quoted", "glue"]


def format_quoted(value: Any) -> str:
    """How :func:`glue` prints ``value``: integers as they are, other numbers with 4
    significant digits (the text's own format may round further), anything else as ``str``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Number):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    return f"{float(value):.4g}"


def glue(name: str, value: Any, display: bool = False) -> None:
    """``myst_nb.glue(name, value, display)``, and print ``name = value`` in the cell output.

    The printed line lets a Jupyter reader see the number the HTML shows in place of
    ``{glue:text}`name```. Without myst-nb installed (a notebook run outside the book's
    environment) the value is only printed.
    """
    try:
        from myst_nb import glue as myst_glue
    except ImportError:  # pragma: no cover - the book's environment has myst-nb
        myst_glue = None
    if myst_glue is not None:
        myst_glue(name, value, display=display)
    print(f"{name} = {format_quoted(value)}   (quoted in the text)")
