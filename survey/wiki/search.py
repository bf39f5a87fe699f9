"""The site's search index: Pagefind, over a stand-in of every page.

Pagefind splits its index into small chunks, so a query fetches only the words it needs (tens
of kB) instead of one whole-site index. Its time and memory grow with the HTML it parses, and
parsing 20,000 whole pages (theme, tables, SVG) took minutes, so it indexes a stand-in folder
(``SEARCH_SOURCE`` in the site): the front and model pages as built (their
``data-pagefind-body``, set by ``site/overrides/main.html``), and for each layer and head page a
small page with its title and what one searches it by (``templates/*.search.j2``: head names such
as ``L18H6`` and ``18.6``, the model, the head's labels, the layer's neurons and their top tokens).
The stand-ins sit at the pages' own paths, so results link to the real pages. The index and the
UI go under ``pagefind/``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from db.common.errors import SurveyError

BUNDLE = "pagefind"  # the index's folder in the site
SEARCH_SOURCE = ".interp-survey-search"  # the stand-ins, kept in the site for incremental builds


def index_site(out: Path) -> None:
    """Index the stand-ins in ``out``'s ``SEARCH_SOURCE`` into ``out``'s ``pagefind/`` (the last
    step of a build: it must see every page)."""
    from pagefind.service import get_executable  # the binary of pagefind[bin], or $PAGEFIND_BINARY_PATH

    binary = get_executable()
    if binary is None:
        raise SurveyError("Pagefind is not installed: pip install 'pagefind[bin]'")
    try:
        command = [str(binary), "--site", str(out / SEARCH_SOURCE), "--output-path", str(out / BUNDLE)]
        result = subprocess.run(
            [*command, "--keep-index-url", "--force-language", "en", "--silent"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    except (FileNotFoundError, PermissionError) as exc:
        raise SurveyError(f"cannot run Pagefind ({exc}); reinstall it: pip install 'pagefind[bin]'") from None
    if result.returncode != 0:
        said = (ln.strip().removeprefix("Error: ") for ln in (result.stderr or result.stdout).splitlines())
        detail = " ".join(dict.fromkeys(s for s in said if s)) or f"exit status {result.returncode}"
        raise SurveyError(f"Pagefind could not index {out}: {detail}")
