"""The built wiki in a real headless Chromium (Debian's, driven by Playwright), served over local
HTTP: heatmaps render with a cell per head, cells link to the right head, the mosaic shows every
model, search finds a head by name, and no hostile string ever runs."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from db.fixtures import MODELS
from db.reads import ModelRecord
from survey.wiki import mosaic
from survey.wiki.pages import SiteModel
from tests.support.fixtures_hostile import MODEL_NAME
from tests.support.sitetools import build_fixture_site, serving

ARTIFACTS = Path(
    os.environ.get("INTERP_SURVEY_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts")
)
HOSTILE_SLUG = "evil-script-alert-model-script-m"

pytestmark = pytest.mark.browser


def chromium() -> str:
    """Debian's Chromium; the tests fail (not skip) without it: scripts/test.sh installs it."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("Chromium is not installed: apt-get install chromium (scripts/test.sh does this)")
    return found


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fixture_site(tmp_path_factory.mktemp("browser-wiki"))[1].out


@pytest.fixture(scope="module")
def base_url(site: Path) -> Iterator[str]:
    with serving(site) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, base_url: str) -> Iterator[Any]:
    """A fresh page that records every JavaScript dialog (none may ever open), page error and
    request that leaves the local server (the site must work offline)."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.dialogs, page.errors, page.remote = [], [], []
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.on("request", lambda r: None if r.url.startswith((base_url, "data:")) else page.remote.append(r.url))
    yield page
    assert page.dialogs == []
    assert page.remote == []
    page.close()


def test_model_page_heatmaps_have_a_cell_per_head_and_link_to_the_right_head(
    page: Any, base_url: str
) -> None:
    page.goto(base_url + "models/fixture-a/index.html")
    layers, heads, scores = MODELS["fixture-a"]
    assert page.locator("svg.heatmap").count() == len(scores)
    assert page.locator("svg.heatmap rect.cell").count() == len(scores) * layers * heads
    heatmap = page.locator("svg.heatmap").first
    grid = heatmap.locator("g").first.bounding_box()  # the cells, beside the axes and the colour bar
    assert grid is not None and grid["width"] == 14 * heads and grid["height"] == 14 * layers
    assert heatmap.locator("text.axis").count() == 1 + heads + layers + 3  # corner, heads, layers, legend
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "model-page.png"), full_page=True)
    induction = page.locator("figure#grid-induction")
    cell = induction.locator('a[href="layer-2/head-1.html"] rect')
    assert "L2H1 induction 0.900 (labelled)" in cell.locator("title").text_content()
    cell.click()
    page.wait_for_url("**/models/fixture-a/layer-2/head-1.html")
    assert page.locator("h1").first.inner_text() == "L2H1 · fixture-a"
    assert page.errors == []


def test_head_page_shows_its_scores_and_an_attention_pattern(page: Any, base_url: str) -> None:
    page.goto(base_url + "models/fixture-a/layer-2/head-1.html")
    assert page.locator("div.head-scores tbody tr").count() == 4
    similar = page.locator("div.similar-heads a").first
    similar.click()  # the nearest head of another model
    page.wait_for_url("**/models/fixture-b/**")
    page.goto(base_url + f"models/{HOSTILE_SLUG}/layer-0/head-0.html")
    pattern = page.locator("svg.pattern")
    assert pattern.count() == 1 and pattern.locator("rect").count() == 6  # 3 tokens, causal
    assert pattern.locator("text").first.text_content() == "<script>aler"  # an axis label, cut short
    assert (
        pattern.locator("rect title").first.text_content()
        == "<script>alert('token')</script> → <script>alert('token')</script>: 1.00"
    )


def test_mosaic_shows_every_model_depth_normalised(page: Any, base_url: str) -> None:
    page.goto(base_url + "classifiers/induction.html")
    figures = page.locator("figure.mosaic-model")
    assert figures.count() == len(MODELS) + 1
    heights = {figures.nth(i).locator("g.cells").bounding_box()["height"] for i in range(figures.count())}
    assert heights == {mosaic.HEIGHT}  # one grid height for every model, whatever its depth
    assert [figures.nth(i).locator("text.depth").count() for i in range(figures.count())] == [3] * 3
    n_cells = sum(layers * heads for layers, heads, _ in MODELS.values()) + 4
    assert page.locator("figure.mosaic-model rect.cell").count() == n_cells
    caption = page.locator("figure.mosaic-model figcaption", has_text="fixture-a")
    assert "4×3" in caption.inner_text()  # layers × heads
    assert caption.locator("a").get_attribute("href") == "../models/fixture-a/index.html"
    legend = page.locator("svg.mosaic-legend")
    assert legend.count() == 1 and legend.locator("rect.legend").count() == 21  # one colour bar for all
    page.locator('a[href="../models/fixture-b/layer-2/head-0.html"] rect').click()
    page.wait_for_url("**/models/fixture-b/layer-2/head-0.html")


def test_mosaic_cells_keep_their_minimum_width_and_the_panels_wrap(page: Any, base_url: str) -> None:
    page.goto(base_url + "classifiers/induction.html")
    for layers, heads in ((12, 9), (80, 64), (24, 64)):  # panels the fixture lacks, put beside its own
        model = SiteModel(ModelRecord(0, f"m{layers}x{heads}", {}), "m")
        grid = mosaic.panel_svg(model, "induction", np.zeros((layers, heads)), {}, "classifiers", 1.0)
        page.evaluate(
            "html => document.querySelector('.mosaic-family').insertAdjacentHTML('beforeend', html)",
            f'<figure class="mosaic-model"><figcaption>m{layers}x{heads}</figcaption>{grid}</figure>',
        )
        cell = page.locator(f'svg[aria-label*="m{layers}x{heads}"] rect.cell').first.bounding_box()
        assert cell["width"] >= mosaic.MIN_CELL, (heads, cell)
    area = page.locator(".mosaic-panels").bounding_box()
    boxes = [f.bounding_box() for f in page.locator("figure.mosaic-model").all()]
    assert all(b["x"] + b["width"] <= area["x"] + area["width"] + 0.5 for b in boxes)  # none overflows
    assert len({b["y"] for b in boxes}) > 1  # the wide panels wrapped onto a new line


def search(page: Any, base_url: str, query: str) -> list[str]:
    """The result links, best first, for ``query`` typed into the Pagefind box of the home page."""
    page.goto(base_url + "index.html")
    page.locator(".pagefind-ui__search-input").fill(query)
    results = page.locator(".pagefind-ui__result-link")
    results.first.wait_for(timeout=15_000)
    return [results.nth(i).get_attribute("href") or "" for i in range(results.count())]


@pytest.mark.parametrize("query", ["L2H1", "2.1"])
def test_search_finds_a_head_by_name_and_by_layer_dot_head(page: Any, base_url: str, query: str) -> None:
    hrefs = search(page, base_url, query)
    heads = {f"/models/{model}/layer-2/head-1.html" for model in ("fixture-a", "fixture-b")}
    assert set(hrefs[:2]) == heads, hrefs  # both models' L2H1 before any page that mentions it
    page.locator('.pagefind-ui__result-link[href="/models/fixture-a/layer-2/head-1.html"]').click()
    page.wait_for_url("**/models/fixture-a/layer-2/head-1.html")
    assert page.errors == []


@pytest.mark.parametrize(
    ("query", "target"),
    [("fixture-b", "/models/fixture-b/index.html"), ("previous_token", "/classifiers/previous_token.html")],
)
def test_search_finds_a_model_and_a_classifier_by_name_first(
    page: Any, base_url: str, query: str, target: str
) -> None:
    hrefs = search(page, base_url, query)
    assert hrefs[0] == target, hrefs
    assert page.errors == []


def test_search_from_a_file_url_says_it_needs_http(browser: Any, site: Path) -> None:
    """Browsers refuse Pagefind's fetches from file://: the box says so instead of failing."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto((site / "models/fixture-a/layer-2/head-1.html").as_uri())
    assert page.locator("#wiki-search").inner_text() == "search needs HTTP: run `survey site serve`"
    assert page.locator(".pagefind-ui__search-input").count() == 0
    assert errors == []
    page.close()


def test_hostile_strings_stay_text_in_the_browser(page: Any, base_url: str) -> None:
    for path in (f"models/{HOSTILE_SLUG}/index.html", f"models/{HOSTILE_SLUG}/layer-0/index.html",
                 f"models/{HOSTILE_SLUG}/layer-0/head-0.html"):  # fmt: skip
        page.goto(base_url + path)
        assert page.locator("article img").count() == 0
        assert (
            page.evaluate(
                "[...document.querySelectorAll('a')].filter(a => a.protocol === 'javascript:').length"
            )
            == 0
        )
        assert page.evaluate("[...document.scripts].filter(s => s.text.includes('alert')).length") == 0
    page.goto(base_url + f"models/{HOSTILE_SLUG}/index.html")
    assert "<img src=x onerror=alert('error')> | `x`" in page.locator("article").inner_text()  # shown as text
    hrefs = search(page, base_url, "evil")  # the hostile model: its titles and excerpts render as results
    assert hrefs and all(href.startswith(f"/models/{HOSTILE_SLUG}/") for href in hrefs), hrefs
    results = page.locator(".pagefind-ui__results")
    assert MODEL_NAME in results.inner_text()  # in the titles, shown as text
    assert results.locator("script, img, [onclick], [onerror], [onmouseover]").count() == 0
    page.wait_for_timeout(300)  # let every result render before the dialog check in teardown
