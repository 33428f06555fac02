"""PayHero: where its callbacks come to, and parsing them (both formats) into a PaymentResult."""
from collections.abc import Callable
from typing import Any

from ..domain.models import CANCELLED_BY_USER, PaymentResult
from ..domain.tokens import OrderTokens
from ..schemas import CallbackFlatSchema, CallbackV2Schema

CALLBACK_PATH = "/api/payhero/callback"
"""The callback route (eventi/web/payhero_callback.py); every STK push's callback_url points here."""


def callback_urls(base_url: str, tokens: OrderTokens) -> Callable[[str], str]:
    """order id -> the callback_url of its STK push: PUBLIC_BASE_URL, the callback route, its callback token."""
    def callback_url(order_id: str) -> str:
        return f"{base_url}{CALLBACK_PATH}?token={tokens.callback_token(order_id)}"
    return callback_url

_V2 = CallbackV2Schema()
_FLAT = CallbackFlatSchema()


def parse_callback(payload: dict[str, Any]) -> PaymentResult:
    """A PaymentResult from either callback format. Raises marshmallow.ValidationError."""
    if isinstance(payload, dict) and "response" in payload:
        return _from_v2(_V2.load(payload)["response"])
    return _from_flat(_FLAT.load(payload))


def _from_v2(data: dict[str, Any]) -> PaymentResult:
    code = data["ResultCode"]
    return PaymentResult(
        order_id=data["ExternalReference"],
        paid=code == 0,
        amount=data["Amount"],
        result_code=code,
        description=data["ResultDesc"] or "",
        receipt=data["MpesaReceiptNumber"] or None,
        checkout_request_id=data["CheckoutRequestID"],
        cancelled=code == CANCELLED_BY_USER,
    )


def _from_flat(data: dict[str, Any]) -> PaymentResult:
    paid = data["status"].lower() == "success"
    message = data["message"] or ""
    return PaymentResult(
        order_id=data["external_reference"],
        paid=paid,
        amount=data["amount"],
        description=message,
        receipt=data["provider_reference"] if paid else None,
        reference=data["reference"],
        cancelled=not paid and "cancel" in message.lower(),
    )
