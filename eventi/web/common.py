"""Helpers the blueprints share: JSON bodies, schema loading, the status token check."""
from typing import Any

from flask import current_app, request
from gunicorn.http.errors import NoMoreData, ParseException
from marshmallow import Schema, ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from .. import strict_json
from ..errors import EventiError, ValidationFailed
from ..runtime import current_runtime
from ..server.gunicorn_worker import close_connection_after_response


class UnsupportedMediaType(EventiError):
    status, code, message = 415, "unsupported_media_type", "Send the body as application/json."


class InvalidJson(EventiError):
    status, code, message = 400, "invalid_json", "The body is not valid JSON."


class MalformedBody(EventiError):
    status, code, message = 400, "malformed_body", "The request body's framing is broken or incomplete."


def json_body() -> dict[str, Any]:
    """The request body as a JSON object, or an error naming what is wrong with it."""
    if request.mimetype != "application/json":
        raise UnsupportedMediaType()
    try:
        body = strict_json.loads(body_bytes())
    except strict_json.InvalidJson as exc:
        raise InvalidJson(str(exc)) from None
    if not isinstance(body, dict):
        raise ValidationFailed(details={"_schema": ["Expected a JSON object."]})
    return body


def body_bytes() -> bytes:
    """The whole request body (cached); 413 past MAX_CONTENT_LENGTH, with Content-Length or chunked.

    werkzeug cuts a chunked body at the limit and returns what it read without a word, so the
    stream is opened one byte wider than allowed: holding that byte means the body was too large.
    """
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if limit is not None:
        request.max_content_length = limit + 1  # read by werkzeug when the stream is first opened
    try:
        data = request.get_data(cache=True)
    except (ParseException, NoMoreData):  # gunicorn's chunked reader: a bad chunk size, a missing CRLF
        close_connection_after_response()
        raise MalformedBody() from None
    if limit is not None and len(data) > limit:
        raise RequestEntityTooLarge()
    return data


def load(schema: Schema, data: dict[str, Any]) -> dict[str, Any]:
    """Validate data with a marshmallow schema; errors become a 400 with details."""
    try:
        loaded: dict[str, Any] = schema.load(data)
        return loaded
    except ValidationError as exc:
        raise ValidationFailed(details=exc.messages) from None


def status_token_matches(order_id: str | None, token: str | None) -> bool:
    """Whether token is order_id's statusToken. A malformed id (None, see converters.py) or a missing token never
    matches: unknown, malformed and wrong-token orders must all look the same to the caller."""
    return order_id is not None and bool(token) and current_runtime().tokens.check_status_token(order_id, token)
