"""URL converters: `<order_id:order_id>` in every route that takes an order."""
from typing import Any, NewType

from bson import ObjectId
from flask import Flask
from werkzeug.routing import BaseConverter

from .examples import ORDER_ID

OrderId = NewType("OrderId", str)
"""An orderId as written in the URL (tokens sign that text), known to be a well-formed ObjectId."""


class OrderIdConverter(BaseConverter):
    """Any path segment, as the default converter; a malformed id becomes None.

    It does not refuse the segment: a refused one would answer werkzeug's own 404 (and 404 instead of 405
    for another method), where each route answers a malformed id as it answers an unknown one, after
    checking its query string: the API's JSON `not_found`, the pages' 404 page.
    """

    openapi: dict[str, Any] = {
        "in": "path", "name": "order_id", "required": True, "example": ORDER_ID,
        "description": "The orderId returned by POST /api/orders.",
        "schema": {"type": "string", "pattern": "^[0-9a-f]{24}$"},
    }
    """The path parameter as the OpenAPI document shows it."""

    def to_python(self, value: str) -> OrderId | None:
        return OrderId(value) if ObjectId.is_valid(value) else None


def init_app(app: Flask) -> None:
    """Register the converters; before the blueprints, whose rules use them."""
    app.url_map.converters["order_id"] = OrderIdConverter
