"""What the report's charts share: their width, a legend laid out under the plot, and an empty plot's message."""

from __future__ import annotations

from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.legend import Legend

WIDTH = 10.0  # inches; the page scales the SVG to its column



def legend(figure: Figure, chart: str, entries: list[tuple[str, Any]]) -> Legend:
    """A legend above the plot from (key, handle) pairs; each drawn swatch gets the id <chart>-legend-<key>."""
    columns = _legend_columns([len(h.get_label()) for _, h in entries], figure.get_figwidth() - 0.4)
    legend = figure.legend(handles=[h for _, h in entries], loc="outside upper left", ncols=columns)
    for (key, _), drawn in zip(entries, legend.legend_handles):
        drawn.set_gid(f"{chart}-legend-{key}")
    return legend


def _legend_columns(label_chars: list[int], width: float) -> int:
    """The most columns (fewest rows) whose labels fit across width inches; matplotlib fills the legend
    column by column and does not wrap, so a row too long is cut off at the figure's edge."""
    for rows in range(1, len(label_chars) + 1):
        columns = [label_chars[i:i + rows] for i in range(0, len(label_chars), rows)]
        # about 0.07 in per character at the legend's size, plus swatch and spacing
        if sum(max(c) * 0.07 + 0.75 for c in columns) <= width:
            return len(columns)
    return 1


def empty(ax: Axes, message: str) -> None:
    """A centred 'no data' message in place of marks."""
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center", color="#888")
    ax.set_yticks([])
