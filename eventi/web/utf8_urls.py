"""URLs must be UTF-8: a path or query string that is not (lone surrogates included) is a 400 before routing.

werkzeug decodes both with replacement characters, so "%ED%A0%80" or "%FF" would otherwise reach the
views as U+FFFD and be answered as if the caller had sent something else.
"""
from typing import Any
from urllib.parse import unquote_to_bytes

from flask import Flask, request

from ..errors import EventiError


class InvalidUrlEncoding(EventiError):
    status, code, message = 400, "invalid_url_encoding", "The URL's path or query string is not valid UTF-8."


def init_app(app: Flask) -> None:
    """Refuse such requests before any view, on every route (404s and 405s included)."""

    @app.before_request
    def _require_utf8_url() -> None:
        if not is_utf8_url(request.environ):
            raise InvalidUrlEncoding()


def is_utf8_url(environ: dict[str, Any]) -> bool:
    """True when the request target, PATH_INFO and QUERY_STRING all decode as strict UTF-8 once unquoted.

    WSGI carries their bytes as latin-1. The raw target (gunicorn's RAW_URI, REQUEST_URI elsewhere)
    is checked too: some servers, werkzeug's test client among them, already replaced bad bytes
    in PATH_INFO.
    """
    raw_target = environ.get("RAW_URI") or environ.get("REQUEST_URI") or ""
    try:
        for part in (raw_target, environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", "")):
            unquote_to_bytes(part.encode("latin-1")).decode("utf-8")
    except UnicodeError:
        return False
    return True
