"""Helpers the blueprints share: the per-worker parts, JSON bodies and query strings."""
from flask import current_app, request
from marshmallow import ValidationError

from ..errors import EventiError, ValidationFailed


class UnsupportedMediaType(EventiError):
    status, code, message = 415, "unsupported_media_type", "Send the body as application/json."


class InvalidJson(EventiError):
    status, code, message = 400, "invalid_json", "The body is not valid JSON."


def parts():
    """The per-worker Parts built by the app factory."""
    return current_app.extensions["eventi"]


def json_body():
    """The request body as a JSON object, or an error naming what is wrong with it."""
    if request.mimetype != "application/json":
        raise UnsupportedMediaType()
    body = request.get_json(silent=True)
    if body is None:
        raise InvalidJson()
    if not isinstance(body, dict):
        raise ValidationFailed(details={"_schema": ["Expected a JSON object."]})
    return body


def load(schema, data):
    """Validate data with a marshmallow schema; errors become a 400 with details."""
    try:
        return schema.load(data)
    except ValidationError as exc:
        raise ValidationFailed(details=exc.messages) from None


def query(schema):
    """Validate the query string (first value of each key)."""
    return load(schema, request.args.to_dict(flat=True))
