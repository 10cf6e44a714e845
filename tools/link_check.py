"""Internal links of a built HTML site: which ones point at a missing page or anchor.

Pure functions on the files of the site (no browser, no server), used by
``tools/browser_check.py`` for the links that the browser found on each page::

    >>> broken_links(Path("_build/html"), "http://127.0.0.1:8000/",      # doctest: +SKIP
    ...              Path("_build/html/book/ch01.html"),
    ...              ["http://127.0.0.1:8000/book/ch02.html#maml", "https://example.org/"])
    ['book/ch02.html#maml (no anchor #maml)']

External links (another host, ``mailto:``, ``javascript:``) are not checked: the check works
offline.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

__all__ = ["anchors", "broken_links", "redirect_target"]


class _IdCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value and (name == "id" or (tag == "a" and name == "name")):
                self.ids.add(value)


@functools.cache
def anchors(path: Path) -> frozenset[str]:
    """The ``id``s (and ``<a name>``s) of an HTML file.

    Cached per path (a site's pages are read once however many links point at them); call
    ``anchors.cache_clear()`` before checking a site whose files may have changed.
    """
    parser = _IdCollector()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return frozenset(parser.ids)


def broken_links(site: Path, base_url: str, page: Path, hrefs: Iterable[str]) -> list[str]:
    """The local links among ``hrefs`` (absolute URLs) whose file or anchor does not exist.

    Parameters
    ----------
    site : Path
        Folder of the built HTML, served at ``base_url``.
    base_url : str
        URL of ``site`` (ending in ``/``); only links to this host are checked.
    page : Path
        The page the links were found on (named in no message; kept for callers' symmetry).
    hrefs : iterable of str
        Absolute URLs (as the browser resolves ``a.href``); duplicates are checked once.

    Returns
    -------
    list of str
        One line per broken link, sorted: the link relative to ``base_url`` and why, e.g.
        ``"book/gone.html (no such file)"`` or ``"book/ch01.html#x (no anchor #x)"``.
    """
    base = urlsplit(base_url)
    broken = []
    for href in sorted(set(hrefs)):
        url = urlsplit(href)
        if url.scheme not in ("http", "https") or url.netloc != base.netloc:
            continue  # external links (and mailto:, javascript:) are not checked offline
        target = site / unquote(url.path).lstrip("/")
        if url.path.endswith("/") or target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            broken.append(f"{_short(href, base_url)} (no such file)")
            continue
        fragment = unquote(url.fragment)
        if fragment and target.suffix == ".html" and fragment not in anchors(target):
            broken.append(f"{_short(href, base_url)} (no anchor #{fragment})")
    return broken


def _short(href: str, base_url: str) -> str:
    return href[len(base_url):] if href.startswith(base_url) else href


REDIRECT = re.compile(
    r"""<meta\s+http-equiv=["']?refresh["']?\s+content=["']?\d+\s*;\s*url=([^"'>\s]+)""", re.I)


def redirect_target(page: Path) -> str | None:
    """The URL a redirect-only page (``<meta http-equiv="refresh">``) sends the reader to.

    Only the first 2000 characters are read (the ``<head>``); ``None`` for an ordinary page.
    """
    head = page.read_text(encoding="utf-8", errors="replace")[:2000]
    match = REDIRECT.search(head)
    return match.group(1) if match else None
