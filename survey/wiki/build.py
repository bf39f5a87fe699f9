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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from markupsafe import Markup
from sqlalchemy import Connection

from classifiers.registry import classifier_names
from db.engine import database_url, parse_database_url
from db.examples import EXAMPLES
from db.readonly import readonly_engine
from db.schema_doc import schema_markdown
from survey.errors import SurveyError
from survey.provenance import code_version
from survey.wiki import hook, svg
from survey.wiki.data import (
    UnitSummary,
    load_labels,
    load_models,
    load_score_grids,
    load_unit_summaries,
    unit_versions,
)
from survey.wiki.escape import markdown_safe
from survey.wiki.evidence import ClassEvidence, class_evidence, validation_failed
from survey.wiki.pages import SiteModel, classifier_info, head_name, label_mark, site_models, write_model
from survey.wiki.release import (
    CHECKSUMS,
    DATABASE_FOLDER,
    FILE_LIMIT,
    Release,
    oversized,
    publish_release,
    write_checksums,
)
from survey.wiki.render import PageWriter, html_link
from survey.wiki.resources import SKELETON
from survey.wiki.similar import HeadRef, nearest_heads, profiles

MARKER = ".interp-survey-site"  # in every built site: only such a folder (or an empty one) is replaced
MOSAIC_HEIGHT = 180.0


@dataclass(frozen=True)
class BuildReport:
    """What a build produced."""

    out: Path
    pages: int
    models: int
    render_s: float
    mkdocs_s: float


def build_site(
    url: str | None, out: Path, echo: Callable[[str], None], *, neurons_per_family: int = 3, similar: int = 5
) -> BuildReport:
    """Build the whole site from the database at ``url`` into ``out`` (replaced)."""
    engine = readonly_engine(url)
    out = out.resolve()
    _check_output(out)
    sqlite_file = _sqlite_file(url)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="interp-survey-docs-") as tmp:
        docs, fragments, staged = Path(tmp) / "docs", Path(tmp) / "fragments", Path(tmp) / "release"
        published = None if sqlite_file is None else publish_release(sqlite_file, staged)
        writer = PageWriter(docs, fragments)
        with engine.connect() as conn:
            job = _plan(conn, writer, similar, neurons_per_family, published)
        _render_models(url, job, writer, echo)
        models = job.models
        render_s = time.perf_counter() - start
        echo(f"rendered {writer.pages} pages in {render_s:.1f} s; mkdocs is building the HTML …")
        shutil.copytree(SKELETON / "assets", docs / "assets")
        config = _mkdocs_config(Path(tmp), docs, fragments, out, _nav(models))
        mkdocs_start = time.perf_counter()
        _run_mkdocs(config)
        mkdocs_s = time.perf_counter() - mkdocs_start
        if published is not None:
            shutil.copytree(staged, out, dirs_exist_ok=True)
    (out / MARKER).write_text("built by `survey site build`; the next build replaces this folder\n")
    write_checksums(out)
    too_big = oversized(out)
    if too_big:
        name, size = too_big[0]
        raise SurveyError(
            f"{len(too_big)} site file(s) over the {FILE_LIMIT // 2**20} MiB static-host limit, "
            f"the largest {name} ({size / 2**20:,.1f} MiB)"
        )
    echo(f"built {writer.pages} pages in {render_s + mkdocs_s:.1f} s (mkdocs {mkdocs_s:.1f} s)")
    return BuildReport(out, writer.pages, len(models), render_s, mkdocs_s)


@dataclass(frozen=True)
class RenderJob:
    """What every model's pages need: the models, and each head's most similar heads."""

    models: list[SiteModel]
    similar: dict[HeadRef, list[tuple[HeadRef, float]]]
    neurons_per_family: int

    @property
    def by_id(self) -> dict[int, SiteModel]:
        return {m.record.id: m for m in self.models}


def _plan(
    conn: Connection, writer: PageWriter, k_similar: int, neurons_per_family: int, published: Release | None
) -> RenderJob:
    """Load the models, find similar heads, and write the pages that span models."""
    models = site_models(load_models(conn))
    if not models:
        raise SurveyError("the database has no surveyed model yet; run `survey run` first")
    grids = load_score_grids(conn)
    heads, matrix, _ = profiles(grids)
    _write_front(conn, writer, models, grids, published)
    return RenderJob(models, nearest_heads(heads, matrix, k_similar), neurons_per_family)


_JOB: tuple[str | None, RenderJob, Path, Path] | None = None  # set before forking the render workers


def _render_one(index: int) -> tuple[str, int]:
    """Worker: write one model's pages with a connection of its own; (model name, pages)."""
    if _JOB is None:
        raise RuntimeError("the render job must be set before the workers fork")
    url, job, docs, fragments = _JOB
    writer = PageWriter(docs, fragments)
    model = job.models[index]
    with readonly_engine(url).connect() as conn:
        write_model(conn, writer, model, job.by_id, job.similar, job.neurons_per_family)
    return model.name, writer.pages


def _render_models(url: str | None, job: RenderJob, writer: PageWriter, echo: Callable[[str], None]) -> None:
    """Every model's pages, on as many forked workers as there are usable cores (pages of one
    model never depend on another's, and each worker writes its own files)."""
    global _JOB
    _JOB = (url, job, writer.docs, writer.fragments)
    workers = min(len(os.sched_getaffinity(0)), len(job.models))
    try:
        if workers > 1:
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                done = list(
                    _progress(pool.imap_unordered(_render_one, range(len(job.models))), job, writer, echo)
                )
        else:
            done = list(_progress(map(_render_one, range(len(job.models))), job, writer, echo))
    finally:
        _JOB = None
    if len(done) != len(job.models):
        raise SurveyError("a render worker stopped early")


def _progress(
    results: Iterator[tuple[str, int]], job: RenderJob, writer: PageWriter, echo: Callable[[str], None]
) -> Iterator[str]:
    for i, (name, pages) in enumerate(results, 1):
        writer.pages += pages
        echo(f"  [{i}/{len(job.models)}] {name}: {pages} pages")
        yield name


def _write_front(
    conn: Connection, writer: PageWriter, models: list[SiteModel], grids: dict[str, dict[int, np.ndarray]],
    published: Release | None,
) -> None:  # fmt: skip
    """Home, schema and one page per classifier (with its mosaic and each model's label evidence)."""
    n_neurons = sum(int(m.record.row["n_layers"]) * int(m.record.row["d_mlp"]) for m in models)
    names = sorted(set(grids) | set(classifier_names()))
    summaries = load_unit_summaries(conn)
    labels = load_labels(conn)
    built = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    writer.write(
        "index.md",
        "index.md.j2",
        models=models,
        n_heads=sum(m.record.n_layers * m.record.n_heads for m in models),
        n_neurons=n_neurons,
        built=built,
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
            mosaic=[
                (m, _mosaic_cell(m, name, by_model[m.record.id], labels.get(name, {}).get(m.record.id, {}),
                                 page, scale))
                for m in shown
            ],
            evidence=_class_evidence(summaries.get(name, {}), shown),
        )  # fmt: skip


def _class_evidence(by_model: dict[int, UnitSummary], models: list[SiteModel]) -> dict[int, ClassEvidence]:
    """Each model's summary of one class (models without a unit of it have none)."""
    return {
        m.record.id: class_evidence(s.labelled, s.statistics, s.validations)
        for m in models
        if (s := by_model.get(m.record.id)) is not None
    }


def _mosaic_cell(
    model: SiteModel,
    name: str,
    grid: np.ndarray,
    labels: dict[tuple[int, int], bool],
    page: str,
    scale: float,
) -> Markup:
    """One model's grid in a classifier's mosaic; ``labels`` maps each labelled head to whether it
    is unconfirmed."""
    here = str(Path(page).parent)

    def title(layer: int, head: int) -> str:
        at = (layer, head)
        return f"{head_name(layer, head)} {grid[at]:.3f}{label_mark(at in labels, labels.get(at, False))}"

    return svg.layer_head_heatmap(
        grid.tolist(), title, lambda layer, head: html_link(here, model.head_page(layer, head)),
        width=min(8.0 * grid.shape[1], 240.0), height=MOSAIC_HEIGHT, css_class="heatmap mosaic-grid",
        label=f"{name} scores of {model.name}, depth normalised", scale=scale,
        unconfirmed=lambda layer, head: labels.get((layer, head), False), axes=False,
    )  # fmt: skip


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
        {"Database schema": "schema.md"},
        {"Classifiers": [{name: f"classifiers/{name}.md"} for name in classifiers]},
        {"Models": [{str(markdown_safe(m.name)): m.page()} for m in models]},
    ]


def _mkdocs_config(folder: Path, docs: Path, fragments: Path, out: Path, nav: list[dict[str, Any]]) -> Path:
    """The skeleton's mkdocs.yml, pointed at the rendered docs, their fragments, the output
    folder and the fragment hook, with the navigation."""
    config: dict[str, Any] = yaml.safe_load((SKELETON / "mkdocs.yml").read_text(encoding="utf-8"))
    config.update(docs_dir=str(docs), site_dir=str(out), hooks=[str(Path(hook.__file__))], nav=nav)
    config["not_in_nav"] = "/models/*/layer-*/"
    config.setdefault("extra", {})["wiki_fragments"] = str(fragments)
    path = folder / "mkdocs.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def _run_mkdocs(config_file: Path) -> None:
    from mkdocs.commands.build import build
    from mkdocs.config import load_config
    from mkdocs.exceptions import MkDocsException

    try:
        build(load_config(config_file=str(config_file)))
    except MkDocsException as exc:
        raise SurveyError(f"mkdocs could not build the site: {exc}") from None
