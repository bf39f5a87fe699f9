"""mkdocs hook (named in the generated mkdocs.yml): relative ``.md`` links become ``.html`` (the
layer and head pages they often point at are not mkdocs's to resolve), and after each page is
rendered its saved fragments (SVG, highlighted examples) go back in place of their
``<!--wiki-fragment:N-->`` comments. ``extra.wiki_fragments`` in the config names the folder."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

import markdown
from markdown.extensions import Extension
from markdown.treeprocessors import Treeprocessor

from survey.wiki.fragments import fragment_file, restore_fragments

_LINK = re.compile(r"\A(?![a-z][a-z0-9+.-]*:|/|#)(?P<path>[^#?]*)\.md(?P<rest>[#?].*)?\Z", re.I)


class _MarkdownLinks(Treeprocessor):
    """Relative links to ``.md`` pages point at their ``.html`` (what mkdocs does with
    ``use_directory_urls: false``)."""

    def run(self, root: Element) -> None:
        for link in root.iter("a"):
            match = _LINK.match(link.get("href", ""))
            if match:
                link.set("href", f"{match['path']}.html{match['rest'] or ''}")


class MarkdownLinks(Extension):
    """Relative ``.md`` links made ``.html``."""

    def extendMarkdown(self, md: markdown.Markdown) -> None:  # noqa: N802  (Python-Markdown's name)
        md.treeprocessors.register(_MarkdownLinks(md), "wiki_md_links", 5)


def on_config(config: Any) -> Any:
    """Links to layer and head pages point at their HTML (see :mod:`survey.wiki.shell`)."""
    config["markdown_extensions"].append(MarkdownLinks())
    return config


def on_post_page(output: str, page: Any, config: Any) -> str:
    """The page's HTML with its fragments restored."""
    store = fragment_file(Path(config["extra"]["wiki_fragments"]), page.file.src_uri)
    if not store.is_file():
        return output
    return restore_fragments(output, json.loads(store.read_text(encoding="utf-8")))
