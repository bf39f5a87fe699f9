"""``survey site build``: database → Markdown pages (jinja2) → static HTML (mkdocs-material).

Pages are rendered one model at a time, so memory stays bounded by the largest model. mkdocs runs
with ``navigation.prune`` (each page carries only its own branch of the nav), which keeps the
build linear in the number of pages, and with fonts and every asset local, so the site works offline.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from markupsafe import Markup
from sqlalchemy import Connection, Engine

from classifiers.registry import classifier_names
from db.common.errors import SurveyError
from db.common.provenance import code_version
from db.engine import database_url, parse_database_url
from db.examples import EXAMPLES
from db.readonly import readonly_engine
from db.reads import (
    UnitSummary,
    load_labels,
    load_models,
    load_score_grids,
    load_unit_summaries,
    unit_versions,
)
from db.schema_doc import schema_markdown
from survey.wiki import hook, mosaic, svg
from survey.wiki.changes import (
    RELEASE_STATE,
    ReleaseState,
    changes,
    data_epoch,
    read_release_state,
    release_state,
)
from survey.wiki.escape import markdown_safe
from survey.wiki.evidence import ClassEvidence, class_evidence, validation_failed
from survey.wiki.incremental import (
    MANIFEST,
    Manifest,
    fingerprints,
    read_manifest,
    replace_site,
    write_manifest,
)
from survey.wiki.links import broken_links
from survey.wiki.nearby import SCRIPT, similar_script
from survey.wiki.pages import SiteModel, classifier_info, site_models, write_model
from survey.wiki.release import (
    CHECKSUMS,
    DATABASE_FOLDER,
    FILE_LIMIT,
    Release,
    oversized,
    publish_release,
    write_checksums,
)
from survey.wiki.render import DirectPages, PageWriter
from survey.wiki.resources import SKELETON
from survey.wiki.search import SEARCH_SOURCE, index_site
from survey.wiki.shell import SHELL_MARKDOWN, SHELL_PAGE, PageConverter, Shell
from survey.wiki.similar import HeadRef, nearest_heads, profiles

CHANGED_HEADS_SHOWN = 12  # per model and class on the changes page
MARKER = ".interp-survey-site"  # in every built site: only such a folder (or an empty one) is replaced


@dataclass(frozen=True)
class BuildReport:
    """What a build produced: ``rendered`` of the ``models`` had their layer and head pages
    rendered (the others' were unchanged since the last build into the folder)."""

    out: Path
    pages: int
    models: int
    rendered: int
    render_s: float
    mkdocs_s: float


def build_site(
    url: str | None, out: Path, echo: Callable[[str], None], *, full: bool = False,
    neurons_per_family: int = 3, similar: int = 5,
) -> BuildReport:  # fmt: skip
    """Build the site from the database at ``url`` into ``out``. A folder built before keeps the
    layer and head pages of every model whose fingerprint is unchanged, unless ``full``; the
    result is the same file for file.

    The stages: publish the database (chunks and Parquet), plan (the front pages and what
    changed), render every model's pages, build the front pages with mkdocs, install the new
    files into ``out``, then index, checksum and check them."""
    engine = readonly_engine(url)
    out = out.resolve()
    _check_output(out)
    before = Manifest() if full else read_manifest(out)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="interp-survey-docs-") as tmp:
        work = Workspace.at(Path(tmp))
        published = _publish_database(url, work, out, before)
        job, prints = _plan_pages(
            engine, work, before, similar, neurons_per_family, published, read_release_state(out)
        )
        pages = _render_pages(url, job, work, echo)
        render_s = time.perf_counter() - start
        echo(f"rendered {pages} pages in {render_s:.1f} s; mkdocs is building the front pages …")
        mkdocs_s = _build_front_pages(job, work)
        front = _install(out, work, job, published is not None)
    _finish(out, job, prints, published.tables if published else {}, before)
    broken = broken_links(out, [out / page for page in front])
    if broken:
        echo(f"warning: {len(broken)} broken link(s) on the front pages, e.g. {', '.join(broken[:3])}")
    total = _page_count(out)
    echo(
        f"built {total} pages in {time.perf_counter() - start:.1f} s (mkdocs {mkdocs_s:.1f} s); "
        f"layer and head pages rendered for {len(job.changed)} of {len(job.models)} models"
    )
    return BuildReport(out, total, len(job.models), len(job.changed), render_s, mkdocs_s)


@dataclass(frozen=True)
class Workspace:
    """The build's temporary folders: rendered Markdown, its fragments, finished layer and head
    pages, what search indexes, mkdocs's output and the published database."""

    root: Path
    docs: Path
    fragments: Path
    direct: Path
    search: Path
    site: Path
    release: Path

    @classmethod
    def at(cls, root: Path) -> Workspace:
        """The folders under ``root``, each named as its field."""
        return cls(
            root, *(root / name for name in ("docs", "fragments", "direct", "search", "site", "release"))
        )


def _publish_database(url: str | None, work: Workspace, out: Path, before: Manifest) -> Release | None:
    """Stage 1: the SQLite database in chunks and Parquet (None: the database is not SQLite)."""
    sqlite_file = _sqlite_file(url)
    return None if sqlite_file is None else publish_release(sqlite_file, work.release, out, before.tables)


def _plan_pages(
    engine: Engine, work: Workspace, before: Manifest, similar: int, neurons_per_family: int,
    published: Release | None, previous: ReleaseState | None,
) -> tuple[RenderJob, dict[str, str]]:  # fmt: skip
    """Stage 2: the pages that span models, the theme's shell, and each model's fingerprint; the
    job names the models whose layer and head pages changed."""
    with engine.connect() as conn:
        job = _plan(
            conn, PageWriter(work.docs, work.fragments), similar, neurons_per_family, published, previous
        )
        job.shell_html = _shell_page(work.root, _nav(job.models), job.source_date)
        prints = fingerprints(conn, job.models, {"neurons_per_family": neurons_per_family}, job.shell_html)
    job.changed = {m.slug for m in job.models if before.models.get(m.slug) != prints[m.slug]}
    return job, prints


def _render_pages(url: str | None, job: RenderJob, work: Workspace, echo: Callable[[str], None]) -> int:
    """Stage 3: every model's pages; layer and head pages as finished HTML. Returns the pages written."""
    work.direct.mkdir()
    work.search.mkdir()
    converter = PageConverter(Shell.from_html(job.shell_html))
    writer = PageWriter(work.docs, work.fragments, DirectPages(work.direct, work.search, converter))
    _render_models(url, job, writer, echo)
    return writer.pages


def _build_front_pages(job: RenderJob, work: Workspace) -> float:
    """Stage 4: mkdocs builds the front pages; each model gets its similar-heads script (from every
    model, so on every build). Returns mkdocs's seconds."""
    shutil.copytree(SKELETON / "assets", work.docs / "assets")
    started = time.perf_counter()
    _run_mkdocs(
        _mkdocs_config(work.root, work.docs, work.fragments, work.site, _nav(job.models)), job.source_date
    )
    seconds = time.perf_counter() - started
    for model in job.models:
        script = similar_script(model, job.similar, job.by_id)
        (work.site / model.page()).with_name(SCRIPT).write_text(script, encoding="utf-8")
    return seconds


def _install(out: Path, work: Workspace, job: RenderJob, published: bool) -> list[Path]:
    """Stage 5: the new files into ``out``, keeping unchanged models' layer and head pages.
    Returns the front pages (relative to the site)."""
    kept = [m.slug for m in job.models if m.slug not in job.changed]
    front = [p.relative_to(work.site) for p in work.site.rglob("*.html")]
    _front_search_pages(work.site, work.search)
    (out / MANIFEST).unlink(missing_ok=True)  # a build stopped half-way is never taken as current
    replace_site(out / SEARCH_SOURCE, [work.search], kept)
    sources = [work.site, work.direct] + ([work.release] if published else [])
    replace_site(out, sources, kept, leave=(SEARCH_SOURCE, MARKER))  # MARKER: still ours if this fails
    return front


def _finish(
    out: Path, job: RenderJob, prints: dict[str, str], tables: dict[str, list[int]], before: Manifest
) -> None:
    """Stage 6: the release state, the search index, checksums and the manifest (the models'
    fingerprints, the published tables'); SurveyError when a file is over the static host's limit."""
    (out / RELEASE_STATE).write_text(job.state.to_json(), encoding="utf-8")
    index_site(out)
    (out / MARKER).write_text("built by `survey site build`; the next build replaces this folder\n")
    files = write_checksums(out, before.files)
    write_manifest(out, Manifest(prints, tables, files))
    too_big = oversized(out)
    if too_big:
        name, size = too_big[0]
        raise SurveyError(
            f"{len(too_big)} site file(s) over the {FILE_LIMIT // 2**20} MiB static-host limit, "
            f"the largest {name} ({size / 2**20:,.1f} MiB)"
        )


@dataclass
class RenderJob:
    """What every model's pages need: the models, each head's most similar heads, the release's
    state, and which models' layer and head pages to render."""

    models: list[SiteModel]
    similar: dict[HeadRef, list[tuple[HeadRef, float]]]
    neurons_per_family: int
    state: ReleaseState
    changed: set[str] = field(default_factory=set)
    shell_html: str = ""  # the theme's page that layer and head pages are put into

    @property
    def by_id(self) -> dict[int, SiteModel]:
        return {m.record.id: m for m in self.models}

    @property
    def source_date(self) -> int:
        """The data's time, as the build's date (SOURCE_DATE_EPOCH): a rebuild writes the same files."""
        return data_epoch(self.state)


def _plan(
    conn: Connection, writer: PageWriter, k_similar: int, neurons_per_family: int, published: Release | None,
    previous: ReleaseState | None,
) -> RenderJob:  # fmt: skip
    """Load the models, find similar heads, and write the pages that span models."""
    models = site_models(load_models(conn))
    if not models:
        raise SurveyError("the database has no surveyed model yet; run `survey run` first")
    grids = load_score_grids(conn)
    heads, matrix, _ = profiles(grids)
    state = release_state(conn, models)
    _write_front(conn, writer, models, grids, published, state)
    writer.write(
        "changes.md", "changes.md.j2", changes=changes(previous, state), current=state,
        pages={m.name: m.page() for m in models}, shown=CHANGED_HEADS_SHOWN,
    )  # fmt: skip
    return RenderJob(models, nearest_heads(heads, matrix, k_similar), neurons_per_family, state)


@dataclass(frozen=True)
class ModelPages:
    """One model's pages to write (a render worker's whole input): its layer and head pages only
    when ``details`` (the model changed)."""

    url: str | None
    model: SiteModel
    neurons_per_family: int
    details: bool
    docs: Path
    fragments: Path
    direct: DirectPages | None


def render_model_pages(task: ModelPages) -> tuple[str, int]:
    """Worker: write one model's pages with a connection of its own; (model name, pages)."""
    writer = PageWriter(task.docs, task.fragments, task.direct)
    with readonly_engine(task.url).connect() as conn:
        write_model(conn, writer, task.model, task.neurons_per_family, details=task.details)
    return task.model.name, writer.pages


def _render_models(url: str | None, job: RenderJob, writer: PageWriter, echo: Callable[[str], None]) -> None:
    """Every model's pages, on as many forked workers as there are usable cores (pages of one
    model never depend on another's, and each worker writes its own files)."""
    tasks = [
        ModelPages(
            url, model, job.neurons_per_family, model.slug in job.changed,
            writer.docs, writer.fragments, writer.direct,
        )
        for model in job.models
    ]  # fmt: skip
    workers = min(len(os.sched_getaffinity(0)), len(tasks))
    if workers > 1:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            done = list(_progress(pool.imap_unordered(render_model_pages, tasks), job, writer, echo))
    else:
        done = list(_progress(map(render_model_pages, tasks), job, writer, echo))
    if len(done) != len(job.models):
        raise SurveyError("a render worker stopped early")


def _progress(
    results: Iterator[tuple[str, int]], job: RenderJob, writer: PageWriter, echo: Callable[[str], None]
) -> Iterator[str]:
    for i, (name, pages) in enumerate(results, 1):
        writer.pages += pages
        echo(f"  [{i}/{len(job.models)}] {name}: {pages} pages")
        yield name


def _front_search_pages(site: Path, search: Path) -> None:
    """The pages mkdocs built, as search indexes them (see :mod:`survey.wiki.search`)."""
    for page in site.rglob("*.html"):
        if page.name != "404.html":
            target = search / page.relative_to(site)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(page, target)


def _page_count(out: Path) -> int:
    """The site's pages (mkdocs's 404 page aside)."""
    pages = out.rglob("*.html")
    return sum(1 for page in pages if page.name != "404.html" and SEARCH_SOURCE not in page.parts)


def _write_front(
    conn: Connection, writer: PageWriter, models: list[SiteModel], grids: dict[str, dict[int, np.ndarray]],
    published: Release | None, state: ReleaseState,
) -> None:  # fmt: skip
    """Home, schema and one page per classifier (with its mosaic and each model's label evidence)."""
    n_neurons = sum(int(m.record.row["n_layers"]) * int(m.record.row["d_mlp"]) for m in models)
    names = sorted(set(grids) | set(classifier_names()))
    summaries = load_unit_summaries(conn)
    labels = load_labels(conn)
    writer.write(
        "index.md",
        "index.md.j2",
        models=models,
        n_heads=sum(m.record.n_layers * m.record.n_heads for m in models),
        n_neurons=n_neurons,
        data_as_of=state.data_as_of,
        code_version=code_version(),
        labelled=_labelled_counts(summaries, unconfirmed=False),
        unconfirmed=_labelled_counts(summaries, unconfirmed=True),
        classifiers=[classifier_info(n) for n in names],
    )
    writer.write(
        "schema.md", "schema.md.j2", schema=Markup(schema_markdown()), examples=EXAMPLES,
        release=published, database_folder=DATABASE_FOLDER, checksums=CHECKSUMS,
        backend=conn.engine.url.get_backend_name(),
    )  # fmt: skip
    history = unit_versions(conn)
    for name in names:
        by_model = grids.get(name, {})
        scale = svg.color_scale(*by_model.values())
        page = f"classifiers/{name}.md"
        shown = [m for m in models if m.record.id in by_model]
        writer.write(
            page,
            "classifier.md.j2",
            info=classifier_info(name),
            history=history.get(name, []),
            mosaic=mosaic.classifier_mosaic(shown, name, by_model, labels.get(name, {}), page, scale),
            evidence=_class_evidence(summaries.get(name, {}), shown),
        )  # fmt: skip
    writer.write(
        "sql.md", "sql.md.j2", release=published, examples=EXAMPLES, database_folder=DATABASE_FOLDER,
        slugs={m.name: m.slug for m in models}, backend=conn.engine.url.get_backend_name(),
    )  # fmt: skip


def _class_evidence(by_model: dict[int, UnitSummary], models: list[SiteModel]) -> dict[int, ClassEvidence]:
    """Each model's summary of one class (models without a unit of it have none)."""
    return {
        m.record.id: class_evidence(s.labelled, s.statistics, s.validations)
        for m in models
        if (s := by_model.get(m.record.id)) is not None
    }


def _labelled_counts(summaries: dict[str, dict[int, UnitSummary]], *, unconfirmed: bool) -> dict[int, int]:
    """Per model id: its labelled heads over every class (only the unconfirmed ones, if asked)."""
    counts: dict[int, int] = {}
    for by_model in summaries.values():
        for model_id, s in by_model.items():
            counted = s.labelled if validation_failed(s.validations) or not unconfirmed else 0
            counts[model_id] = counts.get(model_id, 0) + counted
    return counts


def _check_output(out: Path) -> None:
    """Refuse to replace a folder that holds anything but a previous build (mkdocs empties it)."""
    if out.exists() and not out.is_dir():
        raise SurveyError(f"--out {out} is a file; give a folder for the site")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise SurveyError(
            f"--out {out} is not empty and holds no site built by survey; give a new or empty folder"
        )


def _sqlite_file(url: str | None) -> Path | None:
    parsed = parse_database_url(database_url(url))
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return Path(parsed.database).expanduser().resolve()


def _nav(models: list[SiteModel]) -> list[dict[str, Any]]:
    """The site's navigation: home, schema, classifiers and models. Layer and head pages stay
    out of it (they are reached by links): a nav entry per page would make every page carry
    thousands of links, and the build time grow with the square of the page count."""
    classifiers = sorted(classifier_names())
    return [
        {"Home": "index.md"},
        {"Changes": "changes.md"},
        {"Database schema": "schema.md"},
        {"SQL": "sql.md"},
        {"Classifiers": [{name: f"classifiers/{name}.md"} for name in classifiers]},
        {"Models": [{str(markdown_safe(m.name)): m.page()} for m in models]},
    ]


def _mkdocs_config(folder: Path, docs: Path, fragments: Path, out: Path, nav: list[dict[str, Any]]) -> Path:
    """The skeleton's mkdocs.yml, pointed at the rendered docs, their fragments, the output
    folder and the fragment hook, with the navigation."""
    config: dict[str, Any] = yaml.safe_load((SKELETON / "mkdocs.yml").read_text(encoding="utf-8"))
    config.update(docs_dir=str(docs), site_dir=str(out), hooks=[str(Path(hook.__file__))], nav=nav)
    config["theme"]["custom_dir"] = str(SKELETON / config["theme"]["custom_dir"])  # relative to the skeleton
    config["not_in_nav"] = "/_wiki-shell/"
    config.setdefault("extra", {})["wiki_fragments"] = str(fragments)
    path = folder / "mkdocs.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def _shell_page(folder: Path, nav: list[dict[str, Any]], source_date: int) -> str:
    """The theme's HTML for a page three folders deep and outside the navigation, built by mkdocs
    from placeholder pages with the site's navigation (see :mod:`survey.wiki.shell`)."""
    docs = folder / "shell-docs"
    for page in [*_nav_pages(nav), SHELL_PAGE]:
        (docs / page).parent.mkdir(parents=True, exist_ok=True)
        (docs / page).write_text(SHELL_MARKDOWN if page == SHELL_PAGE else "# page\n", encoding="utf-8")
    site = folder / "shell-site"
    _run_mkdocs(_mkdocs_config(folder, docs, folder / "no-fragments", site, nav), source_date)
    return (site / SHELL_PAGE).with_suffix(".html").read_text(encoding="utf-8")


def _nav_pages(nav: list[Any] | dict[str, Any] | str) -> Iterator[str]:
    """Every page the navigation names."""
    if isinstance(nav, str):
        yield nav
    else:
        for entry in nav.values() if isinstance(nav, dict) else nav:
            yield from _nav_pages(entry)


def _run_mkdocs(config_file: Path, source_date: int) -> None:
    """Build with mkdocs, dated ``source_date`` (seconds since the epoch) where it writes a date."""
    from mkdocs.commands.build import build
    from mkdocs.config import load_config
    from mkdocs.exceptions import MkDocsException

    before = os.environ.get("SOURCE_DATE_EPOCH")
    os.environ["SOURCE_DATE_EPOCH"] = str(source_date)
    try:
        build(load_config(config_file=str(config_file)))
    except MkDocsException as exc:
        raise SurveyError(f"mkdocs could not build the site: {exc}") from None
    finally:
        if before is None:
            del os.environ["SOURCE_DATE_EPOCH"]
        else:
            os.environ["SOURCE_DATE_EPOCH"] = before
