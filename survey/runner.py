"""``survey run``: resolve every MODEL, load each, record the model and its run in the database.

Order matters for bad input: every argument is resolved before the database is opened, and a
model is written only after it loaded, so an unknown name, a corrupt file or a bad URL leaves
the database byte-for-byte untouched.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch
from sqlalchemy import Engine, select

import survey
from db.engine import session_factory
from db.schema import Model, Run
from survey.capture import CaptureSpec, capture
from survey.catalog import Catalog
from survey.errors import SurveyError
from survey.loaders import LoadedModel, ModelSource, load, resolve

SMOKE_TEXT = "The quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy dog."


@dataclass(frozen=True)
class RunConfig:
    """How models are run: device and dtype (fp32 on CPU by default)."""

    device: str = "cpu"
    dtype: str = "float32"

    def torch_dtype(self) -> torch.dtype:
        """The torch dtype named by ``dtype``."""
        value = getattr(torch, self.dtype, None)
        if not isinstance(value, torch.dtype):
            raise SurveyError(f"unknown dtype {self.dtype!r}; use float32, bfloat16 or float16")
        return value


def code_version() -> str:
    """The package version, plus the git commit when running from a checkout."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=Path(survey.__file__).parent,
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return survey.__version__
    return f"{survey.__version__}+g{sha}"


def _now() -> datetime:
    return datetime.now(UTC)


def record_model(engine: Engine, loaded: LoadedModel) -> int:
    """Get or insert the models row for this exact resolved model; return its id."""
    source, dims = loaded.source, loaded.adapter.dims
    entry = source.entry
    with session_factory(engine).begin() as session:
        existing = session.scalar(
            select(Model).where(
                Model.name == source.name,
                Model.source == source.kind,
                Model.resolved_sha == loaded.resolved_sha,
            )
        )
        if existing is not None:
            return existing.id
        row = Model(
            name=source.name, source=source.kind, location=source.location, revision=source.revision,
            resolved_sha=loaded.resolved_sha, family=entry.family if entry else None,
            architecture=loaded.model.config.model_type, n_layers=dims.n_layers, n_heads=dims.n_heads,
            n_kv_heads=dims.n_kv_heads, d_model=dims.d_model, d_head=dims.d_head, d_mlp=dims.d_mlp,
            d_vocab=dims.d_vocab, n_params=loaded.n_params,
            parallel_attn_mlp=loaded.adapter.parallel_attn_mlp, quantization=loaded.quantization,
            bos_token=loaded.bos.token, license=entry.license if entry else None, created_at=_now(),
        )  # fmt: skip
        session.add(row)
        session.flush()
        return row.id


def smoke_check(loaded: LoadedModel, device: str) -> dict[str, float]:
    """One forward pass through the uniform view: every head's pattern must be a distribution."""
    ids = torch.tensor([loaded.bos.encode(loaded.tokenizer, SMOKE_TEXT)])
    got = capture(loaded.adapter, ids, CaptureSpec.of("pattern"), out_device=device)
    patterns = got.stacked("pattern")  # [layer, batch, head, query, key]
    worst = float((patterns.sum(-1) - 1).abs().max())
    if worst > 1e-3:
        raise SurveyError(
            f"attention patterns of {loaded.source.name!r} do not sum to 1 (off by {worst:.2g})"
        )
    return {"smoke_tokens": float(ids.shape[1]), "pattern_row_sum_error": worst}


def run_one(engine: Engine, loaded: LoadedModel, config: RunConfig) -> Run:
    """Record the model, then a run row that ends ``done`` or ``failed`` with its error."""
    model_id = record_model(engine, loaded)
    sessions = session_factory(engine)
    with sessions.begin() as session:
        run = Run(
            model_id=model_id, code_version=code_version(), config=asdict(config), device=config.device,
            dtype=config.dtype, started_at=_now(), status="running",
        )  # fmt: skip
        session.add(run)
    try:
        metrics = smoke_check(loaded, config.device)
        status, error = "done", None
    except Exception as exc:  # a run that fails is recorded as failed, then reported
        metrics, status, error = {}, "failed", f"{type(exc).__name__}: {exc}"
    with sessions.begin() as session:
        run = session.get_one(Run, run.id)
        run.status, run.error, run.ended_at = status, error, _now()
        run.config = {**asdict(config), **metrics}
    return run


def survey_run(
    arguments: list[str],
    catalog: Catalog,
    open_engine: Callable[[], Engine],
    config: RunConfig,
    echo: Callable[[str], None],
    echo_error: Callable[[str], None],
) -> int:
    """Resolve, load and record every model; return the number that failed."""
    sources: list[ModelSource] = (
        [resolve(a, catalog) for a in arguments]
        if arguments
        else [resolve(e.name, catalog) for e in catalog.defaults()]
    )
    dtype = config.torch_dtype()
    engine = open_engine()
    failures = 0
    try:
        for source in sources:
            failures += not _survey_source(engine, source, dtype, config, echo, echo_error)
    finally:
        engine.dispose()  # close SQLite connections so WAL is checkpointed into the file
    return failures


def _survey_source(
    engine: Engine,
    source: ModelSource,
    dtype: torch.dtype,
    config: RunConfig,
    echo: Callable[[str], None],
    echo_error: Callable[[str], None],
) -> bool:
    """Load and record one model; report a load failure as one line. True when the run is done."""
    echo(f"loading {source.name} ({source.kind}) …")
    try:
        loaded = load(source, dtype=dtype, device=config.device)
    except SurveyError as exc:
        echo_error(f"Error: {exc}")
        return False
    run = run_one(engine, loaded, config)
    d = loaded.adapter.dims
    echo(
        f"{source.name}: {loaded.model.config.model_type}, {d.n_layers} layers x {d.n_heads} heads "
        f"({d.n_kv_heads} kv), {loaded.n_params / 1e6:.0f}M params, sha {loaded.resolved_sha[:12]}; "
        f"run {run.id} {run.status}" + (f": {run.error}" if run.error else "")
    )
    return run.status == "done"
