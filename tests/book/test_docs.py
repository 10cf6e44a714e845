"""The code the README and the book's landing page show must run as written."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FENCE = "`" * 3


def _example(path: Path) -> str:
    blocks = re.findall(FENCE + r"python\n(.*?)" + FENCE, path.read_text(), flags=re.S)
    examples = [b for b in blocks if "MAML(" in b]
    assert examples, f"{path.name} has no MAML example"
    return examples[0]


def test_readme_and_intro_show_the_same_example():
    assert _example(ROOT / "README.md") == _example(ROOT / "book" / "intro.md")


def test_readme_example_runs(ml100k):
    code = _example(ROOT / "README.md").replace("epochs=10", "epochs=1")
    namespace: dict = {}
    exec(compile(code, "README.md example", "exec"), namespace)  # noqa: S102
    result = namespace["learner"].evaluate(namespace["test_tasks"])
    assert set(result) == {"mae", "rmse", "ndcg@1", "ndcg@3"}
    assert all(0.0 <= value < 5.0 for value in result.values())
