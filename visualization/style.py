"""One look for every picture: the class palette and legend, fonts, figure creation and saving.

Figures are built as plain :class:`matplotlib.figure.Figure` objects, not through pyplot: they need no GUI
backend (headless by construction), are not kept alive by pyplot's global registry, and display once when a
notebook cell returns one.
"""

from __future__ import annotations

import functools
import io
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import ParamSpec, TypeVar

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from PIL import Image

from gat.io import atomic_write, save_bytes

# Okabe & Ito's colour-blind-safe qualitative palette (yellow last: it is the weakest on white).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#999999", "#F0E442")
# Class colours: seven of Okabe & Ito's and Tol's colour-blind-safe colours picked so that any two differ by at
# least 56 in CIELAB (Okabe & Ito's own first seven put blue next to sky blue and orange next to vermillion, which
# merge in a dense graph), then three more for graphs with up to ten classes.
CLASS_PALETTE = ("#56B4E9", "#D55E00", "#009E73", "#CC79A7", "#332288", "#DDCC77", "#222222", "#E69F00", "#0072B2",
                 "#999999")  # fmt: skip
EDGE_GREY = "#9a9a9a"
INK = "#222222"  # text and strong lines: softer than pure black
DPI = 110
MIN_DPI = 12  # the smallest text is still a pixel tall

STYLE = {
    "font.size": 10,
    "axes.titlesize": 11,
    "figure.titlesize": 13,
    "figure.titleweight": "bold",
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#555555",
    "axes.labelcolor": INK,
    "text.color": INK,
    "xtick.color": "#555555",
    "ytick.color": "#555555",
    "axes.grid": True,
    "grid.color": "#e6e6e6",
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
    "svg.fonttype": "none",  # text stays text in SVG: smaller files, selectable labels
}

P = ParamSpec("P")
R = TypeVar("R")


def styled(draw: Callable[P, R]) -> Callable[P, R]:
    """Run a figure-building function under the project style (rcParams are read when artists are created)."""

    @functools.wraps(draw)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with matplotlib.rc_context(STYLE):
            return draw(*args, **kwargs)

    return wrapper


def new_figure(width: float, height: float) -> Figure:
    """A figure ``width`` x ``height`` inches with constrained layout (titles and legends never overlap)."""
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def class_colours(num_classes: int) -> list[str]:
    """One colour per class, the same everywhere: :data:`CLASS_PALETTE`, or tab20 beyond ten classes."""
    if num_classes <= len(CLASS_PALETTE):
        return list(CLASS_PALETTE[:num_classes])
    cmap = matplotlib.colormaps["tab20"]
    return [matplotlib.colors.to_hex(cmap(i % cmap.N)) for i in range(num_classes)]


def node_colours(labels: np.ndarray, num_classes: int) -> list[str]:
    """The class colour of each node."""
    palette = class_colours(num_classes)
    return [palette[label] for label in labels]


def class_handles(classes: Iterable[int], num_classes: int) -> list[Line2D]:
    """Legend entries: one coloured dot per class in ``classes`` (the classes present in the picture)."""
    palette = class_colours(num_classes)
    return [
        Line2D(
            [],
            [],
            linestyle="",
            marker="o",
            markersize=7,
            markerfacecolor=palette[c],
            markeredgecolor="white",
            label=f"class {c}",
        )  # fmt: skip
        for c in sorted(set(int(c) for c in classes))
    ]


def add_class_legend(ax: Axes, classes: Iterable[int], num_classes: int, **legend_kwargs: object) -> None:
    """A legend on ``ax`` with the class colours of ``classes``."""
    ax.legend(handles=class_handles(classes, num_classes), **{"loc": "best", **legend_kwargs})


def bare(ax: Axes) -> None:
    """Hide axes, ticks and grid: for node-link drawings, where coordinates mean nothing."""
    ax.set_axis_off()
    # Hidden axis objects too: otherwise layout and titles still compute their (unseen) ticks, most of the cost
    ax.xaxis.set_visible(False)
    ax.yaxis.set_visible(False)
    ax.set_aspect("equal")


def save_figure(
    figure: Figure,
    out_dir: str | os.PathLike,
    name: str,
    formats: Sequence[str] = ("png",),
    size: tuple[int, int] | None = None,
) -> list[Path]:
    """Write ``figure`` as ``out_dir/name.<format>`` for each format, atomically; returns the paths.

    ``size`` is ``(width, height)`` in pixels of the PNG: the figure keeps its width in inches, so its layout and
    text scale with the width (a thumbnail or a poster of the same picture), and its height follows the asked ratio.
    No ``bbox_inches="tight"``: it would change the size that was asked for (constrained layout already fits).
    """
    if size is not None:  # below MIN_DPI the smallest text cannot be drawn: a tiny size gets a tighter layout instead
        figure.set_dpi(max(size[0] / figure.get_figwidth(), MIN_DPI))
        figure.set_size_inches(size[0] / figure.dpi, size[1] / figure.dpi)
    paths = []
    for file_format in formats:
        path = Path(out_dir) / f"{name}.{file_format}"
        if file_format == "png":
            save_bytes(figure_png(figure), path)
        else:
            with atomic_write(path) as file:
                figure.savefig(file, format=file_format, dpi=figure.dpi, facecolor="white")
        paths.append(path)
    return paths


def save_figures(
    figures: dict[str, Figure], out_dir: str | os.PathLike, formats: Sequence[str] = ("png",),
    size: tuple[int, int] | None = None,
) -> list[Path]:  # fmt: skip
    """Save every ``name: figure`` into ``out_dir``; returns the paths in order."""
    return [path for name, figure in figures.items() for path in save_figure(figure, out_dir, name, formats, size)]


def figure_png(figure: Figure) -> bytes:
    """The PNG file of ``figure`` (:func:`render`, then :func:`encode_png`): one drawing for every use of a picture
    (its file, TensorBoard), since drawing is most of its cost."""
    return encode_png(render(figure), figure.dpi)


def render(figure: Figure) -> np.ndarray:
    """``[height, width, 3]`` uint8: the figure's pixels at its dpi on a white background (as
    ``savefig(facecolor="white")`` draws it, whatever the figure's own background)."""
    background, canvas = figure.get_facecolor(), figure.canvas
    figure.set_facecolor("white")
    try:
        agg = FigureCanvasAgg(figure)
        agg.draw()
        return np.asarray(agg.buffer_rgba())[..., :3].copy()  # opaque: the background is
    finally:
        figure.set_facecolor(background)
        figure.set_canvas(canvas)  # as savefig leaves it: a notebook or a window can still show the figure


def encode_png(pixels: np.ndarray, dpi: float = DPI) -> bytes:
    """``pixels`` (from :func:`render`) as a PNG with a 256-colour palette and ``dpi`` recorded: plots of a few flat
    colours and their anti-aliased edges lose nothing visible, and the files shrink about 5x (Cora's 8-head
    attention grid: 330 kB as RGB, 63 kB)."""
    image = Image.fromarray(pixels).quantize(256, method=Image.Quantize.FASTOCTREE)
    # The octree averages the white background with near-white anti-aliasing into (254, 254, 254): make the
    # brightest colour pure white again, so the background matches the page it is shown on.
    palette = image.getpalette()
    brightest = max(range(len(palette) // 3), key=lambda index: sum(palette[3 * index : 3 * index + 3]))
    palette[3 * brightest : 3 * brightest + 3] = [255, 255, 255]
    image.putpalette(palette)
    encoded = io.BytesIO()
    image.save(encoded, format="png", dpi=(dpi, dpi))  # zlib's default level: its highest saves 10 % for 6x the time
    return encoded.getvalue()
