"""Escaping for the wiki's Markdown pages, which mkdocs turns into HTML.

Every string that reaches a template is untrusted (token text, corpus text, model names). The
template environment's ``finalize`` hook passes it through :func:`markdown_safe`: every character
that HTML or Markdown gives a meaning (``<``, ``&``, quotes, backticks, ``|``, brackets, braces,
emphasis, backslashes…) becomes its numeric character reference, which the browser shows as the
character and Markdown leaves alone. So ``<script>`` stays text, ``|`` never splits a table cell,
``{: onclick=…}`` is no attribute list and ``[x](javascript:…)`` never becomes a link. Line breaks
become spaces, so a value can never start a Markdown block. Markup built by our own code (SVG,
links) is ``markupsafe.Markup`` and passes through unchanged.
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

SPECIALS = "&<>\"'\\`*_{}[]()!|~#"
_REFERENCES = {ord(ch): f"&#{ord(ch)};" for ch in SPECIALS} | {ord("\n"): " ", ord("\r"): " "}
VISIBLE_WHITESPACE = {ord(" "): "·", ord("\n"): "↵", ord("\t"): "→", ord("\r"): "␍"}


def markdown_safe(value: Any) -> Any:
    """``value`` as text that neither HTML nor Markdown interprets (Markup and non-strings as is)."""
    if isinstance(value, Markup) or not isinstance(value, str):
        return value
    return Markup(value.translate(_REFERENCES))


def token_text(token: str) -> Markup:
    """A token for display: whitespace made visible, then made safe (never empty)."""
    return markdown_safe(token.translate(VISIBLE_WHITESPACE) or "∅")
