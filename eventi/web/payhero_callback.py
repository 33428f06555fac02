"""Blueprint for PayHero: the payment callback, and the URL every STK push gives PayHero for it."""
import logging
from typing import Any, NoReturn

from flask import Blueprint, Response, jsonify, request
from marshmallow import ValidationError

from .. import metrics
from ..errors import Unauthorized, ValidationFailed
from ..payhero.callbacks import CALLBACK_PATH, parse_callback
from ..runtime import current_runtime
from ..schemas import CallbackAckSchema, CallbackFlatSchema, CallbackV2Schema, TokenQuerySchema
from . import examples as ex
from .common import json_body
from .declare import declare, ok

log = logging.getLogger(__name__)

bp = Blueprint("payhero", __name__)

@bp.post(CALLBACK_PATH)
@declare(
    "PayHero's payment result for one order", tags=["PayHero"],
    description="Called by PayHero with the per-order callback token the STK push carried. Both PayHero "
                "formats are accepted. ResultCode 0 completes the order, 1032 cancels it, anything else fails "
                "it; an amount different from the order's fails it with `amount_mismatch`. Repeated and late "
                "deliveries change nothing, announce the final status again and answer `duplicate: true`. "
                "A 503 asks for a redelivery; a write the store applied anyway is announced without one. "
                "Fields are strictly typed (`400` "
                "otherwise): `ResultCode` a JSON integer, `Amount` a JSON number with no fraction, `status` "
                "and `success` JSON booleans; a success needs its non-blank receipt, and flags that contradict "
                "the result (`ResultCode` 0 with `status: false` or `Status: \"Failed\"`) are refused.",
    query=TokenQuerySchema, query_examples={"token": ex.STATUS_TOKEN},
    body={"oneOf": [CallbackV2Schema, CallbackFlatSchema]}, body_examples=ex.CALLBACK_BODIES,
    responses={200: ok(CallbackAckSchema, {"stored": {"received": True}, "repeated": {"received": True, "duplicate": True}})},
    errors=["validation_error", "invalid_json", "malformed_body", "unauthorized", "not_found", "request_entity_too_large",
            "unsupported_media_type", "store_unavailable"], security="callbackToken")
def callback(query: dict[str, Any]) -> Response:
    """Accept a payment result for one order, proven by its callback token.

    A missing token is a 401 before the body is read; payhero.parse_callback tells PayHero's two formats
    apart; then the token must be the callback token of the order the body names.
    """
    token = query["token"]
    if not token:
        _reject("missing token")
    payload = json_body()
    try:
        result = parse_callback(payload)
    except ValidationError as exc:
        _count("rejected")
        raise ValidationFailed(details=exc.messages) from None
    p = current_runtime()
    if not p.tokens.check_callback_token(result.order_id, token):
        _reject("wrong token", result.order_id)
    outcome = p.callbacks.apply(result, raw=request.get_data(as_text=True))
    if outcome.duplicate:
        return jsonify(received=True, duplicate=True)
    if not outcome.verified:  # strict mode: kept pending until transaction-status confirms it
        return jsonify(received=True, verified=False)
    return jsonify(received=True)


def _reject(why: str, order_id: str | None = None) -> NoReturn:
    _count("rejected")
    metrics.CALLBACKS_UNAUTHORIZED.inc()
    log.warning("PayHero callback rejected (%s) orderId=%s ip=%s", why, order_id, request.remote_addr)
    raise Unauthorized()


def _count(outcome: str) -> None:
    metrics.CALLBACKS.labels(outcome).inc()
