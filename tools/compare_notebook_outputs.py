"""Compare the text outputs stored in notebooks between a git revision and the working tree.

A restructuring that must not move numbers is checked by re-executing every notebook and
comparing what it printed before and after: printed text, ``text/plain`` and ``text/html``
results (tables), cell by cell. Images are not compared (their bytes change with matplotlib's
metadata), and neither are lines that quote live timings or memory (a pattern per notebook
would be fragile, so the caller names them: ``--ignore REGEX``, repeatable).

Usage::

    python tools/compare_notebook_outputs.py --rev HEAD~3 book/*.ipynb \\
        --ignore "ms per step|s/epoch|MiB"

Exit status 0 when every compared cell matches, 1 otherwise (the differing lines are printed).
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import subprocess
import sys
from pathlib import Path

TEXT_TYPES = ("text/plain", "text/html")
# Object addresses in reprs (``<... at 0x7f...>``) differ between every run.
ADDRESS = re.compile(r" at 0x[0-9a-f]+")


def cell_texts(notebook: dict, ignore: list[re.Pattern]) -> list[str]:
    """One string per code cell: its stored text outputs, with ignored lines dropped."""
    texts = []
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        parts = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append("".join(out["text"]))
            for key in TEXT_TYPES:
                if key in out.get("data", {}):
                    parts.append("".join(out["data"][key]))
            if out.get("output_type") == "error":
                parts.append(f"{out['ename']}: {out['evalue']}")
        lines = [ADDRESS.sub(" at 0x", ln) for ln in "\n".join(parts).splitlines()]
        texts.append("\n".join(ln for ln in lines if not any(p.search(ln) for p in ignore)))
    return texts


def compare(path: Path, rev: str, ignore: list[re.Pattern]) -> list[str]:
    """The differing lines of ``path`` between ``rev`` and the working tree (empty if equal)."""
    old_raw = subprocess.run(["git", "show", f"{rev}:{path.as_posix()}"], capture_output=True,
                             text=True, check=True).stdout
    old = cell_texts(json.loads(old_raw), ignore)
    new = cell_texts(json.loads(path.read_text(encoding="utf-8")), ignore)
    if len(old) != len(new):
        return [f"{path}: {len(old)} code cells at {rev}, {len(new)} now"]
    problems = []
    for i, (a, b) in enumerate(zip(old, new, strict=True)):
        if a != b:
            diff = difflib.unified_diff(a.splitlines(), b.splitlines(), lineterm="", n=0)
            problems.append(f"{path}, code cell {i}:\n" + "\n".join(list(diff)[2:]))
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--rev", default="HEAD", help="git revision to compare against")
    parser.add_argument("--ignore", action="append", default=[],
                        help="regular expression of output lines not compared (repeatable)")
    args = parser.parse_args(argv)
    ignore = [re.compile(p) for p in args.ignore]
    problems = [p for nb in args.notebooks for p in compare(nb, args.rev, ignore)]
    for problem in problems:
        print(problem)
    print(f"{len(args.notebooks)} notebook(s), {len(problems)} differing cell(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
