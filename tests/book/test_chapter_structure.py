"""Every chapter ends as the book promises (issue 16): key takeaways in a box, a Sources section,
and exercises whose every hint is followed by a worked solution (a code cell that runs, or a
``Solution`` / ``Solution sketch`` admonition for the longer projects)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[2] / "book"
CHAPTERS = sorted(BOOK.glob("ch*.ipynb"))
HINT = re.compile(r"^`{3,4}\{admonition\} Hint", re.M)
SOLUTION = re.compile(r"^`{3,4}\{admonition\} Solution", re.M)


def _items(path: Path) -> list[tuple[str, str]]:
    """The cells from the Exercises heading on: ("code", source) or ("md", source)."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    sources = [("code" if c["cell_type"] == "code" else "md", "".join(c["source"]))
               for c in cells]
    start = next((i for i, (kind, s) in enumerate(sources)
                  if kind == "md" and re.search(r"^## Exercises", s, re.M)), None)
    assert start is not None, f"{path.name} has no '## Exercises' section"
    return sources[start:]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_has_takeaways_sources_and_solved_exercises(path: Path):
    text = "\n".join(s for _, s in _items(path))
    assert "{admonition} Key takeaways" in text, f"{path.name}: no key-takeaways box"
    assert re.search(r"^## Sources", text, re.M), f"{path.name}: no Sources section"
    # Split the exercise part into markdown text and code markers, then check that after every
    # hint a solution comes before the next hint.
    stream: list[tuple[str, int]] = []  # ("hint" | "solution", position)
    for kind, source in _items(path):
        if kind == "code":
            stream.append(("solution", 0))
            continue
        marks = [("hint", m.start()) for m in HINT.finditer(source)]
        marks += [("solution", m.start()) for m in SOLUTION.finditer(source)]
        stream += sorted(marks, key=lambda m: m[1])
    kinds = [k for k, _ in stream]
    assert "hint" in kinds, f"{path.name}: the exercises have no hints"
    for i, kind in enumerate(kinds):
        if kind == "hint":
            assert "solution" in kinds[i + 1:i + 2], (
                f"{path.name}: hint {kinds[:i + 1].count('hint')} is not followed by a worked "
                "solution (a code cell or a Solution admonition)")
