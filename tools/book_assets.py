"""Sphinx extension of the book: every inline ``<script>`` once per page.

With Sphinx 7.4, the inline configuration scripts of sphinx-thebe and sphinx-togglebutton reach
each page twice (as registered, with file name ``None``, and as re-added by the builder, with
file name ``""``: Sphinx does not see them as equal). The repeated ``const THEBE_JS_URL = ...`` is
a JavaScript ``SyntaxError`` ("Identifier 'THEBE_JS_URL' has already been declared") in every
reader's console, which tools/browser_check.py reports. This extension keeps the first copy of
each identical script. Enabled in ``_config.yml`` (``sphinx: local_extensions``).
"""

from __future__ import annotations

from typing import Any


def _dedupe_scripts(app: Any, pagename: str, templatename: str, context: dict,
                    doctree: Any) -> None:
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen: set[tuple] = set()
    unique = []
    for script in scripts:
        attributes = getattr(script, "attributes", {}) or {}
        # Sphinx re-adds registry scripts with filename "" where the extension passed None.
        key = (getattr(script, "filename", script) or "", tuple(sorted(attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    # A new list: the builder's own list is restored from it for the next page.
    context["script_files"] = unique


def setup(app: Any) -> dict[str, Any]:
    # Late priority: after the themes and extensions have added their scripts to the page.
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
