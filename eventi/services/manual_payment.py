"""A manual (Paybill) payment: the shopper paid from the M-Pesa menu with the order's account number.

A confirmation (C2B, from the Paybill's confirmation URL or typed by support with `eventi order
confirm-manual`) is matched to its order by the account number and the exact amount, then goes through
the callback path (CallbackService.apply): one status claim, audited, MongoDB before Redis, a payment for a
failed or cancelled order a late payment. What matches no order, or comes for an order paid already, is
no ticket: its outcome says why and `eventi order refunds` lists it for a refund.

Exactly once: the confirmation is inserted under its TransID (the M-Pesa receipt). A delivery that finds
it decided answers the same outcome and changes nothing; one that finds it undecided (the first delivery
failed midway, or is working now) runs it again, which the callback path makes idempotent, and writes the
same outcome.
"""
import logging
from dataclasses import dataclass, replace
from typing import Any

from .. import metrics
from ..domain.models import OrderStatus, PaymentResult, utcnow
from ..storage.manual_payments import AccountNumbersExhausted, ManualPaymentStore, normalise_account
from ..storage.order_store import OrderStore
from .callbacks import CallbackService

log = logging.getLogger(__name__)

COMPLETED, REFUND_NEEDED = OrderStatus.COMPLETED.value, OrderStatus.REFUND_NEEDED.value
UNKNOWN_ACCOUNT, AMOUNT_MISMATCH, ALREADY_PAID = "unknown_account", "amount_mismatch", "already_paid"


@dataclass(frozen=True)
class ManualPayment:
    """One confirmation of a Paybill payment."""

    receipt: str  # M-Pesa's TransID
    account: str  # what the shopper typed as the account number (BillRefNumber)
    amount: int
    paybill: str
    raw: str = ""


@dataclass(frozen=True)
class ManualOutcome:
    outcome: str  # completed, refund_needed, unknown_account, amount_mismatch, already_paid
    order_id: str | None
    duplicate: bool  # an earlier delivery of this payment had decided it


class ManualPayments:
    """Matches a manual payment to its order and applies it through the callback path."""

    def __init__(self, store: OrderStore, manual: ManualPaymentStore, callbacks: CallbackService) -> None:
        self._store = store
        self._manual = manual
        self._callbacks = callbacks

    def account_for(self, order: dict[str, Any]) -> str | None:
        """The order's account number for a Paybill payment, made on first use; None when no free number was
        found (raises StoreUnavailable)."""
        try:
            return self._manual.account_for(order)
        except AccountNumbersExhausted:
            return None

    def confirm(self, payment: ManualPayment, source: str) -> ManualOutcome:
        """Apply one confirmation (source: c2b or manual). Idempotent per receipt."""
        standing = self._manual.claim({
            "_id": payment.receipt, "account": normalise_account(payment.account), "amount": payment.amount,
            "paybill": payment.paybill, "source": source, "raw": payment.raw, "receivedAt": utcnow(), "outcome": None})
        if standing is not None and (standing["amount"], standing["account"]) != (payment.amount,
                                                                                 normalise_account(payment.account)):
            log.error("Manual payment receipt=%s confirmed again with another amount or account (%s, %s; first %s, "
                      "%s): the first stands", payment.receipt, payment.amount, normalise_account(payment.account),
                      standing["amount"], standing["account"])
            payment = replace(payment, amount=standing["amount"], account=standing["account"])
        if standing is not None and standing.get("outcome") is not None:
            return ManualOutcome(standing["outcome"], standing.get("orderId"), duplicate=True)
        order_id = self._manual.order_id_for(payment.account)
        order = None if order_id is None else self._store.get_order(order_id)
        if order_id is None or order is None:
            return self._decided(payment, UNKNOWN_ACCOUNT, None, None)
        if payment.amount != order["amount"]:  # the order stays as it is: the right amount may still come
            event_id = self._store.record_event(order_id, source, payment.raw, _summary(payment))
            return self._decided(payment, AMOUNT_MISMATCH, order_id, event_id)
        result = PaymentResult(order_id=order_id, paid=True, amount=payment.amount, receipt=payment.receipt,
                               description="manual payment", raw=payment.raw)
        body = self._callbacks.apply(result, raw=payment.raw, source=source).body or {}
        ours = body.get("mpesaReceipt") == payment.receipt and body.get("paymentStatus") in (COMPLETED, REFUND_NEEDED)
        return self._decided(payment, body["paymentStatus"] if ours else ALREADY_PAID, order_id, None)

    def _decided(self, payment: ManualPayment, outcome: str, order_id: str | None, event_id: Any) -> ManualOutcome:
        if self._manual.decide(payment.receipt, outcome, order_id, event_id):
            metrics.MANUAL_PAYMENTS.labels(outcome).inc()
            refund = outcome != COMPLETED
            log.log(logging.ERROR if refund else logging.INFO,
                    "Manual payment receipt=%s account=%s amount=%s orderId=%s outcome=%s%s", payment.receipt,
                    normalise_account(payment.account), payment.amount, order_id, outcome,
                    "; a refund is due (eventi order refunds)" if refund else "")
        return ManualOutcome(outcome, order_id, duplicate=False)


def _summary(payment: ManualPayment) -> dict[str, Any]:
    return {"paid": True, "amount": payment.amount, "receipt": payment.receipt, "account": payment.account,
            "paybill": payment.paybill, "description": "manual payment"}
