"""A small Sphinx extension for building the book (loaded from ``_config.yml``; never by
chapters).

It mends three things the Jupyter Book 1 stack does that break an offline page:

* Jupyter Book adds every ``.js`` file under ``_static`` as a plain ``<script>``, so the
  local MathJax (already loaded by ``sphinx.ext.mathjax`` with ``defer``) would load twice.
* sphinx-thebe can inject its inline configuration twice, which raises
  ``SyntaxError: Identifier 'THEBE_JS_URL' has already been declared`` in the console.
* pydata-sphinx-theme calls ``setTheme("")`` on a first visit when no ``default_mode`` is
  set, logging "Got invalid theme mode" as a console error.
"""

from __future__ import annotations

from typing import Any


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


def setup(app: Any) -> dict[str, Any]:
    app.connect("config-inited", _drop_auto_added_mathjax)
    # html-page-context stops at the first handler that returns a value: run before the others
    app.connect("html-page-context", _dedupe_scripts, priority=1)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
