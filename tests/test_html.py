"""The built HTML book, opened in a real browser with the network off.

Run after `make book` (the Makefile's `test-browser` target does both). Playwright drives
Debian's Chromium at /usr/bin/chromium (no browser download); every request that leaves
localhost is refused and recorded.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"
CHROMIUM = os.environ.get("DLBOOK_CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
MAX_EXPLORER_BYTES = 1_500_000
SKIP = {"genindex.html", "search.html"}


def _pages() -> list[Path]:
    if not SITE.exists():
        return []
    return sorted(
        p for p in SITE.rglob("*.html")
        if not {"_static", "_sources", "_images"} & set(p.relative_to(SITE).parts) and p.name not in SKIP
    )


PAGES = _pages()
PAGE_IDS = [str(p.relative_to(SITE)) for p in PAGES]
# Jupyter Book writes index.html as a meta-refresh redirect to the root page: nothing to render.
RENDERED = [p for p in PAGES if 'http-equiv="Refresh"' not in p.read_text(encoding="utf-8")]
RENDERED_IDS = [str(p.relative_to(SITE)) for p in RENDERED]


def test_the_book_was_built():
    assert PAGES, f"no HTML under {SITE}: run `make book` first"
    assert (SITE / "_static" / "mathjax" / "tex-svg-full.js").exists(), "MathJax is not served locally"


# -- static checks over every page: links, anchors, images ------------------------------------
class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.links, self.images = set(), [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if tag in ("img", "script") and a.get("src"):
            self.images.append(a["src"])
        if tag == "link" and a.get("href"):
            self.images.append(a["href"])


@functools.lru_cache(maxsize=None)
def _parse(path: Path) -> _Collector:
    c = _Collector()
    c.feed(path.read_text(encoding="utf-8"))
    return c


def _local_target(page: Path, ref: str) -> tuple[Path, str] | None:
    url = urlparse(ref)
    if url.scheme or url.netloc or ref.startswith(("mailto:", "javascript:", "data:")):
        return None
    target = (page.parent / unquote(url.path)).resolve() if url.path else page
    if target.is_dir():
        target = target / "index.html"
    return target, url.fragment


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_internal_links_and_assets_resolve(page):
    broken = []
    for ref in _parse(page).links + _parse(page).images:
        local = _local_target(page, ref)
        if local is None:
            continue
        target, fragment = local
        if not target.exists():
            broken.append(ref)
        elif fragment and target.suffix == ".html" and fragment not in _parse(target).ids:
            broken.append(ref + " (no such anchor)")
    assert not broken, f"{page.name}: broken internal links or assets: {broken}"


# -- the browser ---------------------------------------------------------------------------
@pytest.fixture(scope="session")
def server():
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(SITE))

    class Quiet(handler.func):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(SITE)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


@pytest.fixture(scope="session")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: `make test` installs Debian's chromium")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        yield b
        b.close()


class _Visit:
    """A page opened with the network off; collects console errors and refused requests."""

    def __init__(self, browser, url):
        self.errors, self.offsite = [], []
        self.context = browser.new_context(viewport={"width": 1200, "height": 900})
        self.page = self.context.new_page()
        self.page.route("**/*", self._route)
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(url, wait_until="load")
        # MathJax typesets asynchronously: wait until it has finished (or is absent).
        self.page.wait_for_function(
            "() => !window.MathJax || (MathJax.startup && MathJax.startup.promise)", timeout=20_000
        )
        self.page.evaluate("() => window.MathJax ? MathJax.startup.promise.then(() => true) : true")

    def _route(self, route):
        host = urlparse(route.request.url).hostname
        if route.request.url.startswith("data:") or host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            self.offsite.append(route.request.url)
            route.abort()

    def close(self):
        self.context.close()


@pytest.fixture
def visit(browser, server):
    opened = []

    def _open(page: Path) -> _Visit:
        v = _Visit(browser, urljoin(server, str(page.relative_to(SITE))))
        opened.append(v)
        return v

    yield _open
    for v in opened:
        v.close()


# TeX left as text: any command (\gamma, \to, \frac), math delimiters, ^{ or _{, or a dollar sign,
# in the page's prose (math MathJax typeset, code, and cell outputs are removed first).
RAW_TEX = re.compile(r"\\[A-Za-z]+|\\[()\[\]{}]|\^\{|_\{|\$")
VISIBLE_TEXT_JS = """() => {
  const main = document.querySelector('main') || document.body;
  const clone = main.cloneNode(true);
  clone.querySelectorAll('pre, code, script, style, .highlight, mjx-container, .cell_output, .output')
    .forEach(e => e.remove());
  return clone.innerText;
}"""


@pytest.mark.parametrize("page", RENDERED, ids=RENDERED_IDS)
def test_page_renders_without_errors_or_raw_tex(visit, page):
    v = visit(page)
    assert not v.errors, f"{page.name}: console errors {v.errors}"
    assert not v.offsite, f"{page.name}: tried to reach the network: {v.offsite}"
    text = v.page.evaluate(VISIBLE_TEXT_JS)
    raw = RAW_TEX.search(text)
    assert raw is None, f"{page.name}: unrendered TeX near {text[max(0, raw.start() - 60): raw.end() + 60]!r}"
    assert v.page.locator("mjx-merror").count() == 0, f"{page.name}: MathJax reported a TeX error"
    broken = v.page.evaluate(
        "() => [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src.slice(0, 80))"
    )
    assert not broken, f"{page.name}: images that did not load: {broken}"


def test_math_is_typeset_somewhere(visit):
    pages_with_math = [p for p in PAGES if "\\(" in p.read_text(encoding="utf-8")]
    assert pages_with_math, "no page has inline math: the MathJax check would be vacuous"
    v = visit(pages_with_math[0])
    assert v.page.locator("mjx-container").count() > 0, "MathJax did not typeset the page"


EXPLORER_PAGES = [p for p in PAGES if 'class="dlbook-explorer"' in p.read_text(encoding="utf-8")]


def test_there_are_static_explorers():
    assert EXPLORER_PAGES, "no page carries a static explorer"


def _move(page, control) -> None:
    """Move one control by one step, as a reader would (keyboard on a slider, pick on a select)."""
    if control.evaluate("e => e.tagName") == "SELECT":
        n = control.locator("option").count()
        control.select_option(index=(int(control.input_value()) + 1) % n)
    else:
        control.focus()
        at_max = control.evaluate("e => e.value === e.max")
        page.keyboard.press("ArrowLeft" if at_max else "ArrowRight")


@pytest.mark.parametrize("page", EXPLORER_PAGES, ids=[str(p.relative_to(SITE)) for p in EXPLORER_PAGES])
def test_static_explorers_change_frame_when_a_control_moves(visit, page):
    v = visit(page)
    explorers = v.page.locator(".dlbook-explorer")
    assert explorers.count() > 0
    for i in range(explorers.count()):
        ex = explorers.nth(i)
        size = ex.evaluate("e => e.outerHTML.length")
        assert size <= MAX_EXPLORER_BYTES, f"{page.name}: explorer {i} is {size:,} bytes"
        assert "Jupyter or Colab" in ex.inner_text(), "the note about the live version is missing"
        img = ex.locator("img.dlbook-explorer-frame")
        controls = ex.locator("[data-control]").all()
        for control in controls:
            # A control may matter only in some states (GN's group count when the method is
            # BN): move it from the current state and, if nothing changes, again after each step
            # of the other controls. It fails only if it never changes the frame.
            changed = False
            others = [c for c in controls if c != control]
            for other in [None] + others * 6:  # up to 6 steps of each other control
                if other is not None:
                    _move(v.page, other)
                before = img.get_attribute("src")
                _move(v.page, control)
                if img.get_attribute("src") != before:
                    changed = True
                    break
            name = control.get_attribute("data-control")
            assert changed, f"{page.name}: explorer {i}: moving {name} never changed the frame"
    assert not v.errors, f"{page.name}: console errors {v.errors}"


NOTEBOOK_PAGES = [p for p in RENDERED if (ROOT / p.relative_to(SITE)).with_suffix(".ipynb").exists()]


@pytest.mark.parametrize("page", NOTEBOOK_PAGES, ids=[str(p.relative_to(SITE)) for p in NOTEBOOK_PAGES])
def test_notebook_pages_have_a_colab_button(page):
    import yaml

    repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    slug = repo.removeprefix("https://github.com/")
    notebook = page.relative_to(SITE).with_suffix(".ipynb").as_posix()
    expected = f"https://colab.research.google.com/github/{slug}/blob/main/{notebook}"
    assert expected in _parse(page).links, f"{page.name}: no Colab launch button to {expected}"
