"""mkdocs hook (named in the generated mkdocs.yml): after each page is rendered, put the page's
saved fragments (SVG, highlighted examples) back in place of their ``<!--wiki-fragment:N-->``
comments. ``extra.wiki_fragments`` in the config names the folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from survey.wiki.render import fragment_file, restore_fragments
from survey.wiki.shell import MarkdownLinks


def on_config(config: Any) -> Any:
    """Links to layer and head pages point at their HTML: those pages are not mkdocs's to resolve
    (see :mod:`survey.wiki.shell`)."""
    config["markdown_extensions"].append(MarkdownLinks())
    return config


def on_post_page(output: str, page: Any, config: Any) -> str:
    """The page's HTML with its fragments restored."""
    store = fragment_file(Path(config["extra"]["wiki_fragments"]), page.file.src_uri)
    if not store.is_file():
        return output
    return restore_fragments(output, json.loads(store.read_text(encoding="utf-8")))
