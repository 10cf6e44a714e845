"""Every number the text quotes with ``{glue:text}`` is also in a cell output a Jupyter reader
sees: the notebooks glue through ``metarec.notebook.glue``, which prints what it stores."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from metarec.notebook import format_quoted, glue

ROOT = Path(__file__).resolve().parents[2]
ROLE = re.compile(r"\{glue:text\}`([A-Za-z0-9_]+)")


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def test_glue_prints_what_it_stores(capsys):
    glue("answer", 0.0423456)
    glue("count", np.int64(32))
    glue("span", "2 to 10")
    assert capsys.readouterr().out.splitlines() == [
        "answer = 0.04235   (quoted in the text)", "count = 32   (quoted in the text)",
        "span = 2 to 10   (quoted in the text)"]
    assert format_quoted(np.float32(1.5)) == "1.5" and format_quoted(True) == "True"


def test_every_quoted_number_is_printed_in_the_stored_outputs():
    checked = 0
    for path in sorted((ROOT / "book").glob("*.ipynb")):
        cells = _cells(path)
        roles = {m for c in cells if c["cell_type"] == "markdown"
                 for m in ROLE.findall("".join(c["source"]))}
        if not roles:
            continue
        code = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        assert "from myst_nb import glue" not in code, (
            f"{path.name}: glue from metarec.notebook, which also prints the value")
        printed = "".join("".join(o.get("text", "")) for c in cells if c["cell_type"] == "code"
                          for o in c.get("outputs", []))
        missing = sorted(r for r in roles if f"{r} = " not in printed)
        assert not missing, f"{path.name}: quoted but not in any output: {missing}"
        checked += 1
    assert checked >= 3


def test_glued_values_are_python_numbers_myst_nb_can_format():
    """myst-nb formats `{glue:text}`name:.3f`` from the stored text/plain: a NumPy scalar's
    repr ("np.float64(0.05)") cannot be formatted and breaks the book build (a warning)."""
    glued = 0
    for path in sorted((ROOT / "book").glob("*.ipynb")):
        for cell in _cells(path):
            for output in cell.get("outputs", []):
                record = output.get("metadata", {}).get("scrapbook")
                if record is None:
                    continue
                plain = "".join(output["data"].get(record["mime_prefix"] + "text/plain", ""))
                assert not plain.startswith("np."), (
                    f"{path.name}: glued {record['name']} is {plain}; glue float(value) or "
                    "int(value) instead")
                glued += 1
    assert glued > 50
