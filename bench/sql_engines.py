"""SQL in the browser: which engine should the wiki's SQL page use?

Runs every example question of ``db/examples.py`` in headless Chromium (Debian's, driven by
Playwright) against a built site served by a local server that honours HTTP Range (the server of
``survey site serve``, counting the bytes it sends), one fresh browser context per query, so every
query starts cold (no HTTP cache, no engine cache). Engines:

- ``sqlite-wasm``: the SQL page itself (``sql.html``: the official SQLite wasm release build from
  @sqlite.org/sqlite-wasm 3.50.4, with the page's chunked read-only VFS, ``site/assets/sql/``),
  through ``window.surveySql``;
- ``sqlite-wasm-http``: the same page with the SQLite build that sqlite-wasm-http 1.2.0 ships
  (3.44.2, an unoptimised build) in place of the vendored one. The package's own VFS reads one URL,
  not chunks, and needs a bundler (bare imports), so the page's VFS stands in for it;
- ``sql.js-httpvfs``: sql.js-httpvfs 0.8.12 on the same ``db/config.json`` (its own format);
- ``duckdb-wasm``: @duckdb/duckdb-wasm 1.32.0 (the "eh" bundle) over the Parquet files of
  ``parquet/``, read with range requests; the database's views are recreated from their SQLite SQL
  where DuckDB accepts it.

For each engine and query it records the bytes the server sent for the data (``db/`` or
``parquet/``), the requests, the wall time of the query in the page, the rows (checked against
Python's sqlite3 on the joined database), and for each engine the bytes of its own files (JS and
wasm) with the largest file, against the 25 MiB per-file limit of the release.

    # the site (about 15-30 s) and the engines' npm packages, unpacked side by side
    .venv/bin/survey site build --db sqlite:////tmp/n2_smol.db --out /tmp/sqlsite
    mkdir -p /tmp/sqleng && cd /tmp/sqleng && for p in sql.js-httpvfs@0.8.12 sqlite-wasm-http@1.2.0 \\
        @duckdb/duckdb-wasm@1.32.0 apache-arrow@17.0.0 @sqlite.org/sqlite-wasm@3.50.4-build1; do \\
        f=$(npm pack "$p" | tail -1); mkdir -p "${f%.tgz}" && tar xzf "$f" -C "${f%.tgz}"; done; cd -
    .venv/bin/python bench/sql_engines.py --site /tmp/sqlsite --engines /tmp/sqleng [--only sqlite-wasm]

It prints a Markdown table per engine and a summary (``--json FILE`` also saves every measurement).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from db.examples import EXAMPLES
from survey.wiki.release import FILE_LIMIT
from survey.wiki.serve import QuietHandler, site_server

ENGINES = ("sqlite-wasm", "sqlite-wasm-http", "sql.js-httpvfs", "duckdb-wasm")
SQLITE_WASM_HTTP = "sqlite-wasm-http-1.2.0/package/deps/dist"
SQLJS = "sql.js-httpvfs-0.8.12/package/dist"
DUCKDB = "duckdb-duckdb-wasm-1.32.0/package/dist"
ARROW = "apache-arrow-17.0.0/package"
ENGINE_FILES = {
    "sqlite-wasm": ["assets/sql/sqlite3.js", "assets/sql/sqlite3.wasm", "assets/sql/sql-worker.js",
                    "assets/sql/sql-page.js"],
    "sqlite-wasm-http": [f"{SQLITE_WASM_HTTP}/sqlite3.js", f"{SQLITE_WASM_HTTP}/sqlite3.wasm"],
    "sql.js-httpvfs": [f"{SQLJS}/index.js", f"{SQLJS}/sqlite.worker.js", f"{SQLJS}/sql-wasm.wasm"],
    "duckdb-wasm": [f"{DUCKDB}/duckdb-browser.mjs", f"{DUCKDB}/duckdb-browser-eh.worker.js",
                    f"{DUCKDB}/duckdb-eh.wasm", f"{ARROW}/Arrow.es2015.min.js"],
}  # fmt: skip
TIMEOUT_MS = 300_000

SQLJS_PAGE = f"""<!doctype html><meta charset="utf-8"><title>sql.js-httpvfs</title>
<script src="/_engines/{SQLJS}/index.js"></script>
<script>
window.benchReady = createDbWorker([{{from: "jsonconfig", configUrl: "/db/config.json"}}],
  "/_engines/{SQLJS}/sqlite.worker.js", "/_engines/{SQLJS}/sql-wasm.wasm")
  .then(async (w) => {{
    window.engine = w;
    await w.db.exec("SELECT count(*) FROM sqlite_master");
    return "ready";
  }});
window.benchQuery = async (sql) => {{
  const r = await window.engine.db.exec(sql);
  return r.length ? {{columns: r[0].columns, rows: r[0].values}} : {{columns: [], rows: []}};
}};
</script>"""

DUCKDB_PAGE = """<!doctype html><meta charset="utf-8"><title>duckdb-wasm</title>
<script src="/_engines/ARROW/Arrow.es2015.min.js"></script>
<script type="importmap">{"imports": {"apache-arrow": "/_bench/arrow-shim.mjs"}}</script>
<script type="module">
import * as duckdb from "/_engines/DUCKDB/duckdb-browser.mjs";
const setup = JSON.parse(document.getElementById("setup").textContent);
window.benchStage = "start";
window.benchReady = (async () => {
  const worker = new Worker("/_engines/DUCKDB/duckdb-browser-eh.worker.js");
  const db = new duckdb.AsyncDuckDB(new duckdb.VoidLogger(), worker);
  await db.instantiate("/_engines/DUCKDB/duckdb-eh.wasm");
  window.benchStage = "instantiated";
  const conn = await db.connect();
  window.benchStage = "connected; extensions: " + JSON.stringify((await conn.query(
    "SELECT extension_name, loaded, installed, install_mode FROM duckdb_extensions() " +
    "WHERE extension_name IN ('parquet', 'httpfs')")).toArray().map((r) => r.toJSON()));
  for (const [table, parts] of Object.entries(setup.tables)) {
    const names = [];
    for (const part of parts) {
      const url = new URL("/" + part, location.href).href;
      await db.registerFileURL(part, url, duckdb.DuckDBDataProtocol.HTTP, false);
      names.push("'" + part + "'");
    }
    window.benchStage = "registered " + table;
    await conn.query(`CREATE VIEW ${table} AS SELECT * FROM read_parquet([${names.join(", ")}])`);
  }
  const failed = {};
  for (const [view, sql] of setup.views) {
    try { await conn.query(sql); } catch (e) { failed[view] = String(e.message || e).slice(0, 200); }
  }
  window.engine = conn;
  return failed;
})();
window.benchQuery = async (sql) => {
  const table = await window.engine.query(sql);
  const columns = table.schema.fields.map((f) => f.name);
  const value = (v) => (typeof v === "bigint" ? Number(v) : v);
  const rows = table.toArray().map((r) => columns.map((c) => value(r[c])));
  return {columns, rows};
};
</script>
<script type="application/json" id="setup">SETUP</script>"""


class CountingHandler(QuietHandler):
    """The site's handler, plus ``/_engines/`` (the unpacked npm packages) and ``/_bench/`` (the
    harness pages); counts the bytes and requests it sends, by kind."""

    engines: Path
    override: dict[str, Path]  # site paths served from elsewhere (another build of sqlite3.wasm)
    pages: dict[str, tuple[str, bytes]]
    sent: Counter[str]
    requests: Counter[str]
    lock = threading.Lock()

    def translate_path(self, path: str) -> str:
        if path.split("?", 1)[0] in self.override:
            return str(self.override[path.split("?", 1)[0]])
        if path.startswith("/_engines/"):
            return str(self.engines / path.split("?", 1)[0][len("/_engines/") :])
        return super().translate_path(path)

    def do_GET(self) -> None:
        page = self.pages.get(self.path.split("?", 1)[0])
        if page is None:
            return super().do_GET()
        kind, body = page
        self.send_response(200)
        self.send_header("Content-type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self._count(len(body))
        return None

    def copyfile(self, source: Any, outputfile: Any) -> None:
        total = 0
        while chunk := source.read(64 * 1024):
            outputfile.write(chunk)
            total += len(chunk)
        self._count(total)

    def _count(self, n: int) -> None:
        path = self.path.split("?", 1)[0]
        kind = "page"
        if path.startswith(("/db/survey.db.", "/parquet/")):
            kind = "data"
        elif path.startswith(("/_engines/", "/assets/sql/", "/_bench/arrow")):
            kind = "engine"
        with self.lock:
            self.sent[kind] += n
            self.requests[kind] += 1


@contextmanager
def serving(
    site: Path, engines: Path, pages: dict[str, tuple[str, bytes]]
) -> Iterator[tuple[str, type[CountingHandler]]]:
    state = {"engines": engines, "pages": pages, "override": {}, "sent": Counter(), "requests": Counter()}
    handler = type("Handler", (CountingHandler,), state)
    server = site_server(site, 0, handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def duckdb_setup(site: Path, database: Path) -> dict[str, Any]:
    """The Parquet files per table, and the SQLite views' SQL, for the DuckDB harness."""
    tables: dict[str, list[str]] = {}
    for path in sorted((site / "parquet").glob("*.parquet")):
        table = path.stem.rsplit("-", 1)[0] if path.stem[-5:-4] == "-" else path.stem
        tables.setdefault(table, []).append(f"parquet/{path.name}")
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        views = db.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'view' ORDER BY rowid"
        ).fetchall()
    return {"tables": tables, "views": views}


def arrow_shim(engines: Path) -> bytes:
    """An ES module re-exporting the Arrow UMD bundle's names (duckdb-browser.mjs imports
    "apache-arrow"; node lists them)."""
    bundle = engines / ARROW / "Arrow.es2015.min.js"
    script = f"console.log(JSON.stringify(Object.keys(require('{bundle}'))))"
    names = subprocess.run(["node", "-e", script], check=True, capture_output=True, text=True).stdout
    exports = ", ".join(n for n in json.loads(names) if n.isidentifier() and n != "default")
    return f"const A = globalThis.Arrow;\nexport const {{ {exports} }} = A;\nexport default A;\n".encode()


def joined(site: Path, into: Path) -> Path:
    if not into.exists():
        into.write_bytes(b"".join(p.read_bytes() for p in sorted((site / "db").glob("survey.db.*"))))
    return into


def engine_files(site: Path, engines: Path, engine: str) -> tuple[int, str, int]:
    """The engine's own files: total bytes, and its largest file with its size."""
    root = site if engine == "sqlite-wasm" else engines
    sizes = {name: (root / name).stat().st_size for name in ENGINE_FILES[engine]}
    if engine == "sqlite-wasm-http":  # its SQLite build, with the page's own scripts
        sizes |= {name: (site / name).stat().st_size for name in ENGINE_FILES["sqlite-wasm"][2:]}
    largest = max(sizes, key=lambda n: sizes[n])
    return sum(sizes.values()), Path(largest).name, sizes[largest]


def measure(
    browser: Any, base: str, handler: type[CountingHandler], engine: str, sql: str | None
) -> dict[str, Any]:
    """One cold page: load the engine (and run ``sql``); bytes by kind, times, rows."""
    context = browser.new_context()
    page = context.new_page()
    handler.sent.clear()
    handler.requests.clear()
    start = time.perf_counter()
    handler.override = (
        {
            f"/assets/sql/{name}": handler.engines / SQLITE_WASM_HTTP / name
            for name in ("sqlite3.js", "sqlite3.wasm")
        }
        if engine == "sqlite-wasm-http"
        else {}
    )
    if engine.startswith("sqlite-wasm"):
        page.goto(base + "/sql.html")
        page.wait_for_function("document.getElementById('sql-status').className !== ''", timeout=TIMEOUT_MS)
        ready = page.evaluate("document.getElementById('sql-status').textContent")
    else:
        page.goto(base + f"/_bench/{engine}.html")
        try:
            ready = page.evaluate("window.benchReady")
        except Exception as exc:  # an engine that cannot start: say where it stopped
            ready = f"failed after {page.evaluate('window.benchStage')}: {str(exc).splitlines()[0]}"
    load_s = time.perf_counter() - start
    result: dict[str, Any] = {"engine": engine, "load_s": load_s, "ready": ready,
                              "load_bytes": dict(handler.sent)}  # fmt: skip
    if sql is not None:
        handler.sent.clear()
        handler.requests.clear()
        call = "window.surveySql" if engine.startswith("sqlite-wasm") else "window.benchQuery"
        answer = page.evaluate(
            f"""async (sql) => {{ const t = performance.now();
                try {{ const r = await {call}(sql); return {{ms: performance.now() - t, rows: r.rows.length,
                       columns: r.columns}}; }}
                catch (e) {{ return {{ms: performance.now() - t, error: String(e.message || e)}}; }} }}""",
            sql,
        )  # fmt: skip
        result |= answer | {"bytes": handler.sent["data"], "requests": handler.requests["data"]}
    context.close()
    return result


def _rows(db: sqlite3.Connection, sql: str) -> int | str:
    """The query's row count in Python's sqlite3, or its error (an old database may lack a column)."""
    try:
        return len(db.execute(sql).fetchall())
    except sqlite3.Error as exc:
        return f"error in sqlite3: {exc}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site", type=Path, default=Path("/tmp/sqlsite"))
    parser.add_argument("--engines", type=Path, default=Path("/tmp/sqleng"))
    parser.add_argument("--only", choices=ENGINES, action="append")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    database = joined(args.site, args.site.parent / f"{args.site.name}-joined.db")
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        expected = {title: _rows(db, sql) for title, sql in EXAMPLES}
    setup = json.dumps(duckdb_setup(args.site, database))
    duckdb_page = DUCKDB_PAGE.replace("ARROW", ARROW).replace("DUCKDB", DUCKDB).replace("SETUP", setup)
    pages = {
        "/_bench/sql.js-httpvfs.html": ("text/html", SQLJS_PAGE.encode()),
        "/_bench/duckdb-wasm.html": ("text/html", duckdb_page.encode()),
        "/_bench/arrow-shim.mjs": ("text/javascript", arrow_shim(args.engines)),
    }
    records: list[dict[str, Any]] = []
    with serving(args.site, args.engines, pages) as (base, handler), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        for engine in args.only or ENGINES:
            total, largest, largest_size = engine_files(args.site, args.engines, engine)
            load = measure(browser, base, handler, engine, None)
            over = ", OVER the 25 MiB limit" if largest_size > FILE_LIMIT else ""
            sent = sum(load["load_bytes"].values()) / 1e6
            print(
                f"\n### {engine}: engine files {total / 1e6:.2f} MB (largest {largest}, "
                f"{largest_size / 2**20:.1f} MiB{over}); cold load {load['load_s']:.2f} s, {sent:.2f} MB; "
                f"ready: {str(load['ready'])[:300]}\n"
            )
            if str(load["ready"]).startswith("failed"):
                continue
            print("| question | rows | data bytes | requests | time (s) |\n|---|---:|---:|---:|---:|")
            for title, sql in EXAMPLES:
                r = measure(browser, base, handler, engine, sql)
                r |= {"title": title, "expected_rows": expected[title], "engine_bytes": total,
                      "largest_file": largest_size}  # fmt: skip
                records.append(r)
                rows = r.get("rows", "—")
                mark = "" if rows == expected[title] else f" (expected {expected[title]})"
                error = f" error: {r['error'][:120]}" if "error" in r else ""
                seconds = r["ms"] / 1000
                print(f"| {title} | {rows}{mark}{error} | {r['bytes']:,} | {r['requests']} | {seconds:.2f} |")
        browser.close()
    summary: dict[str, Counter[str]] = {}
    for r in records:
        s = summary.setdefault(r["engine"], Counter())
        s["answerable"] += isinstance(r["expected_rows"], int)  # the database may predate a column
        s["answered"] += "error" not in r and r.get("rows") == r["expected_rows"]
        s["bytes"] += r["bytes"]
        s["ms"] += int(r["ms"])
    print(
        "\n| engine | answered right (of those sqlite3 answers) | data bytes, all queries | time, all (s) |"
    )
    print("|---|---:|---:|---:|")
    for engine, s in summary.items():
        mb, seconds = s["bytes"] / 1e6, s["ms"] / 1000
        print(f"| {engine} | {s['answered']}/{s['answerable']} | {mb:.2f} MB | {seconds:.1f} |")
    if args.json:
        args.json.write_text(json.dumps(records, indent=1, default=str))


if __name__ == "__main__":
    main()
