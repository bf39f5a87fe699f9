"""The SQL page in a real headless Chromium, served over local HTTP with range requests: it answers
the example questions from the published database (as built, in one chunk, and republished in
many small chunks), a result links to its head page, every kind of write is refused with a message
and changes nothing, hostile strings stay text, and opened from a file it says to serve the site."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tests.browser.test_site_browser as site_browser
from db.examples import EXAMPLES
from survey.wiki.release import publish_database
from tests.support.fixtures_hostile import HOSTILE, MODEL_NAME
from tests.support.sitetools import build_fixture_site, published_database, serving

pytestmark = pytest.mark.browser

browser = site_browser.browser  # Debian's Chromium, as for the other pages
page = site_browser.page  # a page that fails the test on any dialog or request leaving the server
HOSTILE_SLUG = site_browser.HOSTILE_SLUG
SMALL_CHUNK = 8 * 4096  # the fixture database in many chunks
TITLES = [title for title, _ in EXAMPLES]


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One served folder, the fixture site in it twice: ``one/`` as built (its database is one
    chunk) and ``many/`` with the same database republished in 32 KiB chunks."""
    root = tmp_path_factory.mktemp("sql-wiki")
    db, report = build_fixture_site(root / "build")
    served = root / "served"
    served.mkdir()
    shutil.copytree(report.out, served / "one")
    shutil.copytree(report.out, served / "many")
    for chunk in (served / "many" / "db").glob("survey.db.*"):
        chunk.unlink()
    publish_database(db, served / "many", chunk_bytes=SMALL_CHUNK)
    assert len(list((served / "one" / "db").glob("survey.db.*"))) == 1
    assert len(list((served / "many" / "db").glob("survey.db.*"))) > 4
    (served / "index.html").write_text(
        '<!doctype html><a href="one/sql.html">one</a> <a href="many/sql.html">many</a>'
    )
    return served


@pytest.fixture(scope="module")
def base_url(sites: Path) -> Iterator[str]:
    with serving(sites) as url:
        yield url


def expected_rows(sites: Path, sql: str) -> list[list[Any]]:
    """What Python's sqlite3 answers on the published database, joined from its chunks."""
    with sqlite3.connect(f"file:{published_database(sites / 'one')}?mode=ro", uri=True) as db:
        return [list(row) for row in db.execute(sql).fetchall()]


def open_sql_page(page: Any, base_url: str, layout: str = "one") -> None:
    """The SQL page, once its database is open (the status line says Ready)."""
    requests: list[tuple[str, str]] = []
    page.on("request", lambda r: requests.append((r.method, r.url)))
    page.requests = requests
    page.goto(base_url + f"{layout}/sql.html")
    page.locator("#sql-status.sql-ok", has_text="Ready").wait_for(timeout=30_000)


def run(page: Any, sql: str) -> str:
    """Type ``sql`` in the query box, press Run, and return the status line once it has answered."""
    page.locator("#sql-query").fill(sql)
    page.locator("#sql-run").click()
    page.locator("#sql-status.sql-ok, #sql-status.sql-error").wait_for(timeout=30_000)
    page.locator("#sql-run:not([disabled])").wait_for()
    return str(page.locator("#sql-status").inner_text())


def survey_sql(page: Any, sql: str) -> dict[str, Any]:
    """``window.surveySql(sql)``: its answer, or {"error", "refused"} when it rejects."""
    return dict(
        page.evaluate(
            "sql => window.surveySql(sql).then(r => r, e => ({error: e.message, refused: e.refused}))", sql
        )
    )


@pytest.mark.parametrize("layout", ["one", "many"])
def test_the_sql_page_answers_every_example_from_the_chunked_database(
    page: Any, base_url: str, sites: Path, layout: str
) -> None:
    open_sql_page(page, base_url, layout)
    options = page.locator("#sql-examples option")
    assert options.all_text_contents() == TITLES
    page.locator("#sql-examples").select_option(label=TITLES[1])
    assert page.locator("#sql-query").input_value() == EXAMPLES[1][1]
    page.locator("#sql-run").click()
    page.locator("#sql-status.sql-ok", has_text="row").wait_for(timeout=30_000)
    expected = expected_rows(sites, EXAMPLES[1][1])
    assert page.locator("#sql-results tbody tr").count() == len(expected) >= 1
    header = page.locator("#sql-results thead th").all_text_contents()
    assert header == ["model", "layer", "head", "duplicate_token_score", "induction_score"]
    for title, sql in EXAMPLES:  # every example, each answered as sqlite3 answers it
        answer = survey_sql(page, sql)
        assert "error" not in answer, (title, answer)
        assert answer["rows"] == expected_rows(sites, sql), title
    chunks = {url.rsplit("/", 1)[1] for method, url in page.requests if "/db/survey.db." in url}
    assert {method for method, _ in page.requests} == {"GET"}
    if layout == "many":
        assert len(chunks) > 3, chunks  # the reads spanned several chunk files
    assert page.errors == []
    if layout == "one":
        site_browser.ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(site_browser.ARTIFACTS / "sql-page.png"), full_page=True)


def test_a_result_links_to_its_head_layer_or_model_page(page: Any, base_url: str, sites: Path) -> None:
    open_sql_page(page, base_url)
    run(page, "SELECT name AS model FROM models ORDER BY name")
    links = page.locator("#sql-results tbody td a")
    hrefs = [links.nth(i).get_attribute("href") for i in range(links.count())]
    assert hrefs == [
        f"models/{HOSTILE_SLUG}/index.html",
        "models/fixture-a/index.html",
        "models/fixture-b/index.html",
    ]
    run(
        page, "SELECT model, layer, count(*) AS heads FROM head_wide WHERE model = 'fixture-b' GROUP BY layer"
    )
    layer_cell = page.locator("#sql-results tbody tr").first.locator("td").nth(1)
    assert layer_cell.locator("a").get_attribute("href") == "models/fixture-b/layer-0/index.html"
    run(page, "SELECT 'no such model' AS model, 1 AS layer, 2 AS head")
    assert page.locator("#sql-results tbody a").count() == 0  # only surveyed models link
    model, layer, head = expected_rows(sites, EXAMPLES[1][1])[0][:3]
    assert model == "fixture-a"
    run(page, EXAMPLES[1][1])
    row = page.locator("#sql-results tbody tr").first
    head_link = row.locator("td").nth(2).locator("a")
    assert head_link.get_attribute("href") == f"models/fixture-a/layer-{layer}/head-{head}.html"
    assert row.locator("a").count() == 1  # one link per row, on the head cell
    head_link.click()
    page.wait_for_url(f"**/one/models/fixture-a/layer-{layer}/head-{head}.html")
    assert page.locator("h1").first.inner_text() == f"L{layer}H{head} · fixture-a"


REFUSED = [
    ("INSERT INTO models (name) VALUES ('intruder')", "INSERT"),
    (
        "WITH doomed AS (SELECT id FROM models) UPDATE models SET name = 'renamed' WHERE id IN doomed",
        "UPDATE",
    ),
    ("SELECT 1; DELETE FROM models", "one statement at a time"),
    ("PRAGMA user_version = 7", "PRAGMA user_version"),
    ("ATTACH DATABASE 'elsewhere.db' AS elsewhere", "ATTACH"),
    ("PRAGMA query_only = 0", "never changes a setting"),
    ("DROP VIEW head_wide", "DROP VIEW"),
    ("CREATE TEMP TABLE scratch (x)", "CREATE TEMP TABLE"),
    ("VACUUM INTO 'copy.db'", "not read-only"),
    ("BEGIN", "transaction"),
]


def test_writes_are_refused_with_a_message_and_change_nothing(page: Any, base_url: str, sites: Path) -> None:
    open_sql_page(page, base_url)
    before = survey_sql(page, "SELECT id, name FROM models ORDER BY id")["rows"]
    config = json.loads((sites / "one" / "db" / "config.json").read_text())
    for sql, reason in REFUSED:
        status = run(page, sql)
        assert status.startswith("Refused: ") and reason in status, (sql, status)
        assert page.locator("#sql-results tr").count() == 0
        answer = survey_sql(page, sql)
        assert answer["refused"] is True and reason in answer["error"], (sql, answer)
    assert survey_sql(page, "SELECT id, name FROM models ORDER BY id")["rows"] == before
    assert survey_sql(page, "PRAGMA user_version")["rows"] == [[0]]
    assert survey_sql(page, "PRAGMA database_list")["rows"] == [[0, "main", "survey.db"]]
    assert survey_sql(page, "SELECT count(*) FROM sqlite_temp_schema")["rows"] == [[0]]
    assert "renamed" not in run(page, "SELECT group_concat(name) FROM models")  # and the page still reads
    published = published_database(sites / "one").read_bytes()
    assert hashlib.sha256(published).hexdigest() == config["sha256"]
    assert {method for method, _ in page.requests} == {"GET"}
    assert page.errors == []


def test_hostile_strings_in_results_stay_text(page: Any, base_url: str) -> None:
    open_sql_page(page, base_url)
    tokens = "tokens t JOIN models m ON m.id = t.model_id WHERE m.name LIKE 'evil%' ORDER BY t.token_id"
    run(page, f"SELECT m.name AS model, m.family, m.license, t.text FROM {tokens}")
    cells = page.locator("#sql-results tbody tr")
    assert cells.count() == len(HOSTILE)
    assert [cells.nth(i).locator("td").nth(3).inner_text() for i in range(len(HOSTILE))] == HOSTILE
    first = cells.first.locator("td")
    assert first.nth(0).inner_text() == MODEL_NAME
    assert first.nth(1).inner_text() == "[x](javascript:alert('family'))"
    assert first.nth(0).locator("a").get_attribute("href") == f"models/{HOSTILE_SLUG}/index.html"
    results = page.locator("#sql-results")
    assert results.locator("img, script, b, iframe").count() == 0
    assert (
        page.evaluate("[...document.querySelectorAll('a')].filter(a => a.protocol === 'javascript:').length")
        == 0
    )
    run(page, "SELECT '<img src=x onerror=alert(1)>' AS \"<b onmouseover=alert(2)>col</b>\"")
    assert page.locator("#sql-results thead th").inner_text() == "<b onmouseover=alert(2)>col</b>"
    assert results.locator("img, b").count() == 0
    page.wait_for_timeout(300)  # an onerror would have fired by now: the teardown checks no dialog opened
    assert page.errors == []


def test_opened_from_a_file_it_says_to_serve_the_site(browser: Any, sites: Path) -> None:
    tab = browser.new_page()
    try:
        tab.goto((sites / "one" / "sql.html").as_uri())
        status = tab.locator("#sql-status")
        assert "survey site serve" in status.inner_text()
        assert tab.locator("#sql-run").is_disabled()
        assert tab.locator("#sql-query").input_value() == EXAMPLES[0][1]  # the examples still show
    finally:
        tab.close()
