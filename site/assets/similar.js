// Fills a head page's "most similar heads" table from its model's similar.js (window.surveySimilar,
// written by survey/wiki/nearby.py). Names are untrusted: they only ever become text.
(function () {
  "use strict";
  const box = document.querySelector(".similar-heads[data-head]");
  const data = window.surveySimilar;
  if (!box || !data) return;
  const rows = data.heads[box.dataset.head] || [];
  if (rows.length === 0) {
    box.textContent = "No other model is surveyed.";
    return;
  }
  const cell = (row, tag, text) => {
    const element = document.createElement(tag);
    element.textContent = text;
    row.appendChild(element);
    return element;
  };
  const short = (value, digits) => String(Number(value.toPrecision(digits)));
  const table = document.createElement("table");
  const header = table.createTHead().insertRow();
  for (const title of ["head", "model", "relative depth", "distance"]) cell(header, "th", title);
  const body = table.createTBody();
  for (const [slug, layer, head, distance] of rows) {
    const [name, layers] = data.models[slug];
    const row = body.insertRow();
    const link = document.createElement("a");
    link.href = `../../${encodeURIComponent(slug)}/layer-${layer}/head-${head}.html`;
    link.textContent = `L${layer}H${head}`;
    cell(row, "td", "").appendChild(link);
    cell(row, "td", name);
    cell(row, "td", short((layer + 0.5) / layers, 2));
    cell(row, "td", short(distance, 3));
  }
  box.replaceChildren(table);
})();
