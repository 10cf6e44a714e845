"""tools/diagrams.py: the committed SVG diagrams are what the script draws, byte for byte."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import diagrams  # noqa: E402

FIGURES = ROOT / "book" / "figures"


@pytest.mark.parametrize("name", sorted(diagrams.DIAGRAMS))
def test_committed_svg_equals_a_fresh_drawing(name: str) -> None:
    committed = FIGURES / f"{name}.svg"
    assert committed.exists(), f"{committed} is missing: run `python tools/diagrams.py`"
    assert diagrams.render(name) == committed.read_bytes(), (
        f"{committed.name} differs from what tools/diagrams.py draws: run "
        "`python tools/diagrams.py` and commit book/figures/")


def test_render_is_deterministic_and_has_no_date() -> None:
    first, second = diagrams.render("maml_loops"), diagrams.render("maml_loops")
    assert first == second
    assert b"<dc:date>" not in first


def test_every_diagram_is_shown_in_the_book_with_alt_text() -> None:
    # Each SVG is used by a figure directive with an :alt: option in some chapter.
    texts = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "book").glob("*.ipynb"))
    for name in diagrams.DIAGRAMS:
        match = re.search(r"```\{figure\} figures/" + name + r"\.svg\\n(.*?)```", texts, re.S)
        assert match, f"figures/{name}.svg is not shown in any chapter"
        assert ":alt:" in match.group(1), f"figures/{name}.svg has no alt text"
