"""Open every page of the built book in headless Chromium and fail on what a reader would trip on.

For each HTML page under the build folder (default ``_build/html``), served by a local HTTP server
and shown at 1280 px width, the check reports:

- ``raw-tex``: math left untypeset (``$...$``, ``\\(``, ``\\[``, ``\\begin{`` in the visible text,
  a ``.math`` element MathJax did not render, or a MathJax error box);
- ``image``: an image that did not load (``naturalWidth`` 0);
- ``too-wide``: an element of the content column (table, code or output block, figure, ...) that
  hides part of itself behind a horizontal scroll bar (``scrollWidth > clientWidth``) or whose
  right edge passes the right edge of the content column;
- ``console``: a JavaScript console error (a SEVERE browser log entry);
- ``link``: an internal link (or a redirect) to a page or anchor that does not exist;
- ``page``: a page the browser could not load or inspect.

It saves a full-page screenshot of each page under ``_build/screenshots/`` (same relative path,
``.jpg``; ``.part2.jpg``, ... for the rest of a very long page) for review, prints one line per
problem, and exits with status 1 if there is any.

Needs Debian's ``chromium`` and ``chromium-driver`` (``apt-get install chromium chromium-driver``)
and Selenium (``requirements.txt``). Usage::

    python tools/browser_check.py [BUILD_DIR] [--screenshots DIR] [--width 1280] [PAGE ...]

``make browser-test`` runs it on the book built by ``make book``.
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.server
import json
import re
import shutil
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("raw-tex", "image", "too-wide", "console", "link", "page")
# Pixels of slack before a width counts as overflow (sub-pixel layout rounding).
SLACK_PX = 1

# Where a browser and its driver live on Debian; PATH is searched first.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
DRIVER_NAMES = ("chromedriver",)
INSTALL_HINT = (
    "install Debian's packages: `apt-get install chromium chromium-driver` "
    "(as root, or with sudo)"
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong on one page: ``kind`` is one of ``KINDS``."""

    page: str
    kind: str
    detail: str

    def __str__(self) -> str:
        # Lone UTF-16 surrogates (a maths letter cut in half by the page's text) become "?".
        text = f"{self.page}: [{self.kind}] {self.detail}"
        return text.encode("utf-8", "replace").decode("utf-8")


class BrowserMissing(RuntimeError):
    """Chromium or chromedriver is not installed."""


def find_browser() -> tuple[str, str]:
    """Paths of the Chromium binary and of chromedriver; ``BrowserMissing`` names the fix."""
    browser = next((p for n in CHROMIUM_NAMES if (p := shutil.which(n))), None)
    driver = next((p for n in DRIVER_NAMES if (p := shutil.which(n))), None)
    missing = [name for name, path in (("chromium", browser), ("chromedriver", driver))
               if path is None]
    if missing:
        raise BrowserMissing(f"{' and '.join(missing)} not found on PATH: {INSTALL_HINT}")
    return browser, driver


# --------------------------------------------------------------------------------------------
# Local HTTP server: pages behave as on a web host (file:// would block scripts' requests).


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:
        pass  # no access log on the terminal


@contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve ``folder`` on a free localhost port; yields the base URL (ending in ``/``)."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------------------------------
# Anchors of every page, read from the HTML files (for the link check).


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
    """The ``id``s (and ``<a name>``s) of an HTML file."""
    parser = _IdCollector()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return frozenset(parser.ids)


def broken_links(site: Path, base_url: str, page: Path, hrefs: Iterable[str]) -> list[str]:
    """The local links among ``hrefs`` (absolute URLs) whose file or anchor does not exist."""
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
            broken.append(f"{_short(site, page, href, base_url)} (no such file)")
            continue
        fragment = unquote(url.fragment)
        if fragment and target.suffix == ".html" and fragment not in anchors(target):
            broken.append(f"{_short(site, page, href, base_url)} (no anchor #{fragment})")
    return broken


def _short(site: Path, page: Path, href: str, base_url: str) -> str:
    return href[len(base_url):] if href.startswith(base_url) else href


# --------------------------------------------------------------------------------------------
# What runs inside the page.

# Waits for MathJax's first typesetting pass and for every image to finish loading (or fail).
WAIT_JS = """
const done = arguments[arguments.length - 1];
const waits = [];
if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
  waits.push(MathJax.startup.promise.catch(() => null));
}
for (const img of document.images) {
  img.loading = 'eager';
  if (!img.complete) {
    waits.push(new Promise(r => {
      img.addEventListener('load', r);
      img.addEventListener('error', r);
    }));
  }
}
const timeout = new Promise(r => setTimeout(r, 15000));
Promise.race([Promise.all(waits), timeout]).then(() => done(true));
"""

# Returns {"tex": [...], "images": [...], "wide": [...], "links": [...]} for the current page.
INSPECT_JS = r"""
const SLACK = arguments[0];
const column = document.querySelector('article.bd-article') || document.querySelector('main')
  || document.body || document.documentElement;
const colRect = column.getBoundingClientRect();

function describe(el) {
  let s = el.tagName.toLowerCase();
  if (el.id) s += '#' + el.id;
  const cls = (typeof el.className === 'string' ? el.className : '').trim().split(/\s+/)
    .filter(c => c).slice(0, 3);
  if (cls.length) s += '.' + cls.join('.');
  const section = el.closest('section[id]');
  if (section) s += ' in section #' + section.id;
  // Array.from: slice whole characters, not UTF-16 halves of a maths letter
  const raw = (el.innerText || el.getAttribute('alt') || '').replace(/\s+/g, ' ').trim();
  const text = Array.from(raw);
  if (text.length) s += ' "' + text.slice(0, 60).join('') + (text.length > 60 ? '...' : '') + '"';
  return s;
}

function visible(el) {
  const st = getComputedStyle(el);
  return st.display !== 'none' && st.visibility !== 'hidden' && el.getClientRects().length > 0;
}

// 1. Math: every .math element rendered by MathJax, no MathJax error, no raw TeX in the text.
const tex = [];
for (const el of column.querySelectorAll('.math')) {
  if (!el.querySelector('mjx-container') && !el.closest('mjx-container')) {
    tex.push('math not typeset: ' + describe(el));
  }
}
for (const el of column.querySelectorAll('mjx-merror, [data-mjx-error]')) {
  tex.push('MathJax error ' + (el.getAttribute('data-mjx-error') || '') + ': ' + describe(el));
}
// The visible prose: code, outputs printed as text, and rendered math are skipped.
const SKIP = 'pre, code, script, style, textarea, mjx-container, .math, .highlight, .MathJax';
const walker = document.createTreeWalker(column, NodeFilter.SHOW_TEXT, {
  acceptNode(node) {
    const parent = node.parentElement;
    if (!parent || parent.closest(SKIP) || !visible(parent)) return NodeFilter.FILTER_REJECT;
    return NodeFilter.FILTER_ACCEPT;
  }
});
const RAW = [
  /\$\$[^$]+\$\$/, /\\\(.+?\\\)/, /\\\[.+?\\\]/, /\\begin\{/,
  /\$[^$\s][^$\n]*?(\\[a-zA-Z]+|[_^{}])[^$\n]*?\$/,
];
let prose = '';
for (let node = walker.nextNode(); node; node = walker.nextNode()) {
  prose += node.textContent + ' ';
}
prose = prose.replace(/\s+/g, ' ');
for (const re of RAW) {
  const m = prose.match(re);
  if (m) {
    const start = Math.max(0, m.index - 30);
    tex.push('raw TeX in the text: "...' + prose.slice(start, m.index + m[0].length + 30)
      + '..."');
  }
}

// 2. Images that did not load.
const images = [];
const imageUrls = [];
for (const img of document.images) {
  if (!img.complete || img.naturalWidth === 0) {
    images.push((img.getAttribute('src') || '').slice(0, 100) + ' (' + describe(img) + ')');
    imageUrls.push(img.src);
  }
}

// 3. Elements of the content column that are too wide for it.
const wide = [];
const seen = new Set();
for (const el of column.querySelectorAll('*')) {
  // MathJax's own parts (stretchy delimiters, ...) clip on purpose: check its container only.
  if (!visible(el) || (el.parentElement && el.parentElement.closest('mjx-container'))) continue;
  const st = getComputedStyle(el);
  if (st.position === 'fixed') continue;
  // (a) content hidden behind a horizontal scroll bar (or clipped) inside the element
  // Only block boxes: an inline formula's box is a few pixels narrower than its glyphs.
  const scrolls = ['auto', 'scroll', 'hidden', 'clip'].includes(st.overflowX)
    && !st.display.startsWith('inline');
  if (scrolls && el.clientWidth > 2 && el.scrollWidth > el.clientWidth + SLACK) {
    if (![...seen].some(s => s.contains(el))) {
      seen.add(el);
      wide.push(describe(el) + ': content ' + el.scrollWidth + ' px wide in a box of '
        + el.clientWidth + ' px');
    }
    continue;
  }
  // (b) the element sticks out of the content column
  const r = el.getBoundingClientRect();
  if (r.width > 0 && r.right > colRect.right + SLACK && ![...seen].some(s => s.contains(el))) {
    seen.add(el);
    wide.push(describe(el) + ': right edge at ' + Math.round(r.right)
      + ' px, content column ends at ' + Math.round(colRect.right) + ' px ('
      + Math.round(r.width) + ' px wide)');
  }
}

// 4. Every link of the page, resolved to an absolute URL.
const links = [...document.querySelectorAll('a[href]')].map(a => a.href);

// JSON: a large nested result is passed back more reliably as one string.
return JSON.stringify({tex: tex, images: images, imageUrls: imageUrls, wide: wide, links: links});
"""


# --------------------------------------------------------------------------------------------


def make_driver(width: int, height: int = 900):
    """Headless Chromium driven by the system chromedriver (no download, no network)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = find_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--hide-scrollbars", "--disable-extensions", "--no-first-run",
                f"--window-size={width},{height}", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=driver_path), options=options)


def pages_of(site: Path) -> list[Path]:
    """Every built HTML page, Sphinx's copies of sources and static files excluded."""
    skip = {"_static", "_sources", "_images", "_downloads"}
    return sorted(p for p in site.rglob("*.html")
                  if not skip.intersection(p.relative_to(site).parts[:1]))


# JPEG: about twice as fast to encode as PNG for a tall page; a JPEG is at most 65535 px high,
# so a long page is saved as several tiles (name.jpg, name.part2.jpg, ...).
TILE_PX = 16000


def screenshot(driver, path: Path, width: int) -> list[Path]:
    """JPEG(s) of the whole page (not only the window) at the window's width; the files."""
    height = int(driver.execute_script(
        "return Math.max(document.documentElement.scrollHeight, document.body.scrollHeight)"))
    path.parent.mkdir(parents=True, exist_ok=True)
    for old in [path.parent / f"{path.name}.jpg", *path.parent.glob(f"{path.name}.part*.jpg")]:
        old.unlink(missing_ok=True)  # tiles of an earlier, longer version of the page
    files = []
    for index, top in enumerate(range(0, max(height, 1), TILE_PX), start=1):
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "jpeg", "quality": 80, "optimizeForSpeed": True,
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": top, "width": width,
                     "height": min(TILE_PX, height - top) or 1, "scale": 1},
        })
        suffix = ".jpg" if index == 1 else f".part{index}.jpg"
        files.append(path.parent / f"{path.name}{suffix}")
        files[-1].write_bytes(base64.b64decode(shot["data"]))
    return files


REDIRECT = re.compile(
    r"""<meta\s+http-equiv=["']?refresh["']?\s+content=["']?\d+\s*;\s*url=([^"'>\s]+)""", re.I)


def redirect_target(page: Path) -> str | None:
    """The URL a redirect-only page (``<meta http-equiv="refresh">``) sends the reader to."""
    head = page.read_text(encoding="utf-8", errors="replace")[:2000]
    match = REDIRECT.search(head)
    return match.group(1) if match else None


def check_page(driver, site: Path, base_url: str, page: Path) -> list[Problem]:
    """Load one page in ``driver`` and return its problems."""
    name = page.relative_to(site).as_posix()
    driver.get(base_url + name)
    driver.execute_async_script(WAIT_JS)
    found = json.loads(driver.execute_script(INSPECT_JS, SLACK_PX))
    problems = [Problem(name, "raw-tex", d) for d in found["tex"]]
    problems += [Problem(name, "image", f"image did not load: {d}") for d in found["images"]]
    problems += [Problem(name, "too-wide", d) for d in found["wide"]]
    problems += [Problem(name, "link", f"broken link {d}")
                 for d in broken_links(site, base_url, page, found["links"])]
    for entry in driver.get_log("browser"):
        message = entry.get("message", "")
        # A missing favicon is the web host's business, not the page's; an image that failed
        # to load is reported above already (its 404 also lands in the console).
        if (entry.get("level") != "SEVERE" or "favicon.ico" in message
                or any(message.startswith(url + " ") for url in found["imageUrls"])):
            continue
        problems.append(Problem(name, "console", message[:300]))
    return problems


def check_site(site: Path, pages: Iterable[Path] | None = None,
               screenshots: Path | None = None, width: int = 1280,
               jobs: int = 2) -> list[Problem]:
    """Check ``pages`` (default: every page) of the built site ``site``; returns the problems.

    Parameters
    ----------
    site : Path
        Folder of the built HTML (``_build/html``).
    pages : iterable of Path, optional
        HTML files inside ``site``; default ``pages_of(site)``.
    screenshots : Path, optional
        Folder for one full-page JPEG per page (same relative path); none are saved if None.
    width : int
        Window width in CSS pixels.
    jobs : int
        Browsers working in parallel (each on every ``jobs``-th page).

    Examples
    --------
    >>> problems = check_site(Path("_build/html"), screenshots=Path("_build/screenshots"))
    """
    site = site.resolve()
    if not (site / "index.html").is_file() and pages is None:
        raise FileNotFoundError(
            f"{site} holds no index.html: build the book first (`make book`)")
    pages = [Path(p).resolve() for p in pages] if pages is not None else pages_of(site)
    anchors.cache_clear()
    jobs = max(1, min(jobs, len(pages)))
    with serve(site) as base_url:
        # Each worker drives its own browser over every jobs-th page; Chromium does the work.
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            found = pool.map(lambda k: _check_pages(site, base_url, pages[k::jobs], screenshots,
                                                    width), range(jobs))
            problems = [p for chunk in found for p in chunk]
    order = {page.relative_to(site).as_posix(): i for i, page in enumerate(pages)}
    return sorted(problems, key=lambda p: order[p.page])  # stable: page order, then found order


def _check_pages(site: Path, base_url: str, pages: list[Path], screenshots: Path | None,
                 width: int) -> list[Problem]:
    from selenium.common.exceptions import WebDriverException

    problems: list[Problem] = []
    driver = make_driver(width)
    try:
        driver.set_page_load_timeout(60)
        driver.set_script_timeout(30)
        for page in pages:
            name = page.relative_to(site).as_posix()
            if (target := redirect_target(page)) is not None:
                # A redirect (index.html -> the first chapter): its target must exist; the
                # target page itself is checked on its own.
                url = urljoin(base_url + name, target)
                problems += [Problem(name, "link", f"redirect to a missing page: {d}")
                             for d in broken_links(site, base_url, page, [url])]
                continue
            try:
                problems += check_page(driver, site, base_url, page)
                if screenshots is not None:
                    screenshot(driver, screenshots / Path(name).with_suffix(""), width)
            except WebDriverException as err:
                problems.append(Problem(name, "page", f"could not be checked: {err.msg}"))
    finally:
        driver.quit()
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("site", nargs="?", type=Path, default=ROOT / "_build" / "html",
                        help="built HTML folder (default: _build/html)")
    parser.add_argument("pages", nargs="*", type=Path,
                        help="only these HTML files (paths relative to SITE or absolute)")
    parser.add_argument("--screenshots", type=Path, default=ROOT / "_build" / "screenshots",
                        help="folder for the screenshots (default: _build/screenshots)")
    parser.add_argument("--no-screenshots", action="store_true", help="save no screenshots")
    parser.add_argument("--width", type=int, default=1280, help="window width (default 1280)")
    parser.add_argument("--jobs", type=int, default=2, help="browsers in parallel (default 2)")
    args = parser.parse_args(argv)
    site = args.site.resolve()
    pages = None
    if args.pages:
        pages = [p if p.is_absolute() else site / p for p in args.pages]
        if missing := [str(p) for p in pages if not p.is_file()]:
            parser.error(f"no such page: {', '.join(missing)}")
    start = time.perf_counter()
    try:
        problems = check_site(site, pages, None if args.no_screenshots else args.screenshots,
                              args.width, args.jobs)
    except (BrowserMissing, FileNotFoundError) as err:
        print(f"browser check: {err}", file=sys.stderr)
        return 2
    n_pages = len(pages) if pages is not None else len(pages_of(site))
    for problem in problems:
        print(problem)
    shots = "" if args.no_screenshots else f"; screenshots in {args.screenshots}"
    summary = (f"browser check: {n_pages} pages at {args.width} px, {len(problems)} problem(s) "
               f"in {time.perf_counter() - start:.0f} s{shots}")
    print(summary, file=sys.stderr if problems else sys.stdout)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
