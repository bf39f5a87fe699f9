"""Generated markup kept out of Markdown: a page holds a numbered mark where each fragment goes,
the fragments are saved beside it, and the finished HTML gets them back.

Used by the page writer (:mod:`survey.wiki.render`), the shell that fills layer and head pages
(:mod:`survey.wiki.shell`) and the mkdocs build hook (:mod:`survey.wiki.hook`).
"""

from __future__ import annotations

import re
from pathlib import Path

FRAGMENT_MARK = "wiki-fragment:"
_FRAGMENT = re.compile(r"<!--" + re.escape(FRAGMENT_MARK) + r"(\d+)-->")


def fragment_mark(number: int) -> str:
    """The HTML comment that stands where fragment ``number`` goes."""
    return f"<!--{FRAGMENT_MARK}{number}-->"


def restore_fragments(html: str, fragments: list[str]) -> str:
    """``html`` with each ``<!--wiki-fragment:N-->`` replaced by fragment N."""
    return _FRAGMENT.sub(lambda match: fragments[int(match.group(1))], html) if fragments else html


def fragment_file(folder: Path, page: str) -> Path:
    """Where the fragments of the docs page ``page`` are kept."""
    return folder / (page + ".json")
