"""Remove TensorFlow's C++ log lines from the stderr outputs stored in notebooks.

TensorFlow 2.21 writes some C++ log lines (absl's "All log messages before
absl::InitializeLog() ..." notice, oneDNN notices) to stderr whatever ``TF_CPP_MIN_LOG_LEVEL``
says, because absl logs them before its threshold is set. They are machine noise, not results:
``make notebooks`` runs this script after executing each notebook. Other stderr text (real
warnings) is kept. Usage: ``python tools/clean_notebook_outputs.py NOTEBOOK...``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

# absl/glog format: severity letter, MMDD, time, thread id, file:line] message.
LOG_LINE = re.compile(r"^[IWEF]\d{4} [\d:.]+\s+\d+ [\w./-]+:\d+\] ")
ABSL_NOTICE = "WARNING: All log messages before absl::InitializeLog() is called"


def clean(path: Path) -> int:
    """Drop TF log lines from ``path``'s stderr outputs in place; returns the lines removed."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    removed = 0
    for cell in nb["cells"]:
        kept = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                text = "".join(out["text"]) if isinstance(out["text"], list) else out["text"]
                lines = text.splitlines(keepends=True)
                good = [ln for ln in lines
                        if not (LOG_LINE.match(ln) or ln.startswith(ABSL_NOTICE))]
                removed += len(lines) - len(good)
                if not good:
                    continue
                out["text"] = good
            kept.append(out)
        if "outputs" in cell:
            cell["outputs"] = kept
    if removed:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        tmp.replace(path)
    return removed


if __name__ == "__main__":
    for name in sys.argv[1:]:
        n = clean(Path(name))
        if n:
            print(f"{name}: removed {n} TensorFlow log line(s)")
