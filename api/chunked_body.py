"""Chunked request bodies (no Content-Length) are limited like sized ones: 413 past MAX_CONTENT_LENGTH.

Werkzeug reads a chunked body up to the limit and silently drops the rest, so a 10 MB chunked JSON body
became a truncated one (400 `invalid_json`). This middleware reads one byte past the limit and hands the
app a sized body: the whole body, or one whose Content-Length is past the limit, which Flask refuses.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from flask import Flask


class ChunkedBodyLimit:
    """WSGI middleware giving chunked requests a Content-Length (reading at most the limit plus one byte)."""

    def __init__(self, app: Flask) -> None:
        self.flask_app = app
        self.wsgi_app = app.wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        limit = self.flask_app.config.get("MAX_CONTENT_LENGTH")
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if limit is not None and chunked and not environ.get("CONTENT_LENGTH"):
            body = environ["wsgi.input"].read(limit + 1)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            del environ["HTTP_TRANSFER_ENCODING"]  # else Werkzeug ignores the Content-Length, as HTTP says
        return self.wsgi_app(environ, start_response)


def register_chunked_body_limit(app: Flask) -> None:
    app.wsgi_app = ChunkedBodyLimit(app)  # type: ignore[method-assign]
