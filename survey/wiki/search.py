"""The site's search index: Pagefind over the finished HTML folder.

Pagefind splits its index into small chunks, so a query fetches only the words it needs (tens
of kB) instead of one whole-site index. It reads each page's ``data-pagefind-body`` (the article,
set by ``site/overrides/main.html``) and writes its index and UI under ``pagefind/``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from survey.errors import SurveyError

BUNDLE = "pagefind"  # the index's folder in the site


def index_site(out: Path) -> None:
    """Index every HTML page under ``out`` (the last step of a build: it must see every page)."""
    from pagefind.service import get_executable  # the binary of pagefind[bin], or $PAGEFIND_BINARY_PATH

    binary = get_executable()
    if binary is None:
        raise SurveyError("Pagefind is not installed: pip install 'pagefind[bin]'")
    try:
        command = [str(binary), "--site", str(out), "--output-subdir", BUNDLE]
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
