"""One figure style for the whole book, and small helpers that return Axes.

The palette is Okabe & Ito's colour-blind-safe set ("Color Universal Design", 2008). Sizes are
chosen so that a 6-inch-wide figure scaled down to a phone's width (about 360 CSS px) still has
readable tick labels: 13 pt text and 2 pt lines.

Only this module and :mod:`dlbook.widgets` import matplotlib; math modules never plot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

#: Okabe-Ito colours, in the order the book uses them.
PALETTE: tuple[str, ...] = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow (use for fills, not thin lines)
    "#000000",  # black
)

#: A sequential, perceptually uniform colour map that also reads in grey scale.
SEQUENTIAL_CMAP = "viridis"

STYLE: dict[str, object] = {
    "figure.figsize": (6.0, 4.0),
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "figure.constrained_layout.use": True,
    "font.size": 13,
    "axes.titlesize": 14,
    "axes.labelsize": 13,
    "xtick.labelsize": 12,
    "ytick.labelsize": 12,
    "legend.fontsize": 11,
    "legend.frameon": False,
    "lines.linewidth": 2.0,
    "lines.markersize": 6,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": mpl.cycler(color=list(PALETTE)),
    "image.cmap": SEQUENTIAL_CMAP,
}


def use_style() -> None:
    """Apply the book's style to matplotlib's global rcParams (call once per notebook).

    In a Jupyter kernel on the inline backend it also runs ``%matplotlib inline``: matplotlib
    loads its backend lazily, and until it does, a :class:`~matplotlib.figure.Figure` from
    :func:`new_figure` (not made by pyplot) would display as text instead of a picture.
    """
    mpl.rcParams.update(STYLE)
    try:
        from IPython import get_ipython
    except ImportError:  # plain Python: nothing to hook
        return
    shell = get_ipython()
    if shell is not None and "inline" in mpl.get_backend():
        shell.run_line_magic("matplotlib", "inline")
        mpl.rcParams.update(STYLE)  # %matplotlib inline resets a few rcParams


def color(index: int) -> str:
    """The ``index``-th palette colour (wraps around)."""
    if not isinstance(index, (int, np.integer)):
        raise TypeError(f"index must be an int, got {type(index).__name__}")
    return PALETTE[int(index) % len(PALETTE)]


def new_figure(nrows: int = 1, ncols: int = 1, *, width: float = 6.0, height: float | None = None):
    """A styled :class:`~matplotlib.figure.Figure` (not managed by pyplot) and its Axes.

    Returns ``(fig, axes)``; ``axes`` is one Axes when ``nrows == ncols == 1`` else an array.
    """
    if nrows < 1 or ncols < 1:
        raise ValueError(f"nrows and ncols must be >= 1, got nrows={nrows}, ncols={ncols}")
    if width <= 0 or (height is not None and height <= 0):
        raise ValueError(f"width and height must be positive, got width={width}, height={height}")
    height = height if height is not None else 4.0 * nrows
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(width, height), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=True)
    return fig, axes


def _axes_or_new(ax: Axes | None) -> Axes:
    if ax is None:
        import matplotlib.pyplot as plt  # pyplot only when the caller wants an inline figure

        with mpl.rc_context(STYLE):
            _, ax = plt.subplots()
    if not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}")
    return ax


def curves(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    ax: Axes | None = None,
    xlabel: str = "",
    ylabel: str = "",
    title: str = "",
    logy: bool = False,
) -> Axes:
    """Plot several named ``(x, y)`` curves with the palette and a legend; returns the Axes."""
    if not series:
        raise ValueError("series is empty: pass at least one {label: (x, y)}")
    ax = _axes_or_new(ax)
    for i, (label, (x, y)) in enumerate(series.items()):
        x, y = np.asarray(x), np.asarray(y)
        if x.shape != y.shape:
            raise ValueError(f"curve {label!r}: x has shape {x.shape} but y has shape {y.shape}")
        ax.plot(x, y, label=label, color=color(i))
    if logy:
        ax.set_yscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend()
    return ax


def contour(
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    *,
    ax: Axes | None = None,
    levels: int | Sequence[float] = 20,
    log: bool = False,
    filled: bool = True,
) -> Axes:
    """Contours of ``z`` on the grid ``(x, y)`` (``z.shape == (len(y), len(x))``); returns Axes.

    ``log=True`` draws ``log10(z - min(z) + 1e-12)``, which shows the floor of valleys such as
    Rosenbrock's that linear levels flatten into one colour.
    """
    x, y, z = np.asarray(x), np.asarray(y), np.asarray(z)
    if z.shape != (len(y), len(x)):
        raise ValueError(f"z must have shape (len(y), len(x)) = {(len(y), len(x))}, got {z.shape}")
    ax = _axes_or_new(ax)
    values = np.log10(z - z.min() + 1e-12) if log else z
    draw = ax.contourf if filled else ax.contour
    draw(x, y, values, levels=levels, cmap=SEQUENTIAL_CMAP)
    ax.set_aspect("equal", adjustable="box")
    ax.grid(False)
    return ax


def path(xy: np.ndarray, *, ax: Axes, label: str = "", index: int = 0) -> Axes:
    """Draw a 2-D trajectory ``xy`` of shape ``(steps, 2)`` with its start and end marked."""
    xy = np.asarray(xy)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"xy must have shape (steps, 2), got {xy.shape}")
    c = color(index)
    ax.plot(xy[:, 0], xy[:, 1], "-o", color=c, markersize=3, label=label)
    ax.plot(xy[0, 0], xy[0, 1], "s", color=c, markersize=8, markeredgecolor="white")
    ax.plot(xy[-1, 0], xy[-1, 1], "*", color=c, markersize=13, markeredgecolor="white")
    return ax
