"""Execute notebooks the way `make test` does and keep a table of their wall times.

Each notebook runs alone through nbval (``pytest --nbval-lax --nbval-kernel-name python3``, as in
``make test``), and its wall time, including the kernel start, is written into the table between
the markers in CONTRIBUTING.md. Rows of notebooks that were not run this time keep their last
measurement; notebooks that no longer exist are dropped; new ones show "not measured".

Usage (``make notebook-times`` runs every notebook; ``make notebook-times NOTEBOOKS="book/a.ipynb"``
only some)::

    python tools/notebook_times.py [NOTEBOOK ...] [--file CONTRIBUTING.md] [--timeout 1800]

The budget is ``BUDGET_S`` seconds per notebook on 2 CPU cores; tests/book/test_repo.py fails
when the
table records a slower or failing notebook. Measure on a quiet machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTRIBUTING = ROOT / "CONTRIBUTING.md"
BEGIN = "<!-- notebook-times: begin (written by `make notebook-times`; do not edit) -->"
END = "<!-- notebook-times: end -->"
HEADER = ("| Notebook | Wall time (s) | Result | Measured (UTC) |",
          "|---|---:|---|---|")
NOT_MEASURED = "not measured"
RESULTS = ("passed", "failed", "timed out", NOT_MEASURED)
BUDGET_S = 180
ROW = re.compile(
    r"^\| `(?P<notebook>[^`]+)` \| (?P<seconds>\d+|-) \| (?P<result>[a-z ]+) "
    r"\| (?P<date>\d{4}-\d{2}-\d{2}|-) \|$"
)


@dataclass(frozen=True)
class Row:
    """One notebook's last measurement (``seconds`` None when never measured)."""

    notebook: str
    seconds: int | None
    result: str
    date: str | None

    def render(self) -> str:
        seconds = "-" if self.seconds is None else str(self.seconds)
        return f"| `{self.notebook}` | {seconds} | {self.result} | {self.date or '-'} |"


def all_notebooks() -> list[str]:
    """Every notebook under book/ (as `make test` finds them), relative to the repository."""
    return sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "book").rglob("*.ipynb")
                  if ".ipynb_checkpoints" not in p.parts)


def table_block(text: str, path: Path = CONTRIBUTING) -> str:
    """The text between the markers; a ValueError says what is wrong with them."""
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        raise ValueError(
            f"{path.name} must contain the lines {BEGIN!r} and {END!r} exactly once each "
            "(the table of notebook times goes between them)")
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    if end < start:
        raise ValueError(f"{path.name}: the end marker comes before the begin marker")
    return text[start:end]


def parse_table(text: str, path: Path = CONTRIBUTING) -> dict[str, Row]:
    """The rows of the table in ``text`` (a whole CONTRIBUTING.md); ValueError on a bad line."""
    rows: dict[str, Row] = {}
    lines = [ln for ln in table_block(text, path).strip().splitlines() if ln.startswith("|")]
    if tuple(lines[:2]) != HEADER:
        raise ValueError(f"{path.name}: the notebook-times table must start with {HEADER}")
    for line in lines[2:]:
        match = ROW.match(line)
        if not match or match["result"] not in RESULTS:
            raise ValueError(f"{path.name}: malformed notebook-times row {line!r}; "
                             "regenerate it with `make notebook-times`")
        seconds = None if match["seconds"] == "-" else int(match["seconds"])
        date = None if match["date"] == "-" else match["date"]
        rows[match["notebook"]] = Row(match["notebook"], seconds, match["result"], date)
    return rows


def render_table(rows: dict[str, Row]) -> str:
    """The block between the markers: the table, then what it means."""
    measured = [r.seconds for r in rows.values() if r.seconds is not None]
    lines = [*HEADER, *(rows[name].render() for name in sorted(rows))]
    note = (f"Total of the measured notebooks: {sum(measured)} s. Each notebook runs alone\n"
            "through nbval, as `make test` runs it (kernel start included); budget "
            f"{BUDGET_S} s per notebook.")
    return "\n" + "\n".join(lines) + "\n\n" + note + "\n"


def measure(notebook: str, timeout: int) -> Row:
    """Run one notebook through nbval; its wall time and result."""
    env = dict(os.environ)
    # As `make test`: no MPLBACKEND for the kernels (figures inline), quiet TensorFlow.
    env.pop("MPLBACKEND", None)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("JUPYTER_PREFER_ENV_PATH", "1")
    command = [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-kernel-name", "python3",
               "-q", "-p", "no:cacheprovider", notebook]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, timeout=timeout,
                              capture_output=True, text=True)
        result = "passed" if done.returncode == 0 else "failed"
        if done.returncode != 0:
            print(done.stdout[-3000:], done.stderr[-2000:], sep="\n", file=sys.stderr)
    except subprocess.TimeoutExpired:
        result = "timed out"
    seconds = round(time.perf_counter() - start)
    return Row(notebook, seconds, result, dt.datetime.now(dt.timezone.utc).date().isoformat())


def update(path: Path, measured: dict[str, Row]) -> dict[str, Row]:
    """Merge ``measured`` into the table of ``path`` and rewrite it (atomically)."""
    text = path.read_text(encoding="utf-8")
    old = parse_table(text, path)
    rows = {}
    for name in all_notebooks():
        rows[name] = measured.get(name) or old.get(name) or Row(name, None, NOT_MEASURED, None)
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    new = text[:start] + render_table(rows) + text[end:]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(new, encoding="utf-8")
    os.replace(tmp, path)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="notebooks to run (default: all in book/)")
    parser.add_argument("--file", type=Path, default=CONTRIBUTING,
                        help="Markdown file holding the table (default: CONTRIBUTING.md)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per notebook")
    args = parser.parse_args(argv)
    known = all_notebooks()
    chosen = [Path(n).resolve().relative_to(ROOT).as_posix() for n in args.notebooks] or known
    if unknown := [n for n in chosen if n not in known]:
        parser.error(f"not notebooks of book/: {unknown}")
    parse_table(args.file.read_text(encoding="utf-8"), args.file)  # fail before running anything
    measured = {}
    for name in chosen:
        row = measure(name, args.timeout)
        measured[name] = row
        print(f"{name}: {row.seconds} s, {row.result}", flush=True)
    update(args.file, measured)
    slow = [r.notebook for r in measured.values() if r.seconds and r.seconds > BUDGET_S]
    bad = [r.notebook for r in measured.values() if r.result != "passed"]
    if slow:
        print(f"over the {BUDGET_S} s budget: {slow}", file=sys.stderr)
    if bad:
        print(f"failed: {bad}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
