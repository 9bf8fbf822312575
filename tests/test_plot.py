"""The figure style and the plotting helpers."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb

from dlbook import plot


def _relative_luminance(hex_colour):
    rgb = np.array(to_rgb(hex_colour))
    lin = np.where(rgb <= 0.03928, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def test_palette_is_okabe_ito_and_distinct():
    assert plot.PALETTE[:3] == ("#0072B2", "#E69F00", "#009E73")
    assert len(set(plot.PALETTE)) == len(plot.PALETTE)


def test_line_colours_are_visible_on_white():
    # WCAG contrast >= 2:1 against white for every colour used for lines (yellow is for fills)
    for c in plot.PALETTE[:6] + plot.PALETTE[7:]:
        assert (1.05) / (_relative_luminance(c) + 0.05) >= 2.0, c


def test_fonts_are_legible_at_phone_width():
    # A 6-inch figure shown 360 px wide is scaled by 360 / (6 * 100): text must stay >= 7 px.
    scale = 360 / (plot.STYLE["figure.figsize"][0] * plot.STYLE["figure.dpi"])
    smallest = min(plot.STYLE[k] for k in ("font.size", "xtick.labelsize", "ytick.labelsize", "legend.fontsize"))
    assert smallest * 100 / 72 * scale >= 7


def test_helpers_return_axes():
    fig, ax = plot.new_figure()
    assert isinstance(plot.curves({"a": ([0, 1], [1, 0]), "b": ([0, 1], [0, 1])}, ax=ax, logy=False), Axes)
    x = np.linspace(-1, 1, 5)
    assert isinstance(plot.contour(x, x, np.add.outer(x**2, x**2), ax=ax, log=True), Axes)
    assert isinstance(plot.path(np.zeros((3, 2)), ax=ax, label="p"), Axes)
    assert ax.lines[0].get_color() == plot.PALETTE[0]


def test_use_style_sets_rcparams():
    plot.use_style()
    assert matplotlib.rcParams["font.size"] == plot.STYLE["font.size"]


@pytest.mark.parametrize("call, error, match", [
    (lambda ax: plot.curves({}, ax=ax), ValueError, "series is empty"),
    (lambda ax: plot.curves({"a": ([0, 1], [0])}, ax=ax), ValueError, "'a'"),
    (lambda ax: plot.contour([0, 1], [0, 1, 2], np.zeros((2, 2)), ax=ax), ValueError, "shape"),
    (lambda ax: plot.path(np.zeros((3, 3)), ax=ax), ValueError, "steps, 2"),
    (lambda ax: plot.curves({"a": ([0], [0])}, ax="ax"), TypeError, "Axes"),
    (lambda ax: plot.color(1.5), TypeError, "int"),
    (lambda ax: plot.new_figure(0, 1), ValueError, "nrows"),
    (lambda ax: plot.new_figure(width=-1), ValueError, "width"),
])
def test_bad_input(call, error, match):
    _, ax = plot.new_figure()
    with pytest.raises(error, match=match):
        call(ax)


def test_figures_display_as_pictures_in_a_kernel():
    """In a notebook, use_style() makes even a non-pyplot Figure render as a PNG."""
    import nbformat
    from nbclient import NotebookClient

    code = "from dlbook import plot\nplot.use_style()\nfig, ax = plot.new_figure()\nax.plot([0, 1])\nfig"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    NotebookClient(nb, kernel_name="python3", timeout=60).execute()
    assert any("image/png" in o.get("data", {}) for o in nb.cells[0].outputs)
