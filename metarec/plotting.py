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


def plot_cold_start_split(split: Any, ax: plt.Axes | None = None) -> plt.Axes:
    """The four cold-start scenarios of a split as blocks of the user x item plane.

    Rows are user groups (meta-train, validation, new users), columns item groups (existing,
    new items); each block's height and width are proportional to the number of users and
    items, and its label gives the ratings and tasks (``split.summary()["task_users"]``) of the
    scenario. Blocks that no scenario uses are grey.

    Parameters
    ----------
    split : ColdStartSplit
        From :func:`metarec.data.cold_start_split`.
    ax : Axes, optional

    Examples
    --------
    >>> plot_cold_start_split(cold_start_split(ds, seed=0))  # doctest: +SKIP
    """
    ax = _axes(ax, figsize=(9, 5))
    table = split.summary()
    user_groups = [("meta-train users", len(split.meta_train_users)),
                   ("validation users", len(split.validation_users)),
                   ("new users", len(split.new_users))]
    item_groups = [("existing items", len(split.existing_items)),
                   (f"new items (year >= {split.new_item_year})", len(split.new_items))]

    def counts(part: str, sep: str = "\n") -> str:
        row = table.loc[part]
        return f"{row['ratings']} ratings{sep}{row['task_users']} tasks"

    # (user group, item group) -> (colour, text); one colour per scenario.
    blocks = {
        (0, 0): ("tab:blue", f"meta-train: {counts('train', ', ')}\n"
                             f"warm query: {counts('warm_query', ', ')}"),
        (0, 1): ("tab:orange", f"item-cold\n{counts('item_cold')}"),
        (1, 0): ("tab:cyan", f"validation: {counts('validation', ', ')}"),
        (1, 1): ("lightgrey", "unused"),
        (2, 0): ("tab:green", f"user-cold\n{counts('user_cold')}"),
        (2, 1): ("tab:red", f"user-item-cold\n{counts('user_item_cold')}"),
    }
    n_users = sum(n for _, n in user_groups)
    n_items = sum(n for _, n in item_groups)
    y_top = n_users
    for r, (user_name, n_u) in enumerate(user_groups):
        x_left = 0
        for c, (_, n_i) in enumerate(item_groups):
            colour, text = blocks[(r, c)]
            ax.add_patch(plt.Rectangle((x_left, y_top - n_u), n_i, n_u, facecolor=colour,
                                       alpha=0.35, edgecolor="black"))
            ax.text(x_left + n_i / 2, y_top - n_u / 2, text, ha="center", va="center",
                    fontsize="small")
            x_left += n_i
        ax.text(-0.01 * n_items, y_top - n_u / 2, f"{user_name}\n({n_u})", ha="right",
                va="center", fontsize="small")
        y_top -= n_u
    x_left = 0
    for item_name, n_i in item_groups:
        ax.text(x_left + n_i / 2, -0.01 * n_users, f"{item_name} ({n_i})", ha="center",
                va="top", fontsize="small")
        x_left += n_i
    ax.set_xlim(0, n_items)
    ax.set_ylim(0, n_users)
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def plot_intervals(
    table: pd.DataFrame,
    label_col: str,
    ax: plt.Axes | None = None,
    mean_col: str = "mean_diff",
    low_col: str = "ci_low",
    high_col: str = "ci_high",
    xlabel: str = "difference",
    better: str = "left",
) -> plt.Axes:
    """Horizontal 95% intervals, one row per line of ``table``, with a vertical line at 0.

    Intervals that exclude 0 on the ``better`` side are drawn in blue, on the other side in red,
    the rest in grey (not significant). Used for paired differences (meta scheme minus
    conventional training): ``better="left"`` for errors (MAE), ``"right"`` for nDCG.

    Examples
    --------
    >>> plot_intervals(diffs.query("scenario == 'user_cold'"), "label")   # doctest: +SKIP
    """
    ax = _axes(ax, figsize=(5, 0.3 * len(table) + 1))
    y = np.arange(len(table))[::-1]
    lo, hi = table[low_col].to_numpy(float), table[high_col].to_numpy(float)
    good = hi < 0 if better == "left" else lo > 0
    bad = lo > 0 if better == "left" else hi < 0
    colors = np.where(good, "tab:blue", np.where(bad, "tab:red", "0.55"))
    mean = table[mean_col].to_numpy(float)
    for yi, m, a, b, c in zip(y, mean, lo, hi, colors, strict=True):
        ax.plot([a, b], [yi, yi], color=c, lw=2)
        ax.plot(m, yi, "o", color=c, ms=4)
    ax.axvline(0.0, color="k", lw=0.8)
    ax.set_yticks(y, table[label_col].tolist())
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    return ax


def plot_band(
    x: Sequence[float],
    mean: Sequence[float],
    low: Sequence[float],
    high: Sequence[float],
    label: str,
    ax: plt.Axes | None = None,
    **line_kwargs: Any,
) -> plt.Axes:
    """A curve with a shaded interval (e.g. mean and 95% interval over seeds).

    Examples
    --------
    >>> plot_band(sizes, mae, lo, hi, label="MAML")                        # doctest: +SKIP
    """
    ax = _axes(ax)
    (line,) = ax.plot(x, mean, marker="o", ms=3, label=label, **line_kwargs)
    ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, lw=0)
    ax.grid(alpha=0.3)
    return ax
