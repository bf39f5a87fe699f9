"""``survey site serve`` honours single HTTP byte ranges, as static hosts do: the SQL page reads the
published database with range requests."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from survey.wiki.serve import WHOLE, byte_range, site_server

DATA = bytes(range(256)) * 4  # 1024 bytes, each byte telling its offset modulo 256


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-0", (0, 0)),
        ("bytes=10-19", (10, 19)),
        ("bytes=1000-", (1000, 1023)),
        ("bytes=-24", (1000, 1023)),
        ("bytes=-5000", (0, 1023)),  # a suffix longer than the file: all of it
        ("bytes=1020-5000", (1020, 1023)),  # past the end: cut at the end
        (" bytes=3-4 ", (3, 4)),
        ("bytes=1024-", None),  # starts past the end: unsatisfiable
        ("bytes=5000-6000", None),
        ("bytes=-0", None),
        ("bytes=0-1,5-6", WHOLE),  # several ranges: ignored, the whole file is sent
        ("bytes=9-3", WHOLE),  # last before first: invalid, ignored
        ("bytes=-", WHOLE),
        ("items=0-1", WHOLE),
        ("bytes=a-b", WHOLE),
    ],
)
def test_byte_range_reads_one_range_and_ignores_what_it_does_not_understand(
    header: str, expected: object
) -> None:
    assert byte_range(header, len(DATA)) == expected


def test_an_empty_file_satisfies_no_range() -> None:
    assert byte_range("bytes=0-", 0) is None and byte_range("bytes=-1", 0) is None


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, Path]]:
    folder = tmp_path_factory.mktemp("served")
    (folder / "index.html").write_text("<!doctype html><title>site</title>")
    (folder / "db").mkdir()
    (folder / "db" / "survey.db.0000").write_bytes(DATA)
    (folder / "empty.bin").write_bytes(b"")
    httpd = site_server(folder, 0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield "127.0.0.1", httpd.server_address[1], folder
    httpd.shutdown()
    httpd.server_close()


def fetch(
    server: tuple[str, int, Path], path: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    host, port, _ = server
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def test_a_file_without_range_comes_whole_and_says_it_accepts_ranges(server) -> None:  # type: ignore[no-untyped-def]
    status, headers, body = fetch(server, "/db/survey.db.0000")
    assert status == 200 and body == DATA
    assert headers["accept-ranges"] == "bytes" and headers["content-length"] == "1024"


@pytest.mark.parametrize(
    ("asked", "first", "last"),
    [
        ("bytes=10-19", 10, 19),
        ("bytes=1000-", 1000, 1023),
        ("bytes=-4", 1020, 1023),
        ("bytes=1020-9999", 1020, 1023),
    ],
)
def test_a_range_comes_back_as_206_with_its_content_range(server, asked: str, first: int, last: int) -> None:  # type: ignore[no-untyped-def]
    status, headers, body = fetch(server, "/db/survey.db.0000", {"Range": asked})
    assert status == 206
    assert headers["content-range"] == f"bytes {first}-{last}/1024"
    assert headers["content-length"] == str(last - first + 1)
    assert headers["accept-ranges"] == "bytes"
    assert body == DATA[first : last + 1]


def test_an_unsatisfiable_range_is_416_naming_the_length(server) -> None:  # type: ignore[no-untyped-def]
    cases = [("bytes=1024-", "/db/survey.db.0000", 1024), ("bytes=-0", "/db/survey.db.0000", 1024),
             ("bytes=0-", "/empty.bin", 0)]  # fmt: skip
    for asked, path, length in cases:
        status, headers, body = fetch(server, path, {"Range": asked})
        assert status == 416 and headers["content-range"] == f"bytes */{length}" and body == b""


def test_head_answers_a_range_without_a_body(server) -> None:  # type: ignore[no-untyped-def]
    status, headers, body = fetch(server, "/db/survey.db.0000", {"Range": "bytes=100-199"}, method="HEAD")
    assert status == 206 and headers["content-range"] == "bytes 100-199/1024" and body == b""
    status, headers, body = fetch(server, "/db/survey.db.0000", method="HEAD")
    assert status == 200 and headers["content-length"] == "1024" and headers["accept-ranges"] == "bytes"


def test_ranges_it_does_not_serve_fall_back_to_the_whole_file(server) -> None:  # type: ignore[no-untyped-def]
    status, _, body = fetch(server, "/db/survey.db.0000", {"Range": "bytes=0-1,5-6"})
    assert status == 200 and body == DATA
    stale = {"Range": "bytes=0-9", "If-Range": "Mon, 01 Jan 2001 00:00:00 GMT"}  # the file changed since
    status, _, body = fetch(server, "/db/survey.db.0000", stale)
    assert status == 200 and body == DATA
    _, headers, _ = fetch(server, "/db/survey.db.0000", method="HEAD")
    fresh = {"Range": "bytes=0-9", "If-Range": headers["last-modified"]}
    assert fetch(server, "/db/survey.db.0000", fresh)[0] == 206


def test_folders_and_missing_files_behave_as_before(server) -> None:  # type: ignore[no-untyped-def]
    status, _, body = fetch(server, "/", {"Range": "bytes=0-3"})
    assert status == 200 and b"<title>site</title>" in body
    assert fetch(server, "/db", {"Range": "bytes=0-3"})[0] == 301
    assert fetch(server, "/db/survey.db.9999", {"Range": "bytes=0-3"})[0] == 404
