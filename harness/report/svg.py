"""Matplotlib figures drawn to SVG and inlined in the HTML report.

Charts are built on a bare ``matplotlib.figure.Figure`` (no pyplot, no GUI backend). Matplotlib
reads its style from the process-wide ``rcParams`` both while artists are created and while the
SVG is written, so one chart at a time holds a lock with its settings applied; the settings go
back when it is done and other users of matplotlib in the process never see them.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Callable
from html import escape

import matplotlib
from matplotlib.figure import Figure

# Text stays <text> (small, selectable, nothing embedded); "$" in a payment id is not TeX.
_STYLE = {"svg.fonttype": "none", "text.parse_math": False, "text.usetex": False,
          "font.family": "sans-serif", "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"], "font.size": 9,
          "axes.spines.top": False, "axes.spines.right": False, "axes.titlesize": 9, "axes.titlelocation": "left",
          "legend.fontsize": 8.5, "legend.frameon": False, "legend.handlelength": 2.6, "axes.axisbelow": True}
_LOCK = threading.Lock()
# Ids matplotlib numbers per figure ("axes_1", "text_3"): nothing refers to them, and with several
# charts in one page they would repeat, which HTML forbids. Hashed ids (clip paths, markers) stay.
_AUTO_IDS = re.compile(r' id="(?:figure|axes|patch|line2d|text|legend|matplotlib\.axis|xtick|ytick|PolyCollection|'
                       r'LineCollection|PathCollection)_\d+"')

Build = Callable[[Figure], dict[str, str]]


def draw(name: str, label: str, size: tuple[float, float], build: Build) -> str:
    """Build a figure of size inches with build(fig) and return it as an inline <svg> element.

    build returns hover texts by element id (matplotlib's gid); each becomes that element's <title>.
    name keeps this chart's hashed ids apart from the other charts' on the same page.
    """
    with _LOCK, matplotlib.rc_context({**_STYLE, "svg.hashsalt": name}):
        figure = Figure(figsize=size, layout="constrained")
        tips = build(figure)
        out = io.StringIO()
        figure.savefig(out, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    return inline(out.getvalue(), label, tips)


def inline(svg: str, label: str, tips: dict[str, str]) -> str:
    """A standalone SVG document as an element for an HTML page: no XML prolog, labelled, with hover titles."""
    svg = _AUTO_IDS.sub("", svg[svg.index("<svg"):])
    svg = svg.replace("<svg ", f'<svg class="chart" role="img" aria-label="{escape(label)}" ', 1)
    if tips:
        # Matplotlib has no per-artist tooltip; an SVG <title> first in the element's group is one.
        svg = re.sub(r'<g id="([^"]+)">', lambda m: m.group(0) + (
            f"<title>{escape(tips[m.group(1)])}</title>" if m.group(1) in tips else ""), svg)
    return svg
