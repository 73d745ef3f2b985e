"""Inline SVG line charts: trends over snapshots, drawn without any script or external asset."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 760, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 20, 14, 44
MAX_X_LABELS = 12
TICKS = 4  # intervals on the y axis
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f")


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float]
    color: str


def tick_step(value: float) -> float:
    """The smallest round step (1, 2, 2.5 or 5 × 10^k; whole from 1 up) at or above value."""
    if value <= 1:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10) if power >= 10 else (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def line_chart(title: str, labels: Sequence[str], series: Sequence[Series], percent: bool = False) -> str:
    """An SVG figure with one line per series over the labelled points, and an HTML legend."""
    peak = max((v for s in series for v in s.values), default=0)
    top = 1.0 if percent else TICKS * tick_step(peak / TICKS)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i: int) -> float:
        return LEFT + (i * plot_w / (len(labels) - 1) if len(labels) > 1 else plot_w / 2)

    def y(v: float) -> float:
        return TOP + plot_h * (1 - v / top)

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    parts += _y_axis(top, y, percent)
    parts += _x_axis(labels, x)
    for s in series:
        parts += _line(s, labels, x, y, percent)
    parts.append("</svg>")
    legend = "".join(
        f'<li><span class="swatch" style="background:{s.color}"></span>{escape(s.name)}</li>' for s in series
    )
    return f'<figure><figcaption>{escape(title)}</figcaption>{"".join(parts)}<ul class="legend">{legend}</ul></figure>'


def _fmt(value: float, percent: bool) -> str:
    if percent:
        return f"{value * 100:.0f}%" if value * 100 == round(value * 100) else f"{value * 100:.1f}%"
    return f"{value:,.0f}" if value == round(value) else f"{value:,.2f}"


def _y_axis(top: float, y, percent: bool) -> list[str]:
    out = []
    for k in range(TICKS + 1):
        value = top * k / TICKS
        out.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}"/>')
        label = _fmt(value, percent)
        out.append(f'<text class="tick" x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{label}</text>')
    return out


def _x_axis(labels: Sequence[str], x) -> list[str]:
    step = max(1, math.ceil(len(labels) / MAX_X_LABELS))
    base = HEIGHT - BOTTOM
    out = [f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{base}" y2="{base}"/>']
    for i, label in enumerate(labels):
        if i % step == 0 or i == len(labels) - 1:
            out.append(f'<text class="tick" x="{x(i):.1f}" y="{base + 18}" text-anchor="middle">{escape(label)}</text>')
    out.append(
        f'<text class="tick" x="{LEFT + (WIDTH - LEFT - RIGHT) / 2:.0f}" y="{HEIGHT - 6}" '
        'text-anchor="middle">snapshot</text>'
    )
    return out


def _line(s: Series, labels: Sequence[str], x, y, percent: bool) -> list[str]:
    points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(s.values))
    out = [f'<polyline fill="none" stroke="{s.color}" stroke-width="2" points="{points}"/>']
    for i, v in enumerate(s.values):
        tip = escape(f"{s.name}, snapshot {labels[i]}: {_fmt(v, percent)}")
        out.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" fill="{s.color}"><title>{tip}</title></circle>')
    return out
