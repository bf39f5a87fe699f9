/* The SQL page (interp-survey; plain JS, no build step).

   Runs SQL on the published database in a worker (sql-worker.js: the official SQLite wasm build
   reading db/survey.db.NNNN with HTTP range requests, read-only) and shows the result as a table.
   Every value from the database is untrusted: it is only ever set as textContent. A row that names
   a surveyed model links to its wiki page: with `layer` and `head` columns the head cell links to
   the head page, with `layer` only the layer cell to the layer page, with neither the model cell to
   the model page (slugs from the build, in #sql-page's data-sql: JSON, never a script).

   window.surveySql(sql) → Promise<{columns, rows, more, ms, requests, bytes}> runs a query (the
   same read-only checks) for benches and tests; it rejects with the refusal or error message. */
(function () {
  "use strict";

  const script = document.currentScript;
  const data = JSON.parse(document.getElementById("sql-page").dataset.sql);
  const slugs = new Map(Object.entries(data.models));
  const select = document.getElementById("sql-examples");
  const query = document.getElementById("sql-query");
  const run = document.getElementById("sql-run");
  const status = document.getElementById("sql-status");
  const results = document.getElementById("sql-results");

  function say(text, kind) {
    status.textContent = text;
    status.className = kind ? "sql-" + kind : "";
  }

  function example(index) {
    const chosen = data.examples[Number(index)];
    if (chosen) query.value = chosen[1];
  }
  select.addEventListener("change", () => example(select.value));
  example(select.value || 0);

  if (window.location.protocol === "file:") {
    run.disabled = true;
    say("This page reads the database with HTTP range requests, which a page opened from a file " +
        "cannot make: run `survey site serve --out <this folder>` and open the page it prints.", "error");
    window.surveySql = () => Promise.reject(new Error("the SQL page needs HTTP: run `survey site serve`"));
    return;
  }

  const pending = new Map();
  let nextId = 1;
  let worker = null;
  function failAll(message) {
    for (const { reject } of pending.values()) reject(new Error(message));
    pending.clear();
  }
  try {
    worker = new Worker(new URL("sql-worker.js", script.src));
  } catch (error) {
    run.disabled = true;
    say("Could not start SQLite: " + error.message, "error");
    window.surveySql = () => Promise.reject(error);
    return;
  }
  worker.onmessage = (event) => {
    const answer = event.data;
    const waiting = pending.get(answer.id);
    if (!waiting) return;
    pending.delete(answer.id);
    if (answer.ok) waiting.resolve(answer);
    else waiting.reject(Object.assign(new Error(answer.error), { refused: Boolean(answer.refused) }));
  };
  worker.onerror = (event) => {
    event.preventDefault();
    failAll("the SQLite worker failed: " + (event.message || "it could not load"));
  };

  function ask(message) {
    return new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      worker.postMessage(Object.assign({ id }, message));
    });
  }

  const configUrl = new URL(data.config, document.baseURI).href;
  const opened = ask({ type: "open", configUrl });

  window.surveySql = function (sql) {
    return opened.then(() => ask({ type: "query", sql: String(sql) })).then((answer) => ({
      columns: answer.columns, rows: answer.rows, more: answer.more, ms: answer.ms,
      requests: answer.requests, bytes: answer.bytes,
    }));
  };

  function size(bytes) {
    if (bytes < 1e6) return (bytes / 1e3).toLocaleString("en", { maximumFractionDigits: 1 }) + " kB";
    return (bytes / 1e6).toLocaleString("en", { maximumFractionDigits: 1 }) + " MB";
  }

  function isIndex(value) {
    return Number.isInteger(value) && value >= 0;
  }

  /* Where a row links: [column index, path from the site root], or null. */
  function rowLink(columns, row) {
    const at = (name) => columns.findIndex((c) => String(c).toLowerCase() === name);
    const m = at("model"), l = at("layer"), h = at("head");
    const slug = m >= 0 && typeof row[m] === "string" ? slugs.get(row[m]) : undefined;
    if (slug === undefined) return null;
    const base = "models/" + slug + "/";
    if (l >= 0 && isIndex(row[l])) {
      if (h >= 0 && isIndex(row[h])) return [h, base + "layer-" + row[l] + "/head-" + row[h] + ".html"];
      return [l, base + "layer-" + row[l] + "/index.html"];
    }
    return [m, base + "index.html"];
  }

  function show(value) {
    if (value === null) return ["NULL", "sql-null"];
    if (typeof value === "object") return ["[blob, " + value.blob + " bytes]", "sql-null"];
    return [String(value), typeof value === "number" ? "sql-number" : ""];
  }

  function render(answer) {
    results.replaceChildren();
    const head = results.createTHead().insertRow();
    for (const name of answer.columns) {
      const th = document.createElement("th");
      th.textContent = name;
      head.appendChild(th);
    }
    const body = results.createTBody();
    for (const row of answer.rows) {
      const tr = body.insertRow();
      const link = rowLink(answer.columns, row);
      row.forEach((value, i) => {
        const td = tr.insertCell();
        const [text, css] = show(value);
        if (css) td.className = css;
        if (link && link[0] === i) {
          const a = document.createElement("a");
          a.setAttribute("href", data.root + link[1]);
          a.textContent = text;
          td.appendChild(a);
        } else {
          td.textContent = text;
        }
      });
    }
  }

  let busy = false;
  function execute() {
    if (busy || run.disabled) return;
    busy = true;
    run.disabled = true;
    say("Running …", "busy");
    window.surveySql(query.value).then((answer) => {
      render(answer);
      const total = answer.rows.length + answer.more;
      const shown = answer.more ? `${total.toLocaleString("en")} rows (the first ${answer.rows.length.toLocaleString("en")} shown)`
                                : `${total.toLocaleString("en")} row${total === 1 ? "" : "s"}`;
      say(`${shown} in ${(answer.ms / 1000).toFixed(2)} s; fetched ${size(answer.bytes)} in ${answer.requests} request${answer.requests === 1 ? "" : "s"}.`, "ok");
    }, (error) => {
      results.replaceChildren();
      say((error.refused ? "Refused: " : "Error: ") + error.message, "error");
    }).finally(() => {
      busy = false;
      run.disabled = false;
    });
  }
  run.addEventListener("click", execute);
  query.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      execute();
    }
  });

  opened.then((info) => {
    run.disabled = false;
    say(`Ready: SQLite ${info.sqlite}, ${info.tables} tables and views, a ${size(info.length)} database ` +
        "read in place (only the pages a query needs are fetched). Ctrl+Enter runs.", "ok");
  }, (error) => {
    say("Could not open the database: " + error.message, "error");
  });
})();
