"""Serve a built leaderboard site over HTTP on 127.0.0.1 only (``http.server``, read-only).

>>> import tempfile, urllib.request
>>> with tempfile.TemporaryDirectory() as d:
...     _ = (Path(d) / "index.html").write_text("hello")
...     url, stop = serve_in_thread(d)
...     body = urllib.request.urlopen(url + "index.html").read()
...     stop()
>>> url.startswith("http://127.0.0.1:"), body
(True, b'hello')
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ..errors import ImiBenchError

__all__ = ["HOST", "make_server", "serve_forever", "serve_in_thread"]

log = logging.getLogger(__name__)

#: The only address the server binds.
HOST = "127.0.0.1"


class _Handler(SimpleHTTPRequestHandler):
    """Static files of one folder; requests are logged through :mod:`logging`, not stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def end_headers(self) -> None:
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()


def make_server(directory: str | Path, port: int = 0) -> ThreadingHTTPServer:
    """An HTTP server of ``directory`` bound to 127.0.0.1 (``port`` 0: any free port).

    Raises:
        ImiBenchError: When ``directory`` is not a folder with an ``index.html``.
    """
    root = Path(directory).absolute()
    if not (root / "index.html").is_file():
        raise ImiBenchError(f"{root} is not a built site (no index.html); run 'imi-bench leaderboard build' first")
    handler = functools.partial(_Handler, directory=str(root))
    server = ThreadingHTTPServer((HOST, port), handler)
    server.daemon_threads = True
    return server


def _url(server: ThreadingHTTPServer) -> str:
    return f"http://{HOST}:{server.server_address[1]}/"


def serve_in_thread(directory: str | Path, port: int = 0) -> tuple[str, Callable[[], None]]:
    """Serve ``directory`` from a background thread.

    Args:
        directory: The built site.
        port: Port (0: any free port).

    Returns:
        The site's URL (``http://127.0.0.1:<port>/``) and a function that stops the server and waits
        for its thread.
    """
    server = make_server(directory, port)
    thread = threading.Thread(target=server.serve_forever, name="imi-bench-site", daemon=True)
    thread.start()

    def shutdown() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)

    return _url(server), shutdown


def serve_forever(directory: str | Path, port: int = 0, on_ready: Callable[[str], None] | None = None) -> None:
    """Serve ``directory`` until interrupted (Ctrl-C).

    Args:
        directory: The built site.
        port: Port (0: any free port).
        on_ready: Called with the URL once the server listens.
    """
    server = make_server(directory, port)
    url = _url(server)
    log.info("serving %s at %s", directory, url)
    if on_ready is not None:
        on_ready(url)
    try:
        server.serve_forever()
    finally:
        server.server_close()
