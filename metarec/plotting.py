"""Matplotlib helpers for the book: learning curves, adaptation curves, result tables.

Every function draws on a given ``ax`` (or a new figure) and returns the ``Axes``, so notebooks
can combine them. Nothing here computes results; it only shows them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def _axes(ax: plt.Axes | None, figsize: tuple[float, float] = (6, 4)) -> plt.Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def plot_history(
    history: Any,
    keys: Sequence[str] = ("loss",),
    ax: plt.Axes | None = None,
    label: str | None = None,
    **line_kwargs: Any,
) -> plt.Axes:
    """Learning curves from a Keras ``History`` (or its ``.history`` dict), one line per key.

    Examples
    --------
    >>> plot_history(learner.fit(tasks, epochs=5), keys=("loss", "val_mae"))  # doctest: +SKIP
    """
    logs = getattr(history, "history", history)
    ax = _axes(ax)
    for key in keys:
        if key not in logs:
            raise KeyError(f"plot_history: no {key!r} in the history; it has {sorted(logs)}.")
        values = logs[key]
        name = key if label is None else f"{label} {key}"
        ax.plot(np.arange(1, len(values) + 1), values, label=name, **line_kwargs)
    ax.set_xlabel("epoch")
    ax.legend()
    ax.grid(alpha=0.3)
    return ax


def plot_curves(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    xlabel: str,
    ylabel: str,
    ax: plt.Axes | None = None,
    errors: Mapping[str, Sequence[float]] | None = None,
    marker: str = "o",
) -> plt.Axes:
    """Several named ``(x, y)`` curves on one axis, with optional error bars.

    Used for adaptation curves (error against inner steps) and cold-start curves (error
    against the number of support ratings).
    """
    ax = _axes(ax)
    for name, (x, y) in curves.items():
        if errors is not None and name in errors:
            ax.errorbar(x, y, yerr=errors[name], label=name, marker=marker, capsize=3)
        else:
            ax.plot(x, y, label=name, marker=marker)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend()
    ax.grid(alpha=0.3)
    return ax


def plot_results(
    table: pd.DataFrame,
    metric: str,
    method_col: str = "method",
    group_col: str = "scenario",
    err_col: str | None = None,
    ax: plt.Axes | None = None,
) -> plt.Axes:
    """Grouped bar chart of ``metric`` per method within each group (e.g. scenario)."""
    ax = _axes(ax, figsize=(8, 4))
    groups = list(dict.fromkeys(table[group_col]))
    methods = list(dict.fromkeys(table[method_col]))
    width = 0.8 / max(len(methods), 1)
    for j, method in enumerate(methods):
        rows = table[table[method_col] == method].set_index(group_col).reindex(groups)
        x = np.arange(len(groups)) + (j - (len(methods) - 1) / 2) * width
        yerr = rows[err_col].to_numpy() if err_col else None
        ax.bar(x, rows[metric].to_numpy(), width, yerr=yerr, label=method, capsize=2)
    ax.set_xticks(np.arange(len(groups)), groups)
    ax.set_ylabel(metric)
    ax.legend(fontsize="small", ncol=2)
    ax.grid(alpha=0.3, axis="y")
    return ax
