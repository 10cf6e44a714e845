"""Names that the code and the book mention must exist: no docstring points at a removed function.

Two kinds of reference are checked:

- every dotted ``metarec.x.y`` name in the package, the tools, the benchmarks, the tests, the
  README, CONTRIBUTING and the book (markdown pages and notebook cells) imports and resolves;
- every Sphinx role in a docstring of the package (``:func:`name```, ``:class:`~a.B```, ...)
  names something that exists: a full ``metarec.`` path, or a name of the enclosing class, the
  module, a package above it (the API reference documents names where they are re-exported) or
  the builtins. References to other libraries (``tf.``, ``keras.``, ...) are not checked.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "metarec"

DOTTED = re.compile(r"(?<![\w/.-])metarec(?:\.[A-Za-z_]\w*)+")
ROLE = re.compile(
    r":(?:func|class|meth|mod|data|attr|obj|exc|const):`[~.]?([^`<]+?)(?:\s*<[^>]+>)?`")
EXTERNAL = {"tf", "tensorflow", "keras", "np", "numpy", "pd", "pandas", "scipy", "sklearn",
            "optuna", "matplotlib", "plt", "tqdm"}

#: (file, name) of stale references in files another branch rewrites; each entry must still
#: occur (delete it once fixed), so the list cannot hide a new stale reference.
KNOWN_STALE: set[tuple[str, str]] = set()


def has_attribute(obj: Any, name: str) -> bool:
    """``hasattr``, also for dataclass fields without default and attributes set in __init__."""
    if hasattr(obj, name):
        return True
    if not inspect.isclass(obj):
        return False
    if any(name in getattr(c, "__annotations__", {}) for c in obj.__mro__):
        return True
    try:
        source = inspect.getsource(obj)
    except (OSError, TypeError):
        return False
    return re.search(rf"\bself\.{re.escape(name)}\b", source) is not None


def resolve_dotted(name: str) -> bool:
    """Whether ``metarec.a.b.C.d`` imports (longest module prefix) and resolves."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for part in parts[cut:]:
            if not has_attribute(obj, part):
                return False
            obj = getattr(obj, part, None)
        return True
    return False


def texts() -> Iterator[tuple[str, str]]:
    """(file relative to the root, text) of every file whose references are checked."""
    paths = [p for folder in ("metarec", "tools", "benchmarks", "tests")
             for p in sorted((ROOT / folder).rglob("*.py"))]
    paths += [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "book").rglob("*.md"))]
    for path in paths:
        # This file names missing things on purpose (the check's own test).
        if ".ipynb_checkpoints" not in path.parts and path != Path(__file__).resolve():
            yield path.relative_to(ROOT).as_posix(), path.read_text(encoding="utf-8")
    for path in sorted((ROOT / "book").rglob("*.ipynb")):
        if ".ipynb_checkpoints" not in path.parts:
            cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
            yield (path.relative_to(ROOT).as_posix(),
                   "\n".join("".join(cell["source"]) for cell in cells))  # not the outputs


def docstrings(path: Path) -> Iterator[tuple[int, str, list[ast.ClassDef]]]:
    """(line, docstring, enclosing classes) of the module and of every class and function."""
    def walk(node: ast.AST, classes: list[ast.ClassDef]) -> Iterator:
        doc = ast.get_docstring(node, clean=False)  # type: ignore[arg-type]
        if doc:
            yield node.body[0].lineno, doc, classes  # type: ignore[attr-defined]
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                yield from walk(child, [*classes, child])
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield from walk(child, classes)

    yield from walk(ast.parse(path.read_text(encoding="utf-8")), [])


def resolve_role(target: str, module: Any, classes: list[ast.ClassDef]) -> bool:
    """Whether a role's target exists where Sphinx or a reader would look for it."""
    if target == "metarec" or target.startswith("metarec."):
        return resolve_dotted(target)
    head, *rest = target.split(".")
    if head in EXTERNAL:
        return True
    scopes: list[Any] = []
    owner: Any = module
    for cls in classes:  # the enclosing class, innermost first
        owner = getattr(owner, cls.name, None)
        scopes.insert(0, owner)
    name = module.__name__
    while name:  # the module, then every package above it
        scopes.append(importlib.import_module(name))
        name = name.rpartition(".")[0]
    scopes.append(builtins)
    for scope in scopes:
        obj = scope
        for part in (head, *rest):
            if obj is None or not has_attribute(obj, part):
                break
            obj = getattr(obj, part, None)
        else:
            return True
    return False


def found_stale() -> set[tuple[str, str, int]]:
    stale = set()
    for name, text in texts():
        for match in DOTTED.finditer(text):
            if not resolve_dotted(match.group(0)):
                line = text.count("\n", 0, match.start()) + 1
                stale.add((name, match.group(0), line))
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        module = importlib.import_module(rel[:-3].replace("/", ".").removesuffix(".__init__"))
        for line, doc, classes in docstrings(path):
            for match in ROLE.finditer(doc):
                if not resolve_role(match.group(1).strip(), module, classes):
                    stale.add((rel, match.group(1).strip(), line))
    return stale


def test_every_referenced_name_exists():
    stale = found_stale()
    new = sorted(s for s in stale if (s[0], s[1]) not in KNOWN_STALE)
    assert not new, "references to names that do not exist (file, name, line):\n" + "\n".join(
        f"  {file}:{line}: {name}" for file, name, line in new)
    fixed = KNOWN_STALE - {(s[0], s[1]) for s in stale}
    assert not fixed, f"fixed, delete from KNOWN_STALE: {sorted(fixed)}"


def test_the_check_finds_a_stale_reference():
    assert resolve_dotted("metarec.data.build_tasks")
    assert resolve_dotted("metarec.data.RatingsDataset.ratings")  # a dataclass field
    assert not resolve_dotted("metarec.data.no_such_function")
    assert not resolve_dotted("metarec.no_such_module.thing")
    data = importlib.import_module("metarec.data.splits")
    assert resolve_role("build_tasks", data, [])  # documented under metarec.data
    assert resolve_role("ValueError", data, [])
    assert not resolve_role("build_everything", data, [])
