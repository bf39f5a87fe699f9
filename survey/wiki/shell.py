"""Layer and head pages without mkdocs: the theme renders one shell page, and each page's HTML
(from ``templates/*.html.j2``) is put into that shell.

Layer and head pages are nearly all of a site's pages and are not in the navigation, so with
``navigation.prune`` their theme HTML differs only in title, content and table of contents (every
one sits three folders deep, so even the relative links agree). mkdocs spends most of its time per
page in its theme and plugins; filling a shell costs a few string joins and a write, and lets a
rebuild touch only the models that changed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html import escape, unescape
from pathlib import Path

import yaml

from db.common.errors import SurveyError
from survey.wiki.fragments import restore_fragments

SHELL_PAGE = "_wiki-shell/shell/shell/index.md"  # three folders deep, like models/<slug>/layer-<L>/
_TITLE = "WIKISHELLTITLE"  # the title, and an h2 so that the theme renders a table of contents
SHELL_MARKDOWN = f"---\ntitle: {_TITLE}\n---\n# {_TITLE}\n\n## {_TITLE}\n"
_CONTENT = re.compile(rf'<h1 id="{_TITLE.lower()}">{_TITLE}</h1>\s*<h2 id="{_TITLE.lower()}_1">{_TITLE}</h2>')
_TOC = re.compile(r'<nav class="md-nav md-nav--secondary".*?</nav>', re.S)
_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n", re.S)
_HEADING = re.compile(r'<h(?P<level>[23]) id="(?P<id>[^"]+)">(?P<name>.*?)</h(?P=level)>', re.S)


@dataclass(frozen=True)
class Shell:
    """The theme's HTML of a page three folders deep, cut where title, table of contents and
    content go."""

    parts: tuple[str, ...]  # text between the slots; the slots alternate title … toc … content …
    slots: tuple[str, ...]

    @classmethod
    def from_html(cls, html: str) -> Shell:
        """Cut the rendered shell page; SurveyError if the theme no longer renders it as expected."""
        content, toc = _CONTENT.search(html), _TOC.search(html)
        if content is None or toc is None:
            raise SurveyError("the theme's shell page has no content or table of contents where expected")
        marked = html[: toc.start()] + "\0toc\0" + html[toc.end() : content.start()] + "\0body\0"
        marked += html[content.end() :]
        pieces = re.split(r"\0(toc|body)\0|" + _TITLE, marked)
        return cls(tuple(pieces[0::2]), tuple(s or "title" for s in pieces[1::2]))

    def page(self, title: str, toc: str, body: str) -> str:
        """A whole page: ``title`` is already HTML-safe (front matter titles are)."""
        filled = {"title": title, "toc": toc, "body": body}
        out = [self.parts[0]]
        for slot, text in zip(self.slots, self.parts[1:], strict=True):
            out += [filled[slot], text]
        return "".join(out)


class PageConverter:
    """A layer or head page's HTML (front matter with a title, then the body) → the whole page, as
    mkdocs would build it.

    The templates (``*.html.j2``) write HTML, not Markdown: Python-Markdown was half of a page's
    cost. The table of contents comes from the body's ``<h2 id>`` and ``<h3 id>`` headings.
    """

    def __init__(self, shell: Shell) -> None:
        self.shell = shell

    def convert(self, text: str, fragments: list[str]) -> tuple[str, str]:
        """The title and the page for ``text``, fragments restored."""
        front = _FRONT_MATTER.match(text)
        if front is None:
            raise SurveyError("a layer or head page has no front matter")
        title = str(yaml.safe_load(front.group(1))["title"])
        body = restore_fragments(text[front.end() :], fragments)
        return title, self.shell.page(title, _toc_html(_headings(body)), body)


@dataclass
class _Heading:
    """An entry of the table of contents: a heading's id, its HTML, and the headings under it."""

    id: str
    name: str
    children: list[_Heading] = field(default_factory=list)


def _headings(body: str) -> list[_Heading]:
    """The h2 headings of ``body``, each with the h3 headings that follow it (h3s before any h2
    stand alone)."""
    top: list[_Heading] = []
    for match in _HEADING.finditer(body):
        heading = _Heading(match["id"], match["name"])
        if match["level"] == "3" and top:
            top[-1].children.append(heading)
        else:
            top.append(heading)
    return top


def _toc_html(headings: list[_Heading]) -> str:
    """The theme's secondary navigation (its ``partials/toc.html``) for these headings."""
    nav = '<nav class="md-nav md-nav--secondary" aria-label="Table of contents">'
    if not headings:
        return nav + "</nav>"
    return (
        f'{nav}<label class="md-nav__title" for="__toc"><span class="md-nav__icon md-icon"></span>'
        f'Table of contents</label><ul class="md-nav__list" data-md-component="toc" data-md-scrollfix>'
        f"{''.join(_toc_item(h) for h in headings)}</ul></nav>"
    )


def _toc_item(heading: _Heading) -> str:
    """One heading (and those under it), as the theme's ``partials/toc-item.html``."""
    children = ""
    if heading.children:
        items = "".join(_toc_item(h) for h in heading.children)
        label = escape(unescape(re.sub(r"<[^>]*>", "", heading.name)))
        children = f'<nav class="md-nav" aria-label="{label}"><ul class="md-nav__list">{items}</ul></nav>'
    return (
        f'<li class="md-nav__item"><a href="#{heading.id}" class="md-nav__link">'
        f'<span class="md-ellipsis">{heading.name}</span></a>{children}</li>'
    )


def read_shell(site: Path) -> Shell:
    """The shell page mkdocs built into ``site``, removed from it."""
    built = site / Path(SHELL_PAGE).with_suffix(".html")
    shell = Shell.from_html(built.read_text(encoding="utf-8"))
    built.unlink()
    for folder in (built.parent, built.parent.parent, built.parent.parent.parent):
        folder.rmdir()
    return shell
