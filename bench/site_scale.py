"""Publishing at nightly scale: generation, full and incremental site builds, and what a reader's
browser downloads for a search and for each example SQL query.

The database (``db.fixtures.build_at_scale``) is the size of the nightly: the 51 models of the hub
catalog, about 2,500 layers and 30,000 heads in all (layer counts 12-80, head counts 9-64, drawn
and fitted to those totals), every head classifier scored with evidence and a validation, a logit
lens, and a version-2 neuron unit: ``mistral-7b`` as a 7B model (32 x 32 heads, 32 x 14,336
neurons with 20 examples a tail), every other model a smaller one (32 neurons a layer, 5 examples).
``--scale`` shrinks the model count and the 7B model's neurons alike (the 7B model always stays).

Steps: generate (seeded) and time it; ``build_site`` in a fresh process (wall time, peak RSS of the
process and its children); give one model a new induction unit (``add_rescored_unit``) and build
again into the same folder (incremental, where the build supports it); then serve the site with
``survey.wiki.serve.site_server`` (Range honoured) and drive Debian's headless Chromium through
Playwright. Bytes are counted on the server, per request, by a handler subclass that counts what it
writes (headers and body). A search counts requests under ``pagefind/`` after the page has loaded,
timed to the first result; an example query (``db/examples.py``) counts requests under ``db/`` in a
fresh browser context (cold cache), and the SQL engine's one-off download is counted apart. The
browser steps are skipped, with a line saying why, when the site has no Pagefind index or no SQL page.

    .venv/bin/python bench/site_scale.py --scale 0.1              # a small run, minutes
    .venv/bin/python bench/site_scale.py --keep /tmp/nightly-scale  # full scale; heavy
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from site_build import CHILD

from db.engine import open_database
from db.examples import EXAMPLES
from db.fixtures import ScaleModel, add_rescored_unit, build_at_scale
from survey.catalog import load_catalog
from survey.wiki.release import FILE_LIMIT
from survey.wiki.serve import QuietHandler, site_server

BIG = ScaleModel("mistral-7b", 32, 32, 14_336, 20)
LAYERS, HEADS = 2_500, 30_000  # in all, over the catalog's models
DEPTH, WIDTH = (12, 80), (9, 64)
SMALL_NEURONS, SMALL_EXAMPLES = 32, 5
CHANGED_CLASS = "induction"
HEAD_QUERY = "L18H6"
SEARCH_INPUT, SEARCH_RESULT = ".pagefind-ui__search-input", ".pagefind-ui__result-link"
TIMEOUT_MS = 120_000
MB, KB = 1e6, 1e3
# targets: full build of ~20,000 pages, incremental build, bytes per query and search, file size
FULL_S, INCREMENTAL_S, QUERY_BYTES, SEARCH_BYTES = 60.0, 10.0, 1 * MB, 500 * KB


def nightly_models(scale: float, seed: int = 0) -> list[ScaleModel]:
    """The catalog's hub models with drawn shapes (``BIG`` first); ``scale`` < 1 keeps an evenly
    spread share of them and of ``BIG``'s neurons."""
    names = [e.name for e in load_catalog().entries.values() if e.source == "hub" and e.name != BIG.name]
    rng = np.random.default_rng(seed)
    depth = rng.uniform(*DEPTH, len(names))
    depth = np.clip(np.rint(depth * (LAYERS - BIG.layers) / depth.sum()), *DEPTH).astype(int)
    share = rng.random(len(names))

    def widths(power: float) -> np.ndarray:
        return np.rint(WIDTH[0] * (WIDTH[1] / WIDTH[0]) ** (share**power)).astype(int)

    low, high = 0.01, 100.0  # bisect the power that brings the heads to the total (more power, fewer)
    for _ in range(60):
        mid = (low * high) ** 0.5
        low, high = (
            (mid, high) if (depth * widths(mid)).sum() > HEADS - BIG.layers * BIG.heads else (low, mid)
        )
    others = [
        ScaleModel(name, int(d), int(w), SMALL_NEURONS, SMALL_EXAMPLES)
        for name, d, w in zip(names, depth, widths(high), strict=True)
    ]
    count = max(1, round(len(others) * scale))
    kept = [others[i] for i in np.linspace(0, len(others) - 1, count).round().astype(int)]
    neurons = max(len(kept), round(BIG.neurons * min(scale, 1.0)))
    return [ScaleModel(BIG.name, BIG.layers, BIG.heads, neurons, BIG.examples), *kept]


@dataclass
class Row:
    """One line of the table: what, the measure, and the target it is held to (if any)."""

    what: str
    value: str
    target: str = ""
    ok: bool | None = None


def site_facts(site: Path) -> list[Row]:
    """Size, page count and largest file of a built site."""
    files = [p for p in site.rglob("*") if p.is_file()]
    largest = max(files, key=lambda p: p.stat().st_size)
    size = largest.stat().st_size
    return [
        Row("site size", f"{sum(p.stat().st_size for p in files) / 2**20:,.0f} MiB in {len(files):,} files"),
        Row("HTML pages", f"{sum(p.suffix == '.html' for p in files):,}"),
        Row(
            "largest file",
            f"{largest.relative_to(site)} {size / 2**20:,.1f} MiB",
            "<= 25 MiB",
            size <= FILE_LIMIT,
        ),
    ]


class _Counter(io.RawIOBase):
    """A write-only stream that counts the bytes passed to the one it wraps."""

    def __init__(self, inner: Any) -> None:
        super().__init__()
        self.inner, self.count = inner, 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.count += len(data)
        self.inner.write(data)
        return len(data)

    def flush(self) -> None:
        self.inner.flush()


def counting_handler(log: list[tuple[str, int]]) -> type[QuietHandler]:
    """The site server's handler, appending (path, bytes written) to ``log`` for every request."""

    class Counting(QuietHandler):
        def setup(self) -> None:
            super().setup()
            self.counter = _Counter(self.wfile)
            self.wfile = self.counter  # type: ignore[assignment]

        def handle_one_request(self) -> None:
            before = self.counter.count
            super().handle_one_request()
            if self.counter.count > before:
                log.append((urlsplit(getattr(self, "path", "?")).path, self.counter.count - before))

    return Counting


@contextmanager
def served(site: Path, log: list[tuple[str, int]]) -> Iterator[str]:
    """The site served on a free local port, counting bytes into ``log``; yields its base URL."""
    server = site_server(site, 0, counting_handler(log))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _bytes(log: list[tuple[str, int]], since: int, prefix: str) -> int:
    return sum(size for path, size in log[since:] if path.startswith(prefix))


def _settle(page: Any, log: list[tuple[str, int]], quiet_ms: int = 500) -> None:
    """Wait until no request has been served for ``quiet_ms``."""
    seen, still = len(log), 0
    while still < quiet_ms:
        page.wait_for_timeout(100)
        still = still + 100 if len(log) == seen else 0
        seen = len(log)


def search_rows(browser: Any, base: str, log: list[tuple[str, int]], queries: list[str]) -> list[Row]:
    """Bytes under pagefind/ after the home page loaded, and time to the first result, per query."""
    rows = []
    for query in queries:
        context = browser.new_context()
        page = context.new_page()
        page.goto(base + "index.html", wait_until="load")
        _settle(page, log)
        since = len(log)
        start = time.perf_counter()
        page.fill(SEARCH_INPUT, query)
        page.wait_for_selector(SEARCH_RESULT, timeout=TIMEOUT_MS)
        took = time.perf_counter() - start
        _settle(page, log)
        got = _bytes(log, since, "/pagefind/")
        found = page.locator(SEARCH_RESULT).count()
        rows.append(Row(f"search {query!r}", f"{got / KB:,.0f} kB, first result {took:.2f} s, {found} shown",
                        "<= 500 kB", got <= SEARCH_BYTES))  # fmt: skip
        context.close()
    return rows


def sql_rows(browser: Any, base: str, log: list[tuple[str, int]]) -> list[Row]:
    """Per example query, in a fresh context: bytes under db/ and wall time; the engine's download
    (everything but db/ while sql.html loads) once."""
    rows = []
    for i, (question, sql) in enumerate(EXAMPLES):
        context = browser.new_context()
        page = context.new_page()
        since = len(log)
        page.goto(base + "sql.html", wait_until="load")
        page.wait_for_function("typeof window.surveySql === 'function'", timeout=TIMEOUT_MS)
        _settle(page, log)
        if i == 0:
            engine = sum(size for path, size in log[since:] if not path.startswith("/db/"))
            rows.append(Row("sql.html + engine, one-off", f"{engine / KB:,.0f} kB"))
        since = len(log)
        start = time.perf_counter()
        result = page.evaluate("sql => window.surveySql(sql)", sql)
        took = time.perf_counter() - start
        got = _bytes(log, since, "/db/")
        shown = f"{got / KB:,.0f} kB, {took:.2f} s, {len(result['rows'])} rows"
        rows.append(Row(f"Q{i + 1} {question[:60]}", shown, "<= 1 MB", got <= QUERY_BYTES))
        context.close()
    return rows


def browser_rows(site: Path, model: str) -> list[Row]:
    """Search and SQL measurements, or a row saying why they were skipped."""
    missing = [name for name, there in (("search (no pagefind/ in the site)", (site / "pagefind").is_dir()),
               ("SQL (no sql.html in the site)", (site / "sql.html").is_file())) if not there]  # fmt: skip
    if len(missing) == 2:
        return [Row("browser", "skipped: " + "; ".join(missing) + " (page contract not there yet)")]
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        return [Row("browser", "skipped: no `chromium` on PATH (apt-get install chromium)")]
    log: list[tuple[str, int]] = []
    rows = [
        Row(part.split(" (")[0], "skipped: " + part + " (page contract not there yet)") for part in missing
    ]
    with served(site, log) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            if (site / "pagefind").is_dir():
                rows += search_rows(browser, base, log, [HEAD_QUERY, model])
            if (site / "sql.html").is_file():
                rows += sql_rows(browser, base, log)
        finally:
            browser.close()
    return rows


def measure(url: str, out: Path) -> dict[str, float]:
    """``build_site`` in a fresh process: its report, wall time and peak RSS (``site_build``'s child);
    a failed build stops the bench with the end of its output."""
    done = subprocess.run([sys.executable, "-c", CHILD, url, str(out)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the site build failed:\n{(done.stderr or done.stdout)[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def timed(step: str, run: Callable[[], Any]) -> tuple[Any, float]:
    print(f"... {step}", flush=True)
    start = time.perf_counter()
    result = run()
    return result, time.perf_counter() - start


def bench(folder: Path, scale: float) -> list[Row]:
    """Every measurement, with the database and the site under ``folder``."""
    models = nightly_models(scale)
    database, site = folder / "nightly.db", folder / "site"
    url = f"sqlite:///{database}"
    _, made = timed(f"generating {len(models)} models", lambda: build_at_scale(database, models))
    heads = sum(m.layers * m.heads for m in models)
    neurons = sum(m.layers * m.neurons for m in models)
    rows = [
        Row("database", f"{len(models)} models, {sum(m.layers for m in models):,} layers, {heads:,} heads, "
            f"{neurons:,} neurons"),
        Row("generation", f"{made:.0f} s, {database.stat().st_size / 2**20:,.0f} MiB"),
    ]  # fmt: skip
    full, _ = timed("full build", lambda: measure(url, site))
    per_20k = full["wall_s"] * 20_000 / full["pages"]
    rows += [
        Row("full build", f"{full['wall_s']:.1f} s for {full['pages']:,} pages ({per_20k:.0f} s per 20k), "
            f"render {full['render_s']:.1f} s, mkdocs {full['mkdocs_s']:.1f} s", "<= 60 s per 20k pages",
            per_20k <= FULL_S),
        Row("full build peak RSS", f"{full['peak_rss_mb']:,.0f} MB"),
        *site_facts(site),
    ]  # fmt: skip
    changed = models[len(models) // 2].name
    engine = open_database(url)
    add_rescored_unit(engine, changed, CHANGED_CLASS)
    engine.dispose()
    again, _ = timed(
        f"incremental build ({changed} has a new {CHANGED_CLASS} unit)", lambda: measure(url, site)
    )
    rows += [
        Row("incremental build", f"{again['wall_s']:.1f} s ({changed}: new {CHANGED_CLASS} unit), render "
            f"{again['render_s']:.1f} s, mkdocs {again['mkdocs_s']:.1f} s", "<= 10 s",
            again["wall_s"] <= INCREMENTAL_S),
        Row("incremental peak RSS", f"{again['peak_rss_mb']:,.0f} MB"),
    ]  # fmt: skip
    print("... browser", flush=True)
    return rows + browser_rows(site, BIG.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="share of the nightly (default 1)")
    parser.add_argument("--keep", type=Path, help="build in this (new or empty) folder and keep it")
    args = parser.parse_args()
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        if any(args.keep.iterdir()):
            parser.error(f"--keep {args.keep} is not empty")
        rows = bench(args.keep, args.scale)
    else:
        with tempfile.TemporaryDirectory(prefix="site-scale-") as tmp:
            rows = bench(Path(tmp), args.scale)
    width = max(len(r.what) for r in rows)
    print(f"\nscale {args.scale}\n{'':{width}}  {'measured':<70} target")
    for r in rows:
        mark = "" if r.ok is None else ("  ok" if r.ok else "  MISSED")
        print(f"{r.what:<{width}}  {r.value:<70} {r.target}{mark}")


if __name__ == "__main__":
    main()
