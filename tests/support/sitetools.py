"""A built wiki for the site tests: the fixture database plus the hostile model, built once."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from db.engine import open_database
from db.fixtures import add_beyond_units, build_fixture
from survey.wiki.build import BuildReport, build_site
from survey.wiki.serve import site_server
from tests.support.fixtures_hostile import add_hostile_model


@contextmanager
def serving(folder: Path) -> Iterator[str]:
    """``folder`` served over local HTTP (byte ranges honoured) while in the block; its base URL."""
    server = site_server(folder, 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def build_fixture_site(folder: Path) -> tuple[Path, BuildReport]:
    """The fixture database (two models, the hostile one added) and its site in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "survey.db"
    engine = open_database(f"sqlite:///{db}")
    build_fixture(engine)
    add_beyond_units(engine)
    add_hostile_model(engine)
    engine.dispose()
    return db, build_site(f"sqlite:///{db}", folder / "site", lambda line: None)


class PageParser(HTMLParser):
    """Every element of a page with its attributes, the text of each script, and the page text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self.text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False if tag == "script" else self._in_script

    def handle_data(self, data: str) -> None:
        (self.scripts if self._in_script else self.text).append(data)


class TableParser(HTMLParser):
    """Every table row of a page: its class and the whitespace-collapsed text of each cell."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[tuple[str, list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append((dict(attrs).get("class") or "", []))
        elif tag in ("td", "th") and self.rows:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1][1].append(re.sub(r"\s+", " ", "".join(self._cell)).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


@dataclass
class Found:
    """One element of a page: its descendants (tag, attributes) and its whitespace-collapsed text."""

    elements: list[tuple[str, dict[str, str | None]]] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return re.sub(r"\s+", " ", "".join(self.parts)).strip()


class WithinParser(HTMLParser):
    """Every ``tag`` element whose classes include ``css``, with what is inside it."""

    def __init__(self, tag: str, css: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tag, self.css = tag, css
        self.found: list[Found] = []
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._depth:
            self.found[-1].elements.append((tag, dict(attrs)))
            self._depth += tag == self.tag
        elif tag == self.tag and self.css in (dict(attrs).get("class") or "").split():
            self.found.append(Found())
            self._depth = 1

    def handle_endtag(self, tag: str) -> None:
        if self._depth and tag == self.tag:
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._depth:
            self.found[-1].parts.append(data)


def published_database(site: Path) -> Path:
    """The site's database, joined from its published chunks (once per site) beside the site."""
    joined = site.parent / f"{site.name}-joined.db"
    if not joined.exists():
        chunks = sorted((site / "db").glob("survey.db.*"))
        joined.write_bytes(b"".join(chunk.read_bytes() for chunk in chunks))
    return joined


def within(path: Path, tag: str, css: str) -> list[Found]:
    """Every ``tag`` element of the page with class ``css``, in page order."""
    parser = WithinParser(tag, css)
    parser.feed(path.read_text(encoding="utf-8"))
    return parser.found


def table_rows(path: Path) -> list[tuple[str, list[str]]]:
    """Every table row of the page: (its class, its cells' texts)."""
    parser = TableParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser.rows


def table_row(path: Path, first_cell: str) -> tuple[str, list[str]]:
    """The first table row of the page whose first cell is ``first_cell``: (class, cells)."""
    return next((css, cells) for css, cells in table_rows(path) if cells and cells[0] == first_cell)


def parse(path: Path) -> PageParser:
    """The parsed page."""
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def visible_text(path: Path) -> str:
    """The page's text with whitespace collapsed (entities decoded)."""
    return re.sub(r"\s+", " ", " ".join(parse(path).text))
