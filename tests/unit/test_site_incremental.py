"""Incremental releases: a rebuild renders only the models that changed, writes the same files as a
full build, and its changes page lists the units added and the labels gained and lost. Layer and
head pages come from the theme's shell, with the site's navigation."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from db.common.errors import SurveyError
from db.engine import open_database
from db.fixtures import add_head_scores, add_rescored_unit, add_unit
from db.schema import HeadScore, Model, Run, Unit
from db.store import session_factory
from survey.wiki.build import build_site
from survey.wiki.changes import read_release_state
from survey.wiki.incremental import MANIFEST
from survey.wiki.release import BUILD_STATE
from survey.wiki.shell import PageConverter, Shell
from tests.support.sitetools import PageParser, build_fixture_site


def relabel(db: Path, model: str, classifier: str, threshold: float) -> None:
    """A new unit of ``classifier`` for ``model``: the same scores under another threshold (a new
    definition hash, labels by the threshold alone), so its labels change and no head's similarity to
    another does."""
    engine = open_database(f"sqlite:///{db}")
    with session_factory(engine).begin() as session:
        row = session.scalars(select(Model).where(Model.name == model)).one()
        run = session.scalars(select(Run).where(Run.model_id == row.id)).first()
        assert run is not None
        old = session.scalars(
            select(Unit).where(Unit.model_id == row.id, Unit.name == classifier).order_by(Unit.id.desc())
        ).first()
        assert old is not None
        scores = np.full((int(row.n_layers), int(row.n_heads)), np.nan)
        for h in session.scalars(select(HeadScore).where(HeadScore.unit_id == old.id)):
            scores[h.layer, h.head] = h.score
        unit = add_unit(
            session, row.id, run.id, "head_classifier", classifier, threshold, definition_hash="e" * 64
        )
        add_head_scores(session, unit, scores, [[{} for _ in r] for r in scores.tolist()], statistics=False)
    engine.dispose()


PASSED_ON = ("pagefind/", BUILD_STATE)  # the search index and the builder's state follow any page's change


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A site built, then rebuilt in place after fixture-a's induction unit was relabelled, and
    a full build of the same into a copy of the first site: (database, incremental, full)."""
    folder = tmp_path_factory.mktemp("releases")
    db, report = build_fixture_site(folder)
    assert report.rendered == report.models  # a new folder: every model
    full = folder / "full"
    shutil.copytree(report.out, full)
    relabel(db, "fixture-a", "induction", 0.04)  # every head scores at least 0.05: all labelled
    incremental = build_site(f"sqlite:///{db}", report.out, lambda line: None)
    assert incremental.rendered == 1  # fixture-a alone
    assert build_site(f"sqlite:///{db}", full, lambda line: None, full=True).rendered == report.models
    return db, report.out, full


def test_an_incremental_build_writes_the_same_files_as_a_full_one(releases: tuple[Path, Path, Path]) -> None:
    _, incremental, full = releases
    built, expected = files(incremental), files(full)
    del built[MANIFEST], expected[MANIFEST]  # file times: the builder's, not the site's
    assert built.keys() == expected.keys()
    assert [name for name in built if built[name] != expected[name]] == []


def test_a_rebuild_with_nothing_changed_renders_no_model_and_changes_no_file(
    releases: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    db, incremental, _ = releases
    site = tmp_path / "site"
    shutil.copytree(incremental, site)
    before = files(site)
    report = build_site(f"sqlite:///{db}", site, lambda line: None)
    assert report.rendered == 0
    after = {name: data for name, data in files(site).items() if not name.startswith(PASSED_ON)}
    before = {name: data for name, data in before.items() if not name.startswith(PASSED_ON)}
    assert after.keys() == before.keys()
    # the changes page now says "nothing changed"; the checksums follow it
    assert {name for name in after if after[name] != before[name]} == {"changes.html", "SHA256SUMS"}


def test_the_changes_page_lists_the_new_unit_and_the_labels_gained(releases: tuple[Path, Path, Path]) -> None:
    _, incremental, _ = releases
    parser = PageParser()
    parser.feed((incremental / "changes.html").read_text(encoding="utf-8"))
    text = " ".join(" ".join(parser.text).split())
    assert "Units added" in text and "Units removed" not in text
    assert "fixture-a head_classifier induction 1" in text
    # 12 heads, 2 labelled before: 10 gained, none lost
    assert "fixture-a induction 10: L0H0, L0H2, L1H0" in text
    state = read_release_state(incremental)
    assert state is not None and len(state.labels["fixture-a"]["induction"]) == 12


def test_the_first_release_says_so(tmp_path: Path) -> None:
    _, report = build_fixture_site(tmp_path)
    parser = PageParser()
    parser.feed((report.out / "changes.html").read_text(encoding="utf-8"))
    assert "This is the first release built into this folder" in " ".join(" ".join(parser.text).split())
    assert (report.out / MANIFEST).is_file()


def test_head_pages_carry_the_theme_and_the_site_navigation(releases: tuple[Path, Path, Path]) -> None:
    _, site, _ = releases
    parser = PageParser()
    parser.feed((site / "models/fixture-a/layer-2/head-1.html").read_text(encoding="utf-8"))
    links = {attrs.get("href") for tag, attrs in parser.elements if tag == "a"}
    assert {"../../../index.html", "../../../schema.html", "../../../changes.html"} <= links
    assert "../../../assets/wiki.css" in {
        attrs.get("href") for tag, attrs in parser.elements if tag == "link"
    }
    assert "../index.html" in links  # the page's own link to its model
    titles = [t for t in parser.text if "L2H1" in t]
    assert titles and "WIKISHELL" not in "".join(parser.text)
    toc = [
        attrs.get("href")
        for tag, attrs in parser.elements
        if tag == "a" and attrs.get("class") == "md-nav__link"
    ]
    assert "#scores" in toc


def test_a_theme_that_renders_no_shell_is_a_clear_error() -> None:
    with pytest.raises(SurveyError, match="shell page"):
        Shell.from_html("<html><body>no content here</body></html>")


def test_the_table_of_contents_nests_each_h3_under_the_h2_before_it() -> None:
    shell = Shell(("<title>", "</title><nav>", "</nav><main>", "</main>"), ("title", "toc", "body"))
    body = (
        '<h1 id="m">m · layer 0</h1><h2 id="heads">Heads</h2><p>text</p><h2 id="neurons">Neurons</h2>'
        '<h3 id="neuron-5">Neuron 0.5 (token)</h3><p><!--wiki-fragment:0--></p>'
        '<h3 id="neuron-2">Neuron 0.2</h3>'
    )
    title, page = PageConverter(shell).convert('---\ntitle: "m layer 0"\n---\n' + body, ["<svg></svg>"])
    assert title == "m layer 0"
    assert page.startswith("<title>m layer 0</title>") and "<p><svg></svg></p>" in page
    toc = page[page.index("<nav>") : page.index("<main>")]
    assert 'href="#m"' not in toc  # the page's title is no entry
    heads, neurons = toc.index('href="#heads"'), toc.index('href="#neurons"')
    nested = toc.index('<nav class="md-nav" aria-label="Neurons">')
    assert heads < neurons < nested < toc.index('href="#neuron-5"') < toc.index('href="#neuron-2"')
    assert ">Neuron 0.5 (token)</span>" in toc


def test_new_scores_for_one_model_render_only_that_model_and_update_the_others_neighbours(
    tmp_path: Path,
) -> None:
    db, report = build_fixture_site(tmp_path)
    before = (report.out / "models/fixture-a/similar.js").read_text(encoding="utf-8")
    engine = open_database(f"sqlite:///{db}")
    add_rescored_unit(engine, "fixture-b", "induction")
    engine.dispose()
    rebuilt = build_site(f"sqlite:///{db}", report.out, lambda line: None)
    assert rebuilt.rendered == 1  # fixture-b; the others' pages hold no other model's scores
    assert (report.out / "models/fixture-a/similar.js").read_text(encoding="utf-8") != before
