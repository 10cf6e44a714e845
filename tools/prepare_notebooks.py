"""Prepare the book's notebooks for readers: an install cell first, assert-only cells hidden.

1. Colab and Binder (the launch buttons) start without the ``metarec`` package. Every notebook
   gets, as its FIRST cell, a small code cell that installs ``metarec`` when it cannot be imported
   and does nothing (no output) when it can: from the clone itself when the notebook sits in a
   clone of the repository (Binder), otherwise from the repository URL in ``_config.yml``
   (Colab). It is tagged ``remove-cell`` (not shown in the HTML book) but runs everywhere, nbval
   included.
2. A code cell whose statements are only checks (``assert``, ``np.testing.assert_*(...)``, or
   ``for``/``if`` blocks of them) and that prints nothing is tagged ``hide-input``: folded in the
   HTML book (a reader can unfold it to see how a claim is checked), CI still runs it, and the
   prose says what it checks.

Idempotent and deterministic: running it twice changes nothing; it never executes a notebook (the
install cell is stored without outputs; a new one has ``execution_count`` null, one already in a
notebook executed top to bottom keeps its count). Usage::

    python tools/prepare_notebooks.py [NOTEBOOK ...]      # default: every notebook in book/
    python tools/prepare_notebooks.py --check             # exit 1 if a notebook needs it
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "_config.yml"
INSTALL_ID = "install-metarec"
INSTALL_TAG = "remove-cell"
MARKER = "# Launch buttons (Colab, Binder): install metarec when it is missing"
HIDE_TAG = "hide-input"
# Tags that already keep a cell's code from the reader.
HIDING_TAGS = {"remove-input", "hide-input", "remove-cell", "hide-cell"}

INSTALL_TEMPLATE = '''{marker}; here it does nothing.
def _install_metarec() -> None:
    import importlib.util
    import pathlib
    import subprocess
    import sys

    if importlib.util.find_spec("metarec") is not None:
        return
    repo = pathlib.Path.cwd().parent  # Binder opens book/ in a clone of the repository
    if (repo / "pyproject.toml").is_file() and (repo / "metarec").is_dir():
        source = repo.as_uri()
    else:  # Colab: the notebook alone
        source = "git+{url}@{branch}"
    # TensorFlow comes with the [tf] extra only where none is installed yet.
    extra = "" if importlib.util.find_spec("tensorflow") else "[tf]"
    pip = [sys.executable, "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, f"metarec{{extra}} @ {{source}}"], check=True)
    importlib.invalidate_caches()


_install_metarec()
del _install_metarec'''


def repository() -> tuple[str, str]:
    """The repository URL and branch named in ``_config.yml`` (``repository:``)."""
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8")) or {}
    repo = config.get("repository") or {}
    url, branch = repo.get("url"), repo.get("branch") or "main"
    if not url:
        raise SystemExit(f"{CONFIG.name} has no repository: url: the install cell needs it")
    return str(url).rstrip("/"), str(branch)


def install_source() -> str:
    """The source of the install cell, as stored in every notebook."""
    url, branch = repository()
    return INSTALL_TEMPLATE.format(marker=MARKER, url=url, branch=branch)


def install_cell() -> dict:
    """The install cell: hidden from the HTML book, no outputs, never executed here."""
    return {
        "cell_type": "code",
        "execution_count": None,
        "id": INSTALL_ID,
        "metadata": {"tags": [INSTALL_TAG]},
        "outputs": [],
        "source": _lines(install_source()),
    }


def is_install_cell(cell: dict) -> bool:
    return cell.get("id") == INSTALL_ID or _text(cell.get("source", "")).startswith(MARKER)


def _is_check(node: ast.stmt) -> bool:
    """An ``assert``, an ``assert_*(...)`` call, or a ``for``/``if`` block made only of them."""
    if isinstance(node, ast.Assert):
        return True
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        func = node.value.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        return name.startswith("assert")
    if isinstance(node, (ast.For, ast.If)):
        body = [*node.body, *node.orelse]
        return bool(body) and all(_is_check(n) for n in body)
    return False


def is_check_only(cell: dict) -> bool:
    """A code cell that prints nothing and whose statements are all checks (see ``_is_check``)."""
    if cell.get("cell_type") != "code" or cell.get("outputs") or is_install_cell(cell):
        return False
    source = _text(cell.get("source", ""))
    if any(line.lstrip().startswith(("%", "!")) for line in source.splitlines()):
        return False  # IPython magics: not plain Python
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return False
    return bool(body) and all(_is_check(node) for node in body)


def is_hidden(cell: dict) -> bool:
    return bool(HIDING_TAGS.intersection(cell.get("metadata", {}).get("tags", [])))


def prepare(nb: dict) -> dict:
    """``nb`` with the install cell first and its assert-only cells tagged (a new dict)."""
    nb = json.loads(json.dumps(nb))
    old = [c for c in nb["cells"] if is_install_cell(c)]
    cells = [c for c in nb["cells"] if not is_install_cell(c)]
    for cell in cells:
        if is_check_only(cell) and not is_hidden(cell):
            cell.setdefault("metadata", {}).setdefault("tags", []).append(HIDE_TAG)
    first = install_cell()
    if old and nb["cells"][0] is old[0]:
        # A notebook executed top to bottom keeps the count its install cell ran with.
        first["execution_count"] = old[0].get("execution_count")
    nb["cells"] = [first, *cells]
    return nb


def dumps(nb: dict) -> str:
    """The notebook as Jupyter writes it (nbformat: sorted keys, indent 1, final newline)."""
    return json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def notebooks() -> list[Path]:
    return sorted(p for p in (ROOT / "book").rglob("*.ipynb")
                  if ".ipynb_checkpoints" not in p.parts)


def _text(source: str | list[str]) -> str:
    return source if isinstance(source, str) else "".join(source)


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook in book/")
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if a notebook is not prepared")
    args = parser.parse_args(argv)
    stale = []
    for path in args.notebooks or notebooks():
        old = path.read_text(encoding="utf-8")
        new = dumps(prepare(json.loads(old)))
        if new == old:
            continue
        stale.append(path)
        if not args.check:
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(new, encoding="utf-8")
            os.replace(tmp, path)
            print(f"prepared {path}")
    if args.check and stale:
        print("not prepared (run `python tools/prepare_notebooks.py`): "
              + ", ".join(str(p) for p in stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
