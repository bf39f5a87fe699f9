"""Inline SVG (no JavaScript) for the wiki: layer×head heatmaps, histograms and attention patterns.

In a heatmap, a label whose validation failed (unconfirmed) is struck through: an orange slash
over its cell, which passes the pointer on to the cell beneath.

Everything here returns ``Markup``; every text that goes into it (titles, labels) is escaped with
:func:`markdown_safe`, so a token such as ``<script>`` stays text.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from markupsafe import Markup

from survey.wiki.escape import markdown_safe, token_text


def color(value: float | None) -> str:
    """Fill for a score: white → blue over [0, 1], white → red for negatives, grey for missing."""
    if value is None or math.isnan(value):
        return "#dddddd"
    v = max(-1.0, min(1.0, value))
    shade = round(255 * (1 - abs(v)))
    return f"rgb({shade},{shade},255)" if v >= 0 else f"rgb(255,{shade},{shade})"


UNCONFIRMED_STROKE = "#e65100"


@dataclass(frozen=True)
class Cell:
    """One heatmap cell: its value, hover title, link (None: no link) and whether it is an
    unconfirmed label."""

    value: float | None
    title: str
    href: str | None = None
    unconfirmed: bool = False


def color_scale(*grids: np.ndarray) -> float:
    """The largest |score| in the grids (1 when there is none), so the strongest cell is full colour."""
    finite = [np.nanmax(np.abs(g)) for g in grids if g.size and np.isfinite(g).any()]
    largest = float(max(finite, default=0.0))
    return largest if largest > 0 else 1.0


def heatmap(
    cells: Sequence[Sequence[Cell]],
    *,
    width: float,
    height: float,
    css_class: str,
    label: str,
    scale: float = 1.0,
    axes: bool = True,
) -> Markup:
    """A grid of ``cells[row][column]`` filling ``width`` × ``height`` pixels; each cell a ``rect``
    coloured by value / ``scale``, with a ``<title>`` and, when it has one, a link; an unconfirmed
    label is struck through. Rows run top to bottom (layer 0 at the top). With ``axes``, head
    numbers run across the top, layer numbers down the left, and a colour bar gives the scale."""
    n_rows = len(cells)
    n_cols = max((len(row) for row in cells), default=0)
    if n_rows == 0 or n_cols == 0:
        return Markup("")
    w, h = width / n_cols, height / n_rows
    left, top = (AXIS_LEFT, AXIS_TOP) if axes else (0.0, 0.0)
    total_w, total_h = width + (left + LEGEND_WIDTH if axes else 0), height + top + (4 if axes else 0)
    parts = [
        f'<svg class="{css_class}" xmlns="http://www.w3.org/2000/svg" width="{total_w:g}" '
        f'height="{total_h:g}" viewBox="0 0 {total_w:g} {total_h:g}" role="img" '
        f'aria-label="{markdown_safe(label)}">'
    ]
    if axes:
        parts += _axes(n_rows, n_cols, w, h) + legend(left + width + 8, height, scale)
    parts.append(f'<g transform="translate({left:g} {top:g})">')
    for r, row in enumerate(cells):
        for c, cell in enumerate(row):
            fill = color(None if cell.value is None else cell.value / scale)
            rect = (
                f'<rect class="cell" x="{c * w:.2f}" y="{r * h:.2f}" width="{w:.2f}" height="{h:.2f}" '
                f'fill="{fill}"><title>{markdown_safe(cell.title)}</title></rect>'
            )
            parts.append(f'<a href="{markdown_safe(cell.href)}">{rect}</a>' if cell.href else rect)
            if cell.unconfirmed:
                slash = f"M{c * w:.2f} {(r + 1) * h:.2f}L{(c + 1) * w:.2f} {r * h:.2f}"
                parts.append(
                    f'<path class="unconfirmed" d="{slash}" stroke="{UNCONFIRMED_STROKE}" stroke-width="1.5" '
                    'pointer-events="none"/>'
                )
    parts.append("</g></svg>")
    return Markup("".join(parts))


AXIS_LEFT, AXIS_TOP, LEGEND_WIDTH, LEGEND_STEPS = 34.0, 16.0, 64.0, 10


def _axes(n_rows: int, n_cols: int, w: float, h: float) -> list[str]:
    """Head numbers across the top, layer numbers down the left (thinned so labels never overlap)."""
    parts = [f'<text class="axis" x="{AXIS_LEFT - 4:g}" y="10" text-anchor="end">L\\H</text>']
    col_step, row_step = max(1, math.ceil(14 / w)), max(1, math.ceil(11 / h))
    for c in range(0, n_cols, col_step):
        x = AXIS_LEFT + (c + 0.5) * w
        parts.append(f'<text class="axis" x="{x:.1f}" y="11" text-anchor="middle">{c}</text>')
    for r in range(0, n_rows, row_step):
        y = AXIS_TOP + (r + 0.5) * h + 3.5
        parts.append(f'<text class="axis" x="{AXIS_LEFT - 4:g}" y="{y:.1f}" text-anchor="end">{r}</text>')
    return parts


def legend(x: float, height: float, scale: float) -> list[str]:
    """A colour bar from +scale (top) to -scale (bottom) with its three values."""
    step = height / (2 * LEGEND_STEPS + 1)
    parts = []
    for i in range(2 * LEGEND_STEPS + 1):
        value = 1 - i / LEGEND_STEPS
        parts.append(
            f'<rect class="legend" x="{x:.1f}" y="{AXIS_TOP + i * step:.2f}" width="10" '
            f'height="{step + 0.5:.2f}" fill="{color(value)}"/>'
        )
    for value, y in (
        (scale, AXIS_TOP + 8),
        (0.0, AXIS_TOP + height / 2 + 3.5),
        (-scale, AXIS_TOP + height - 1),
    ):
        parts.append(f'<text class="axis" x="{x + 14:.1f}" y="{y:.1f}">{value:.3g}</text>')
    return parts


def layer_head_heatmap(
    scores: Sequence[Sequence[float | None]],
    title: Callable[[int, int], str],
    href: Callable[[int, int], str | None],
    *,
    width: float,
    height: float,
    label: str,
    scale: float = 1.0,
    css_class: str = "heatmap",
    unconfirmed: Callable[[int, int], bool] = lambda layer, head: False,
    axes: bool = True,
) -> Markup:
    """A model's layer×head grid (layers down, heads across) filling ``width`` × ``height``; each
    cell titled, linked and marked unconfirmed by the callbacks. Missing (NaN) scores are grey."""
    grid = [
        [
            Cell(value, title(layer, head), href(layer, head), unconfirmed(layer, head))
            for head, value in enumerate(row)
        ]
        for layer, row in enumerate(scores)
    ]
    return heatmap(grid, width=width, height=height, css_class=css_class, label=label, scale=scale, axes=axes)


def depth_curve(
    values: Sequence[float], *, label: str, href: Callable[[int], str], width: float = 260, height: float = 90
) -> Markup:
    """A line over depth (layer 0 on the left) scaled to the values' own range, with one linked,
    titled point per layer."""
    if not values:
        return Markup("")
    low, high = min(min(values), 0.0), max(values)
    span = (high - low) or 1.0
    pad = 6.0
    step = (width - 2 * pad) / max(len(values) - 1, 1)

    def point(layer: int, value: float) -> tuple[float, float]:
        return pad + layer * step, pad + (height - 2 * pad) * (1 - (value - low) / span)

    points = [point(layer, value) for layer, value in enumerate(values)]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    dots = "".join(
        f'<a href="{href(layer)}"><circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#4a6fd8">'
        f"<title>{markdown_safe(label)} layer {layer}: {values[layer]:.3g}</title></circle></a>"
        for layer, (x, y) in enumerate(points)
    )
    return Markup(
        f'<svg class="depth-curve" xmlns="http://www.w3.org/2000/svg" width="{width:g}" height="{height:g}" '
        f'role="img" aria-label="{markdown_safe(label)} by layer, {low:.3g} to {high:.3g}">'
        f'<polyline points="{line}" fill="none" stroke="#4a6fd8" stroke-width="1.5"/>{dots}</svg>'
    )


def histogram(
    counts: Sequence[int], low: float, high: float, *, width: float = 240, height: float = 60
) -> Markup:
    """Bars for equal-width bins over [low, high], log-scaled counts, with the range as a title."""
    if not counts:
        return Markup("")
    top = math.log1p(max(counts)) or 1.0
    w = width / len(counts)
    step = (high - low) / len(counts)
    bars = []
    for i, count in enumerate(counts):
        bar = height * math.log1p(count) / top
        bars.append(
            f'<rect x="{i * w:.2f}" y="{height - bar:.2f}" width="{w:.2f}" height="{bar:.2f}" fill="#4a6fd8">'
            f"<title>[{low + i * step:.3g}, {low + (i + 1) * step:.3g}): {count}</title></rect>"
        )
    return Markup(
        f'<svg class="histogram" xmlns="http://www.w3.org/2000/svg" width="{width:g}" height="{height:g}" '
        f'role="img" aria-label="activation histogram from {low:.3g} to {high:.3g}">{"".join(bars)}</svg>'
    )


def attention_pattern(
    tokens: Sequence[str], weights: Sequence[Sequence[float]], *, cell: float = 16.0
) -> Markup:
    """A query×key attention heatmap (queries down, keys across) with the token texts as labels.

    ``weights[q]`` holds the keys 0..q (causal); cells after the query are left empty.
    """
    n, margin = len(tokens), 90.0
    size = margin + cell * n
    labels = [token_text(token[:12]) for token in tokens]  # axis labels, cut short
    names = [token_text(token) for token in tokens]  # hover titles, whole
    parts = [
        f'<svg class="pattern" xmlns="http://www.w3.org/2000/svg" width="{size:g}" height="{size:g}" '
        f'role="img" aria-label="attention pattern over {n} tokens">'
    ]
    for i, label in enumerate(labels):
        at = margin + cell * (i + 0.7)
        parts.append(f'<text x="{margin - 4:g}" y="{at:.1f}" text-anchor="end" font-size="10">{label}</text>')
        parts.append(
            f'<text x="{at:.1f}" y="{margin - 4:g}" font-size="10" '
            f'transform="rotate(-60 {at:.1f} {margin - 4:g})">{label}</text>'
        )
    for q, row in enumerate(weights):
        y = margin + q * cell
        for k, weight in enumerate(row[: q + 1]):
            parts.append(
                f'<rect x="{margin + k * cell:.1f}" y="{y:.1f}" width="{cell:g}" height="{cell:g}" '
                f'fill="{_shade(round(weight, 2))}">'
                f"<title>{names[q]} → {names[k]}: {weight:.2f}</title></rect>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))


@functools.lru_cache(maxsize=512)
def _shade(value: float) -> str:
    return color(value)


POSITIVE_SHADE = "255,120,0"  # orange: a context token's positive activation
NEGATIVE_SHADE = "30,110,230"  # blue: a negative one


def highlighted(context: Sequence[tuple[str, float]], peak: float, focus: int) -> Markup:
    """Context tokens as spans shaded by |activation| / ``peak``, orange where the activation is
    positive and blue where it is negative; the ``focus`` token is outlined."""
    spans = []
    for i, (text, activation) in enumerate(context):
        alpha = max(0.0, min(1.0, abs(activation) / peak)) if peak > 0 else 0.0
        shade = NEGATIVE_SHADE if activation < 0 else POSITIVE_SHADE
        css = ' class="focus"' if i == focus else ""
        spans.append(
            f'<span{css} style="background:rgba({shade},{alpha:.2f})" title="{activation:.3g}">'
            f"{markdown_safe(text.replace(chr(10), '↵'))}</span>"
        )
    return Markup('<span class="context">' + "".join(spans) + "</span>")
