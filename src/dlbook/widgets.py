"""One mechanism for every explorer (explorable figure) in the book.

An explorer is made of two plain functions and a grid of control values::

    compute(**values) -> data        pure: control values -> the arrays of one frame
    draw(fig, data)   -> update      builds the figure once; ``update(data)`` changes its
                                     artists in place (``set_data``, ``set_ydata``, ...)

**Blitting (optional, for speed).** Redrawing axes, tick labels and contour sets dominates an
update. If ``update(data)`` returns a hashable *background key* (say, the name of the function
whose contours are shown) and the moving artists were created with ``animated=True``, the
explorer renders the rest of the figure once per key, caches it, and afterwards only paints the
animated artists over the cached background. ``update`` returning ``None`` (the default) means
a full redraw. Everything that is not animated must then depend on the key alone.

The same two functions drive both modes:

* **live** (Jupyter, Colab): ipywidgets controls; each change calls ``compute`` then
  ``update`` on one persistent Agg figure and sends the PNG to an ``ipywidgets.Image``. No
  figure is re-created and its layout is computed once, so one update costs a compute, a
  redraw and a PNG encode (about 25 ms for a one-axes figure on one core). Works with
  ipywidgets 7.7 (Colab) and 8.x.
* **static** (the built HTML book): every combination of control values is computed and
  rendered once into a palette PNG; a few lines of inline JavaScript swap frames when a
  slider moves. No kernel, no network, no CDN.

Displaying an :class:`Explorer` emits one output with both representations: a notebook
front end shows the live widget, while the HTML build is told (``nb_mime_priority_overrides``
in ``_config.yml``) to drop the widget view and keep the static HTML. The environment
variable ``DLBOOK_EXPLORER_MODE`` (``both``, ``live`` or ``static``) skips the unused half.
"""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from dlbook.plot import STYLE

#: Default limits: the issue's budget is 1.5 MB per static explorer.
MAX_FRAMES = 150
MAX_STATIC_BYTES = 1_500_000
#: Cached backgrounds for blitting (each is one RGBA copy of the figure, ~0.5 MB).
MAX_BACKGROUNDS = 64
LIVE_NOTE = "Static preview with precomputed frames: run this notebook in Jupyter or Colab for the live version."
MODES = ("both", "live", "static")


def _format_value(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    return str(value)


def _validate_controls(controls: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
    if not isinstance(controls, Mapping):
        raise TypeError(f"controls must be a mapping name -> values, got {type(controls).__name__}")
    if not controls:
        raise ValueError("controls is empty: an explorer needs at least one control")
    grid = {}
    for name, values in controls.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"control name must be a Python identifier, got {name!r}")
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence | np.ndarray):
            raise TypeError(f"control {name!r} needs a sequence of values, got {values!r}")
        values = list(values)
        if not values:
            raise ValueError(f"control {name!r} has an empty grid of values")
        labels = [_format_value(v) for v in values]
        if len(set(labels)) != len(labels):
            raise ValueError(f"control {name!r} has repeated values: {labels}")
        grid[name] = values
    return grid


class Explorer:
    """An explorable figure: ``compute`` + ``draw`` over a grid of ``controls``.

    Parameters
    ----------
    compute
        Pure function ``compute(**values) -> data`` for one frame.
    draw
        ``draw(fig, data) -> update``: populates an empty :class:`~matplotlib.figure.Figure`
        and returns ``update(data)``, which mutates the artists for a new frame.
    controls
        ``{name: values}``. Numeric values become sliders, anything else a dropdown. The
        static HTML holds one frame per combination (the product of the grid sizes).
    title
        Shown above the controls and used as the image's alt text.
    initial
        Starting values (default: each grid's middle entry).
    figsize, dpi
        Size of the rendered figure. Static frames use ``dpi``; keep frames small.
    max_frames, max_bytes
        Limits on the static version; exceeding either raises ``ValueError``.
    """

    def __init__(
        self,
        compute: Callable[..., Any],
        draw: Callable[[Figure, Any], Callable[[Any], None]],
        controls: Mapping[str, Sequence[Any]],
        *,
        title: str = "",
        initial: Mapping[str, Any] | None = None,
        figsize: tuple[float, float] = (6.0, 4.0),
        dpi: int = 80,
        max_frames: int = MAX_FRAMES,
        max_bytes: int = MAX_STATIC_BYTES,
    ) -> None:
        if not callable(compute):
            raise TypeError(f"compute must be callable, got {type(compute).__name__}")
        if not callable(draw):
            raise TypeError(f"draw must be callable, got {type(draw).__name__}")
        self.grid = _validate_controls(controls)
        n_frames = math.prod(len(v) for v in self.grid.values())
        if n_frames > max_frames:
            shape = {k: len(v) for k, v in self.grid.items()}
            raise ValueError(
                f"{n_frames} frames ({shape}) exceed max_frames={max_frames}: coarsen the grid"
            )
        if dpi <= 0 or figsize[0] <= 0 or figsize[1] <= 0:
            raise ValueError(f"figsize and dpi must be positive, got figsize={figsize}, dpi={dpi}")
        self.compute, self.draw = compute, draw
        self.title, self.figsize, self.dpi = title, figsize, dpi
        self.max_bytes = max_bytes
        self.n_frames = n_frames
        self.initial = self._initial_values(initial or {})
        self._fig: Figure | None = None
        self._update: Callable[[Any], None] | None = None
        self._backgrounds: dict[Any, Any] = {}
        self._live_widget = None

    def _initial_values(self, initial: Mapping[str, Any]) -> dict[str, Any]:
        unknown = set(initial) - set(self.grid)
        if unknown:
            raise ValueError(f"initial names unknown controls {sorted(unknown)}; known: {list(self.grid)}")
        values = {k: v[len(v) // 2] for k, v in self.grid.items()}
        for k, v in initial.items():
            if v not in self.grid[k]:
                raise ValueError(f"initial value {k}={v!r} is not on the grid {self.grid[k]}")
            values[k] = v
        return values

    # -- rendering ---------------------------------------------------------------------
    def _figure(self) -> tuple[Figure, Callable[[Any], None]]:
        """The persistent figure, built on first use from the initial frame."""
        if self._fig is None:
            with mpl.rc_context(STYLE):
                fig = Figure(figsize=self.figsize, dpi=self.dpi, layout="constrained")
                FigureCanvasAgg(fig)
                update = self.draw(fig, self.compute(**self.initial))
            if not callable(update):
                raise TypeError(f"draw must return an update(data) callable, got {type(update).__name__}")
            # Lay the figure out once from the initial frame, then freeze it: re-running
            # constrained layout on every update nearly doubles the cost of a redraw.
            fig.canvas.draw()
            fig.set_layout_engine("none")
            self._fig, self._update = fig, update
        return self._fig, self._update

    def render(self, **values: Any) -> Figure:
        """Compute and draw the frame for ``values`` into the persistent figure."""
        unknown = set(values) - set(self.grid)
        if unknown:
            raise ValueError(f"unknown control(s) {sorted(unknown)}; known: {list(self.grid)}")
        fig, update = self._figure()
        with mpl.rc_context(STYLE):
            key = update(self.compute(**{**self.initial, **values}))
            animated = fig.findobj(match=lambda artist: artist.get_animated())
            if key is None or not animated:
                fig.canvas.draw()
            else:
                self._blit(fig, key, animated)
        return fig

    def _blit(self, fig: Figure, key: Any, animated: list) -> None:
        """Draw ``animated`` artists over the cached background for ``key`` (render once)."""
        if key in self._backgrounds:
            self._backgrounds[key] = self._backgrounds.pop(key)  # most recently used last
            fig.canvas.restore_region(self._backgrounds[key])
        else:
            fig.canvas.draw()  # Agg skips animated artists here: this is the background
            self._backgrounds[key] = fig.canvas.copy_from_bbox(fig.bbox)
            while len(self._backgrounds) > MAX_BACKGROUNDS:
                self._backgrounds.pop(next(iter(self._backgrounds)))
        for artist in animated:
            if artist.get_visible():
                fig.draw_artist(artist)

    def frame_png(self, *, palette: bool = False, **values: Any) -> bytes:
        """PNG bytes of one frame: fast zlib level 1 for live, 8-bit palette for static."""
        fig = self.render(**values)
        rgba = np.asarray(fig.canvas.buffer_rgba())
        image = Image.fromarray(rgba[..., :3])
        buffer = io.BytesIO()
        if palette:
            image = image.quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
            image.save(buffer, format="png", optimize=True)
        else:
            image.save(buffer, format="png", compress_level=1)
        return buffer.getvalue()

    # -- static mode -------------------------------------------------------------------
    def frames(self) -> list[bytes]:
        """Every frame as palette PNG bytes, in row-major order of the control grid."""
        names = list(self.grid)
        return [
            self.frame_png(palette=True, **dict(zip(names, combo)))
            for combo in itertools.product(*self.grid.values())
        ]

    def static_html(self) -> str:
        """Self-contained HTML: sliders, one ``<img>`` and inline JS over precomputed frames."""
        pngs = self.frames()
        encoded = [base64.b64encode(p).decode("ascii") for p in pngs]
        uid = "dlx-" + hashlib.sha1("".join(encoded[:2]).encode() + self.title.encode()).hexdigest()[:10]
        start = [self.grid[k].index(self.initial[k]) for k in self.grid]
        html = _STATIC_TEMPLATE.format(
            uid=uid,
            title=_escape(self.title),
            note=_escape(LIVE_NOTE),
            controls="".join(_control_html(k, v, i) for (k, v), i in zip(self.grid.items(), start)),
            first=encoded[_flat_index(start, [len(v) for v in self.grid.values()])],
            n_frames=len(pngs),
            data=json.dumps({"frames": encoded, "shape": [len(v) for v in self.grid.values()]}),
        )
        size = len(html.encode())
        if size > self.max_bytes:
            raise ValueError(
                f"static explorer {self.title!r} is {size:,} bytes, over max_bytes={self.max_bytes:,}:"
                " use fewer frames, a smaller figsize or a lower dpi"
            )
        return html

    # -- live mode ---------------------------------------------------------------------
    def live(self):
        """An ipywidgets box (controls + image) updating one persistent figure."""
        import ipywidgets as widgets

        image = widgets.Image(value=self.frame_png(**self.initial), format="png")
        inputs = {name: _control_widget(widgets, name, values, self.initial[name]) for name, values in self.grid.items()}

        def on_change(_change: Any) -> None:
            image.value = self.frame_png(**{name: w.value for name, w in inputs.items()})

        for w in inputs.values():
            w.observe(on_change, names="value")
        header = [widgets.HTML(f"<b>{_escape(self.title)}</b>")] if self.title else []
        box = widgets.VBox([*header, widgets.HBox(list(inputs.values())), image])
        self._live_widget = box  # keep the callbacks alive as long as the explorer
        return box

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        mode = os.environ.get("DLBOOK_EXPLORER_MODE", "both")
        if mode not in MODES:
            raise ValueError(f"DLBOOK_EXPLORER_MODE must be one of {MODES}, got {mode!r}")
        bundle: dict[str, Any] = {"text/plain": f"<Explorer {self.title!r}: {self.n_frames} frames>"}
        if mode in ("both", "static"):
            bundle["text/html"] = self.static_html()
        if os.environ.get("DLBOOK_EXPLORER_TIMINGS"):
            self._record_timings(os.environ["DLBOOK_EXPLORER_TIMINGS"], bundle.get("text/html"))
        if mode in ("both", "live"):
            # The widget-view bundle is the same dict for ipywidgets 7.7 and 8.x.
            bundle["application/vnd.jupyter.widget-view+json"] = {
                "version_major": 2,
                "version_minor": 0,
                "model_id": self.live().model_id,
            }
        return bundle


    def live_update_times(self, n: int = 20, *, seed: int = 0) -> list[float]:
        """Seconds for ``n`` live updates (compute + redraw + PNG) at random grid points."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        rng = np.random.default_rng(seed)
        self.frame_png(**self.initial)  # build the persistent figure first (not an update)
        times = []
        for _ in range(n):
            values = {k: v[int(rng.integers(len(v)))] for k, v in self.grid.items()}
            start = time.perf_counter()
            self.frame_png(**values)
            times.append(time.perf_counter() - start)
        return times

    def _record_timings(self, path: str, html: str | None) -> None:
        """Benchmark hook (benchmarks/widget_latency.py): append one JSON line to ``path``."""
        times = self.live_update_times()
        size = len((html if html is not None else self.static_html()).encode())
        row = {"title": self.title, "frames": self.n_frames, "static_bytes": size,
               "median_ms": 1000 * float(np.median(times)), "p90_ms": 1000 * float(np.percentile(times, 90))}
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _flat_index(index: Sequence[int], shape: Sequence[int]) -> int:
    return int(np.ravel_multi_index(tuple(index), tuple(shape)))


def _control_html(name: str, values: Sequence[Any], start: int) -> str:
    labels = [_escape(_format_value(v)) for v in values]
    options = json.dumps(labels).replace('"', "&quot;")
    if all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in values):
        widget = (
            f'<input type="range" min="0" max="{len(values) - 1}" step="1" value="{start}" '
            f'data-control="{name}" aria-label="{name}">'
        )
    else:
        opts = "".join(f'<option value="{i}"{" selected" if i == start else ""}>{lab}</option>' for i, lab in enumerate(labels))
        widget = f'<select data-control="{name}" aria-label="{name}">{opts}</select>'
    return (
        f'<label class="dlbook-explorer-control">{name} {widget} '
        f'<output data-labels="{options}">{labels[start]}</output></label>'
    )


def _control_widget(widgets: Any, name: str, values: Sequence[Any], start: Any):
    labels = [_format_value(v) for v in values]
    options = list(zip(labels, values))
    if all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in values):
        return widgets.SelectionSlider(options=options, value=start, description=name, continuous_update=True)
    return widgets.Dropdown(options=options, value=start, description=name)


_STATIC_TEMPLATE = """<div class="dlbook-explorer" id="{uid}" data-frames="{n_frames}">
<div class="dlbook-explorer-title"><b>{title}</b></div>
<div class="dlbook-explorer-controls">{controls}</div>
<img class="dlbook-explorer-frame" alt="{title}" src="data:image/png;base64,{first}">
<p class="dlbook-explorer-note"><em>{note}</em></p>
<script type="application/json" class="dlbook-explorer-data">{data}</script>
<script>
(function () {{
  var root = document.getElementById("{uid}");
  var data = JSON.parse(root.querySelector(".dlbook-explorer-data").textContent);
  var inputs = root.querySelectorAll("[data-control]");
  var img = root.querySelector(".dlbook-explorer-frame");
  function show() {{
    var flat = 0;
    inputs.forEach(function (el, i) {{
      var k = parseInt(el.value, 10);
      flat = flat * data.shape[i] + k;
      var out = el.parentNode.querySelector("output");
      out.textContent = JSON.parse(out.dataset.labels)[k];
    }});
    img.src = "data:image/png;base64," + data.frames[flat];
  }}
  inputs.forEach(function (el) {{ el.addEventListener("input", show); el.addEventListener("change", show); }});
}})();
</script>
</div>"""
