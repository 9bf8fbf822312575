"""A small Sphinx extension for building the book (loaded from ``_config.yml``; never by
chapters).

It adds two ways into the book:

* the ``question-index`` directive: every answered question (a section under a
  ``(q-<syllabus id>)=`` label), grouped by chapter, each linking to its section with the
  Chinese term the section gives, and a filter box (a few lines of inline JS). Collected from the
  doctrees at build time, so a new section appears by itself;
* on every notebook page, a line saying how many claims the page checks: the ``assert``
  statements and exercise checks (``check_close``/``check_function``/``check_true``) in its
  code cells, all of which ran when the page was built.

It mends three things the Jupyter Book 1 stack does that break an offline page:

* Jupyter Book adds every ``.js`` file under ``_static`` as a plain ``<script>``, so the
  local MathJax (already loaded by ``sphinx.ext.mathjax`` with ``defer``) would load twice.
* sphinx-thebe can inject its inline configuration twice, which raises
  ``SyntaxError: Identifier 'THEBE_JS_URL' has already been declared`` in the console.
* pydata-sphinx-theme calls ``setTheme("")`` on a first visit when no ``default_mode`` is
  set, logging "Got invalid theme mode" as a console error.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

from docutils import nodes
from docutils.parsers.rst import Directive

QUESTION_PREFIX = "q-"
QUESTIONS_DOC = "questions"  # the page that holds the question-index directive
GUIDE_DOC = "instructors"  # the instructor guide (lab-guide directive)
# a Chinese term: a run of CJK characters, possibly with a few joiners inside (BN 小批量 ...)
CJK_TERM = re.compile(r"[\u4e00-\u9fff][\u4e00-\u9fff\w、，·/ -]*[\u4e00-\u9fff]|[\u4e00-\u9fff]")
ASSERT = re.compile(r"^\s*assert\b", re.M)
CHECK = re.compile(r"\bcheck_(?:close|function|true)\(")
EXERCISE_LABEL = re.compile(r"```\{exercise\}[^\n]*\n(?::[^\n]*\n)*?:label: ([\w.-]+)")
MINUTES_PER_EXERCISE, MINUTES_PER_NOTEBOOK = 20, 15
FILTER_JS = """<input type="search" class="dlbook-question-filter" placeholder="Filter the questions (English or 中文)"
 aria-label="Filter the questions" oninput="(function(box){var q=box.value.toLowerCase();
 document.querySelectorAll('.dlbook-question-index li').forEach(function(li){
 li.style.display=li.textContent.toLowerCase().indexOf(q)>=0?'':'none';});
 document.querySelectorAll('.dlbook-question-index section, .dlbook-question-chapter').forEach(function(sec){
 var shown=[].some.call(sec.querySelectorAll('li'),function(li){return li.style.display!=='none';});
 sec.style.display=shown?'':'none';});
 var n=[].filter.call(document.querySelectorAll('.dlbook-question-index li'),function(li){return li.style.display!=='none';}).length;
 document.querySelector('.dlbook-question-count').textContent=n;})(this)">"""


def _drop_auto_added_mathjax(app: Any, config: Any) -> None:
    config.html_js_files = [f for f in config.html_js_files if not str(f).startswith("mathjax/")]
    config.html_context = {"default_mode": "light", **config.html_context}


def _dedupe_scripts(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    seen, unique = set(), []
    for script in context.get("script_files", []):
        attributes = getattr(script, "attributes", {})
        # an inline script is registered once with filename None and once with "": same script
        key = (str(getattr(script, "filename", script) or ""), tuple(sorted(attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    if "script_files" in context:
        context["script_files"][:] = unique


# --- the question index ---------------------------------------------------------------------
class question_index(nodes.General, nodes.Element):
    """Placeholder replaced by the list of questions once every document has been read."""


class QuestionIndex(Directive):
    """``{question-index}``: the book's answered questions, grouped by chapter, with a filter."""

    def run(self):
        return [question_index("")]


def _own_text(section: nodes.section) -> str:
    """The text of a section without its subsections."""
    return " ".join(child.astext() for child in section.children if not isinstance(child, nodes.section))


def _title_html(title: nodes.title) -> str:
    """A heading as HTML with its inline math left for MathJax (``\\(...\\)``), not as raw TeX."""
    parts = []
    for node in title.findall(lambda n: isinstance(n, (nodes.Text, nodes.math))):
        if isinstance(node, nodes.math):
            parts.append(f'<span class="math notranslate nohighlight">\\({html.escape(node.astext())}\\)</span>')
        elif not isinstance(node.parent, nodes.math):
            parts.append(html.escape(node.astext()))
    return "".join(parts)


def _collect(app: Any, doctree: nodes.document) -> None:
    env = app.env
    questions = []
    for section in doctree.findall(nodes.section):
        labels = [n for n in section["names"] if n.startswith(QUESTION_PREFIX)]
        if not labels:
            continue
        title = section.next_node(nodes.title)
        zh = CJK_TERM.search(_own_text(section))
        questions.append({"label": labels[0], "id": section["ids"][0],
                          "title": title.astext() if title else labels[0],
                          "title_html": _title_html(title) if title else html.escape(labels[0]),
                          "zh": zh.group(0) if zh else ""})
    if not hasattr(env, "dlbook_questions"):
        env.dlbook_questions = {}
    env.dlbook_questions[env.docname] = questions
    if any(isinstance(n, question_index) for n in doctree.findall(question_index)):
        # the index shows headings' inline math: load MathJax on that page too
        env.get_domain("math").data["has_equations"][env.docname] = True
    claims = sum(len(ASSERT.findall(b.astext())) + len(CHECK.findall(b.astext()))
                 for b in doctree.findall(nodes.literal_block)
                 if "cell_input" in b.parent.get("classes", []))
    if not hasattr(env, "dlbook_claims"):
        env.dlbook_claims = {}
    env.dlbook_claims[env.docname] = claims


def _collect_exercises(app: Any, doctree: nodes.document) -> None:
    """The exercise labels of a page, from its source (for the instructor guide's lab table)."""
    env = app.env
    source = str(env.doc2path(env.docname))
    text = ""
    if source.endswith(".ipynb"):
        with open(source, encoding="utf-8") as f:
            cells = json.load(f)["cells"]
        text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    if not hasattr(env, "dlbook_exercises"):
        env.dlbook_exercises = {}
    env.dlbook_exercises[env.docname] = EXERCISE_LABEL.findall(text)


def _purge(app: Any, env: Any, docname: str) -> None:
    for attr in ("dlbook_questions", "dlbook_claims", "dlbook_exercises"):
        getattr(env, attr, {}).pop(docname, None)


def _merge(app: Any, env: Any, docnames: set, other: Any) -> None:
    for attr in ("dlbook_questions", "dlbook_claims", "dlbook_exercises"):
        if not hasattr(env, attr):
            setattr(env, attr, {})
        getattr(env, attr).update({d: v for d, v in getattr(other, attr, {}).items() if d in docnames})


def _always_rewrite_index(app: Any, env: Any, added: set, changed: set, removed: set) -> list[str]:
    """The index page lists every page's questions: read it again whenever anything changed."""
    if not (added or changed or removed):
        return []
    return [d for d in env.found_docs if d in (QUESTIONS_DOC, GUIDE_DOC)]


def _chapter_of(env: Any, docname: str) -> tuple[int, str, str]:
    """(reading position, chapter title, chapter docname) of a page, from the TOC's order."""
    order = {d: i for i, d in enumerate(_reading_order(env))}
    parts = docname.split("/")
    chapter_doc = "/".join(parts[:2] + ["index"]) if len(parts) > 2 else docname
    title = env.titles.get(chapter_doc) or env.titles.get(docname)
    return order.get(docname, 10**6), title.astext() if title else chapter_doc, chapter_doc


def _reading_order(env: Any) -> list[str]:
    order, seen = [], set()

    def walk(doc):
        if doc in seen:
            return
        seen.add(doc)
        order.append(doc)
        for child in env.toctree_includes.get(doc, []):
            walk(child)

    walk(env.config.root_doc)
    return order


def _resolve(app: Any, doctree: nodes.document, fromdocname: str) -> None:
    env = app.env
    for placeholder in list(doctree.findall(question_index)):
        chapters: dict[str, dict] = {}
        for docname, questions in getattr(env, "dlbook_questions", {}).items():
            if not questions:
                continue
            position, title, chapter_doc = _chapter_of(env, docname)
            chapter = chapters.setdefault(chapter_doc, {"title": title, "position": position, "items": []})
            chapter["position"] = min(chapter["position"], position)
            for q in questions:
                chapter["items"].append((position, docname, q))
        total = sum(len(c["items"]) for c in chapters.values())
        out = [f'<div class="dlbook-question-index">{FILTER_JS}',
               f'<p class="dlbook-question-summary"><span class="dlbook-question-count">{total}</span> '
               f'of {total} questions shown.</p>']
        for chapter_doc, chapter in sorted(chapters.items(), key=lambda kv: kv[1]["position"]):
            out.append(f'<section class="dlbook-question-chapter"><h2>{html.escape(chapter["title"])}</h2><ul>')
            for _, docname, q in sorted(chapter["items"], key=lambda item: item[0]):
                uri = app.builder.get_relative_uri(fromdocname, docname) + "#" + q["id"]
                zh = f' <span class="dlbook-zh" lang="zh">{html.escape(q["zh"])}</span>' if q["zh"] else ""
                out.append(f'<li><a class="reference internal" href="{html.escape(uri)}">'
                           f'{q.get("title_html") or html.escape(q["title"])}</a>{zh}</li>')
            out.append("</ul></section>")
        out.append("</div>")
        placeholder.replace_self(nodes.raw("", "\n".join(out), format="html"))


class lab_guide(nodes.General, nodes.Element):
    """Placeholder for the instructor guide's per-chapter table of labs."""


class LabGuide(Directive):
    """``{lab-guide}``: per chapter, what a student can answer after it and its labs."""

    def run(self):
        return [lab_guide("")]


def _resolve_lab_guide(app: Any, doctree: nodes.document, fromdocname: str) -> None:
    env = app.env
    for placeholder in list(doctree.findall(lab_guide)):
        order = _reading_order(env)
        chapters: dict[str, list[str]] = {}
        for docname in order:
            if docname.startswith("chapters/") and docname.count("/") >= 2 and not docname.endswith("/index"):
                chapters.setdefault(docname.rsplit("/", 1)[0] + "/index", []).append(docname)
        out = []
        for chapter_doc, docs in chapters.items():
            title = env.titles.get(chapter_doc)
            link = app.builder.get_relative_uri(fromdocname, chapter_doc)
            out.append(f'<section class="dlbook-lab-chapter"><h3><a href="{html.escape(link)}">'
                       f'{html.escape(title.astext() if title else chapter_doc)}</a></h3>')
            questions = [q["title"] for d in docs for q in getattr(env, "dlbook_questions", {}).get(d, [])]
            if questions:
                out.append(f"<p>After it a student can answer {len(questions)} questions, such as:</p><ul>")
                out += [f"<li>{html.escape(q)}</li>" for q in questions[:4]]
                out.append("</ul>")
            out.append('<table class="dlbook-lab-table"><thead><tr><th>lab (notebook)</th><th>exercises, all auto-graded</th>'
                       "<th>time</th></tr></thead><tbody>")
            for d in docs:
                labels = getattr(env, "dlbook_exercises", {}).get(d, [])
                minutes = MINUTES_PER_NOTEBOOK + MINUTES_PER_EXERCISE * len(labels)
                page = env.titles.get(d)
                out.append(f'<tr><td><a href="{html.escape(app.builder.get_relative_uri(fromdocname, d))}">'
                           f'{html.escape(page.astext() if page else d)}</a><br><code>LAB={html.escape(d.removeprefix("chapters/"))}</code></td>'
                           f"<td>{len(labels)}: {html.escape(', '.join(labels)) or '-'}</td><td>about {minutes} min</td></tr>")
            out.append("</tbody></table></section>")
        placeholder.replace_self(nodes.raw("", "\n".join(out), format="html"))


def _claims_line(app: Any, doctree: nodes.document, fromdocname: str) -> None:
    """Under a notebook page's title: how many claims the page checked when it was built."""
    claims = getattr(app.env, "dlbook_claims", {}).get(fromdocname, 0)
    if not claims:
        return
    title = doctree.next_node(nodes.title)
    if title is None:
        return
    text = (f'<p class="dlbook-claims">This page checks <strong>{claims}</strong> claims: every '
            f'<code>assert</code> and exercise check below ran, and passed, when the page was built '
            f'(<a href="{app.builder.get_relative_uri(fromdocname, "chapters/how-to-use")}#what-the-claim-count-means">what this means</a>).</p>')
    section = title.parent
    section.insert(section.index(title) + 1, nodes.raw("", text, format="html"))


def setup(app: Any) -> dict[str, Any]:
    app.add_node(question_index)
    app.add_directive("question-index", QuestionIndex)
    app.add_node(lab_guide)
    app.add_directive("lab-guide", LabGuide)
    app.connect("doctree-read", _collect_exercises)
    app.connect("doctree-resolved", _resolve_lab_guide)
    app.connect("doctree-read", _collect)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    app.connect("env-get-outdated", _always_rewrite_index)
    app.connect("doctree-resolved", _resolve)
    app.connect("doctree-resolved", _claims_line)
    app.connect("config-inited", _drop_auto_added_mathjax)
    # html-page-context stops at the first handler that returns a value: run before the others
    app.connect("html-page-context", _dedupe_scripts, priority=1)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
