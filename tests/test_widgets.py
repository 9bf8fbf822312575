"""The explorer mechanism: one compute/draw pair drives the live widget and the static HTML."""

import json
import re

import numpy as np
import pytest

from dlbook.widgets import MAX_STATIC_BYTES, Explorer


def compute(a, shape="sin"):
    x = np.linspace(0, 2 * np.pi, 50)
    return x, (np.sin if shape == "sin" else np.cos)(a * x)


def draw(fig, data):
    ax = fig.subplots()
    (line,) = ax.plot(*data)
    ax.set_ylim(-1.1, 1.1)

    def update(data):
        line.set_data(*data)

    return update


@pytest.fixture
def explorer():
    return Explorer(compute, draw, {"a": [1.0, 2.0, 3.0], "shape": ["sin", "cos"]}, title="waves")


def _frames(html):
    blob = re.search(r'class="dlbook-explorer-data">(.*?)</script>', html, re.S).group(1)
    return json.loads(blob)


def test_static_html_holds_one_frame_per_combination(explorer):
    html = explorer.static_html()
    data = _frames(html)
    assert data["shape"] == [3, 2]
    assert len(data["frames"]) == 6
    assert len(set(data["frames"])) == 6, "every combination must render a different frame"
    assert 'type="range"' in html and "<select" in html
    assert "live version" in html  # the visible note


def test_static_frame_order_is_row_major(explorer):
    # frame k of shape (3, 2) is (a index k // 2, shape index k % 2): the JS relies on it
    data = _frames(explorer.static_html())
    explorer2 = Explorer(compute, draw, {"a": [1.0, 2.0, 3.0], "shape": ["sin", "cos"]}, title="waves")
    expected = explorer2.frames()[3]  # a=2.0, shape="cos"
    import base64

    assert base64.b64decode(data["frames"][3]) == expected


def test_static_html_has_no_network_references(explorer):
    html = explorer.static_html()
    assert "http://" not in html and "https://" not in html


def test_static_size_limit_is_enforced():
    big = Explorer(compute, draw, {"a": list(np.linspace(1, 5, 40))}, max_bytes=50_000)
    with pytest.raises(ValueError, match="max_bytes"):
        big.static_html()


def test_default_size_budget_is_the_issues():
    assert MAX_STATIC_BYTES == 1_500_000


def test_live_widget_updates_its_image(explorer):
    box = explorer.live()
    image = box.children[-1]
    slider, dropdown = box.children[-2].children
    assert (slider.value, dropdown.value) == (2.0, "cos")  # default: each grid's middle entry
    before = bytes(image.value)
    slider.value = 3.0
    assert bytes(image.value) != before
    after_slider = bytes(image.value)
    dropdown.value = "sin"
    assert bytes(image.value) != after_slider


def test_live_and_static_render_the_same_pixels(explorer):
    from PIL import Image
    import io

    live = np.asarray(Image.open(io.BytesIO(explorer.frame_png(a=1.0, shape="sin"))).convert("RGB"))
    static = np.asarray(Image.open(io.BytesIO(explorer.frame_png(palette=True, a=1.0, shape="sin"))).convert("RGB"))
    assert live.shape == static.shape
    assert np.abs(live.astype(int) - static.astype(int)).mean() < 3  # palette quantisation only


@pytest.mark.parametrize("mode, keys", [
    ("both", {"text/plain", "text/html", "application/vnd.jupyter.widget-view+json"}),
    ("static", {"text/plain", "text/html"}),
    ("live", {"text/plain", "application/vnd.jupyter.widget-view+json"}),
])
def test_mimebundle_modes(explorer, monkeypatch, mode, keys):
    monkeypatch.setenv("DLBOOK_EXPLORER_MODE", mode)
    bundle = explorer._repr_mimebundle_()
    assert set(bundle) == keys
    if "application/vnd.jupyter.widget-view+json" in bundle:
        view = bundle["application/vnd.jupyter.widget-view+json"]
        assert view["version_major"] == 2 and len(view["model_id"]) > 0


def test_bad_mode_is_rejected(explorer, monkeypatch):
    monkeypatch.setenv("DLBOOK_EXPLORER_MODE", "fancy")
    with pytest.raises(ValueError, match="fancy"):
        explorer._repr_mimebundle_()


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(compute=None), TypeError, "compute must be callable"),
    (dict(draw="draw"), TypeError, "draw must be callable"),
    (dict(controls={}), ValueError, "at least one control"),
    (dict(controls={"a": []}), ValueError, "'a' has an empty grid"),
    (dict(controls={"a": "abc"}), TypeError, "sequence of values"),
    (dict(controls=[("a", [1])]), TypeError, "mapping"),
    (dict(controls={"a": [1, 1.0]}), ValueError, "repeated values"),
    (dict(controls={"not valid": [1]}), ValueError, "identifier"),
    (dict(controls={"a": list(range(200))}), ValueError, "200 frames"),
    (dict(controls={"a": [1, 2]}, initial={"b": 1}), ValueError, "unknown controls"),
    (dict(controls={"a": [1, 2]}, initial={"a": 7}), ValueError, "not on the grid"),
    (dict(dpi=0), ValueError, "dpi"),
])
def test_bad_input(kwargs, error, match):
    args = dict(compute=compute, draw=draw, controls={"a": [1.0, 2.0]})
    args.update(kwargs)
    with pytest.raises(error, match=match):
        Explorer(args.pop("compute"), args.pop("draw"), args.pop("controls"), **args)


def test_draw_must_return_an_update_function():
    ex = Explorer(compute, lambda fig, data: None, {"a": [1.0, 2.0]})
    with pytest.raises(TypeError, match="update"):
        ex.render(a=1.0)


def test_render_rejects_unknown_controls(explorer):
    with pytest.raises(ValueError, match="unknown control"):
        explorer.render(b=1)


def test_live_update_times_and_timing_hook(explorer, tmp_path, monkeypatch):
    times = explorer.live_update_times(n=3)
    assert len(times) == 3 and all(t > 0 for t in times)
    with pytest.raises(ValueError, match="n must be"):
        explorer.live_update_times(n=0)
    log = tmp_path / "timings.jsonl"
    monkeypatch.setenv("DLBOOK_EXPLORER_TIMINGS", str(log))
    monkeypatch.setenv("DLBOOK_EXPLORER_MODE", "static")
    explorer._repr_mimebundle_()
    row = json.loads(log.read_text())
    assert row["title"] == "waves" and row["frames"] == 6 and 0 < row["static_bytes"] < 1_500_000
    assert row["p90_ms"] >= row["median_ms"] > 0


def _blit_draw(fig, data):
    ax = fig.subplots()
    (line,) = ax.plot(*data, animated=True)
    title = ax.set_title("")

    def update(data):
        x, y = data
        line.set_data(x, y)
        title.set_text(f"max {y.max():.2f}")  # not animated: must depend on the key only
        return round(float(y.max()), 2)  # the background key

    return update


def test_blitting_gives_the_same_pixels_as_a_full_redraw():
    from PIL import Image
    import io

    grid = {"a": [1.0, 2.0, 3.0], "shape": ["sin", "cos"]}
    blitted = Explorer(compute, _blit_draw, grid)

    def full(fig, data):
        update = _blit_draw(fig, data)
        for artist in fig.findobj(match=lambda a: a.get_animated()):
            artist.set_animated(False)
        return lambda d: update(d) and None

    plain = Explorer(compute, full, grid)
    for values in [dict(a=1.0, shape="sin"), dict(a=3.0, shape="cos"), dict(a=1.0, shape="sin"), dict(a=2.0, shape="sin")]:
        a = np.asarray(Image.open(io.BytesIO(blitted.frame_png(**values))), dtype=int)
        b = np.asarray(Image.open(io.BytesIO(plain.frame_png(**values))), dtype=int)
        assert np.abs(a - b).max() <= 2, values  # antialiasing may differ by a grey level
    assert 1 <= len(blitted._backgrounds) <= 3
