"""A classifier page's mosaic: one titled layer×head panel per model, on one colour scale with one legend
(after Neel Nanda's induction-head mosaic).

Panels are grouped by model family, alphabetically, and within a family run from the fewest parameters
to the most: each family reads as a scaling series. Every grid is :data:`HEIGHT` px tall whatever the
model's depth (depth normalised), with ticks at 0, ½ and 1 of depth; a head is at least :data:`MIN_CELL`
px wide, so a 9-head model is no sliver. Cells are unit squares in a scaled group with hex fills, which
keeps a page of 51 models small; each is still a link to its head page with a hover title.
"""

from __future__ import annotations

import functools
import posixpath
import re
from dataclasses import dataclass

import numpy as np
from markupsafe import Markup

from survey.wiki import svg
from survey.wiki.escape import markdown_safe
from survey.wiki.pages import SiteModel, head_name, label_mark
from survey.wiki.render import html_link

HEIGHT = 180.0  # px of every grid: the model's whole depth
MIN_CELL = 6.0  # px per head at least
MIN_GRID = 96.0  # px: a grid is never narrower, so few-head models get wider cells
DEPTH_MARGIN, TOP = 16.0, 5.0  # room left of the grid for the depth ticks, above it for their labels
DEPTH_MARKS = ((0.0, "0"), (0.5, "½"), (1.0, "1"))
OTHER_FAMILY = "other"  # models with no family in the catalog, grouped last

Labels = dict[tuple[int, int], bool]  # each labelled (layer, head) -> whether the label is unconfirmed


@dataclass(frozen=True)
class Panel:
    """One model's grid in the mosaic."""

    model: SiteModel
    layers: int
    heads: int
    grid: Markup


@dataclass(frozen=True)
class Mosaic:
    """The panels, grouped by family, and the one colour legend they share."""

    families: list[tuple[str, list[Panel]]]
    legend: Markup

    @property
    def models(self) -> list[SiteModel]:
        return [panel.model for _, panels in self.families for panel in panels]


def cell_width(heads: int) -> float:
    """A head's width in px: at least MIN_CELL, and wide enough that the grid is MIN_GRID."""
    return max(MIN_CELL, MIN_GRID / max(heads, 1))


def family(model: SiteModel) -> str:
    return str(model.record.row.get("family") or OTHER_FAMILY)


def order(models: list[SiteModel]) -> list[SiteModel]:
    """By family (alphabetical, the family-less last), then parameters, then name."""
    return sorted(
        models,
        key=lambda m: (
            m.record.row.get("family") is None,
            family(m).casefold(),
            int(m.record.row.get("n_params") or 0),
            m.name,
        ),
    )


def classifier_mosaic(
    models: list[SiteModel], name: str, grids: dict[int, np.ndarray],
    labels: dict[int, Labels], page: str, scale: float,
) -> Mosaic:  # fmt: skip
    """The mosaic of classifier ``name`` over the ``models`` that have a grid, with each model's
    labels (by model id); ``scale`` is the |score| drawn at full colour."""
    here = posixpath.dirname(page)
    families: dict[str, list[Panel]] = {}
    for model in order([m for m in models if m.record.id in grids]):
        grid = grids[model.record.id]
        drawn = panel_svg(model, name, grid, labels.get(model.record.id, {}), here, scale)
        panel = Panel(model, int(grid.shape[0]), int(grid.shape[1]), drawn)
        families.setdefault(family(model), []).append(panel)
    return Mosaic(list(families.items()), legend(scale))


def panel_svg(
    model: SiteModel, name: str, grid: np.ndarray, labels: Labels, here: str, scale: float
) -> Markup:
    """A model's ``grid [layer, head]`` as an SVG of linked, titled cells with depth ticks on the left."""
    layers, heads = grid.shape
    w, h = cell_width(heads), HEIGHT / layers
    width, height = DEPTH_MARGIN + heads * w, TOP + HEIGHT + 5
    label = markdown_safe(f"{name} scores of {model.name}, {layers} layers × {heads} heads, depth normalised")
    return Markup(
        f'<svg class="heatmap mosaic-grid" xmlns="http://www.w3.org/2000/svg" width="{width:g}" '
        f'height="{height:g}" viewBox="0 0 {width:g} {height:g}" role="img" aria-label="{label}">'
        f"{_depth_marks()}"
        f'<g class="cells" transform="translate({DEPTH_MARGIN:g} {TOP:g}) scale({w:.4g} {h:.4g})">'
        f"{_cells(model, grid, labels, here, scale)}</g></svg>"
    )


@functools.cache
def _depth_marks() -> str:
    """Ticks at 0, ½ and 1 of the depth, left of the grid."""
    return "".join(
        f'<path class="depth" d="M{DEPTH_MARGIN - 4:g} {TOP + depth * HEIGHT:g}h4" stroke="#777"/>'
        f'<text class="depth" x="{DEPTH_MARGIN - 5:g}" y="{TOP + depth * HEIGHT + 3:g}" text-anchor="end">'
        f"{text}</text>"
        for depth, text in DEPTH_MARKS
    )


def _cells(model: SiteModel, grid: np.ndarray, labels: Labels, here: str, scale: float) -> str:
    """Unit-square cells at (head, layer), each linked and titled, and a slash over each unconfirmed label
    (drawn with a stroke the group's scale leaves alone)."""
    parts = []
    for (layer, head), value in np.ndenumerate(grid):
        at = (layer, head)
        title = f"{head_name(layer, head)} {value:.3f}{label_mark(at in labels, labels.get(at, False))}"
        fill = _fill(None if np.isnan(value) else float(value) / scale)
        parts.append(
            f'<a href="{markdown_safe(html_link(here, model.head_page(layer, head)))}">'
            f'<rect class="cell" x="{head}" y="{layer}" width="1" height="1" fill="{fill}">'
            f"<title>{title}</title></rect></a>"
        )
    parts += [
        f'<path class="unconfirmed" d="M{head} {layer + 1}L{head + 1} {layer}" '
        f'stroke="{svg.UNCONFIRMED_STROKE}" stroke-width="1.5" vector-effect="non-scaling-stroke" '
        'pointer-events="none"/>'
        for (layer, head), unconfirmed in sorted(labels.items())
        if unconfirmed
    ]
    return "".join(parts)


def legend(scale: float) -> Markup:
    """The model pages' colour bar, as tall as a panel's grid, for the whole mosaic."""
    top = svg.AXIS_TOP - TOP  # the bar starts where the grids do
    return Markup(
        f'<svg class="mosaic-legend" xmlns="http://www.w3.org/2000/svg" width="52" '
        f'height="{TOP + HEIGHT + 5:g}" role="img" '
        f'aria-label="colour scale: {-scale:.3g} to {scale:.3g}, shared by every model">'
        f'<g transform="translate(0 {-top:g})">{"".join(svg.legend(2, HEIGHT, scale))}</g></svg>'
    )


def _fill(value: float | None) -> str:
    """The heatmaps' colour of a score, as a short hex code."""
    return _hex(svg.color(value))


@functools.lru_cache(maxsize=1024)
def _hex(css: str) -> str:
    """``rgb(r,g,b)`` as ``#rrggbb`` (a hex code as is)."""
    if css.startswith("#"):
        return css
    return "#" + "".join(f"{int(part):02x}" for part in re.findall(r"\d+", css))
