"""Blueprint for the shopper's browser: create an order, read its status, wait for it."""
from typing import Any

from flask import Blueprint, Response, jsonify, request, url_for

from ..errors import NotFound
from ..schemas import (
    IDEMPOTENCY_KEY,
    OrderCreatedSchema,
    OrderCreateSchema,
    OrderStatusSchema,
    TokenQuerySchema,
    WaitQuerySchema,
    WaitResultSchema,
)
from . import examples as ex
from .client_socket import client_connection
from .common import current_runtime, status_token_matches
from .converters import OrderId
from .declare import Header, declare, ok

bp = Blueprint("orders", __name__, url_prefix="/api/orders")

IDEMPOTENCY_KEY_HEADER = Header(
    "Idempotency-Key", "idempotency_key", IDEMPOTENCY_KEY,
    error="1-64 characters of A-Z, a-z, 0-9, '.', '_', ':' or '-'.", example=ex.IDEMPOTENCY_KEY,
    description="Optional; one per checkout attempt (1-64 of `A-Za-z0-9._:-`). The same key with the same body "
                "within 24 h answers the first answer again (header `Idempotent-Replayed: true`): no second order, "
                "no second STK push. The same key with another body is `422 idempotency_key_reused`; while the "
                "first request is still being answered, `409 idempotency_key_in_use` with `Retry-After`.")


@bp.post("")
@declare(
    "Create a pending order, priced by the server", tags=["checkout"],
    description="Holds the tickets, stores a pending order, sends one M-Pesa STK push and returns the token "
                "and absolute URLs the payment page waits on. The amount is the event's stored price times "
                "`quantity`: an `amount` in the body is an unknown field. Unknown fields, wrong types and "
                "operator objects are rejected; nothing is stored then, nor when the answer is 404, 409 or 429.",
    headers=[IDEMPOTENCY_KEY_HEADER], body=OrderCreateSchema, body_examples=ex.ORDER_BODIES,
    responses={201: ok(OrderCreatedSchema, {"created": ex.CREATED, "push uncertain": ex.CREATED_UNCERTAIN},
                       "Created (or, with a replayed Idempotency-Key, the first answer again). With `pushState: "
                       "\"uncertain\"` PayHero timed out or answered 5xx: the push may have reached the phone, so the "
                       "order stays pending and its status decides (a callback, or reconcile's `no_callback` failure).")},
    errors=["validation_error", "invalid_json", "malformed_body", "event_not_found", "sold_out", "price_changed",
            "idempotency_key_in_use",
            "request_entity_too_large", "unsupported_media_type", "idempotency_key_reused", "too_many_pushes",
            "payment_provider_error", "store_unavailable"])
def create_order(idempotency_key: str | None, body: dict[str, Any]) -> tuple[Response, int]:
    """Store a pending order priced by the server; hand back its status token and absolute URLs.

    With an Idempotency-Key, a repeat of the same request answers the first answer again.
    """
    created = current_runtime().creations.create(body, idempotency_key, created_body)
    response = jsonify(created.body)
    if created.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response, created.status


def created_body(order: dict[str, Any]) -> dict[str, Any]:
    """The 201 body: URLs absolute on PUBLIC_BASE_URL, so an app on another origin can follow them."""
    p = current_runtime()
    order_id = str(order["_id"])
    token = p.tokens.status_token(order_id)
    base = p.settings.public_base_url
    body = {
        "orderId": order_id,
        "paymentStatus": order["status"],
        "statusToken": token,
        "amount": order["amount"],
        "currency": order["currency"],
        "waitUrl": base + url_for("orders.wait_for_status", order_id=order_id, token=token),
        "statusUrl": base + url_for("orders.get_status", order_id=order_id, token=token),
    }
    if order.get("pushState"):  # PayHero may or may not have prompted the phone: the order's status decides
        body["pushState"] = order["pushState"]
    return body


@bp.get("/<order_id:order_id>")
@declare(
    "Read an order's current status", tags=["checkout"], query=TokenQuerySchema, query_examples={"token": ex.STATUS_TOKEN},
    responses={200: ok(OrderStatusSchema, {"pending": ex.PENDING, "push uncertain": ex.UNCERTAIN,
                                               "completed": ex.COMPLETED, "failed": ex.FAILED,
                                               "refund needed": ex.REFUND_NEEDED})},
    errors=["validation_error", "not_found", "store_unavailable"], security="statusToken")
def get_status(order_id: OrderId | None, query: dict[str, Any]) -> Response:
    """The order's current status."""
    order_id = _authorised(order_id, query["token"])
    body = current_runtime().reader.current(order_id)
    if body is None:
        raise NotFound()
    return jsonify(body)


@bp.get("/<order_id:order_id>/wait")
@declare(
    "Long-poll until the payment is final", tags=["checkout"],
    description="Held until the status is final (answered the instant PayHero's callback is stored, on any "
                "worker or machine) or until `timeout` seconds pass, then answered with `final: false`. "
                "Call it again while `final` is false. Responses carry `Cache-Control: no-store` and "
                "`X-Accel-Buffering: no`; proxies must allow more than the longest hold (120 s). "
                "A pending answer with `Retry-After` was cut short because the server is stopping "
                "(a deploy): not a hold; call again after that many seconds (0: at once).",
    query=WaitQuerySchema, query_examples={"token": ex.STATUS_TOKEN, "timeout": 60},
    responses={200: ok(WaitResultSchema, {
        "completed": {**ex.COMPLETED, "final": True, "waitedMs": 8412},
        "cancelled": {**ex.CANCELLED, "final": True, "waitedMs": 15003},
        "refund needed": {**ex.REFUND_NEEDED, "final": True, "waitedMs": 30118},
        "timed out": {**ex.PENDING, "final": False, "waitedMs": 60001},
    })},
    errors=["validation_error", "not_found", "too_many_waits", "store_unavailable"], security="statusToken")
def wait_for_status(order_id: OrderId | None, query: dict[str, Any]) -> Response:
    """Hold the request until the status is final or the timeout passes."""
    order_id = _authorised(order_id, query["token"])
    p = current_runtime()
    timeout = query["timeout"] or p.settings.wait_default_seconds
    result = p.waits.wait(order_id, timeout, client=client_connection(request.environ))
    response = jsonify({**result.body, "final": result.final, "waitedMs": result.waited_ms})
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"
    if result.cut_short:  # the page's sign not to count this answer as a hold (docs/frontend.md)
        response.headers["Retry-After"] = "0"
    return response


def _authorised(order_id: OrderId | None, token: str | None) -> OrderId:
    """The order id when token is its statusToken; else the 404 every unknown order answers."""
    if order_id is None or not status_token_matches(order_id, token):
        raise NotFound()
    return order_id
