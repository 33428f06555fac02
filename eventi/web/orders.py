"""Blueprint for the shopper's browser: create an order, read its status, wait for it."""
import json
import logging
from collections.abc import Iterator
from contextlib import closing
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from flask.json.provider import JSONProvider

from ..errors import EventiError, NotFound
from ..problems import problem
from ..runtime import current_runtime
from ..schemas import (
    IDEMPOTENCY_KEY,
    OrderCreatedSchema,
    OrderCreateSchema,
    OrderStatusSchema,
    TokenQuerySchema,
    WaitQuerySchema,
    WaitResultSchema,
)
from ..services.waiting import HeldWait, WaitResult
from . import examples as ex
from .client_socket import client_connection
from .common import status_token_matches
from .converters import OrderId
from .created import created_body
from .declare import Header, declare, ok
from .deferred import DeferredResponse
from .error_handlers import error_response, problem_title

bp = Blueprint("orders", __name__, url_prefix="/api/orders")
log = logging.getLogger(__name__)


@bp.after_request
def _never_cached(response: Response) -> Response:
    """Every answer about an order (its token, its status, its errors) is the shopper's alone and of this moment."""
    response.headers["Cache-Control"] = "no-store"
    return response

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
                       "order stays pending and its status decides (a callback, or reconcile's `no_callback` failure).",
                       headers=("Location", "Idempotent-Replayed"))},
    errors=["validation_error", "invalid_json", "malformed_body", "event_not_found", "sold_out", "price_changed",
            "idempotency_key_in_use",
            "request_entity_too_large", "unsupported_media_type", "idempotency_key_reused", "too_many_pushes",
            "payment_provider_error", "store_unavailable"])
def create_order(idempotency_key: str | None, body: dict[str, Any]) -> tuple[Response, int]:
    """Store a pending order priced by the server; hand back its status token and absolute URLs.

    With an Idempotency-Key, a repeat of the same request answers the first answer again.
    """
    created = current_runtime().creations.create(body, idempotency_key, created_body)
    if created.status >= 400:  # a kept error answer (a refused push's 502), replayed as it was first answered
        kept = dict(created.body)
        response = error_response(created.status, kept.pop("error"), kept.pop("message"), **kept)
    else:
        response = jsonify(created.body)
        response.headers["Location"] = created.body["statusUrl"]
    if created.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response, created.status


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
                "(a deploy): not a hold; call again after that many seconds (0: at once). With `heartbeat=N` "
                "the 200 starts at once and a space is sent every N s until the JSON body (valid JSON: leading "
                "whitespace); then a stopping server says `retryAfter: 0` in the body, and a store failure after "
                "the start is the error shape (`error`, `message`) with `retryAfter`: call again.",
    query=WaitQuerySchema, query_examples={"token": ex.STATUS_TOKEN, "timeout": 60, "heartbeat": 5},
    responses={200: ok(WaitResultSchema, {
        "completed": {**ex.COMPLETED, "final": True, "waitedMs": 8412},
        "cancelled": {**ex.CANCELLED, "final": True, "waitedMs": 15003},
        "refund needed": {**ex.REFUND_NEEDED, "final": True, "waitedMs": 30118},
        "timed out": {**ex.PENDING, "final": False, "waitedMs": 60001},
    }, headers=("Retry-After",))},
    errors=["validation_error", "not_found", "too_many_waits", "store_unavailable"], security="statusToken")
def wait_for_status(order_id: OrderId | None, query: dict[str, Any]) -> Response:
    """Hold the request until the status is final or the timeout passes."""
    order_id = _authorised(order_id, query["token"])
    p = current_runtime()
    timeout = query["timeout"] or p.settings.wait_default_seconds
    held = p.waits.begin(order_id, timeout, client=client_connection(request.environ))  # refusals: before the 200
    if query["heartbeat"]:
        response = Response(heartbeats(held, query["heartbeat"]), mimetype="application/json")
    else:  # answered once Flask has let go of the request: the hold keeps only what answering needs
        response = DeferredResponse(HeldAnswer(held, current_app.json).produce, abandon=held.close)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"
    return response


class HeldAnswer:
    """A plain wait's answer, worked out after Flask let go (`provider`: the app's JSON, its contexts gone).
    `produce` is a bound method, not a partial or a closure: smaller, and Python inlines its call, so the
    parked greenlet saves one C frame fewer."""

    __slots__ = ("_held", "_provider")

    def __init__(self, held: HeldWait, provider: JSONProvider) -> None:
        self._held, self._provider = held, provider

    def produce(self) -> Response:
        """Hold to the end, then the JSON answer."""
        result = self._held.run()
        body = self._provider.dumps(wait_body(result), separators=(",", ":")) + "\n"
        response = Response(body, mimetype="application/json")
        if result.cut_short:  # the page's sign not to count this answer as a hold (docs/frontend.md)
            response.headers["Retry-After"] = "0"
        return response


def wait_body(result: WaitResult) -> dict[str, Any]:
    """The wait route's JSON answer."""
    return {**result.body, "final": result.final, "waitedMs": result.waited_ms}


def heartbeats(held: HeldWait, every: int) -> Iterator[bytes]:
    """The streamed answer: a space at once and every `every` s while held, then the JSON body. The 200 is sent
    by then, so what would have been a header or an error status is in the body: `retryAfter` (0) when cut
    short by a stopping server, and a store failure as problem details with `retryAfter` (a retryable answer)."""
    yield b" "
    try:
        with closing(held.steps(every)) as steps:  # closed here too when the client goes mid-stream
            for step in steps:
                if step is None:
                    yield b" "
                else:
                    yield _json_line({**wait_body(step), **({"retryAfter": 0} if step.cut_short else {})})
    except EventiError as exc:
        log.warning("Long poll failed after its answer started (%s): told the client to retry", exc.code)
        yield _json_line(problem(exc.status, exc.code, problem_title(type(exc)), exc.message,
                                 retryAfter=exc.retry_after or 1))


def _json_line(body: dict[str, Any]) -> bytes:
    return (json.dumps(body, separators=(",", ":"), default=str) + "\n").encode()


def _authorised(order_id: OrderId | None, token: str | None) -> OrderId:
    """The order id when token is its statusToken; else the 404 every unknown order answers."""
    if order_id is None or not status_token_matches(order_id, token):
        raise NotFound()
    return order_id
