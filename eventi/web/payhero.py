"""Blueprint for PayHero: the payment callback, and the URL every STK push gives PayHero for it."""
import logging
from collections.abc import Callable
from typing import NoReturn

from flask import Blueprint, Response, jsonify, request
from marshmallow import ValidationError

from .. import metrics
from ..errors import Unauthorized, ValidationFailed
from ..payhero import parse_callback
from ..schemas import CallbackQuerySchema
from ..tokens import OrderTokens
from .common import current_runtime, json_body, query

log = logging.getLogger(__name__)

bp = Blueprint("payhero", __name__)

CALLBACK_PATH = "/api/payhero/callback"
"""The callback route; every STK push's callback_url points here."""

_QUERY = CallbackQuerySchema()


def callback_urls(base_url: str, tokens: OrderTokens) -> Callable[[str], str]:
    """order id -> the callback_url of its STK push: PUBLIC_BASE_URL, the callback route, its callback token."""
    def callback_url(order_id: str) -> str:
        return f"{base_url}{CALLBACK_PATH}?token={tokens.callback_token(order_id)}"
    return callback_url


@bp.post(CALLBACK_PATH)
def callback() -> Response:
    """Accept a payment result for one order, proven by its callback token."""
    token = query(_QUERY)["token"]
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
    log.warning("PayHero callback rejected (%s) orderId=%s ip=%s", why, order_id, request.remote_addr)
    raise Unauthorized()


def _count(outcome: str) -> None:
    metrics.CALLBACKS.labels(outcome).inc()
