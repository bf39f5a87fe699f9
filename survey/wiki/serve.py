"""``survey site serve``: the built site over local HTTP, for a preview."""

from __future__ import annotations

import functools
from collections.abc import Callable
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from survey.errors import SurveyError


class QuietHandler(SimpleHTTPRequestHandler):
    """Static files from the site folder, without a log line per request."""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002  (the base class's name)
        return


def site_server(folder: Path, port: int) -> ThreadingHTTPServer:
    """An HTTP server for ``folder`` on 127.0.0.1:``port`` (0: any free port), not yet serving."""
    if not (folder / "index.html").is_file():
        raise SurveyError(f"no built site in {folder}; run `survey site build --out {folder}` first")
    handler = functools.partial(QuietHandler, directory=str(folder.resolve()))
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
