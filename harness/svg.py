"""SVG primitives for the report's charts: a plot frame, round ticks, axes, legends, escaped text."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .report_format import esc

@dataclass
class Frame:
    """A plot area inside an SVG and the data ranges it maps."""

    width: float
    height: float
    left: float
    right: float
    top: float
    bottom: float
    x0: float = 0.0
    x1: float = 1.0
    y0: float = 0.0
    y1: float = 1.0

    @property
    def plot_w(self) -> float:
        return self.width - self.left - self.right

    @property
    def plot_h(self) -> float:
        return self.height - self.top - self.bottom

    def x(self, value: float) -> float:
        """Data x to pixels."""
        return self.left + (value - self.x0) / ((self.x1 - self.x0) or 1) * self.plot_w

    def y(self, value: float) -> float:
        """Data y to pixels (up is larger)."""
        return self.top + self.plot_h - (value - self.y0) / ((self.y1 - self.y0) or 1) * self.plot_h


def nice_step(span: float, count: int) -> float:
    """A round step (1, 2, 2.5, 5 × 10^k) that cuts span into about count pieces."""
    raw = span / max(count, 1) if span > 0 else 1.0
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if raw <= m * magnitude * 1.0000001)


def ticks(low: float, high: float, count: int = 6) -> list[float]:
    """Round tick values covering [low, high]."""
    step = nice_step(high - low, count)
    start = math.floor(low / step + 1e-9) * step
    ticks, value = [], start
    while value <= high + step * 1e-6:
        if value >= low - step * 1e-6:
            ticks.append(round(value, 10))
        value += step
    return ticks


def nice_top(high: float, count: int = 6) -> float:
    """The smallest round tick value at or above high."""
    step = nice_step(high, count)
    return max(step, math.ceil(high / step - 1e-9) * step)


def svg_element(width: float, height: float, label: str, parts: list[str]) -> str:
    """An inline SVG element (no xmlns needed inside HTML)."""
    return (f'<svg class="chart" viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}" '
            f'role="img" aria-label="{esc(label)}" font-family="system-ui,sans-serif" font-size="11">'
            + "".join(parts) + "</svg>")


def svg_text(x: float, y: float, text: Any, anchor: str = "middle", extra: str = "") -> str:
    """An escaped SVG text element."""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="#333" {extra}>{esc(text)}</text>'


def axes(frame: Frame, xticks: list[tuple[float, str]], yticks: list[tuple[float, str]],
          xlabel: str, ylabel: str) -> list[str]:
    """Grid lines, tick labels, axis lines and axis titles."""
    f, parts = frame, []
    for value, label in yticks:
        y = f.y(value)
        parts.append(f'<line x1="{f.left:.1f}" y1="{y:.1f}" x2="{f.left + f.plot_w:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(svg_text(f.left - 6, y + 4, label, "end"))
    base = f.top + f.plot_h
    for value, label in xticks:
        x = f.x(value)
        parts.append(f'<line x1="{x:.1f}" y1="{base:.1f}" x2="{x:.1f}" y2="{base + 4:.1f}" stroke="#666"/>')
        parts.append(svg_text(x, base + 16, label))
    parts.append(f'<line x1="{f.left:.1f}" y1="{base:.1f}" x2="{f.left + f.plot_w:.1f}" y2="{base:.1f}" '
                 'stroke="#666"/>')
    parts.append(f'<line x1="{f.left:.1f}" y1="{f.top:.1f}" x2="{f.left:.1f}" y2="{base:.1f}" stroke="#666"/>')
    parts.append(svg_text(f.left + f.plot_w / 2, f.height - 6, xlabel, extra='font-size="12"'))
    cy = f.top + f.plot_h / 2
    parts.append(svg_text(14, cy, ylabel, extra=f'font-size="12" transform="rotate(-90 14 {cy:.1f})"'))
    return parts


def legend(items: list[tuple[str, str, str]], x: float, y: float, width: float) -> list[str]:
    """A one-or-more-line legend of (kind 'box'|'pale'|'tick'|'line'|'dash', colour, label) items."""
    parts, cx, cy = [], x, y
    for kind, color, label in items:
        span = 22 + 6.2 * len(label) + 16
        if cx + span > x + width and cx > x:
            cx, cy = x, cy + 16
        if kind in ("box", "pale"):
            pale = ' fill-opacity="0.35"' if kind == "pale" else ""
            parts.append(f'<rect class="legend-swatch" x="{cx:.1f}" y="{cy - 9:.1f}" width="12" height="10" '
                         f'fill="{color}"{pale}/>')
        elif kind == "tick":
            parts.append(f'<line x1="{cx + 6:.1f}" y1="{cy - 10:.1f}" x2="{cx + 6:.1f}" y2="{cy + 1:.1f}" '
                         f'stroke="{color}" stroke-width="1.5"/>')
        else:
            dash = ' stroke-dasharray="4 3"' if kind == "dash" else ""
            parts.append(f'<line x1="{cx:.1f}" y1="{cy - 4:.1f}" x2="{cx + 14:.1f}" y2="{cy - 4:.1f}" '
                         f'stroke="{color}" stroke-width="2"{dash}/>')
        parts.append(svg_text(cx + 18, cy, label, "start"))
        cx += span
    return parts


def empty_message(frame: Frame, message: str) -> str:
    """A centred 'no data' message inside a frame."""
    return svg_text(frame.left + frame.plot_w / 2, frame.top + frame.plot_h / 2, message, extra='fill="#888"')


