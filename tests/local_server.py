"""A threaded HTTP server on 127.0.0.1 serving bytes the test makes, for the download tests (no internet here)."""

from __future__ import annotations

import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


def serve_bytes(
    handler,
    body: bytes,
    *,
    ranges=True,
    cut=False,
    content_type="application/octet-stream",
    extra=(),
    length=True,
):
    """Answer GET with ``body``; honour ``Range: bytes=N-`` if ``ranges``; with ``cut`` stop half-way; without
    ``length`` send no Content-Length (the body ends when the connection closes, so a cut looks like the end)."""
    start, status = 0, 200
    requested = handler.headers.get("Range")
    if ranges and requested:
        start = int(re.fullmatch(r"bytes=(\d+)-", requested).group(1))
        if start >= len(body):
            handler.send_response(416)
            handler.send_header("Content-Range", f"bytes */{len(body)}")
            handler.end_headers()
            return
        status = 206
    payload = body[start:]
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    if length:
        handler.send_header("Content-Length", str(len(payload)))
    if status == 206:
        handler.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
    for name, value in extra:
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(payload[: len(payload) // 2] if cut else payload)
    handler.wfile.flush()
    handler.close_connection = True


class Server:
    """Routes: path -> callable(handler, query, n) where n counts earlier requests to that path."""

    def __init__(self):
        self.routes = {}
        self.requests: list[tuple[str, dict]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                parts = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(parts.query))
                count = sum(1 for p, _ in server.requests if p == parts.path)
                server.requests.append((parts.path, dict(self.headers)))
                route = server.routes.get(parts.path)
                if route is None:
                    self.send_error(404, "Not Found")
                    return
                route(self, query, count)

            def log_message(self, *args):  # keep pytest output clean
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def file(self, path, body, **kwargs):
        self.routes[path] = lambda h, q, n: serve_bytes(h, body, **kwargs)

    def hits(self, path):
        return [headers for p, headers in self.requests if p == path]


@pytest.fixture
def server(monkeypatch):
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    s = Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()
