"""``survey site build``: database → Markdown pages (jinja2) → static HTML (mkdocs-material).

Pages are rendered one model at a time, so memory stays bounded by the largest model. mkdocs runs
with ``navigation.prune`` (each page carries only its own branch of the nav), which keeps the
build linear in the number of pages, and with fonts and every asset local, so the site works offline.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from markupsafe import Markup
from sqlalchemy import Connection, text

from classifiers.registry import classifier_names

from db.engine import database_url, parse_database_url
from db.examples import EXAMPLES
from db.readonly import readonly_engine
from db.schema_doc import schema_markdown
from survey.errors import SurveyError
from survey.runner import code_version
from survey.wiki import svg
from survey.wiki.data import load_models, load_score_grids, unit_versions
from survey.wiki.pages import SiteModel, classifier_info, head_name, site_models, write_model
from survey.wiki.render import SKELETON, PageWriter, html_link
from survey.wiki.similar import nearest_heads, profiles

DOWNLOAD = "download/survey.db"
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
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="interp-survey-docs-") as tmp:
        docs = Path(tmp) / "docs"
        writer = PageWriter(docs)
        with engine.connect() as conn:
            n_models = _render(conn, writer, echo, neurons_per_family, similar, _download_of(url))
        render_s = time.perf_counter() - start
        echo(f"rendered {writer.pages} pages in {render_s:.1f} s; mkdocs is building the HTML …")
        shutil.copytree(SKELETON.parent / "assets", docs / "assets")
        config = _mkdocs_config(Path(tmp), docs, out)
        mkdocs_start = time.perf_counter()
        _run_mkdocs(config)
        mkdocs_s = time.perf_counter() - mkdocs_start
    download = _download_of(url)
    if download is not None:
        _copy_database(download, out / DOWNLOAD)
    echo(f"built {writer.pages} pages in {render_s + mkdocs_s:.1f} s (mkdocs {mkdocs_s:.1f} s)")
    return BuildReport(out, writer.pages, n_models, render_s, mkdocs_s)


def _render(
    conn: Connection, writer: PageWriter, echo: Callable[[str], None], neurons_per_family: int, k_similar: int,
    download: Path | None,
) -> int:  # fmt: skip
    models = site_models(load_models(conn))
    if not models:
        raise SurveyError("the database has no surveyed model yet; run `survey run` first")
    grids = load_score_grids(conn)
    heads, matrix, _ = profiles(grids)
    similar = nearest_heads(heads, matrix, k_similar)
    by_id = {m.record.id: m for m in models}
    labelled = _labelled_counts(conn)
    _write_front(conn, writer, models, grids, labelled, download)
    for i, model in enumerate(models, 1):
        before = writer.pages
        write_model(conn, writer, model, by_id, similar, neurons_per_family)
        echo(f"  [{i}/{len(models)}] {model.name}: {writer.pages - before} pages")
    return len(models)


def _write_front(
    conn: Connection, writer: PageWriter, models: list[SiteModel], grids: dict[str, dict[int, np.ndarray]],
    labelled: dict[int, int], download: Path | None,
) -> None:  # fmt: skip
    """Home, schema and one page per classifier (with its mosaic)."""
    n_neurons = sum(int(m.record.row["n_layers"]) * int(m.record.row["d_mlp"]) for m in models)
    names = sorted(set(grids) | set(classifier_names()))
    built = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    writer.write(
        "index.md", "index.md.j2", models=models, n_heads=sum(m.record.n_layers * m.record.n_heads for m in models),
        n_neurons=n_neurons, built=built, code_version=code_version(), labelled=labelled,
        classifiers=[classifier_info(n) for n in names],
    )  # fmt: skip
    size = f"{download.stat().st_size / 1e6:,.1f} MB" if download else ""
    writer.write(
        "schema.md", "schema.md.j2", schema=Markup(schema_markdown()), examples=EXAMPLES,
        download=DOWNLOAD if download else None, download_size=size,
        backend=conn.engine.url.get_backend_name(),
    )  # fmt: skip
    history = unit_versions(conn)
    for name in names:
        by_model = grids.get(name, {})
        counts = {m.record.id: 0 for m in models}
        writer.write(
            f"classifiers/{name}.md", "classifier.md.j2", info=classifier_info(name), history=history.get(name, []),
            mosaic=[(m, _mosaic_cell(m, name, by_model[m.record.id], f"classifiers/{name}.md"))
                    for m in models if m.record.id in by_model],
            labelled=counts | _labelled_counts(conn, name),
        )  # fmt: skip


def _mosaic_cell(model: SiteModel, name: str, grid: np.ndarray, page: str) -> Markup:
    here = str(Path(page).parent)
    n_layers, n_heads = grid.shape
    cells = [
        [
            svg.Cell(
                None if np.isnan(grid[layer, head]) else float(grid[layer, head]),
                f"{model.name} {head_name(layer, head)} {name} {grid[layer, head]:.3f}",
                html_link(here, model.head_page(layer, head)),
            )
            for head in range(n_heads)
        ]
        for layer in range(n_layers)
    ]
    width = min(8.0 * n_heads, 240.0)
    return svg.heatmap(cells, width=width, height=MOSAIC_HEIGHT, css_class="heatmap mosaic-grid",
                       label=f"{name} scores of {model.name}, depth normalised")  # fmt: skip


def _labelled_counts(conn: Connection, classifier: str | None = None) -> dict[int, int]:
    rows = conn.execute(
        text("""SELECT u.model_id, count(*) AS n FROM head_scores h JOIN latest_units u ON u.id = h.unit_id
        WHERE u.kind = 'head_classifier' AND h.label AND (:name IS NULL OR u.name = :name) GROUP BY u.model_id"""),
        {"name": classifier},
    )
    return {int(r.model_id): int(r.n) for r in rows}


def _download_of(url: str | None) -> Path | None:
    parsed = parse_database_url(database_url(url))
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return Path(parsed.database).expanduser().resolve()


def _copy_database(source: Path, target: Path) -> None:
    """A consistent snapshot of the SQLite database (the backup API), for the download link."""
    target.parent.mkdir(parents=True, exist_ok=True)
    src, dst = sqlite3.connect(f"file:{source}?mode=ro", uri=True), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


def _mkdocs_config(folder: Path, docs: Path, out: Path) -> Path:
    """The skeleton's mkdocs.yml, pointed at the rendered docs and the output folder."""
    config: dict[str, Any] = yaml.safe_load(SKELETON.read_text(encoding="utf-8"))
    config.update(docs_dir=str(docs), site_dir=str(out))
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
