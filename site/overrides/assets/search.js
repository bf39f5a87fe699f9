// The header's search box: Pagefind's UI over the index under pagefind/ (survey/wiki/search.py).
// Pagefind fetches its index chunks, which browsers refuse to pages opened from file://, so there
// the box says so instead of failing silently.
(() => {
  // "18.6" (layer.head) is searched as the head's name, "L18H6": Pagefind splits "18.6" into
  // "18" and "6", which match numbers on every page.
  const headNames = (term) => term.replace(/(^|\s)(\d+)\.(\d+)(?=\s|$)/g, "$1L$2H$3");
  const box = document.getElementById("wiki-search");
  if (box === null) return;
  const root = new URL(box.dataset.root, location.href);
  if (location.protocol === "file:") {
    box.classList.add("wiki-search--offline");
    box.textContent = "search needs HTTP: run `survey site serve`";
    return;
  }
  const style = document.createElement("link");
  style.rel = "stylesheet";
  style.href = new URL("pagefind/pagefind-ui.css", root).href;
  const script = document.createElement("script");
  script.src = new URL("pagefind/pagefind-ui.js", root).href;
  script.onload = () => new PagefindUI({
    element: box,
    bundlePath: new URL("pagefind/", root).pathname,
    baseUrl: root.pathname,
    showImages: false,
    processTerm: headNames,
    resetStyles: false,
    ranking: { pageLength: 0 },  // long pages (models, layers) are long for their tables, not less relevant
  });
  document.head.append(style, script);
})();
