"""tools/link_check.py: which internal links of a built site point at nothing (no browser)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import link_check  # noqa: E402

BASE = "http://127.0.0.1:8000/"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A small built site: two chapters in book/, a folder with an index, a download."""
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "ch01.html").write_text(
        "<html><body><section id='intro'><h1 id='top'>One</h1>"
        "<a name='old-anchor'></a><span id='maths%20and%20more'></span></section></body></html>",
        encoding="utf-8")
    (tmp_path / "book" / "ch 02.html").write_text(
        "<html><body><div id='maml'>Two</div></body></html>", encoding="utf-8")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "index.html").write_text("<p id='here'>index</p>", encoding="utf-8")
    (tmp_path / "data.csv").write_text("a,b\n", encoding="utf-8")
    link_check.anchors.cache_clear()  # tmp paths may repeat between tests
    return tmp_path


def broken(site: Path, *hrefs: str) -> list[str]:
    return link_check.broken_links(site, BASE, site / "book" / "ch01.html", hrefs)


def test_links_to_existing_pages_and_anchors_pass(site):
    assert broken(site,
                  BASE + "book/ch01.html",
                  BASE + "book/ch01.html#intro",
                  BASE + "book/ch01.html#top",
                  BASE + "book/ch01.html#old-anchor",  # <a name=...> counts as an anchor
                  BASE + "book/ch%2002.html#maml",     # percent-encoded path
                  BASE + "folder/",                    # a folder means its index.html
                  BASE + "folder#here",
                  BASE + "data.csv#anything",          # fragments of non-HTML files: not checked
                  ) == []


def test_missing_files_and_anchors_are_named_relative_to_the_site(site):
    assert broken(site, BASE + "book/gone.html", BASE + "book/ch01.html#nowhere",
                  BASE + "empty/") == [
        "book/ch01.html#nowhere (no anchor #nowhere)",
        "book/gone.html (no such file)",
        "empty/ (no such file)",
    ]


def test_a_link_is_reported_once_however_often_it_appears(site):
    assert broken(site, *[BASE + "gone.html"] * 3) == ["gone.html (no such file)"]


def test_external_and_non_http_links_are_not_checked(site):
    assert broken(site, "https://example.org/gone.html", "http://127.0.0.1:9999/gone.html",
                  "mailto:someone@example.org", "javascript:void(0)") == []


def test_anchors_are_read_once_per_file(site, monkeypatch):
    page = site / "book" / "ch01.html"
    assert link_check.anchors(page) == {"intro", "top", "old-anchor", "maths%20and%20more"}
    page.write_text("<p id='changed'></p>", encoding="utf-8")
    assert "intro" in link_check.anchors(page)  # cached until cache_clear()
    link_check.anchors.cache_clear()
    assert link_check.anchors(page) == {"changed"}


@pytest.mark.parametrize(("html", "target"), [
    ('<meta http-equiv="Refresh" content="0; url=book/ch01.html" />', "book/ch01.html"),
    ("<meta http-equiv=refresh content='5;url=intro.html'>", "intro.html"),
    ("<html><head><title>t</title></head><body>no redirect</body></html>", None),
])
def test_redirect_target(tmp_path, html, target):
    page = tmp_path / "index.html"
    page.write_text(html, encoding="utf-8")
    assert link_check.redirect_target(page) == target


def test_browser_check_loads_its_page_scripts_without_a_browser():
    import browser_check

    for name in ("wait_for_page.js", "inspect_page.js"):
        assert "arguments[" in browser_check.script(name), name
    assert browser_check.broken_links is link_check.broken_links  # one link check, not two
