"""The one jinja2 environment for the wiki's templates, with its filters, and where pages go.

Autoescape is on and ``finalize`` makes every value safe for Markdown as well (see
:mod:`survey.wiki.escape`), so a template cannot forget to escape an untrusted string.
"""

from __future__ import annotations

import json
import math
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from db.common.errors import SurveyError
from survey.wiki.escape import markdown_safe, token_text
from survey.wiki.fragments import fragment_file, fragment_mark
from survey.wiki.resources import TEMPLATES
from survey.wiki.shell import PageConverter


def number(value: Any, digits: int = 3) -> str:
    """A float to ``digits`` significant digits; em dash for missing; anything else as text."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, bool | int | str):
        return str(value)
    return f"{value:.{digits}g}"


def percent(value: Any, digits: int = 2) -> str:
    """A share as a percentage to ``digits`` significant digits; em dash for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{100 * value:.{digits}g}%"


def front_matter(title: str) -> Markup:
    """A page's YAML front matter with an HTML-safe title (the theme inserts titles unescaped)."""
    return Markup(f"---\ntitle: {json.dumps(str(markdown_safe(title)))}\n---\n")


def environment() -> Environment:
    """The wiki's template environment; SurveyError when the templates folder is missing."""
    if not TEMPLATES.is_dir():
        raise SurveyError(f"wiki templates not found at {TEMPLATES}: reinstall interp-survey")
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        finalize=markdown_safe,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(num=number, percent=percent, token=token_text, front_matter=front_matter)
    return env


class PageWriter:
    """Renders templates into ``docs/`` and counts the pages written.

    Generated markup (SVG, highlighted examples) goes through ``fragment(markup)`` in the
    templates: the page gets an HTML comment in its place and the markup is saved beside, in
    ``fragments/``; the build hook (:mod:`survey.wiki.hook`) puts it back into the finished HTML.
    Neither Python-Markdown nor the search indexer then parses thousands of SVG elements per
    page, which is what made the build slow, and the search index holds only the page text.

    Layer and head pages come from HTML templates (``*.html.j2``, with their ``*.search.j2``) and
    go to ``direct`` as finished pages, never through Markdown or mkdocs.
    """

    def __init__(self, docs: Path, fragments: Path, direct: DirectPages | None = None) -> None:
        self.docs, self.fragments, self.direct = docs, fragments, direct
        self.env = environment()
        self.pages = 0

    def write(self, path: str, template: str, **context: Any) -> None:
        """Render ``template`` to ``docs/path``; ``href(target)`` in it links relative to this page."""
        here = posixpath.dirname(path)
        saved: list[str] = []

        def fragment(markup: Markup) -> Markup:
            saved.append(str(markup))
            return Markup(fragment_mark(len(saved) - 1))

        text = self.env.get_template(template).render(
            href=lambda to: html_link(here, to), md=lambda to: markdown_link(here, to),
            fragment=fragment, **context,
        )  # fmt: skip
        self.pages += 1
        if template.endswith(".html.j2"):  # a layer or head page, HTML put into the theme's shell
            if self.direct is None or not is_direct(path):
                raise SurveyError(f"{template} is for layer and head pages written as HTML, not {path}")
            title, page = self.direct.converter.convert(text, saved)
            search = template.removesuffix(".html.j2") + ".search.j2"
            summary = self.env.get_template(search).render(**context)
            for folder, html in ((self.direct.site, page), (self.direct.search, search_page(title, summary))):
                target = folder / (path[:-3] + ".html")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(html, encoding="utf-8")
            return
        target = self.docs / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        if saved:
            store = fragment_file(self.fragments, path)
            store.parent.mkdir(parents=True, exist_ok=True)
            store.write_text(json.dumps(saved), encoding="utf-8")


_DIRECT = re.compile(r"\Amodels/[^/]+/layer-\d+/[^/]+\.md\Z")


@dataclass(frozen=True)
class DirectPages:
    """Where layer and head pages go as finished HTML, and what converts them (mkdocs never sees
    them: see :mod:`survey.wiki.shell`)."""

    site: Path
    search: Path  # what search indexes of each page: see survey.wiki.search
    converter: PageConverter


def search_page(title: str, summary: str) -> str:
    """The stand-in that search indexes for a layer or head page: its (HTML-safe) title and summary."""
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title></head><body>'
        f'<div data-pagefind-body><h1 data-pagefind-weight="0.5">{title}</h1><p>{summary.strip()}</p></div>'
        "</body></html>\n"
    )


def is_direct(path: str) -> bool:
    """Whether the docs page ``path`` is a layer or head page."""
    return _DIRECT.match(path) is not None


def markdown_link(here: str, to: str) -> Markup:
    """The relative link from the page folder ``here`` to the docs page ``to``, percent-encoded
    and marked safe: escaped as text (``_`` as ``&#95;``), mkdocs would not see the page it names."""
    return Markup(quote(posixpath.relpath(to, here or ".")))


def html_link(here: str, to: str) -> str:
    """The relative URL from the page folder ``here`` to the page ``to`` (a ``.md`` docs path)."""
    relative = posixpath.relpath(to, here or ".")
    return relative[:-3] + ".html" if relative.endswith(".md") else relative
