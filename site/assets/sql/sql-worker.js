/* The SQL page's database worker (interp-survey; plain JS, no build step).

   SQLite is the SQLite project's own WebAssembly release build (sqlite3.js + sqlite3.wasm beside
   this file, from the npm package @sqlite.org/sqlite-wasm: see README.txt). It reads the published
   database in place: a read-only VFS ("survey-chunks") fetches 4 KiB pages from the chunks
   db/survey.db.NNNN named by db/config.json (sql.js-httpvfs's "chunked" format) with synchronous
   HTTP range requests, reading ahead as sql.js-httpvfs does (up to three read heads whose request
   doubles on sequential reads, up to 5 MiB, never across a chunk). The VFS is adapted from
   sqlite-wasm-http 1.2.0's vfs-sync-http.js (ISC licence, LICENSE-sqlite-wasm-http.txt).

   Read-only by construction, in four layers:
   1. the database is opened with SQLITE_OPEN_READONLY (flags "r") and PRAGMA query_only = 1;
   2. an authorizer allows only reading: SELECT, reading columns, functions, recursive CTEs, and a
      list of PRAGMAs that only read. Every write, ATTACH/DETACH, transaction and any other PRAGMA
      is refused while the statement is compiled, with a message naming what was refused;
   3. sqlite3_stmt_readonly() must be true for the compiled statement;
   4. the VFS cannot write: xWrite, xTruncate and xDelete answer SQLITE_READONLY.
   One statement per run: anything but whitespace and comments after the first is refused.

   Messages in: {id, type: "open", configUrl} and {id, type: "query", sql}. Out: {id, ok: true, ...}
   or {id, ok: false, error}. Values come back as numbers, strings, null, or for blobs
   {blob: byteLength}; integers beyond 2^53 as decimal strings. */
"use strict";

importScripts("sqlite3.js");

const VFS_NAME = "survey-chunks";
const MAX_ROWS = 10000;          // rows sent back per query (the rest are counted as cut)
const TIME_LIMIT_MS = 120000;    // a query still running after this is interrupted
const MAX_READ_BYTES = 5 * 1024 * 1024;
const READ_HEADS = 3;
const CACHE_PAGES = 32768;       // 128 MiB of 4 KiB pages kept in memory

let sqlite3 = null;
let db = null;
let file = null;                 // {config, pageSize, length, prefix, version}
let ioError = null;              // the last HTTP failure, for the error message
const stats = { requests: 0, bytes: 0 };

/* ---------- the read-only VFS over the published chunks ---------- */

const cache = new Map();         // page number → Uint8Array (least recently used first)
const heads = [];                // read heads: {next: page after the last fetch, pages: its size}

function cachedPage(page) {
  const data = cache.get(page);
  if (data !== undefined) {
    cache.delete(page);
    cache.set(page, data);
  }
  return data;
}

function fetchRange(chunk, start, end) {
  const name = file.prefix + String(chunk).padStart(file.config.suffixLength, "0");
  const xhr = new XMLHttpRequest();
  xhr.open("GET", name + file.version, false);  // a rebuilt site's chunks never meet stale cached ones
  xhr.responseType = "arraybuffer";
  xhr.setRequestHeader("Range", `bytes=${start}-${end}`);
  xhr.send();
  if (xhr.status !== 206 && xhr.status !== 200) {
    throw new Error(`could not read ${name}: HTTP ${xhr.status}`);
  }
  let data = new Uint8Array(xhr.response);
  if (xhr.status === 200) data = data.subarray(start, end + 1); // a server that ignores Range
  if (data.length !== end - start + 1) throw new Error(`short read from ${name}`);
  stats.requests += 1;
  stats.bytes += data.length;
  return data;
}

function loadPage(page) {
  let head = heads.find((h) => page >= h.next && page < h.next + h.pages);
  if (head) {
    heads.splice(heads.indexOf(head), 1);
    head.pages = Math.min(head.pages * 2, MAX_READ_BYTES / file.pageSize);
  } else {
    head = { next: page, pages: 1 };
  }
  heads.unshift(head);
  heads.length = Math.min(heads.length, READ_HEADS);
  const pagesPerChunk = file.config.serverChunkSize / file.pageSize;
  const chunk = Math.floor(page / pagesPerChunk);
  const lastPage = Math.ceil(file.length / file.pageSize) - 1;
  let count = 1;
  while (count < head.pages && page + count <= lastPage && (page + count) % pagesPerChunk !== 0 &&
         !cache.has(page + count)) count += 1;
  const start = (page % pagesPerChunk) * file.pageSize;
  const end = Math.min(start + count * file.pageSize, file.length - chunk * file.config.serverChunkSize) - 1;
  const data = fetchRange(chunk, start, end);
  for (let i = 0; i < count; i++) {
    cache.set(page + i, data.subarray(i * file.pageSize, (i + 1) * file.pageSize));
  }
  while (cache.size > CACHE_PAGES) cache.delete(cache.keys().next().value);
  head.next = page + count;
  return cache.get(page);
}

function readInto(target, offset, n) {
  let done = 0;
  while (done < n && offset + done < file.length) {  // past the end: short read, the rest stays zero
    const at = offset + done;
    const page = Math.floor(at / file.pageSize);
    const data = cachedPage(page) || loadPage(page);
    const within = at - page * file.pageSize;
    const take = Math.min(n - done, data.length - within);
    if (take <= 0) break;
    target.set(data.subarray(within, within + take), done);
    done += take;
  }
  return done;
}

function installVfs() {
  const { capi, wasm } = sqlite3;
  const vfs = new capi.sqlite3_vfs();
  const io = new capi.sqlite3_io_methods();
  const open = new Set();
  vfs.$iVersion = 2;
  vfs.$szOsFile = capi.sqlite3_file.structInfo.sizeof;
  vfs.$mxPathname = 1024;
  vfs.$zName = wasm.allocCString(VFS_NAME);
  vfs.$xDlOpen = vfs.$xDlError = vfs.$xDlSym = vfs.$xDlClose = null;
  io.$iVersion = 1;
  const ioMethods = {
    xCheckReservedLock: (fid, out) => { wasm.poke(out, 0, "i32"); return 0; },
    xClose: (fid) => { open.delete(fid); return 0; },
    xDeviceCharacteristics: () => capi.SQLITE_IOCAP_IMMUTABLE,
    xFileControl: () => capi.SQLITE_NOTFOUND,
    xFileSize: (fid, out) => { wasm.poke(out, BigInt(file.length), "i64"); return 0; },
    xLock: () => 0,
    xUnlock: () => 0,
    xSync: () => 0,
    xSectorSize: () => file.pageSize,
    xRead: (fid, dest, n, offset) => {
      try {
        const target = new Uint8Array(n);
        const got = readInto(target, Number(offset), n);
        wasm.heap8u().set(target, dest);
        return got < n ? capi.SQLITE_IOERR_SHORT_READ : 0;
      } catch (error) {
        ioError = String(error.message || error);
        return capi.SQLITE_IOERR_READ;
      }
    },
    xWrite: () => capi.SQLITE_READONLY,
    xTruncate: () => capi.SQLITE_READONLY,
  };
  const vfsMethods = {
    xAccess: (pVfs, name, flags, out) => { wasm.poke(out, 0, "i32"); return 0; },  // no journal, ever
    xCurrentTime: (pVfs, out) => { wasm.poke(out, 2440587.5 + Date.now() / 86400000, "double"); return 0; },
    xCurrentTimeInt64: (pVfs, out) => {
      wasm.poke(out, BigInt(Date.now()) + 210866760000000n, "i64");
      return 0;
    },
    xDelete: () => capi.SQLITE_READONLY,
    xFullPathname: (pVfs, name, nOut, pOut) => (wasm.cstrncpy(pOut, name, nOut) < nOut ? 0 : capi.SQLITE_CANTOPEN),
    xGetLastError: () => 0,
    xRandomness: (pVfs, nOut, pOut) => {
      const heap = wasm.heap8u();
      for (let i = 0; i < nOut; i++) heap[pOut + i] = Math.floor(Math.random() * 256);
      return nOut;
    },
    xSleep: () => 0,
    xOpen: (pVfs, zName, fid, flags, pOutFlags) => {
      const name = zName ? wasm.cstrToJs(zName) : "";
      if (!(flags & capi.SQLITE_OPEN_MAIN_DB) || name.replace(/^\/+/, "") !== "survey.db") {
        return capi.SQLITE_CANTOPEN;
      }
      const handle = new capi.sqlite3_file(fid);
      handle.$pMethods = io.pointer;
      handle.dispose();
      open.add(fid);
      wasm.poke(pOutFlags, capi.SQLITE_OPEN_READONLY, "i32");
      return 0;
    },
  };
  sqlite3.vfs.installVfs({ io: { struct: io, methods: ioMethods }, vfs: { struct: vfs, methods: vfsMethods } });
}

/* ---------- what may run: the authorizer ---------- */

// PRAGMAs that only read, with or without an argument (a table or index name).
const READ_PRAGMAS = new Set([
  "table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo",
  "foreign_key_list", "database_list", "collation_list", "function_list", "module_list",
  "pragma_list", "compile_options",
]);
// Settings that may be read (no value given) but never set.
const READABLE_SETTINGS = new Set([
  "page_size", "page_count", "freelist_count", "encoding", "user_version", "application_id",
  "schema_version", "data_version", "journal_mode", "query_only", "foreign_keys", "cache_size",
  "temp_store", "synchronous", "locking_mode", "auto_vacuum", "automatic_index", "max_page_count",
]);
let refusal = null;              // why the authorizer refused the statement being compiled
let schemaWrite = false;         // the statement being compiled writes the schema table
const SCHEMA_TABLES = new Set(["sqlite_master", "sqlite_temp_master", "sqlite_schema", "sqlite_temp_schema"]);

function actionNames() {
  const c = sqlite3.capi;
  return {
    [c.SQLITE_INSERT]: "INSERT", [c.SQLITE_UPDATE]: "UPDATE", [c.SQLITE_DELETE]: "DELETE",
    [c.SQLITE_CREATE_INDEX]: "CREATE INDEX", [c.SQLITE_CREATE_TABLE]: "CREATE TABLE",
    [c.SQLITE_CREATE_TEMP_INDEX]: "CREATE TEMP INDEX", [c.SQLITE_CREATE_TEMP_TABLE]: "CREATE TEMP TABLE",
    [c.SQLITE_CREATE_TEMP_TRIGGER]: "CREATE TEMP TRIGGER", [c.SQLITE_CREATE_TEMP_VIEW]: "CREATE TEMP VIEW",
    [c.SQLITE_CREATE_TRIGGER]: "CREATE TRIGGER", [c.SQLITE_CREATE_VIEW]: "CREATE VIEW",
    [c.SQLITE_DROP_INDEX]: "DROP INDEX", [c.SQLITE_DROP_TABLE]: "DROP TABLE",
    [c.SQLITE_DROP_TEMP_INDEX]: "DROP TEMP INDEX", [c.SQLITE_DROP_TEMP_TABLE]: "DROP TEMP TABLE",
    [c.SQLITE_DROP_TEMP_TRIGGER]: "DROP TEMP TRIGGER", [c.SQLITE_DROP_TEMP_VIEW]: "DROP TEMP VIEW",
    [c.SQLITE_DROP_TRIGGER]: "DROP TRIGGER", [c.SQLITE_DROP_VIEW]: "DROP VIEW",
    [c.SQLITE_TRANSACTION]: "a transaction (BEGIN, COMMIT, ROLLBACK)", [c.SQLITE_SAVEPOINT]: "SAVEPOINT",
    [c.SQLITE_ALTER_TABLE]: "ALTER TABLE", [c.SQLITE_REINDEX]: "REINDEX", [c.SQLITE_ANALYZE]: "ANALYZE",
    [c.SQLITE_CREATE_VTABLE]: "CREATE VIRTUAL TABLE", [c.SQLITE_DROP_VTABLE]: "DROP VIRTUAL TABLE",
  };
}

function authorize(names) {
  const c = sqlite3.capi;
  const allowed = new Set([c.SQLITE_SELECT, c.SQLITE_READ, c.SQLITE_FUNCTION, c.SQLITE_RECURSIVE]);
  const writes = [c.SQLITE_INSERT, c.SQLITE_UPDATE, c.SQLITE_DELETE];
  return (pV, code, s0, s1) => {
    if (allowed.has(code)) return c.SQLITE_OK;
    if (writes.includes(code) && SCHEMA_TABLES.has(String(s0).toLowerCase())) {
      // CREATE, DROP… write the schema table first: let the check of the statement's own kind
      // (denied below) name it. compile() refuses the statement anyway if it gets that far.
      schemaWrite = true;
      return c.SQLITE_OK;
    }
    if (code === c.SQLITE_PRAGMA) {
      const pragma = String(s0 || "").toLowerCase();
      const noValue = s1 === null || s1 === undefined || s1 === 0;
      if (READ_PRAGMAS.has(pragma) || (READABLE_SETTINGS.has(pragma) && noValue)) return c.SQLITE_OK;
      refusal = noValue ? `PRAGMA ${pragma} — only PRAGMAs that just read run here (table_info, index_list, ` +
                          "foreign_key_list, database_list, user_version, page_count, …)."
                        : `PRAGMA ${pragma} = … — the SQL page never changes a setting.`;
    } else if (code === c.SQLITE_ATTACH || code === c.SQLITE_DETACH) {
      refusal = `${code === c.SQLITE_ATTACH ? "ATTACH" : "DETACH"} — the SQL page reads only the published ` +
                "database.";
    } else {
      const what = names[code] || "this statement";
      const table = writes.includes(code) && s0 ? ` (on ${s0})` : "";
      refusal = `${what}${table} — the SQL page only reads (SELECT, WITH … SELECT, EXPLAIN, PRAGMAs that read).`;
    }
    return c.SQLITE_DENY;
  };
}

/* ---------- open and query ---------- */

function openDatabase(configUrl) {
  const xhr = new XMLHttpRequest();
  xhr.open("GET", configUrl, false);
  xhr.setRequestHeader("Cache-Control", "no-cache");  // the database may have been republished
  xhr.send();
  if (xhr.status !== 200) throw new Error(`could not read ${configUrl}: HTTP ${xhr.status}`);
  const config = JSON.parse(xhr.responseText);
  if (config.serverMode !== "chunked") throw new Error(`${configUrl}: not a chunked database`);
  const base = new URL(configUrl, self.location.href);
  file = {
    config, pageSize: config.requestChunkSize, length: config.databaseLengthBytes,
    prefix: new URL(config.urlPrefix, base).href,
    version: typeof config.sha256 === "string" ? "?v=" + config.sha256.slice(0, 16) : "",
  };
  if (config.serverChunkSize % file.pageSize !== 0) throw new Error("chunks are not page-aligned");
  installVfs();
  db = new sqlite3.oo1.DB({ filename: "survey.db", flags: "r", vfs: VFS_NAME });
  db.exec("PRAGMA query_only = 1; PRAGMA temp_store = MEMORY");
  const capi = sqlite3.capi;
  capi.sqlite3_set_authorizer(db.pointer, authorize(actionNames()), 0);
  const tables = db.selectValue("SELECT count(*) FROM sqlite_schema WHERE type IN ('table', 'view')");
  return { sqlite: capi.sqlite3_libversion(), length: file.length, tables };
}

function cell(stmt, i) {
  const capi = sqlite3.capi;
  switch (capi.sqlite3_column_type(stmt, i)) {
    case capi.SQLITE_NULL: return null;
    case capi.SQLITE_INTEGER: {
      const v = capi.sqlite3_column_int64(stmt, i);
      if (typeof v !== "bigint") return v;
      return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
    }
    case capi.SQLITE_FLOAT: return capi.sqlite3_column_double(stmt, i);
    case capi.SQLITE_BLOB: return { blob: capi.sqlite3_column_bytes(stmt, i) };
    default: return capi.sqlite3_column_text(stmt, i);
  }
}

class Refused extends Error {}

function compile(sql) {
  /* The one statement of ``sql``, compiled under the authorizer; Refused when there is none, more
     than one, or it is not read-only. Returns [stmt pointer, scoped-alloc marker]. */
  const { capi, wasm } = sqlite3;
  const scope = wasm.scopedAllocPush();
  let stmt = 0;
  try {
    const length = wasm.jstrlen(sql);
    const ppStmt = wasm.scopedAlloc(2 * wasm.ptrSizeof + length + 1);
    const pzTail = ppStmt + wasm.ptrSizeof;
    const pSql = pzTail + wasm.ptrSizeof;
    wasm.jstrcpy(sql, wasm.heap8(), pSql, length, false);
    wasm.poke(pSql + length, 0);
    const prepare = (from, bytes) => {
      wasm.pokePtr([ppStmt, pzTail], 0);
      refusal = null;
      schemaWrite = false;
      const rc = capi.sqlite3_prepare_v3(db.pointer, from, bytes, 0, ppStmt, pzTail);
      return { rc, stmt: wasm.peekPtr(ppStmt), tail: wasm.peekPtr(pzTail) };
    };
    const first = prepare(pSql, length);
    if (first.rc !== 0) {
      if (refusal) throw new Refused(refusal);
      throw new Error(capi.sqlite3_errmsg(db.pointer));
    }
    stmt = first.stmt;
    if (!stmt) throw new Refused("nothing to run: the query is empty (or only comments).");
    if (schemaWrite) throw new Refused("the statement writes the schema — the SQL page only reads.");
    for (let tail = first.tail; tail && tail < pSql + length;) {  // only ';', spaces and comments may follow
      const next = prepare(tail, pSql + length - tail);
      if (next.stmt) capi.sqlite3_finalize(next.stmt);
      if (next.stmt || next.rc !== 0) {
        throw new Refused("one statement at a time — remove everything after the first statement's ';'.");
      }
      if (next.tail <= tail) break;
      tail = next.tail;
    }
    if (!capi.sqlite3_stmt_readonly(stmt)) {
      throw new Refused("the statement is not read-only (sqlite3_stmt_readonly) — the SQL page only reads.");
    }
    return [stmt, scope];
  } catch (error) {
    if (stmt) capi.sqlite3_finalize(stmt);
    wasm.scopedAllocPop(scope);
    throw error;
  }
}

function runQuery(sql) {
  const { capi, wasm } = sqlite3;
  if (!db) throw new Error("the database is not open");
  const before = { ...stats };
  const started = performance.now();
  ioError = null;
  const [stmt, scope] = compile(sql);
  const deadline = started + TIME_LIMIT_MS;
  capi.sqlite3_progress_handler(db.pointer, 10000, () => (performance.now() > deadline ? 1 : 0), 0);
  try {
    const n = capi.sqlite3_column_count(stmt);
    const columns = [];
    for (let i = 0; i < n; i++) columns.push(capi.sqlite3_column_name(stmt, i));
    const rows = [];
    let more = 0;
    for (;;) {
      const rc = capi.sqlite3_step(stmt);
      if (rc === capi.SQLITE_DONE) break;
      if (rc !== capi.SQLITE_ROW) {
        if (rc === capi.SQLITE_INTERRUPT) throw new Error(`stopped after ${TIME_LIMIT_MS / 1000} s`);
        throw new Error(ioError || capi.sqlite3_errmsg(db.pointer));
      }
      if (rows.length >= MAX_ROWS) { more += 1; continue; }
      const row = new Array(n);
      for (let i = 0; i < n; i++) row[i] = cell(stmt, i);
      rows.push(row);
    }
    return {
      columns, rows, more, ms: performance.now() - started,
      requests: stats.requests - before.requests, bytes: stats.bytes - before.bytes,
    };
  } finally {
    capi.sqlite3_progress_handler(db.pointer, 0, null, 0);
    capi.sqlite3_finalize(stmt);
    wasm.scopedAllocPop(scope);
  }
}

const ready = sqlite3InitModule().then((module) => { sqlite3 = module; });

self.onmessage = async (event) => {
  const { id, type } = event.data || {};
  try {
    await ready;
    if (type === "open") self.postMessage({ id, ok: true, ...openDatabase(String(event.data.configUrl)) });
    else if (type === "query") self.postMessage({ id, ok: true, ...runQuery(String(event.data.sql)) });
    else throw new Error(`unknown request ${type}`);
  } catch (error) {
    self.postMessage({ id, ok: false, refused: error instanceof Refused, error: String(error.message || error) });
  }
};
