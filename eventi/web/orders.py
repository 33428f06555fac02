"""Blueprint for the shopper's browser: create an order, read its status, wait for it."""
import functools

from flask import Blueprint, jsonify, request, url_for

from ..errors import NotFound, ValidationFailed
from ..schemas import IDEMPOTENCY_KEY, OrderCreateSchema, TokenQuerySchema, WaitQuerySchema
from ..store import parse_order_id
from .client_socket import client_connection
from .common import json_body, load, parts, query

bp = Blueprint("orders", __name__, url_prefix="/api/orders")

_CREATE = OrderCreateSchema()
_TOKEN = TokenQuerySchema()


@functools.cache
def _wait_query(max_seconds):
    return WaitQuerySchema(max_seconds)


@bp.post("")
def create_order():
    """Store a pending order priced by the server; hand back its status token and absolute URLs.

    With an Idempotency-Key, a repeat of the same request answers the first answer again.
    """
    key = _idempotency_key()
    fields = load(_CREATE, json_body())
    created = parts().creations.create(fields, key, created_body)
    response = jsonify(created.body)
    if created.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response, created.status


def _idempotency_key():
    key = request.headers.get("Idempotency-Key")
    if key is not None and not IDEMPOTENCY_KEY.match(key):
        raise ValidationFailed(details={"Idempotency-Key": ["1-64 characters of A-Z, a-z, 0-9, '.', '_', ':' or '-'."]})
    return key


def created_body(order):
    """The 201 body: URLs absolute on PUBLIC_BASE_URL, so an app on another origin can follow them."""
    p = parts()
    order_id = str(order["_id"])
    token = p.tokens.status_token(order_id)
    base = p.settings["PUBLIC_BASE_URL"]
    return {
        "orderId": order_id,
        "paymentStatus": order["status"],
        "statusToken": token,
        "amount": order["amount"],
        "currency": order["currency"],
        "waitUrl": base + url_for("orders.wait_for_status", order_id=order_id, token=token),
        "statusUrl": base + url_for("orders.get_status", order_id=order_id, token=token),
    }


@bp.get("/<order_id>")
def get_status(order_id):
    """The order's current status."""
    token = query(_TOKEN)["token"]
    _authorise(order_id, token)
    body = parts().reader.current(order_id)
    if body is None:
        raise NotFound()
    return jsonify(body)


@bp.get("/<order_id>/wait")
def wait_for_status(order_id):
    """Hold the request until the status is final or the timeout passes."""
    p = parts()
    args = query(_wait_query(p.settings["WAIT_MAX_SECONDS"]))
    _authorise(order_id, args["token"])
    timeout = args["timeout"] or p.settings["WAIT_DEFAULT_SECONDS"]
    result = p.waits.wait(order_id, timeout, client=client_connection(request.environ))
    response = jsonify({**result.body, "final": result.final, "waitedMs": result.waited_ms})
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"
    if result.cut_short:  # the page's sign not to count this answer as a hold (docs/frontend.md)
        response.headers["Retry-After"] = "0"
    return response


def _authorise(order_id, token):
    """Unknown, malformed and wrong-token orders all look the same: 404."""
    if parse_order_id(order_id) is None or not token or not parts().tokens.check_status_token(order_id, token):
        raise NotFound()
