"""mkdocs hook (named in the generated mkdocs.yml): after each page is rendered and indexed for
search, put the page's saved fragments (SVG, highlighted examples) back in place of their
``<!--wiki-fragment:N-->`` comments. ``extra.wiki_fragments`` in the config names the folder."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from survey.wiki.render import FRAGMENT_MARK, fragment_file

_MARK = re.compile(r"<!--" + re.escape(FRAGMENT_MARK) + r"(\d+)-->")


def on_post_page(output: str, page: Any, config: Any) -> str:
    """The page's HTML with its fragments restored."""
    store = fragment_file(Path(config["extra"]["wiki_fragments"]), page.file.src_uri)
    if not store.is_file():
        return output
    fragments = json.loads(store.read_text(encoding="utf-8"))
    return _MARK.sub(lambda match: fragments[int(match.group(1))], output)
