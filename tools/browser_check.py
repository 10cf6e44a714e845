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

The JavaScript that runs inside each page is in ``tools/browser_check/`` (``wait_for_page.js``,
``inspect_page.js``); the link check, pure functions on the site's files, is
``tools/link_check.py``. This module serves the site and drives the browser.
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.server
import json
import shutil
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

# A sibling module of tools/ (on sys.path when this file runs as a script, and in the tests).
from link_check import anchors, broken_links, redirect_target

ROOT = Path(__file__).resolve().parent.parent
#: The JavaScript run inside each page (see :func:`script`).
SCRIPTS = Path(__file__).resolve().parent / "browser_check"
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
# What runs inside the page.


@functools.cache
def script(name: str) -> str:
    """The JavaScript of ``tools/browser_check/NAME``, read once.

    ``wait_for_page.js`` (asynchronous: waits for MathJax and the images) and
    ``inspect_page.js`` (returns the page's problems and links as JSON).
    """
    return (SCRIPTS / name).read_text(encoding="utf-8")


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


def check_page(driver, site: Path, base_url: str, page: Path) -> list[Problem]:
    """Load one page in ``driver`` and return its problems."""
    name = page.relative_to(site).as_posix()
    driver.get(base_url + name)
    driver.execute_async_script(script("wait_for_page.js"))
    found = json.loads(driver.execute_script(script("inspect_page.js"), SLACK_PX))
    problems = [Problem(name, "raw-tex", d) for d in found["tex"]]
    problems += [Problem(name, "image", f"image did not load: {d}") for d in found["images"]]
    problems += [Problem(name, "too-wide", d) for d in found["wide"]]
    # Sphinx viewcode's generated source pages (_modules/) link each function back to its
    # documentation; for members documented through a re-export (MetaLearner's methods, defined
    # in metarec.meta.core and friends) Sphinx writes the back-link to an anchor it never
    # creates. Those pages are still loaded and checked for everything else.
    if not name.startswith("_modules/"):
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
