"""One error shape for every failure: RFC 9457 problem details that keep `error` and `message` (eventi/problems.py)."""
import logging
from functools import cache
from typing import Any, NamedTuple

from flask import Flask, Response, json, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException, MethodNotAllowed, default_exceptions

from .. import problems
from ..errors import EventiError
from . import pages

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
"""Retry-After of a 429 or 503 whose error does not set its own."""


def error_response(status: int, code: str, message: str, details: dict[str, Any] | list[Any] | None = None,
                   title: str | None = None, **extra: Any) -> Response:
    """The problem details answer of one error; `title` defaults to the message (the code's usual sentence)."""
    if details:
        extra["details"] = details
    body = problems.problem(status, code, title or message, message, **extra)
    return Response(json.dumps(body), status=status, mimetype=problems.MEDIA_TYPE)


def http_error_code(exc: HTTPException) -> str:
    """werkzeug's name of an HTTP error as an error code: "Method Not Allowed" -> method_not_allowed."""
    return (exc.name or "error").lower().replace(" ", "_")


def problem_title(error: type[EventiError]) -> str:
    """The title of an error class's problem type: its `title`, else its usual message."""
    return error.title or error.message


class ErrorKind(NamedTuple):
    """What every answer of one error code shares."""

    status: int
    title: str
    message: str


@cache
def error_kinds() -> dict[str, ErrorKind]:
    """Error code -> its status, problem title and usual message: every EventiError's (imported once the app is
    made), then werkzeug's HTTP errors (code and title by name, message their description) for the codes no
    EventiError has."""
    found: dict[str, ErrorKind] = {}
    subclasses: list[type[EventiError]] = [EventiError]
    while subclasses:
        error = subclasses.pop()
        found.setdefault(error.code, ErrorKind(error.status, problem_title(error), error.message))
        subclasses.extend(error.__subclasses__())
    for status, http_error in default_exceptions.items():
        exc = http_error()
        found.setdefault(http_error_code(exc), ErrorKind(status, exc.name, str(exc.description)))
    return found


@cache
def titles() -> dict[str, str]:
    """Error code -> the title of its problem type (error_kinds)."""
    return {code: kind.title for code, kind in error_kinds().items()}


def eventi_error_response(exc: EventiError) -> Response:
    """An EventiError's answer, with Retry-After on a 429 or 503 or when the error sets one."""
    title = titles().get(exc.code, problem_title(type(exc)))
    response = error_response(exc.status, exc.code, exc.message, exc.details, title=title, **exc.extra)
    if exc.status in (429, 503) or exc.retry_after is not None:
        response.headers["Retry-After"] = str(exc.retry_after or RETRY_AFTER_SECONDS)
    return response


def unexpected_error_response() -> Response:
    """The answer to an exception no handler knows (logged by the caller)."""
    return error_response(500, EventiError.code, EventiError.message)


def init_app(app: Flask) -> None:
    """Register the handlers that turn every exception into problem details, and Retry-After on every 503."""

    app.register_error_handler(EventiError, eventi_error_response)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> ResponseReturnValue:

        if exc.code == 404 and request.url_rule is None and pages.is_page_path(request.path):
            return pages.unknown_path()  # a person's mistyped or stale link: a page, not JSON
        code = http_error_code(exc)
        response = error_response(exc.code or 500, code, exc.description or exc.name, title=titles().get(code, exc.name))
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("Unhandled error")
        return unexpected_error_response()

    @app.after_request
    def _retry_after_every_503(response: Response) -> Response:
        if response.status_code == 503 and "Retry-After" not in response.headers:
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)  # /readyz's, and any other 503
        return response
