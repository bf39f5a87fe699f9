"""Links that lead nowhere, checked on the finished site.

mkdocs sees only the front pages, so it takes every link to a layer or head page (rendered
outside it, :mod:`survey.wiki.shell`) for a broken one; its own check is off
(``site/mkdocs.yml``) and this one reads the built HTML, where every page exists.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from html import unescape
from pathlib import Path
from urllib.parse import unquote

_LINK = re.compile(r'\b(?:href|src)="([^"]*)"')
_EXTERNAL = re.compile(r"\A(?:[a-z][a-z0-9+.-]*:|//|#|\Z)", re.I)


def broken_links(site: Path, pages: Iterable[Path]) -> list[str]:
    """``page -> target`` for every link within the site on ``pages`` (relative, or from the site's
    root) whose target is not a file or folder of the site."""
    broken = []
    for page in pages:
        here = page.relative_to(site).parent.as_posix()
        for href in _LINK.findall(page.read_text(encoding="utf-8")):
            if _EXTERNAL.match(unescape(href)):
                continue
            target = unquote(unescape(href).split("#", 1)[0].split("?", 1)[0])
            path = target.lstrip("/") if target.startswith("/") else posixpath.join(here, target)
            if not (site / posixpath.normpath(path)).exists():
                broken.append(f"{page.relative_to(site).as_posix()} -> {href}")
    return broken
