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


# -- finding answers: the question index, the claim counts, search, print, narrow screens ------
STRAY_REPR = re.compile(r"&lt;[\w.]+(?: object)? at 0x[0-9a-f]+&gt;")


@pytest.mark.parametrize("page", RENDERED, ids=RENDERED_IDS)
def test_no_stray_object_repr_on_the_page(page):
    """A cell ending in e.g. `torch.manual_seed(0)` shows `<torch._C.Generator at 0x...>`."""
    found = STRAY_REPR.search(page.read_text(encoding="utf-8"))
    assert found is None, f"{page.name}: stray repr {found.group(0)}"


def test_every_page_declares_the_favicon():
    for page in RENDERED:
        assert 'rel="icon"' in page.read_text(encoding="utf-8"), f"{page.name}: no favicon link"


QUESTIONS = SITE / "questions.html"


def test_question_index_lists_every_labelled_section_and_its_links_resolve():
    labels = set()
    for page in NOTEBOOK_PAGES:  # the notebooks that were built
        nb = (ROOT / page.relative_to(SITE)).with_suffix(".ipynb")
        labels |= set(re.findall(r"\(q-([A-Za-z0-9_.\-]+)\)=", nb.read_text(encoding="utf-8")))
    html = QUESTIONS.read_text(encoding="utf-8")
    items = re.findall(r'<li><a class="reference internal" href="([^"]+)">', html)
    assert len(items) == len(labels), f"{len(items)} questions indexed, {len(labels)} labelled sections"
    broken = []
    for href in items:
        target, fragment = _local_target(QUESTIONS, href)
        if not target.exists() or fragment not in _parse(target).ids:
            broken.append(href)
    assert not broken, f"question index links that do not resolve: {broken[:5]}"
    assert html.count('class="dlbook-zh"') >= 0.9 * len(items), "most questions should carry their Chinese term"


def test_question_filter_narrows_the_list(visit):
    v = visit(QUESTIONS)
    shown = "() => [...document.querySelectorAll('.dlbook-question-index li')].filter(li => li.offsetParent !== null).length"
    total = v.page.evaluate(shown)
    v.page.fill(".dlbook-question-filter", "交叉熵")
    zh = v.page.evaluate(shown)
    assert 0 < zh < total, f"filtering by 交叉熵 left {zh} of {total}"
    v.page.fill(".dlbook-question-filter", "zzzz-no-such-question")
    assert v.page.evaluate(shown) == 0
    assert v.page.inner_text(".dlbook-question-count") == "0"
    v.page.fill(".dlbook-question-filter", "")
    assert v.page.evaluate(shown) == total
    assert not v.errors, v.errors


@pytest.mark.parametrize("page", NOTEBOOK_PAGES[:40], ids=[str(p.relative_to(SITE)) for p in NOTEBOOK_PAGES[:40]])
def test_notebook_pages_say_how_many_claims_they_check(page):
    m = re.search(r'class="dlbook-claims">This page checks <strong>(\d+)</strong>', page.read_text(encoding="utf-8"))
    assert m and int(m.group(1)) > 0, f"{page.name}: no claim count under the title"


@pytest.mark.parametrize("term, expected", [("Focal", "losses/02"), ("交叉熵", "losses/01")])
def test_search_finds_the_right_page_first(visit, term, expected):
    v = visit(SITE / "search.html")
    v.page.goto(v.page.url + f"?q={term}", wait_until="load")
    v.page.wait_for_selector("#search-results ul.search li a", timeout=20_000)
    first = v.page.locator("#search-results ul.search li a").first.get_attribute("href")
    assert expected in first, f"searching {term!r}: first result {first}, expected {expected}"


def test_pages_fit_a_400px_screen(browser, server):
    context = browser.new_context(viewport={"width": 400, "height": 800})
    page = context.new_page()
    try:
        for target in [QUESTIONS] + NOTEBOOK_PAGES[:3]:
            page.goto(urljoin(server, str(target.relative_to(SITE))), wait_until="load")
            overflow = page.evaluate("() => document.querySelector('main').scrollWidth - document.querySelector('main').clientWidth")
            assert overflow <= 2, f"{target.name}: main content overflows a 400 px screen by {overflow} px"
    finally:
        context.close()


def test_a_chapter_page_prints_to_pdf(browser, server, tmp_path):
    page = browser.new_page()
    try:
        target = next(p for p in EXPLORER_PAGES) if EXPLORER_PAGES else NOTEBOOK_PAGES[0]
        page.goto(urljoin(server, str(target.relative_to(SITE))), wait_until="load")
        page.emulate_media(media="print")
        hidden = page.evaluate("() => [...document.querySelectorAll('.bd-sidebar-primary, .dlbook-explorer-controls')]"
                               ".every(e => getComputedStyle(e).display === 'none')")
        assert hidden, "print CSS must hide the sidebar and explorer controls"
        pdf = tmp_path / "page.pdf"
        page.pdf(path=str(pdf))
        assert pdf.stat().st_size > 10_000
    finally:
        page.close()


def test_glossary_terms_are_anchored_and_their_links_resolve():
    page = SITE / "glossary.html"
    parsed = _parse(page)
    terms = [i for i in parsed.ids if i.startswith("term-")]
    assert len(terms) >= 200, f"only {len(terms)} glossary terms"
    broken = [href for href in parsed.links if (t := _local_target(page, href)) is not None
              and t[1] and t[0].suffix == ".html" and t[0].exists() and t[1] not in _parse(t[0]).ids]
    assert not broken, f"glossary links without a target: {broken[:5]}"


@pytest.mark.parametrize("term, expected", [("PagedAttention", "deployment/05")])
def test_search_finds_the_new_chapters(visit, term, expected):
    """The glossary's entry for a term may come first (it links to the section); the chapter
    page that defines it must be the first page after it."""
    v = visit(SITE / "search.html")
    v.page.goto(v.page.url + f"?q={term}", wait_until="load")
    v.page.wait_for_selector("#search-results ul.search li a", timeout=20_000)
    hrefs = [a.get_attribute("href") for a in v.page.locator("#search-results ul.search li a").all()]
    pages = [h for h in hrefs if not h.startswith("glossary.html")]
    assert pages and expected in pages[0], f"searching {term!r}: results {hrefs[:4]}, expected {expected}"
