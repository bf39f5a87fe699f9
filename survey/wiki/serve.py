"""``survey site serve``: the built site over local HTTP, for a preview.

It honours single HTTP byte ranges (``Range: bytes=a-b``, ``bytes=a-``, ``bytes=-n``; 206 with
``Content-Range``, 416 when unsatisfiable, ``Accept-Ranges: bytes`` on every file), as static hosts
do: the SQL page reads the published database in place, a few pages at a time, with range requests.
A Range header it does not understand (several ranges, another unit, bad syntax) is ignored and the
whole file is sent, as HTTP allows.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from io import BufferedReader
from pathlib import Path
from typing import BinaryIO

from db.common.errors import SurveyError

_SINGLE_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
WHOLE = "whole"  # byte_range's answer for a Range header to ignore


def byte_range(header: str, size: int) -> tuple[int, int] | str | None:
    """The inclusive (first, last) bytes that ``header`` asks of a ``size``-byte file; ``WHOLE`` when
    the header is to be ignored (not one byte range, or last before first); None when unsatisfiable."""
    match = _SINGLE_RANGE.fullmatch(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return WHOLE
    first, last = match.group(1), match.group(2)
    if first == "":  # bytes=-n: the last n bytes
        n = int(last)
        return (max(0, size - n), size - 1) if n > 0 and size > 0 else None
    start = int(first)
    if last != "" and int(last) < start:
        return WHOLE
    if start >= size:
        return None
    return start, size - 1 if last == "" else min(int(last), size - 1)


class _Slice:
    """``length`` bytes of an open file from where it stands; closes the file."""

    def __init__(self, handle: BufferedReader, length: int) -> None:
        self.handle, self.left = handle, length

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = self.handle.read(n) if n else b""
        self.left -= len(data)
        return data

    def close(self) -> None:
        self.handle.close()


class QuietHandler(SimpleHTTPRequestHandler):
    """Static files from the site folder, byte ranges honoured, without a log line per request."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".wasm": "application/wasm",
                      ".js": "text/javascript", ".json": "application/json"}  # fmt: skip

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002  (the base class's name)
        return

    def end_headers(self) -> None:
        self.send_header("Accept-Ranges", "bytes")
        super().end_headers()

    def send_head(self) -> BinaryIO | _Slice | None:  # type: ignore[override]
        asked = self.headers.get("Range")
        path = self.translate_path(self.path)
        if asked is None or self.path.split("?", 1)[0].endswith("/") or not os.path.isfile(path):
            return super().send_head()
        try:
            handle = open(path, "rb")  # noqa: SIM115  (closed by the caller, as the base class's file is)
        except OSError:
            self.send_error(HTTPStatus.NOT_FOUND, "File not found")
            return None
        stat = os.fstat(handle.fileno())
        span = byte_range(asked, stat.st_size)
        if span == WHOLE or not self._if_range_holds(stat.st_mtime):
            handle.close()
            return super().send_head()
        if span is None:
            handle.close()
            self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
            self.send_header("Content-Range", f"bytes */{stat.st_size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        assert isinstance(span, tuple)
        first, last = span
        self.send_response(HTTPStatus.PARTIAL_CONTENT)
        self.send_header("Content-type", self.guess_type(path))
        self.send_header("Content-Range", f"bytes {first}-{last}/{stat.st_size}")
        self.send_header("Content-Length", str(last - first + 1))
        self.send_header("Last-Modified", self.date_time_string(int(stat.st_mtime)))
        self.end_headers()
        handle.seek(first)
        return _Slice(handle, last - first + 1)

    def _if_range_holds(self, mtime: float) -> bool:
        """No If-Range, or one naming this file's Last-Modified (else the whole file is sent)."""
        condition = self.headers.get("If-Range")
        return condition is None or condition.strip() == self.date_time_string(int(mtime))


def site_server(
    folder: Path, port: int, handler_class: type[QuietHandler] = QuietHandler
) -> ThreadingHTTPServer:
    """An HTTP server for ``folder`` on 127.0.0.1:``port`` (0: any free port), not yet serving."""
    if not (folder / "index.html").is_file():
        raise SurveyError(f"no built site in {folder}; run `survey site build --out {folder}` first")
    handler = functools.partial(handler_class, directory=str(folder.resolve()))
    try:
        return ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as exc:
        raise SurveyError(f"cannot serve on 127.0.0.1:{port}: {exc.strerror}") from None


def serve(folder: Path, port: int, echo: Callable[[str], None]) -> None:
    """Serve until interrupted."""
    server = site_server(folder, port)
    echo(f"serving {folder} at http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        echo("stopped")
    finally:
        server.server_close()
