"""Repository hygiene: the book's table of contents and the notebooks stored in book/.

The book renders the outputs stored in the notebooks (it never executes them), so these tests make
sure those outputs come from one clean top-to-bottom run, contain no TensorFlow log noise and no
paths of the machine that produced them, and that every notebook is reachable from _toc.yml.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import notebook_times  # noqa: E402
import prepare_notebooks  # noqa: E402

BOOK = ROOT / "book"
TOC = ROOT / "_toc.yml"
SOURCE_SUFFIXES = (".md", ".ipynb", ".rst")

TF_NOISE = re.compile(
    r"I0000 |oneDNN custom operations|cuda_dnn|absl::InitializeLog"
    r"|WARNING: All log messages before"
)
LOCAL_PATH = re.compile(r"/work/|/root/|/tmp/|/home/")


def notebooks() -> list[Path]:
    """Every notebook under book/, checkpoints excluded, sorted."""
    return sorted(p for p in BOOK.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def toc_entries(toc: dict) -> Iterator[str]:
    """Yield every `file:` (and the root) of a jb-book/jb-article table of contents."""
    if "root" in toc:
        yield toc["root"]
    stack = [toc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "file" in node:
                yield node["file"]
            for key in ("parts", "chapters", "sections"):
                stack.extend(node.get(key) or [])
        elif isinstance(node, list):
            stack.extend(node)


def resolve(entry: str) -> Path | None:
    """The file a toc entry names (the extension may be left out), or None if there is none."""
    path = ROOT / entry
    if path.suffix in SOURCE_SUFFIXES and path.is_file():
        return path
    for suffix in SOURCE_SUFFIXES:
        candidate = path.with_name(path.name + suffix)
        if candidate.is_file():
            return candidate
    return None


def output_texts(cell: dict) -> Iterator[str]:
    """The text of a code cell's outputs (streams, text/* data, tracebacks; not images)."""
    for output in cell.get("outputs", []):
        if "text" in output:
            yield _join(output["text"])
        for mime, value in output.get("data", {}).items():
            if mime.startswith("text/") or mime.endswith("json"):
                yield value if isinstance(value, str) else _join(value)
        if "traceback" in output:
            yield "\n".join(output["traceback"])


def _join(value: str | list | dict) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(str(v) for v in value)
    return json.dumps(value)


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_toc_lists_only_existing_files():
    toc = yaml.safe_load(TOC.read_text(encoding="utf-8"))
    entries = list(toc_entries(toc))
    assert entries, "_toc.yml lists no file"
    missing = [e for e in entries if resolve(e) is None]
    assert not missing, (
        f"_toc.yml lists files that do not exist: {missing}; create them or remove the entries"
    )
    resolved = [resolve(e) for e in entries]
    duplicates = sorted({rel(p) for p in resolved if resolved.count(p) > 1})
    assert not duplicates, f"_toc.yml lists these files more than once: {duplicates}"


def test_every_notebook_is_in_the_toc():
    toc = yaml.safe_load(TOC.read_text(encoding="utf-8"))
    listed = {resolve(e) for e in toc_entries(toc)}
    orphans = [rel(nb) for nb in notebooks() if nb not in listed]
    assert not orphans, (
        f"notebooks missing from _toc.yml (the book would silently skip them): {orphans}"
    )


@pytest.mark.parametrize("path", notebooks(), ids=rel)
def test_notebook_outputs_are_clean(path: Path):
    problems = []
    for index, cell in enumerate(load(path)["cells"]):
        if cell["cell_type"] != "code":
            continue
        for text in output_texts(cell):
            if match := TF_NOISE.search(text):
                problems.append(f"cell {index}: TensorFlow log line ({match.group(0)!r})")
            if match := LOCAL_PATH.search(text):
                problems.append(f"cell {index}: local absolute path ({match.group(0)!r})")
    assert not problems, (
        f"{rel(path)}: stored outputs must not contain log noise or local paths: {problems}. "
        "Import metarec before tensorflow, print paths relative to the data folder, "
        "then re-run `make notebooks`."
    )


@pytest.mark.parametrize("path", notebooks(), ids=rel)
def test_notebook_ran_once_top_to_bottom(path: Path):
    nb = load(path)
    cells = nb["cells"]
    # tools/prepare_notebooks.py inserts the install cell without running the notebook: it is
    # either unexecuted (the rest counts from 1) or was the first cell of the run (count 1).
    first = 1
    if cells and prepare_notebooks.is_install_cell(cells[0]):
        first = 1 if cells[0].get("execution_count") is None else 2
        assert cells[0].get("execution_count") in (None, 1), (
            f"{rel(path)}: the install cell has execution count "
            f"{cells[0].get('execution_count')}; re-run `make notebooks`")
        cells = cells[1:]
    counts = [
        cell.get("execution_count")
        for cell in cells
        # nbclient does not execute empty code cells: they keep execution_count None.
        if cell["cell_type"] == "code" and "".join(cell["source"]).strip()
    ]
    expected = list(range(first, first + len(counts)))
    assert counts == expected, (
        f"{rel(path)}: execution counts are {counts}, expected {expected} "
        "(one clean run from the first cell); re-run `make notebooks`"
    )


@pytest.mark.parametrize("path", notebooks(), ids=rel)
def test_notebook_uses_the_python3_kernel(path: Path):
    # `make test` and `make notebooks` run every notebook in the kernel "python3" of .venv;
    # Binder and Colab also expect it.
    kernel = load(path).get("metadata", {}).get("kernelspec", {}).get("name")
    assert kernel == "python3", (
        f"{rel(path)}: kernelspec name is {kernel!r}; set it to 'python3' "
        "(Kernel > Change kernel > Python 3 in JupyterLab) and re-run `make notebooks`"
    )


@pytest.mark.parametrize("path", notebooks(), ids=rel)
def test_notebook_starts_with_the_install_cell(path: Path):
    # Colab and Binder (the launch buttons) open a notebook without metarec installed.
    cells = load(path)["cells"]
    first = cells[0] if cells else {}
    expected = prepare_notebooks.install_cell()
    fix = "run `python tools/prepare_notebooks.py` (it never re-executes the notebook)"
    assert prepare_notebooks.is_install_cell(first), (
        f"{rel(path)}: the first cell must install metarec when it is missing; {fix}")
    assert "".join(first["source"]) == prepare_notebooks.install_source(), (
        f"{rel(path)}: the install cell differs from the one tools/prepare_notebooks.py writes "
        f"(repository URL in _config.yml changed?); {fix}")
    assert prepare_notebooks.INSTALL_TAG in first.get("metadata", {}).get("tags", []), (
        f"{rel(path)}: the install cell must be tagged {expected['metadata']['tags']}; {fix}")
    assert not first.get("outputs"), (
        f"{rel(path)}: the install cell printed something {first.get('outputs')!r}; "
        "here, with metarec installed, it must print nothing")
    others = [i for i, c in enumerate(cells[1:], 1) if prepare_notebooks.is_install_cell(c)]
    assert not others, f"{rel(path)}: more install cells at {others}; {fix}"


def test_install_cell_is_silent_where_metarec_is_installed():
    # The cell exactly as stored: here metarec is importable, so it must neither print nor
    # install anything, nor leave a name behind in the reader's namespace.
    namespace: dict = {}
    source = prepare_notebooks.install_source()
    compile(source, "<install cell>", "exec")
    from contextlib import redirect_stderr, redirect_stdout
    from io import StringIO

    out, err = StringIO(), StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        exec(source, namespace)
    assert out.getvalue() == err.getvalue() == ""
    assert set(namespace) == {"__builtins__"}
    assert all(len(line) <= 100 for line in source.splitlines())


@pytest.mark.parametrize("path", notebooks(), ids=rel)
def test_assert_only_cells_are_hidden_from_the_reader(path: Path):
    cells = load(path)["cells"]
    visible = [i for i, c in enumerate(cells)
               if prepare_notebooks.is_check_only(c) and not prepare_notebooks.is_hidden(c)]
    assert not visible, (
        f"{rel(path)}: cells {visible} only assert; tag them `hide-input` (run "
        "`python tools/prepare_notebooks.py`) and say in the prose what they check")


def test_prepare_notebooks_tags_only_check_cells():
    def cell(source: str, outputs: list | None = None) -> dict:
        return {"cell_type": "code", "execution_count": 1, "id": "x", "metadata": {},
                "outputs": outputs or [], "source": source}

    checks = [
        "assert x > 0",
        "assert a < b  # claim\nnp.testing.assert_allclose(a, b, atol=1e-6)",
        "for k in (1, 2):\n    assert f(k) > 0\n",
    ]
    not_checks = [
        "y = f(x)\nassert y > 0",
        "print(x)",
        "assert x > 0",  # with an output below
        "%time assert x",
        "",
    ]
    assert all(prepare_notebooks.is_check_only(cell(s)) for s in checks)
    outputs = [{"output_type": "stream", "name": "stdout", "text": "1\n"}]
    flags = [prepare_notebooks.is_check_only(cell(s, outputs if i == 2 else None))
             for i, s in enumerate(not_checks)]
    assert flags == [False] * len(not_checks)
    nb = {"cells": [cell(s) for s in checks + not_checks[:2]], "metadata": {},
          "nbformat": 4, "nbformat_minor": 5}
    once = prepare_notebooks.prepare(nb)
    assert prepare_notebooks.dumps(prepare_notebooks.prepare(once)) == prepare_notebooks.dumps(once)
    assert once["cells"][0] == prepare_notebooks.install_cell()
    tags = [c["metadata"].get("tags", []) for c in once["cells"][1:]]
    assert tags == [["hide-input"]] * 3 + [[], []]


def test_notebook_times_table_lists_every_notebook():
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    rows = notebook_times.parse_table(text)  # markers once each, header, well-formed rows
    listed, present = set(rows), {rel(p) for p in notebooks()}
    assert listed == present, (
        f"CONTRIBUTING.md's notebook-times table lists {sorted(listed - present)} (gone) and "
        f"misses {sorted(present - listed)}; run `make notebook-times`")
    failing = [f"{r.notebook} ({r.result})" for r in rows.values()
               if r.result not in ("passed", notebook_times.NOT_MEASURED)]
    slow = [f"{r.notebook} ({r.seconds} s)" for r in rows.values()
            if r.seconds is not None and r.seconds > notebook_times.BUDGET_S]
    assert not failing, f"notebooks recorded as failing: {failing}"
    assert not slow, (
        f"notebooks over the {notebook_times.BUDGET_S} s budget: {slow}; make them faster "
        "(stored results of a runner command, a cheap re-check), then `make notebook-times`")
    assert notebook_times.parse_table(
        notebook_times.BEGIN + notebook_times.render_table(rows) + notebook_times.END) == rows


def test_notebook_times_table_rejects_malformed_rows():
    good = (notebook_times.BEGIN + "\n" + "\n".join(notebook_times.HEADER)
            + "\n| `book/a.ipynb` | 12 | passed | 2026-12-01 |\n" + notebook_times.END)
    assert notebook_times.parse_table(good)["book/a.ipynb"].seconds == 12
    for bad in (good.replace("| 12 |", "| 12.5 |"), good.replace("passed", "ok"),
                good.replace(notebook_times.END, ""), good + notebook_times.BEGIN):
        with pytest.raises(ValueError):
            notebook_times.parse_table(bad)


@pytest.mark.parametrize("where", ["clone", "alone"])
def test_install_cell_installs_when_metarec_is_missing(where, tmp_path, monkeypatch):
    # Binder opens book/ in a clone (install the clone); Colab has the notebook alone (install
    # from the repository URL of _config.yml). pip is not run: its command line is recorded.
    import importlib.util
    import subprocess

    calls = []
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "metarec" else real_find_spec(name, *a))
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append((cmd, kw)))
    monkeypatch.chdir(BOOK if where == "clone" else tmp_path)
    exec(prepare_notebooks.install_source(), {})
    assert len(calls) == 1 and calls[0][1] == {"check": True}
    command = calls[0][0]
    assert command[:5] == [sys.executable, "-m", "pip", "install", "--quiet"]
    url, branch = prepare_notebooks.repository()
    # tensorflow is installed here, so no [tf] extra is asked for
    expected = ROOT.as_uri() if where == "clone" else f"git+{url}@{branch}"
    assert command[5:] == [f"metarec @ {expected}"]


def test_no_control_characters_in_book_sources():
    # A "\a" or "\b" typed into a non-raw Python string becomes a control character (BEL,
    # backspace) that breaks the maths of the page; the browser check found one in chapter 12.
    bad = []
    for path in sorted(ROOT.glob("book/*")):
        if path.suffix not in (".ipynb", ".md"):
            continue
        text = path.read_text(encoding="utf-8")
        for ch in set(text):
            if ord(ch) < 32 and ch not in "\n\t\r":
                bad.append(f"{path.name}: {ch!r}")
    assert not bad, bad
