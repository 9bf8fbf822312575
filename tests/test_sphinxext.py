"""The book-build fixes in dlbook.sphinxext, on Sphinx's own asset objects."""

from types import SimpleNamespace

from sphinx.builders.html._assets import _JavaScript

from dlbook import sphinxext


def test_inline_scripts_registered_twice_are_kept_once():
    scripts = [_JavaScript(None, body="const A = 1"), _JavaScript("x.js"), _JavaScript("", body="const A = 1"),
               _JavaScript("x.js", defer="defer")]
    context = {"script_files": scripts}
    sphinxext._dedupe_scripts(None, "page", "page.html", context, None)
    assert [str(s.filename or "") for s in context["script_files"]] == ["", "x.js", "x.js"]


def test_mathjax_is_not_added_twice_and_theme_mode_is_set():
    config = SimpleNamespace(html_js_files=["mathjax/tex-svg-full.js", "other.js"], html_context={})
    sphinxext._drop_auto_added_mathjax(None, config)
    assert config.html_js_files == ["other.js"]
    assert config.html_context["default_mode"] == "light"
