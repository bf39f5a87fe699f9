"""Wiki markup cleaning."""

from __future__ import annotations

from survey.corpus.wikitext import clean_wikitext

ARTICLE = """{{Infobox thing|name={{nested|x}}|size=3}}
'''Adobe''' is a [[building material]] made from [[earth (soil)|earth]].<ref name="a">Cite, p. 3</ref>
[[File:Adobe.jpg|thumb|A wall of [[adobe]] bricks]]
== History ==
It was used in [http://example.org the Americas] &amp; Spain.<ref>x</ref><!-- hidden -->
{| class="wikitable"
| a || b
|}
* first point
[[Category:Building materials]]"""


def test_clean_wikitext_keeps_prose_and_link_text_only() -> None:
    text = clean_wikitext(ARTICLE)
    assert text.startswith("Adobe is a building material made from earth.")
    assert "History\nIt was used in the Americas & Spain." in text
    assert "first point" in text
    for leftover in ("{{", "}}", "[[", "]]", "<ref", "'''", "wikitable", "Category", "thumb", "hidden", "=="):
        assert leftover not in text


def test_redirects_are_empty() -> None:
    assert clean_wikitext("#REDIRECT [[Computer accessibility]]") == ""
