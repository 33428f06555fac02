"""Order statuses, callback outcomes and the public status body: pure logic, no I/O."""
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from .reasons import reason_for, refund_reason


class OrderStatus(StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REFUND_NEEDED = "refund_needed"
    """Paid after the order had failed (a late payment), with its tickets gone: support refunds it."""

    @property
    def final(self) -> bool:
        return self is not OrderStatus.PENDING


CANCELLED_BY_USER = 1032
AMOUNT_MISMATCH = "amount_mismatch"


@dataclass(frozen=True)
class PaymentResult:
    """What a PayHero callback (either format) says about one order."""

    order_id: str
    paid: bool
    amount: int | None = None
    result_code: int | None = None
    description: str = ""
    receipt: str | None = None
    reference: str | None = None
    checkout_request_id: str | None = None
    cancelled: bool = False
    raw: str = ""


@dataclass(frozen=True)
class Outcome:
    """The final status an order moves to, with its receipt or reason."""

    status: OrderStatus
    mpesa_receipt: str | None = None
    failure_reason: str | None = None
    result_code: int | None = None  # M-Pesa's ResultCode, when the callback carried one


def decide_outcome(result: PaymentResult, order_amount: int) -> Outcome:
    """Apply the payment rules: only an exact, successful payment completes an order."""
    if result.paid:
        if result.amount != order_amount:
            return Outcome(OrderStatus.FAILED, failure_reason=AMOUNT_MISMATCH, result_code=result.result_code)
        return Outcome(OrderStatus.COMPLETED, mpesa_receipt=result.receipt)
    reason = result.description or f"result_code_{result.result_code}"
    if result.cancelled or result.result_code == CANCELLED_BY_USER:
        return Outcome(OrderStatus.CANCELLED, failure_reason=reason, result_code=result.result_code)
    return Outcome(OrderStatus.FAILED, failure_reason=reason, result_code=result.result_code)


REFERENCE_LENGTH = 8

RECEIPT_FIELDS = ("eventId", "eventName", "ticketTypeId", "ticketTypeName", "quantity", "currency")
"""What an order bought, shown in its status body as stored (eventName is absent on orders stored before it was kept)."""


def short_reference(order_id: str) -> str:
    """The order reference shoppers read to support: the orderId's last 8 characters, upper-cased.

    Not unique on its own (support tools list every match); it fits on a phone's line where 24 characters wrap.
    """
    return str(order_id)[-REFERENCE_LENGTH:].upper()


def status_body(order: dict[str, Any]) -> dict[str, Any]:
    """The public view of a stored order: what it bought and its payment, never the phone, email or name.

    While pending, `promptExpiresAt` says when the STK prompt stops being answerable (absent when no push
    went out) and `pushState: "uncertain"` that PayHero may or may not have prompted the phone. A failed or
    cancelled order carries the raw `failureReason` (for support) and a stable `reason` code with the
    sentence the payment page shows (`reasonText`).
    """
    status = OrderStatus(order["status"])
    order_id = str(order["_id"])
    body = {
        "orderId": order_id,
        "reference": short_reference(order_id),
        "paymentStatus": status.value,
        "amount": order["amount"],
        **{name: order[name] for name in RECEIPT_FIELDS if order.get(name) is not None},
        "updatedAt": iso_utc(order["updatedAt"]),
    }
    if status is OrderStatus.PENDING:
        if order.get("promptExpiresAt") is not None:
            body["promptExpiresAt"] = iso_utc(order["promptExpiresAt"])
        if order.get("pushState"):
            body["pushState"] = order["pushState"]
    elif status is OrderStatus.COMPLETED:
        body["mpesaReceipt"] = order.get("mpesaReceipt")
    elif status is OrderStatus.REFUND_NEEDED:
        body["mpesaReceipt"] = order.get("mpesaReceipt")
        reason = refund_reason(order.get("refundReason"))
        body["reason"], body["reasonText"] = reason.code, reason.text
    elif status.final:
        body["failureReason"] = order.get("failureReason")
        reason = reason_for(status is OrderStatus.CANCELLED, order.get("resultCode"), order.get("failureReason"))
        body["reason"], body["reasonText"] = reason.code, reason.text
    return body


def is_final(body: dict[str, Any] | None) -> bool:
    """True when a status body carries a final status."""
    return body is not None and OrderStatus(body["paymentStatus"]).final


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso_utc(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
