"""tools/browser_check.py catches each failure kind on a small, deliberately broken site.

One page per failure kind (raw TeX, an image that does not load, a too-wide table, a console
error, a broken link) must fail with that kind and no other; a good page (typeset math, a loaded
image, a table that fits, working links) must pass. Runs headless Chromium: skipped only when
Debian's chromium / chromium-driver are not installed.
"""

from __future__ import annotations

import base64
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import browser_check  # noqa: E402

try:
    browser_check.find_browser()
except browser_check.BrowserMissing as err:
    pytest.skip(f"browser test needs Chromium: {err}", allow_module_level=True)

# A 2x2 red PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAEElEQVR4nGP4z8AARAwQCgAf7gP9i18U1AAAAABJRU5ErkJggg=="
)


def mathjax_dir() -> Path:
    """The MathJax 3 folder that sphinx-mathjax-offline ships (the copy the book uses)."""
    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    assert spec and spec.submodule_search_locations, "sphinx-mathjax-offline is not installed"
    return Path(next(iter(spec.submodule_search_locations))) / "static" / "mathjax"


def page(body: str, head: str = "") -> str:
    """A page laid out like the book's theme: the content column is article.bd-article."""
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>t</title>"
        "<style>body{margin:0} article.bd-article{width:600px;margin:0 40px}"
        " .scroll{overflow-x:auto} td{padding:4px 12px;white-space:nowrap}</style>"
        f"{head}</head><body><main><article class='bd-article'>{body}</article></main>"
        "</body></html>"
    )


def table(columns: int) -> str:
    cells = "".join(f"<td>column {i} 0.123456</td>" for i in range(columns))
    return f"<div class='scroll'><table><tr>{cells}</tr></table></div>"


MATHJAX_HEAD = (
    "<script>window.MathJax = {tex: {inlineMath: [['\\\\(', '\\\\)']]},"
    " options: {processHtmlClass: 'math', ignoreHtmlClass: 'tex2jax_ignore'}};</script>"
    "<script defer src='_static/mathjax/tex-chtml.js'></script>"
)

PAGES = {
    # Typeset math, a loaded image, a table that fits, links to a page and to an anchor.
    "good.html": page(
        "<section id='intro'><h1>Good</h1>"
        "<p>The loss <span class='math notranslate nohighlight'>\\(\\mathcal{L}(\\theta)"
        " = \\sum_i x_i^2\\)</span> is small; it costs $5 and $6 (money, not maths).</p>"
        "<div class='math'>\\[\\theta' = \\theta - \\alpha \\nabla \\mathcal{L}\\]</div>"
        "<img src='_images/dot.png' alt='dot'>" + table(3)
        + "<pre>print('$x_1$ in code is fine')</pre>"
        "<a href='raw_tex.html'>page</a> <a href='#intro'>anchor</a>"
        " <a href='good.html#intro'>page and anchor</a> <a href='https://example.org/x'>web</a>"
        "</section>",
        MATHJAX_HEAD,
    ),
    "raw_tex.html": page("<p>The loss $\\mathcal{L}(\\theta)$ is never typeset here.</p>"),
    "missing_image.html": page("<p>A figure:</p><img src='_images/not-there.png' alt='gone'>"),
    "wide_table.html": page("<p>Results:</p>" + table(30)),
    "console_error.html": page(
        "<p>Script:</p>", "<script>console.error('deliberate failure');</script>"),
    "broken_link.html": page(
        "<p><a href='no_such_page.html'>gone</a> and <a href='good.html#no-such-anchor'>x</a>"
        " and <a href='#intro'>fine? no: this page has no #intro</a></p>"),
    # Sphinx's index.html is a redirect like these: only its target is checked.
    "redirect_ok.html": '<meta http-equiv="Refresh" content="0; url=good.html" />',
    "redirect_broken.html": '<meta http-equiv="Refresh" content="0; url=book/gone.html" />',
}

EXPECTED_KIND = {
    "raw_tex.html": "raw-tex",
    "missing_image.html": "image",
    "wide_table.html": "too-wide",
    "console_error.html": "console",
    "broken_link.html": "link",
    "redirect_broken.html": "link",
}


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> tuple[Path, dict[str, list[browser_check.Problem]]]:
    site = tmp_path_factory.mktemp("site")
    for name, html in PAGES.items():
        (site / name).write_text(html, encoding="utf-8")
    (site / "index.html").write_text(page("<p>index</p>"), encoding="utf-8")
    (site / "_images").mkdir()
    (site / "_images" / "dot.png").write_bytes(PNG)
    (site / "_static").mkdir()
    # A link, not a copy (24 MB): MathJax loads its fonts and components from this folder.
    (site / "_static" / "mathjax").symlink_to(mathjax_dir(), target_is_directory=True)
    shots = site.parent / f"{site.name}-shots"
    problems = browser_check.check_site(site, [site / n for n in PAGES], screenshots=shots)
    by_page: dict[str, list[browser_check.Problem]] = {name: [] for name in PAGES}
    for problem in problems:
        by_page[problem.page].append(problem)
    return shots, by_page


@pytest.mark.parametrize("name", ["good.html", "redirect_ok.html"])
def test_good_page_passes(results, name):
    _, by_page = results
    assert by_page[name] == [], [str(p) for p in by_page[name]]


@pytest.mark.parametrize("name", sorted(EXPECTED_KIND))
def test_broken_page_fails_with_its_kind(results, name):
    _, by_page = results
    kinds = {p.kind for p in by_page[name]}
    assert kinds == {EXPECTED_KIND[name]}, [str(p) for p in by_page[name]]


def test_problem_details_name_the_culprit(results):
    _, by_page = results
    details = {name: " ".join(p.detail for p in probs) for name, probs in by_page.items()}
    assert "\\mathcal{L}" in details["raw_tex.html"]
    assert "not-there.png" in details["missing_image.html"]
    assert "table" in details["wide_table.html"] or "div" in details["wide_table.html"]
    assert "px" in details["wide_table.html"]
    assert "deliberate failure" in details["console_error.html"]
    broken = details["broken_link.html"]
    assert "no_such_page.html (no such file)" in broken
    assert "#no-such-anchor" in broken
    assert "#intro" in broken  # an anchor missing on the page itself
    assert "book/gone.html (no such file)" in details["redirect_broken.html"]


def test_screenshots_are_saved(results):
    shots, _ = results
    for name in PAGES:
        if name.startswith("redirect"):
            continue  # a redirect shows nothing of its own
        jpeg = shots / Path(name).with_suffix(".jpg")
        assert jpeg.is_file() and jpeg.read_bytes()[:3] == b"\xff\xd8\xff", jpeg


def test_cli_exit_status(tmp_path):
    (tmp_path / "index.html").write_text(page("<p>fine</p>"), encoding="utf-8")
    assert browser_check.main([str(tmp_path), "--no-screenshots"]) == 0
    (tmp_path / "bad.html").write_text(page("<a href='gone.html'>x</a>"), encoding="utf-8")
    assert browser_check.main([str(tmp_path), "--no-screenshots"]) == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    assert browser_check.main([str(empty), "--no-screenshots"]) == 2
