"""Draw the book's explanatory diagrams (not results) as SVG files in ``book/figures/``.

Each diagram is drawn with matplotlib patches from code, so that it is versioned, reviewable and
re-drawn identically: ``python tools/diagrams.py`` writes the same bytes on every run (fixed
``svg.hashsalt``, no date or creator in the metadata, text drawn as paths with matplotlib's own
fonts). ``tests/book/test_diagrams.py`` checks that the committed SVG files equal a fresh run.

Usage::

    python tools/diagrams.py              # rewrite book/figures/*.svg
    python tools/diagrams.py --out DIR    # write them elsewhere (the test uses a temporary folder)

The symbols follow the book's notation page (``book/notation.md``): :math:`\\theta` the
initialisation, :math:`\\phi_i` the adapted (fast) weights of task :math:`i`, :math:`\\alpha` the
inner and :math:`\\beta` the outer learning rate, :math:`\\epsilon` Reptile's interpolation rate.
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Ellipse, FancyArrowPatch, FancyBboxPatch  # noqa: E402

FIGURES = Path(__file__).resolve().parent.parent / "book" / "figures"

# One palette for all diagrams (colour-blind safe: blue / orange / grey / green).
BLUE, ORANGE, GREY, GREEN, RED = "#1f77b4", "#ff7f0e", "#7f7f7f", "#2ca02c", "#d62728"
LIGHT = {BLUE: "#d6e6f4", ORANGE: "#ffe3c6", GREY: "#e6e6e6", GREEN: "#d5efd5", RED: "#f7d4d4"}

STYLE = {
    "svg.hashsalt": "metarec-diagrams",  # fixed ids inside the SVG
    "svg.fonttype": "path",  # glyphs as paths: no dependence on the reader's fonts
    "font.family": "DejaVu Sans",
    "mathtext.fontset": "dejavusans",
    "font.size": 11,
    "path.simplify": True,
}


def _canvas(width: float, height: float) -> tuple[plt.Figure, plt.Axes]:
    """A figure whose data coordinates are inches (0..width, 0..height), axes hidden."""
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig, ax


def _box(ax: plt.Axes, x: float, y: float, w: float, h: float, text: str = "",
         color: str = GREY, size: float = 11, fill: bool = True, weight: str = "normal",
         dashed: bool = False) -> None:
    """A rounded box with centred text; (x, y) is the lower-left corner."""
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
                                facecolor=LIGHT[color] if fill else "none", edgecolor=color,
                                linewidth=1.5, linestyle="--" if dashed else "-"))
    if text:
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size,
                weight=weight)


def _arrow(ax: plt.Axes, start: tuple[float, float], end: tuple[float, float],
           color: str = "black", text: str = "", offset: tuple[float, float] = (0, 0.15),
           size: float = 10, rad: float = 0.0, dashed: bool = False, width: float = 1.5) -> None:
    """An arrow from start to end, with an optional label at its middle (shifted by offset)."""
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=14, color=color,
                                 linewidth=width, linestyle="--" if dashed else "-",
                                 connectionstyle=f"arc3,rad={rad}", shrinkA=2, shrinkB=2))
    if text:
        mx, my = (start[0] + end[0]) / 2 + offset[0], (start[1] + end[1]) / 2 + offset[1]
        ax.text(mx, my, text, ha="center", va="center", fontsize=size, color=color)


def _dot(ax: plt.Axes, x: float, y: float, label: str, color: str = "black",
         dx: float = 0.12, dy: float = 0.12, size: float = 13, ha: str = "left") -> None:
    ax.plot([x], [y], "o", color=color, markersize=7)
    ax.text(x + dx, y + dy, label, fontsize=size, color=color, ha=ha, va="center")


# ---------------------------------------------------------------------------------------------
# The diagrams
# ---------------------------------------------------------------------------------------------


def tasks_support_query() -> plt.Figure:
    """Users as tasks (support and query sets) and the four cold-start scenarios (chapter 2)."""
    fig, ax = _canvas(11, 4.6)
    ax.text(0.2, 4.3, "Every user is a task", fontsize=13, weight="bold")
    rows = [("user 1", 7, 4), ("user 2", 4, 4), ("user 3", 9, 4)]
    for r, (name, n_support, n_query) in enumerate(rows):
        y = 3.4 - r * 0.75
        ax.text(0.2, y + 0.22, name, fontsize=11, va="center")
        for j in range(n_support):
            _box(ax, 1.1 + j * 0.32, y, 0.26, 0.44, "", BLUE)
        x0 = 1.1 + n_support * 0.32 + 0.25
        for j in range(n_query):
            _box(ax, x0 + j * 0.32, y, 0.26, 0.44, "", ORANGE)
    ax.text(0.2, 1.05, "$\\vdots$", fontsize=13)
    _box(ax, 0.3, 0.25, 0.26, 0.3, "", BLUE)
    ax.text(0.7, 0.4, "support set $\\mathcal{D}^s_u$: the few ratings\nthe model adapts on",
            fontsize=10, va="center")
    _box(ax, 3.2, 0.25, 0.26, 0.3, "", ORANGE)
    ax.text(3.6, 0.4, "query set $\\mathcal{D}^q_u$: held-out ratings\nthe adapted model is "
            "scored on", fontsize=10, va="center")

    # The user x item plane of MeLU's four scenarios.
    x0, y0, w, h = 7.3, 0.7, 3.4, 3.0
    ax.text(x0 - 0.6, 4.3, "Four cold-start scenarios", fontsize=13, weight="bold")
    cells = [
        (0, 1, "warm\n(held-out ratings\nof training users)", GREEN),
        (1, 1, "item-cold", ORANGE),
        (0, 0, "user-cold", BLUE),
        (1, 0, "user-item-cold", RED),
    ]
    for col, row, text, color in cells:
        _box(ax, x0 + col * w / 2 + 0.05, y0 + row * h / 2 + 0.05, w / 2 - 0.1, h / 2 - 0.1,
             text, color, size=10)
    ax.text(x0 + w / 4, y0 + h + 0.12, "existing items", ha="center", fontsize=10)
    ax.text(x0 + 3 * w / 4, y0 + h + 0.12, "new items", ha="center", fontsize=10)
    ax.text(x0 - 0.12, y0 + 3 * h / 4, "training\nusers", ha="right", va="center", fontsize=10)
    ax.text(x0 - 0.12, y0 + h / 4, "new\nusers", ha="right", va="center", fontsize=10)
    ax.text(x0 + w / 2, y0 - 0.3, "meta-training uses only training users' ratings on existing "
            "items", ha="center", fontsize=9, color=GREY)
    return fig


def maml_loops() -> plt.Figure:
    """MAML's inner loop (per task) and outer loop (across tasks) (chapter 4)."""
    fig, ax = _canvas(11, 4.6)
    # Left: parameter space, as in Finn et al.'s figure 1.
    ax.text(0.2, 4.3, "In parameter space", fontsize=13, weight="bold")
    theta = (2.2, 2.0)
    optima = [(0.8, 3.4), (4.2, 3.1), (4.3, 1.2)]
    for i, (ox, oy) in enumerate(optima, start=1):
        ax.add_patch(Ellipse((ox, oy), 1.0, 0.6, facecolor=LIGHT[ORANGE], edgecolor=ORANGE,
                             linestyle="--"))
        ax.text(ox, oy + 0.42, f"good for task {i}", ha="center", fontsize=9, color=ORANGE)
        phi = (theta[0] + 0.55 * (ox - theta[0]), theta[1] + 0.55 * (oy - theta[1]))
        _arrow(ax, theta, phi, color=ORANGE)
        _dot(ax, *phi, f"$\\phi_{i}$", color=ORANGE, dx=-0.1, dy=0.22, size=12, ha="right")
    new_theta = (2.55, 2.25)
    _arrow(ax, theta, new_theta, color=BLUE, width=2.5)
    _dot(ax, *theta, "$\\theta$", color=BLUE, dx=-0.35, dy=-0.05, size=14)
    ax.text(0.2, 0.15, "inner loop: $\\phi_i = \\theta - \\alpha\\nabla_\\theta"
            "\\mathcal{L}_{\\mathcal{D}^s_i}(\\theta)$ (orange)\nouter loop: move $\\theta$ so "
            "that every $\\phi_i$ does well on $\\mathcal{D}^q_i$ (blue)", fontsize=9.5)

    # Right: the two loops as a flow chart.
    ax.text(5.8, 4.3, "One outer step", fontsize=13, weight="bold")
    _box(ax, 5.9, 3.45, 4.6, 0.5, "sample a meta-batch of tasks $i = 1, \\dots, n$", GREY,
         size=10)
    _box(ax, 6.2, 1.55, 4.0, 1.5, "", ORANGE, fill=False, dashed=True)
    ax.text(6.3, 2.88, "inner loop, for each task $i$", fontsize=9.5, color=ORANGE, va="center")
    _box(ax, 6.45, 2.15, 3.5, 0.45, "$\\phi_i \\leftarrow \\theta$, then $k$ steps:  "
         "$\\phi_i \\leftarrow \\phi_i - \\alpha\\nabla\\mathcal{L}_{\\mathcal{D}^s_i}(\\phi_i)$",
         ORANGE, size=9.5)
    _box(ax, 6.45, 1.65, 3.5, 0.4, "query loss  $\\ell_i = \\mathcal{L}_{\\mathcal{D}^q_i}"
         "(\\phi_i)$", ORANGE, size=9.5)
    _box(ax, 5.9, 0.45, 4.6, 0.6, "outer update:  $\\theta \\leftarrow \\theta - \\beta\\,"
         "\\nabla_\\theta \\frac{1}{n}\\sum_i \\ell_i$", BLUE, size=10.5)
    _arrow(ax, (8.2, 3.45), (8.2, 3.08))
    _arrow(ax, (8.2, 1.55), (8.2, 1.08))
    _arrow(ax, (10.5, 0.75), (10.5, 3.7), text="repeat", offset=(0.3, 0), size=9)
    return fig


def second_order_graph() -> plt.Figure:
    """The computation graph of one inner step: second order versus first order (chapter 4)."""
    fig, ax = _canvas(11, 4.8)
    for row, (title, first_order) in enumerate([("second order (MAML)", False),
                                                ("first order (FOMAML)", True)]):
        y = 2.75 - row * 2.35
        ax.text(0.2, y + 1.65, title, fontsize=13, weight="bold")
        _box(ax, 0.2, y, 0.8, 0.6, "$\\theta$", BLUE, size=14)
        _box(ax, 1.6, y + 0.8, 2.1, 0.55, "$g = \\nabla_\\theta\\mathcal{L}_{\\mathcal{D}^s}"
             "(\\theta)$", GREY, size=11)
        _box(ax, 4.4, y, 1.8, 0.6, "$\\phi = \\theta - \\alpha g$", ORANGE, size=12)
        _box(ax, 6.8, y, 1.4, 0.6, "$\\mathcal{L}_{\\mathcal{D}^q}(\\phi)$", ORANGE, size=12)
        _arrow(ax, (1.0, y + 0.3), (4.4, y + 0.3), text="identity path", offset=(0, -0.22),
               size=9, color=GREY)
        _arrow(ax, (1.0, y + 0.5), (1.6, y + 1.0), color=GREY)
        _arrow(ax, (3.7, y + 1.0), (4.8, y + 0.6), color=GREY)
        _arrow(ax, (6.2, y + 0.3), (6.8, y + 0.3), color=GREY)
        if first_order:
            ax.text(4.15, y + 0.86, "$\\times$", fontsize=20, color=RED, ha="center",
                    va="center")
            ax.text(4.3, y + 1.25, "stop_gradient(g)", fontsize=9.5, color=RED, ha="left")
            ax.text(8.5, y + 0.3, "$\\nabla_\\theta \\approx \\nabla_\\phi"
                    "\\mathcal{L}_{\\mathcal{D}^q}(\\phi)$\n"
                    "g is treated as a constant,\nso $\\partial\\phi/\\partial\\theta "
                    "\\approx I$", fontsize=9.5, va="center")
        else:
            ax.text(8.5, y + 0.3, "$\\nabla_\\theta = (I - \\alpha \\nabla^2_\\theta"
                    "\\mathcal{L}_{\\mathcal{D}^s})\\,"
                    "\\nabla_\\phi\\mathcal{L}_{\\mathcal{D}^q}(\\phi)$\n"
                    "back through g: a\nHessian-vector product", fontsize=9.5, va="center")
        # The backward pass (red, dashed), drawn under the forward graph.
        _arrow(ax, (6.8, y - 0.12), (6.2, y - 0.12), color=RED, dashed=True)
        _arrow(ax, (4.4, y - 0.12), (1.0, y - 0.12), color=RED, dashed=True,
               text="gradient flows back", offset=(0, -0.2), size=9)
        if not first_order:
            _arrow(ax, (5.0, y + 0.65), (3.75, y + 1.25), color=RED, dashed=True, rad=0.3)
            _arrow(ax, (1.6, y + 1.2), (0.75, y + 0.65), color=RED, dashed=True, rad=0.3)
    return fig


def reptile_vs_maml() -> plt.Figure:
    """Reptile's update beside MAML's, for one task (chapter 5)."""
    fig, ax = _canvas(11, 4.2)
    for panel, title in enumerate(["MAML", "Reptile"]):
        x0 = 0.3 + panel * 5.6
        ax.text(x0, 3.9, title, fontsize=13, weight="bold")
        theta = (x0 + 0.6, 1.0)
        ax.add_patch(Ellipse((x0 + 4.0, 2.9), 1.4, 0.8, facecolor=LIGHT[ORANGE],
                             edgecolor=ORANGE, linestyle="--"))
        ax.text(x0 + 4.0, 2.35, "good for task $i$", ha="center", fontsize=9, color=ORANGE)
        # k inner steps of SGD on the support loss: a bent path.
        path = [theta, (x0 + 1.5, 1.7), (x0 + 2.3, 2.2), (x0 + 3.0, 2.55)]
        for a, b in zip(path[:-1], path[1:], strict=True):
            _arrow(ax, a, b, color=ORANGE)
        phi = path[-1]
        _dot(ax, *phi, "$\\phi_i$", color=ORANGE, dx=0.1, dy=0.2)
        _dot(ax, *theta, "$\\theta$", color=BLUE, dx=-0.4, dy=0.0, size=14)
        # Reptile's inner loop trains on all of a training task's ratings (no query set).
        data = "\\mathcal{D}^s_i" if panel == 0 else "\\mathcal{T}_i"
        ax.text(x0 + 0.9, 2.15, f"$k$ steps of\n$\\alpha\\nabla\\mathcal{{L}}_{{{data}}}$",
                fontsize=9.5, color=ORANGE, ha="center")
        if panel == 0:
            new = (theta[0] + 0.9, theta[1] - 0.05)
            _arrow(ax, theta, new, color=BLUE, width=2.5)
            ax.text(x0 + 2.2, 0.45, "$\\theta \\leftarrow \\theta - \\beta\\nabla_\\theta"
                    "\\mathcal{L}_{\\mathcal{D}^q_i}(\\phi_i)$", fontsize=10.5, color=BLUE,
                    ha="center")
            ax.text(x0 + 2.2, 0.05, "needs the query loss and the derivative through the "
                    "inner steps", fontsize=8.5, color=GREY, ha="center")
        else:
            ax.plot([theta[0], phi[0]], [theta[1], phi[1]], ":", color=BLUE, linewidth=1.2)
            new = (theta[0] + 0.35 * (phi[0] - theta[0]), theta[1] + 0.35 * (phi[1] - theta[1]))
            _arrow(ax, theta, new, color=BLUE, width=2.5)
            ax.text(x0 + 2.2, 0.45, "$\\theta \\leftarrow \\theta + \\epsilon\\,(\\phi_i - "
                    "\\theta)$", fontsize=10.5, color=BLUE, ha="center")
            ax.text(x0 + 2.2, 0.05, "all the task's ratings, no derivative: move a "
                    "fraction $\\epsilon$ towards $\\phi_i$", fontsize=8.5, color=GREY, ha="center")
    return fig


def metasgd_rates() -> plt.Figure:
    """Meta-SGD's inner step with one learned rate per parameter (chapter 5)."""
    fig, ax = _canvas(11, 4.0)
    ax.text(0.2, 3.7, "MAML: one rate $\\alpha$ for all parameters", fontsize=12, weight="bold")
    ax.text(5.8, 3.7, "Meta-SGD: a learned rate per parameter", fontsize=12, weight="bold")
    grads = [0.8, -0.5, 0.3, -0.9, 0.6]
    rates = [0.2, 0.9, 0.5, 0.1, 0.7]  # shades of the learned rates

    def column(x: float, values: list[float], label: str, color: str, shade: bool) -> None:
        for j, v in enumerate(values):
            face = plt.get_cmap("Blues")(0.15 + 0.75 * v) if shade else LIGHT[color]
            ax.add_patch(FancyBboxPatch((x, 2.6 - j * 0.45), 0.5, 0.38,
                                        boxstyle="round,pad=0.01,rounding_size=0.05",
                                        facecolor=face, edgecolor=color, linewidth=1.2))
        ax.text(x + 0.25, 0.45, label, ha="center", fontsize=12)

    # MAML
    column(0.6, [0.5] * 5, "$\\theta$", BLUE, False)
    ax.text(1.45, 1.75, "$-$", fontsize=16, ha="center", va="center")
    ax.text(2.0, 1.75, "$\\alpha$", fontsize=16, ha="center", va="center")
    column(2.4, [abs(g) for g in grads], "$\\nabla\\mathcal{L}_{\\mathcal{D}^s}$", ORANGE, False)
    ax.text(3.3, 1.75, "$=$", fontsize=16, ha="center", va="center")
    column(3.7, [0.5] * 5, "$\\phi$", ORANGE, False)
    ax.text(2.4, 0.0, "a scalar $\\alpha$, chosen by hand", fontsize=9.5, color=GREY,
            ha="center")
    # Meta-SGD
    column(6.1, [0.5] * 5, "$\\theta$", BLUE, False)
    ax.text(6.95, 1.75, "$-$", fontsize=16, ha="center", va="center")
    column(7.3, rates, "$\\boldsymbol{\\alpha}$", BLUE, True)
    ax.text(8.1, 1.75, "$\\circ$", fontsize=16, ha="center", va="center")
    column(8.5, [abs(g) for g in grads], "$\\nabla\\mathcal{L}_{\\mathcal{D}^s}$", ORANGE, False)
    ax.text(9.4, 1.75, "$=$", fontsize=16, ha="center", va="center")
    column(9.8, [0.5] * 5, "$\\phi$", ORANGE, False)
    ax.text(8.2, 0.0, "$\\theta$ and $\\boldsymbol{\\alpha}$ (same shape) both learned by the "
            "outer loop", fontsize=9.5, color=GREY, ha="center")
    return fig


def melu_local_global() -> plt.Figure:
    """MeLU's network and what its local and global updates move (chapter 7)."""
    fig, ax = _canvas(11, 5.0)
    features = ["gender", "age", "occupation", "zip", "decade", "genres"]
    for j, name in enumerate(features):
        y = 3.9 - j * 0.6
        _box(ax, 0.2, y, 1.35, 0.42, name, GREY, size=9.5)
        _box(ax, 2.0, y, 1.1, 0.42, "embed", BLUE, size=9.5)
        _arrow(ax, (1.55, y + 0.21), (2.0, y + 0.21))
        _arrow(ax, (3.1, y + 0.21), (3.7, 2.5), color=GREY, width=1.0)
    ax.text(0.875, 4.5, "user (4) and item (2)\nfeatures", ha="center", fontsize=9,
            color=GREY)
    ax.text(2.55, 4.5, "embeddings\n$d = 32$", ha="center", fontsize=9, color=BLUE)
    _box(ax, 3.7, 2.05, 1.1, 0.9, "concat\n$6d=192$", GREY, size=9.5)
    layers = [("64, ReLU", 5.3), ("64, ReLU", 6.7), ("1", 8.1)]
    previous = 4.8
    for text, x in layers:
        _box(ax, x, 2.1, 1.0, 0.8, text, ORANGE, size=10)
        _arrow(ax, (previous, 2.5), (x, 2.5))
        previous = x + 1.0
    _arrow(ax, (previous, 2.5), (9.6, 2.5))
    ax.text(9.7, 2.5, "$\\hat r_{uj}$", fontsize=14, va="center")
    # Brackets: local (decision layers only) and global (everything).
    _box(ax, 5.15, 1.9, 4.1, 1.55, "", ORANGE, fill=False, dashed=True)
    ax.text(7.2, 3.7, "decision layers (87% of the weights in chapter 7)", ha="center", fontsize=10,
            color=ORANGE, weight="bold")
    ax.text(7.2, 1.3, "local update, per user, on the support set:\n$k$ steps "
            "$\\phi_u \\leftarrow \\phi_u - \\alpha\\nabla\\mathcal{L}_{\\mathcal{D}^s_u}$ "
            "moving the decision layers only", ha="center", fontsize=9.5, color=ORANGE)
    ax.text(2.55, 0.15, "embeddings: shared by all users,\nnever moved by the local update",
            ha="center", fontsize=9.5, color=BLUE)
    _box(ax, 4.3, 0.05, 6.3, 0.55, "global update, across a meta-batch of users: embeddings "
         "and\ndecision layers move by $\\beta$ (Adam) on the query losses "
         "$\\mathcal{L}_{\\mathcal{D}^q_u}(\\phi_u)$", BLUE, size=9.5)
    return fig


def neural_process() -> plt.Figure:
    """A neural process: the support set encoded, averaged, and modulating the decoder (ch. 5b)."""
    fig, ax = _canvas(11, 4.6)
    ax.text(0.2, 4.3, "Adapting without gradient steps", fontsize=13, weight="bold")
    # Encoder: each support rating -> c_ui.
    for j in range(3):
        y = 3.2 - j * 0.75
        _box(ax, 0.2, y, 1.7, 0.5, f"$[\\mathrm{{emb}}(\\mathbf{{x}}_{{u{j + 1}}});\\ "
             f"r_{{u{j + 1}}}]$", BLUE, size=9.5)
        _box(ax, 2.35, y, 0.6, 0.5, "$e$", BLUE, size=11)
        _arrow(ax, (1.9, y + 0.25), (2.35, y + 0.25))
        _arrow(ax, (2.95, y + 0.25), (3.45, y + 0.25))
        ax.text(3.55, y + 0.25, f"$\\mathbf{{c}}_{{u{j + 1}}}$", fontsize=11, va="center")
        _arrow(ax, (4.05, y + 0.25), (4.7, 2.35), color=GREY, width=1.0)
    ax.text(1.05, 3.85, "support ratings $\\mathcal{D}^s_u$", ha="center", fontsize=9.5,
            color=BLUE)
    ax.text(2.65, 3.85, "encoder", ha="center", fontsize=9.5, color=BLUE)
    _box(ax, 3.3, 0.35, 0.9, 0.5, "$\\mathbf{c}_0$", GREEN, size=11)
    ax.text(3.75, 0.1, "learned prior", ha="center", fontsize=9, color=GREEN)
    _arrow(ax, (4.2, 0.6), (5.0, 1.85), color=GREEN, width=1.0)
    _box(ax, 4.7, 1.85, 1.3, 0.95, "mean\n(masked)", GREY, size=10)
    _arrow(ax, (6.0, 2.32), (6.5, 2.32))
    ax.text(6.75, 2.32, "$\\mathbf{c}_u$", fontsize=13, va="center")
    # FiLM maps modulate the decision layers of the MeLU network.
    _arrow(ax, (6.9, 2.6), (7.55, 3.35), color=ORANGE)
    _box(ax, 7.3, 3.35, 2.7, 0.6, "FiLM: $\\boldsymbol{\\gamma}_\\ell(\\mathbf{c}_u)$, "
         "$\\boldsymbol{\\delta}_\\ell(\\mathbf{c}_u)$", ORANGE, size=10)
    _box(ax, 6.4, 0.95, 1.7, 0.55, "query $\\mathrm{emb}(\\mathbf{x}_{uj})$", GREY,
         size=9.5)
    _box(ax, 8.4, 0.95, 1.3, 0.55, "$\\mathbf{h}_\\ell$, ReLU", ORANGE, size=10)
    _arrow(ax, (8.1, 1.22), (8.4, 1.22))
    _arrow(ax, (8.65, 3.35), (9.05, 1.5), color=ORANGE, text="scale, shift",
           offset=(0.55, 0.1), size=9)
    _arrow(ax, (9.7, 1.22), (10.25, 1.22))
    ax.text(10.3, 1.22, "$\\hat r_{uj}$", fontsize=13, va="center")
    ax.text(8.05, 0.3, "$\\mathbf{h}_\\ell \\leftarrow \\mathbf{h}_\\ell \\odot (1 + "
            "\\boldsymbol{\\gamma}_\\ell) + \\boldsymbol{\\delta}_\\ell$: "
            "one forward pass, nothing optimised per user", fontsize=9.5, color=GREY,
            ha="center")
    return fig


def fair_protocol() -> plt.Figure:
    """The fair comparison: tune on validation users, one test-time budget, paired (ch. 8)."""
    fig, ax = _canvas(11, 4.8)
    ax.text(0.2, 4.5, "One protocol for every cell (model x training scheme)", fontsize=13,
            weight="bold")
    steps = [
        ("1. tune", "32 Optuna trials\nper cell, scored on\nvalidation users", BLUE),
        ("2. train", "the chosen setting,\n5 seeds (split,\ninit, task order)", BLUE),
        ("3. adapt", "each test user's\nsupport set, the\nsame 0-10 steps", ORANGE),
        ("4. score", "per-user MAE on\nthe query set, in\n4 scenarios", ORANGE),
        ("5. compare", "meta - conventional,\nsame model, users,\nseed", GREEN),
    ]
    for j, (title, text, color) in enumerate(steps):
        x = 0.2 + j * 2.17
        _box(ax, x, 2.55, 1.85, 1.25, text, color, size=9.5)
        ax.text(x + 0.925, 3.98, title, ha="center", fontsize=10.5, weight="bold", color=color)
        if j:
            _arrow(ax, (x - 0.32, 3.17), (x, 3.17))
    # Who is seen where: the users of one seed's split.
    y = 1.35
    ax.text(0.2, y + 0.75, "the users of one seed", fontsize=10, color=GREY)
    parts = [("training users: meta-training\nand conventional training", 0.2, 4.3, GREY),
             ("validation users:\ntuning, early stopping", 4.6, 2.4, BLUE),
             ("test: new users, held-out ratings and new\nitems; never seen before step 3",
              7.1, 3.7, ORANGE)]
    for text, x, w, color in parts:
        _box(ax, x, y, w, 0.6, text, color, size=9)
    _arrow(ax, (5.8, y + 0.6), (1.125, 2.55), color=BLUE, dashed=True, width=1.0, rad=-0.1)
    ax.text(0.45, 0.55, "verdict: an interval over the 5 runs, Holm's correction over the "
            "comparisons, and a noise floor (re-tuning the same cell);", fontsize=9.5,
            color=GREEN)
    ax.text(0.45, 0.2, "\"helps\" only where the interval excludes zero and the difference "
            "exceeds the floor", fontsize=9.5, color=GREEN)
    ax.plot([0.27], [0.55], "s", color=GREEN, markersize=8)
    return fig


DIAGRAMS: dict[str, Callable[[], plt.Figure]] = {
    "tasks_support_query": tasks_support_query,
    "maml_loops": maml_loops,
    "second_order_graph": second_order_graph,
    "reptile_vs_maml": reptile_vs_maml,
    "metasgd_rates": metasgd_rates,
    "melu_local_global": melu_local_global,
    "neural_process": neural_process,
    "fair_protocol": fair_protocol,
}


def render(name: str) -> bytes:
    """The SVG bytes of one diagram (deterministic: same bytes on every call)."""
    with matplotlib.rc_context(STYLE):
        fig = DIAGRAMS[name]()
        buffer = io.BytesIO()
        # No date, no creator/version string: a re-run gives the same bytes.
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
        plt.close(fig)
    return buffer.getvalue()


def write_all(out: Path = FIGURES) -> list[Path]:
    """Write every diagram to ``out/<name>.svg``; return the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in DIAGRAMS:
        path = out / f"{name}.svg"
        tmp = path.with_suffix(".svg.tmp")
        tmp.write_bytes(render(name))
        tmp.replace(path)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=FIGURES, help="output folder")
    args = parser.parse_args()
    for path in write_all(args.out):
        print(path.name)


if __name__ == "__main__":
    main()
