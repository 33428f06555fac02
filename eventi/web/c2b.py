"""Blueprint for manual (Paybill) payments: the C2B confirmation URL registered for EVENTI_MANUAL_PAYBILL.

PayHero documents no C2B confirmation, so this is the shape of Safaricom's own (Daraja's C2B API), posted to
the URL registered for the Paybill (directly, or by an integrator that forwards it). Like PayHero's callback
it carries no signature: the secret EVENTI_C2B_TOKEN in the URL proves the sender, and the account number
and the exact amount must match an order (eventi/services/manual_payment.py). The path names neither M-Pesa
nor Safaricom: Daraja refuses to register such URLs.
"""
import hmac
import logging
from typing import Any

from flask import Blueprint, Response, jsonify, request

from .. import metrics
from ..errors import NotFound, Unauthorized, ValidationFailed
from ..runtime import current_runtime
from ..schemas import C2BAckSchema, C2BConfirmationSchema, TokenQuerySchema
from ..services.manual_payment import ManualPayment
from . import examples as ex
from .declare import declare, ok

log = logging.getLogger(__name__)

bp = Blueprint("c2b", __name__)

CONFIRMATION_PATH = "/api/c2b/confirmation"


@bp.before_request
def _token_first() -> None:
    """Off (404) without EVENTI_C2B_TOKEN; a missing or wrong token is a 401 before the body is read."""
    expected = current_runtime().settings.c2b_token
    if expected is None:
        raise NotFound()
    if not hmac.compare_digest(request.args.get("token", "").encode(), expected.encode()):
        metrics.CALLBACKS.labels("rejected").inc()
        log.warning("C2B confirmation rejected (wrong or missing token) ip=%s", request.remote_addr)
        raise Unauthorized()


@bp.post(CONFIRMATION_PATH)
@declare(
    "M-Pesa's confirmation of a payment to the Paybill (C2B)", tags=["PayHero"],
    description="Off (`404`) unless EVENTI_MANUAL_PAYBILL and EVENTI_C2B_TOKEN are set. The account number "
                "(`BillRefNumber`) names the order (the payment page shows it once the prompt expired or was "
                "refused) and `TransAmount` must be its exact amount: then the order completes through the same "
                "path as PayHero's callback (a failed or cancelled order: a late payment). An unknown account "
                "number, another amount or an order paid already complete nothing: `outcome` says which, and "
                "`eventi order refunds` lists it. Repeated deliveries of one `TransID` answer the first outcome "
                "with `duplicate: true` and change nothing.",
    query=TokenQuerySchema, query_examples={"token": ex.C2B_TOKEN},
    body=C2BConfirmationSchema, body_examples=ex.C2B_BODIES,
    responses={200: ok(C2BAckSchema, {
        "completed": {"ResultCode": 0, "ResultDesc": "Accepted", "outcome": "completed", "duplicate": False},
        "unknown account": {"ResultCode": 0, "ResultDesc": "Accepted", "outcome": "unknown_account",
                            "duplicate": False}})},
    errors=["validation_error", "invalid_json", "malformed_body", "unauthorized", "not_found", "request_entity_too_large",
            "unsupported_media_type", "store_unavailable"], security="c2bToken")
def confirmation(query: dict[str, Any], body: dict[str, Any]) -> Response:
    """Apply one C2B confirmation through the manual payment service."""
    p = current_runtime()
    if body["BusinessShortCode"] != p.settings.manual_paybill:
        raise ValidationFailed(details={"BusinessShortCode": ["Not this shop's Paybill (EVENTI_MANUAL_PAYBILL)."]})
    payment = ManualPayment(receipt=body["TransID"].upper(), account=body["BillRefNumber"] or "",
                            amount=body["TransAmount"], paybill=body["BusinessShortCode"],
                            raw=request.get_data(as_text=True))
    done = p.manual.confirm(payment, source="c2b")
    return jsonify(ResultCode=0, ResultDesc="Accepted", outcome=done.outcome, duplicate=done.duplicate)
