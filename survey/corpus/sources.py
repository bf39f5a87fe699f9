"""Named, hashed text corpora for the neuron pass.

A corpus spec is one of:

- ``wiki-news``: the embedded default, 107 Wikipedia articles (wiki markup cleaned here) and 300
  news stories, read straight from the gensim 4.4.0 wheel without importing gensim
  (``survey install-corpus`` downloads the wheel into the cache);
- ``python-stdlib``: the source files of this Python's standard library;
- a local ``.txt`` file (one document per blank-line separated block) or ``.jsonl`` file (one
  ``{"text": ..., "title": ...}`` object per line);
- ``hf:org/name[@revision]``: a hub dataset, read from its ``.jsonl``/``.txt``/``.parquet`` files.

Documents are streamed, and the corpus hash covers the spec and every document in order.
"""

from __future__ import annotations

import bz2
import hashlib
import json
import random
import sysconfig
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from db.common.errors import SurveyError
from db.common.settings import cache_root
from survey.corpus.wikitext import clean_wikitext

GENSIM = "gensim==4.4.0"
WIKI_MEMBER = "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
NEWS_MEMBER = "gensim/test/test_data/lee_background.cor"
MIN_WIKI_CHARS = 200  # cleaned articles shorter than this are stubs or redirects


@dataclass(frozen=True)
class Document:
    """One corpus document: its position in the corpus, a title, and the text."""

    index: int
    title: str
    text: str


@dataclass(frozen=True)
class Corpus:
    """A named stream of documents. ``open`` yields (title, text) pairs in a fixed order."""

    name: str
    description: str
    open: Callable[[], Iterator[tuple[str, str]]]

    def documents(self) -> Iterator[Document]:
        """Every non-empty document, numbered from 0."""
        index = 0
        for title, text in self.open():
            if text.strip():
                yield Document(index, title, text)
                index += 1

    def hash(self) -> str:
        """sha256 over the name and every document's title and text, in order."""
        digest = hashlib.sha256(self.name.encode())
        for doc in self.documents():
            digest.update(b"\0" + doc.title.encode() + b"\0" + doc.text.encode())
        return digest.hexdigest()


def gensim_wheel_folder() -> Path:
    """Where ``survey install-corpus`` puts the gensim wheel."""
    return cache_root() / "corpora"


def gensim_wheel() -> Path:
    """The downloaded gensim 4.4.0 wheel; SurveyError with the fix when it is missing."""
    wheels = sorted(gensim_wheel_folder().glob("gensim-4.4.0-*.whl"))
    if not wheels:
        raise SurveyError("the wiki-news corpus needs the gensim 4.4.0 wheel; run: survey install-corpus")
    return wheels[-1]


def _wiki_articles(archive: zipfile.ZipFile) -> Iterator[tuple[str, str]]:
    with archive.open(WIKI_MEMBER) as raw, bz2.open(raw) as xml:
        title = ""
        for _event, element in ElementTree.iterparse(xml):
            tag = element.tag.rsplit("}", 1)[-1]
            if tag == "title":
                title = element.text or ""
            elif tag == "text":
                text = clean_wikitext(element.text or "")
                if len(text) >= MIN_WIKI_CHARS:
                    yield title, text
            elif tag == "page":
                element.clear()


def _wiki_news() -> Iterator[tuple[str, str]]:
    """Articles and news stories interleaved in a fixed seeded order, so any prefix has both."""
    try:
        with zipfile.ZipFile(gensim_wheel()) as archive:
            docs = list(_wiki_articles(archive))
            news = archive.read(NEWS_MEMBER).decode("utf-8").splitlines()
    except (zipfile.BadZipFile, KeyError, OSError, ElementTree.ParseError) as exc:
        raise SurveyError(f"cannot read the wiki-news corpus from the gensim wheel: {exc}") from None
    docs += [(f"news story {i + 1}", line.strip()) for i, line in enumerate(news) if line.strip()]
    random.Random(0).shuffle(docs)
    yield from docs


def _python_stdlib() -> Iterator[tuple[str, str]]:
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if relative.parts[0] in {"site-packages", "dist-packages", "test", "idlelib", "lib2to3"}:
            continue
        try:
            yield str(relative), path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue


def _text_file(path: Path) -> Iterator[tuple[str, str]]:
    with path.open(encoding="utf-8") as handle:
        block: list[str] = []
        number = 0
        for line in handle:
            if line.strip():
                block.append(line)
            elif block:
                number += 1
                yield f"{path.name} block {number}", "".join(block)
                block = []
        if block:
            yield f"{path.name} block {number + 1}", "".join(block)


def _jsonl_file(path: Path) -> Iterator[tuple[str, str]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                text = record["text"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise SurveyError(f'{path}:{number}: expected a JSON object with a "text" field') from None
            if not isinstance(text, str):
                raise SurveyError(f'{path}:{number}: "text" must be a string')
            yield str(record.get("title") or record.get("id") or f"line {number}"), text


def _local_file(path: Path) -> Iterator[tuple[str, str]]:
    try:
        if path.suffix == ".jsonl":
            yield from _jsonl_file(path)
        else:
            yield from _text_file(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise SurveyError(f"cannot read corpus file {path}: {exc}") from None


def _hub_dataset(repo_id: str, revision: str) -> Iterator[tuple[str, str]]:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(repo_id, repo_type="dataset", revision=revision))
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
        raise SurveyError(f"cannot fetch hub dataset {repo_id}@{revision}: {type(exc).__name__}") from None
    files = sorted(p for p in folder.rglob("*") if p.suffix in {".jsonl", ".txt", ".parquet"})
    if not files:
        raise SurveyError(f"hub dataset {repo_id} has no .jsonl, .txt or .parquet files")
    for path in files:
        if path.suffix == ".parquet":
            import pandas as pd

            frame = pd.read_parquet(path, columns=["text"])
            yield from ((f"{path.name} row {i}", str(t)) for i, t in enumerate(frame["text"]))
        else:
            yield from _local_file(path)


def resolve_corpus(spec: str) -> Corpus:
    """Turn a corpus spec into a Corpus; SurveyError for anything unreadable or unknown."""
    if spec == "wiki-news":
        return Corpus(
            spec, "107 Wikipedia articles and 300 news stories (gensim 4.4.0 test data)", _wiki_news
        )
    if spec == "python-stdlib":
        return Corpus(spec, "the Python standard library source", _python_stdlib)
    if spec.startswith("hf:"):
        repo_id, _, revision = spec[3:].partition("@")
        return Corpus(spec, f"hub dataset {repo_id}", lambda: _hub_dataset(repo_id, revision or "main"))
    path = Path(spec).expanduser()
    if path.is_file():
        return Corpus(f"file:{path.name}", f"local file {path}", lambda: _local_file(path))
    raise SurveyError(
        f"unknown corpus {spec!r}: use wiki-news, python-stdlib, a .txt or .jsonl file, or hf:org/name"
    )
