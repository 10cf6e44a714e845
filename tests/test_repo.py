"""Repository hygiene: the book's table of contents and the notebooks stored in book/.

The book renders the outputs stored in the notebooks (it never executes them), so these tests make
sure those outputs come from one clean top-to-bottom run, contain no TensorFlow log noise and no
paths of the machine that produced them, and that every notebook is reachable from _toc.yml.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
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
    counts = [
        cell.get("execution_count")
        for cell in nb["cells"]
        # nbclient does not execute empty code cells: they keep execution_count None.
        if cell["cell_type"] == "code" and "".join(cell["source"]).strip()
    ]
    expected = list(range(1, len(counts) + 1))
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
