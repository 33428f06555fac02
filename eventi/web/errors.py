"""One JSON error shape for every failure: {"error", "message", "details"?}."""
import logging
from typing import Any

from flask import Flask, Response, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from ..errors import EventiError
from . import pages

log = logging.getLogger(__name__)


def error_response(status: int, code: str, message: str, details: dict[str, Any] | list[Any] | None = None,
                   **extra: Any) -> tuple[Response, int]:
    body = {"error": code, "message": message, **extra}
    if details:
        body["details"] = details
    return jsonify(body), status


def init_app(app: Flask) -> None:
    """Register the handlers that turn every exception into the JSON error shape."""

    @app.errorhandler(EventiError)
    def _eventi_error(exc: EventiError) -> tuple[Response, int]:
        response, status = error_response(exc.status, exc.code, exc.message, exc.details, **exc.extra)
        if exc.status == 429 or exc.retry_after is not None:
            response.headers["Retry-After"] = str(exc.retry_after or 5)
        return response, status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> ResponseReturnValue:
        if exc.code == 404 and request.url_rule is None and pages.is_page_path(request.path):
            return pages.unknown_path()  # a person's mistyped or stale link: a page, not JSON
        code = (exc.name or "error").lower().replace(" ", "_")
        return error_response(exc.code or 500, code, exc.description or exc.name)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("Unhandled error")
        return error_response(500, "internal_error", "Something went wrong on our side.")
