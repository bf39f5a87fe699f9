"""The ``survey`` command line: thin click commands over the library."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from db.common.errors import SurveyError
from db.common.neuron_config import NeuronConfig, TooSmall

F = Callable[..., Any]


def db_option(f: F) -> F:
    """``--db URL`` with ``INTERP_SURVEY_DB`` as its environment fallback."""
    return click.option(
        "--db", "db_url", envvar="INTERP_SURVEY_DB", default=None, metavar="URL",
        help="SQLAlchemy database URL (default sqlite:///survey.db; env INTERP_SURVEY_DB).",
    )(f)  # fmt: skip


NEURON_OPTIONS = {  # NeuronConfig field: its option and help (the default is NeuronConfig's)
    "token_budget": ("--corpus-tokens", "Neuron pass token budget."),
    "window": ("--window", "Neuron pass window length in tokens."),
    "top_k": ("--top-k", "Max-activating examples kept per neuron."),
    "checkpoint_every": ("--checkpoint-every", "Neuron pass batches between saves."),
}


def neuron_options(f: F) -> F:
    """The neuron pass's numeric settings, each with ``NeuronConfig``'s default."""
    defaults = NeuronConfig()
    for field, (flag, text) in reversed(NEURON_OPTIONS.items()):  # click lists the last applied first
        f = click.option(flag, default=getattr(defaults, field), show_default=True, help=text)(f)
    return f


def catalog_option(f: F) -> F:
    """``--catalog PATH`` (repeatable): extra catalog TOML files."""
    return click.option(
        "--catalog", "catalogs", multiple=True, type=click.Path(path_type=Path), metavar="PATH",
        help="Extra catalog TOML file (repeatable; env INTERP_SURVEY_CATALOG).",
    )(f)  # fmt: skip


@click.group()
@click.version_option(package_name="interp-survey")
def cli() -> None:
    """interp-survey: classify attention heads and summarise neurons across open causal LMs."""


@cli.command("models")
@catalog_option
def models_command(catalogs: tuple[Path, ...]) -> None:
    """List every catalog entry and whether it can be loaded here now, then where each comes from."""
    from survey.catalog import RegistryEntry, load_catalog
    from survey.loading.availability import availability
    from survey.run.report import Cell, Noted, hanging, terminal_width, text_table

    catalog = load_catalog(list(catalogs))
    rows: list[tuple[Cell, ...]] = []
    origins: dict[str, list[str]] = {}  # "(family): provenance" → the names it describes
    for entry in catalog.entries.values():
        status = availability(entry)
        millions = round(entry.params / 1e6)
        size = f"{millions}M" if millions < 1000 else f"{entry.params / 1e9:.1f}B"
        loadable = Noted("yes" if status.loadable else "no", status.reason)
        rows.append((entry.name, entry.source, entry.architecture, size, entry.license, loadable))
        origin = f"({entry.family}): {entry.provenance}"
        if isinstance(entry, RegistryEntry):
            origin += f"\ngeneral.name {entry.gguf_name!r}, sha256 {entry.sha256[:12]}…"
            origin += "" if entry.default else "; opt-in: survey install-models --all"
        origins.setdefault(origin, []).append(entry.name)
    width = terminal_width()
    lines = text_table(("name", "source", "arch", "params", "license", "loadable"), rows, width)
    lines += ["", "provenance"]
    for origin, names in origins.items():
        lines += hanging("- ", f"{', '.join(names)} {origin}", width)
    n_registry = sum(1 for e in catalog.entries.values() if e.source == "registry")
    lines += ["", f"{n_registry} embedded, {len(catalog.entries) - n_registry} hub entries"]
    click.echo("\n".join(lines))


@cli.command("run")
@click.argument("models", nargs=-1)
@db_option
@catalog_option
@click.option("--device", default="cpu", show_default=True, help="torch device, e.g. cuda:0.")
@click.option("--dtype", default="float32", show_default=True, help="Model dtype.")
@click.option(
    "--classifiers", "selection", default=None, metavar="A,B",
    help='Comma-separated classifier names (default: all; "" for none; see `survey classifiers`).',
)  # fmt: skip
@click.option("--force", is_flag=True, help="Recompute and replace units that are already stored.")
@click.option(
    "--neurons",
    is_flag=True,
    help="Also summarise every MLP neuron and each layer's logit lens over a corpus.",
)
@click.option(
    "--corpus", default=NeuronConfig().corpus, show_default=True, metavar="SPEC",
    help="Neuron corpus: wiki-news, python-stdlib, a .txt/.jsonl file, or hf:org/name[@rev].",
)  # fmt: skip
@neuron_options
@click.option(
    "--site", "site_dir", default=None, type=click.Path(path_type=Path), metavar="DIR",
    help="Afterwards, build the wiki from the database into DIR (as `survey site build`).",
)  # fmt: skip
def run_command(
    models: tuple[str, ...], db_url: str | None, catalogs: tuple[Path, ...], device: str, dtype: str,
    selection: str | None, force: bool, neurons: bool, corpus: str, corpus_tokens: int, window: int,
    top_k: int, checkpoint_every: int, site_dir: Path | None,
) -> None:  # fmt: skip
    """Survey MODEL… (catalog names, hub ids, folders or .gguf files); default: the embedded models."""
    from classifiers import UnknownClassifierError, parse_selection
    from db.engine import open_database
    from survey.catalog import load_catalog
    from survey.run.runner import survey_run
    from survey.units.base import RunConfig

    try:
        chosen = parse_selection(selection)
    except UnknownClassifierError as exc:
        raise SurveyError(str(exc)) from None
    try:
        neuron_config = NeuronConfig(
            corpus=corpus,
            token_budget=corpus_tokens,
            window=window,
            top_k=top_k,
            checkpoint_every=checkpoint_every,
        )
    except TooSmall as exc:
        raise SurveyError(f"{NEURON_OPTIONS[exc.field][0]} must be at least {exc.minimum}") from None
    failures = survey_run(
        list(models), load_catalog(list(catalogs)), lambda: open_database(db_url),
        RunConfig(device=device, dtype=dtype, neurons=neuron_config if neurons else None), click.echo,
        lambda line: click.echo(line, err=True),
        classifiers=chosen, force=force,
    )  # fmt: skip
    if site_dir is not None:
        _build_site(db_url, site_dir)
    if failures:
        raise SystemExit(1)


@cli.command("nightly")
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(path_type=Path),
    metavar="FILE",
    help="Survey config (TOML): models, classifiers, neurons, database, device.",
)
@click.option(
    "--shard", default=None, metavar="I/N", help="Run only shard I of N (models split by a stable hash)."
)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: one model after another here; ray: one Ray task per model.",
)
@click.option(
    "--ray-address",
    default=None,
    metavar="ADDR",
    help="An existing Ray cluster (default: start a local one).",
)
@click.option(
    "--log",
    "log_path",
    default="nightly.jsonl",
    show_default=True,
    metavar="FILE",
    help="Structured log (JSON lines, appended); '' for none.",
)
def nightly_command(
    config_path: Path, shard: str | None, executor: str, ray_address: str | None, log_path: str
) -> None:  # fmt: skip
    """Survey every model of the config: skip finished units, retry failed models, record every
    attempt; exit status 1 when a model failed."""
    from survey.run.nightly.config import load_config
    from survey.run.nightly.plan import parse_shard
    from survey.run.nightly.run import nightly, summary_table

    config = load_config(config_path)
    log = Path(log_path) if log_path else None
    outcomes = nightly(config, parse_shard(shard), executor, ray_address, log, click.echo)
    for line in summary_table(outcomes):
        click.echo(line)
    if any(o.status == "failed" for o in outcomes):
        raise SystemExit(1)


@cli.command("status")
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path), metavar="FILE")
@click.option("--units", is_flag=True, help="Also list every unit of every model.")
def status_command(config_path: Path, units: bool) -> None:
    """What the config's survey has done, has pending and has failed, per model (and per unit)."""
    from survey.run.nightly.config import load_config
    from survey.run.nightly.run import status_lines

    for line in status_lines(load_config(config_path), units):
        click.echo(line)


@cli.group("site")
def site_group() -> None:
    """The wiki: a static site generated from the database."""


@site_group.command("build")
@db_option
@click.option(
    "--out", "out", default="public", show_default=True, type=click.Path(path_type=Path), metavar="DIR"
)
@click.option(
    "--full",
    is_flag=True,
    help="Render every model's layer and head pages, even those unchanged since the last build.",
)
def site_build_command(db_url: str | None, out: Path, full: bool) -> None:
    """Build the HTML site from the database into DIR. A DIR built before is updated: only the
    models whose results changed get their layer and head pages rendered again, and the changes
    page lists what is new since that build."""
    _build_site(db_url, out, full=full)


@site_group.command("serve")
@click.option(
    "--out", "out", default="public", show_default=True, type=click.Path(path_type=Path), metavar="DIR"
)
@click.option("--port", default=8000, show_default=True, help="Local port (127.0.0.1).")
def site_serve_command(out: Path, port: int) -> None:
    """Preview a built site over local HTTP until Ctrl-C."""
    from survey.wiki.serve import serve

    serve(out, port, click.echo)


def _build_site(db_url: str | None, out: Path, *, full: bool = False) -> None:
    from survey.wiki.build import build_site

    report = build_site(db_url, out, click.echo, full=full)
    click.echo(f"site: {report.pages} pages for {report.models} models in {report.out}")
    click.echo(f"browse it with: survey site serve --out {out}  (search and SQL need HTTP)")


@cli.command("classifiers")
def classifiers_command() -> None:
    """List the registered head classifiers: name, version, threshold, probe, definition and null."""
    from classifiers import classifier_class, classifier_names

    for name in classifier_names():
        cls = classifier_class(name)
        config = cls.default_config
        click.echo(
            f"{name} v{cls.version}  threshold > {config.threshold:g}  {config.dataset_line()}\n"
            f"    {cls.formula}\n    null: {cls.null}"
        )


@cli.command("query")
@click.argument("sql")
@db_option
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True
)
def query_command(sql: str, db_url: str | None, fmt: str) -> None:
    """Run one read-only SQL statement against the survey database (writes are refused)."""
    from db.readonly import run_query
    from survey.run.report import format_rows

    columns, rows = run_query(db_url, sql)
    click.echo(format_rows(columns, rows, fmt), nl=False)


@cli.command("export")
@db_option
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv"]), default="parquet", show_default=True)
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Folder to write into.")
def export_command(db_url: str | None, fmt: str, out: Path) -> None:
    """Write every table and view to OUT as one .parquet or .csv file each."""
    from db.export import export_all

    for path, n in export_all(db_url, out, fmt):
        click.echo(f"{path}: {n} rows")


@cli.command("schema")
def schema_command() -> None:
    """Print the database schema documentation (Markdown), generated from the metadata."""
    from db.schema_doc import schema_markdown

    click.echo(schema_markdown(), nl=False)


@cli.command("docs")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 listing the files that are stale.")
@click.option(
    "--out", "out", default="docs", show_default=True, type=click.Path(path_type=Path), metavar="DIR",
    help="Folder of the generated files (run from the repository root).",
)  # fmt: skip
def docs_command(check: bool, out: Path) -> None:
    """Regenerate the reference docs in DIR (CLI, schema, classifiers, definitions, settings) from the
    code, and record new unit versions in the committed definition table."""
    from survey.docs import stale_docs, write_docs
    from survey.units.definitions import TABLE, record_definitions

    if check:
        stale = stale_docs(out, cli)
        if stale:
            raise SurveyError(f"stale generated docs: {', '.join(map(str, stale))}; run: survey docs")
        click.echo(f"generated docs in {out} are current")
        return
    if record_definitions():
        click.echo(f"wrote {TABLE}")
    for path in write_docs(out, cli):
        click.echo(f"wrote {path}")


@cli.command("install-corpus")
def install_corpus_command() -> None:
    """Download the gensim 4.4.0 wheel that holds the wiki-news corpus (read, never imported)."""
    import subprocess

    from survey.corpus.sources import GENSIM, gensim_wheel_folder

    folder = gensim_wheel_folder()
    if any(folder.glob("gensim-4.4.0-*.whl")):
        click.echo(f"wiki-news corpus already in {folder}")
        return
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps"]
    if subprocess.run([*command, GENSIM, "-d", str(folder)], check=False).returncode != 0:
        raise SurveyError(
            f"pip could not download {GENSIM}; run: pip download --no-deps {GENSIM} -d {folder}"
        )
    click.echo(f"wiki-news corpus downloaded to {folder}")


@cli.command("install-models")
@click.argument("names", nargs=-1)
@click.option("--default", "which", flag_value="default", default=True, help="The default embedded models.")
@click.option("--all", "which", flag_value="all", help="Every embedded model, opt-in ones included.")
@catalog_option
def install_models_command(names: tuple[str, ...], which: str, catalogs: tuple[Path, ...]) -> None:
    """pip-install the PyPI packages of embedded models (NAMES, or the default set)."""
    import subprocess

    from survey.catalog import RegistryEntry, load_catalog

    catalog = load_catalog(list(catalogs))
    registry = [e for e in catalog.entries.values() if isinstance(e, RegistryEntry)]
    chosen = (
        [e for e in registry if e.name in names]
        if names
        else [e for e in registry if which == "all" or e.default]
    )
    unknown = set(names) - {e.name for e in chosen}
    if unknown:
        raise SurveyError(f"not embedded models: {', '.join(sorted(unknown))}; see `survey models`")
    for entry in chosen:
        click.echo(f"installing {entry.name}: {entry.install_command()}")
        flags = ["--no-deps"] if entry.no_deps else []
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *flags]
        if subprocess.run([*command, *entry.packages], check=False).returncode != 0:
            raise SurveyError(f"pip could not install {entry.name}; run: {entry.install_command()}")


def main() -> None:
    """Entry point: every SurveyError becomes one ``Error: …`` line and exit status 1."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except SurveyError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
