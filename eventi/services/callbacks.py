"""Applying a payment result: audit it, change the order once, then tell the waiters.

Every delivery with a valid token announces the order's final status, not only the one that
decided it: a duplicate re-announces (cache + publish, idempotent), so a publish that was lost
heals on PayHero's next delivery. Why this keeps the shopper's view true: eventi/status_cache.py.
"""
import logging
from dataclasses import dataclass

from .. import metrics
from ..errors import NotFound, PaymentProviderError, StoreUnavailable
from ..models import OrderStatus, decide_outcome, status_body

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CallbackResult:
    body: dict | None
    duplicate: bool
    verified: bool = True


class CallbackService:
    """The one code path for every payment result (callbacks and reconciliation alike)."""

    def __init__(self, store, broadcaster, settler, verifier=None):
        self._store = store
        self._broadcaster = broadcaster
        self._settler = settler
        self._verifier = verifier  # strict mode: a PayHero client asked before completing

    def apply(self, result, raw, source="callback"):
        """Record the delivery, finalize a pending order, announce its final status. Idempotent.

        duplicate is True when an earlier delivery had decided the status already.
        """
        event_id = self._store.record_event(result.order_id, source, raw, _summary(result))
        order = self._store.get_order(result.order_id)
        if order is None:
            raise NotFound()
        decided = False
        if order["status"] == OrderStatus.PENDING.value:
            if result.paid and source == "callback" and self._verifier is not None and not self._confirmed(order):
                metrics.CALLBACKS.labels("unverified").inc()
                log.warning("Paid callback not confirmed by transaction-status orderId=%s; left pending", result.order_id)
                return CallbackResult(body=None, duplicate=False, verified=False)
            finalized = self._finalize(result, order, event_id)
            order, decided = finalized.order, finalized.decided
        body = status_body(order)
        self._broadcaster.announce(body)
        if not decided:
            metrics.CALLBACKS.labels("duplicate").inc()
            log.info("Payment result ignored, order already final orderId=%s status=%s source=%s",
                     result.order_id, body["paymentStatus"], source)
            return CallbackResult(body=body, duplicate=True)
        metrics.CALLBACKS.labels(body["paymentStatus"]).inc()
        log.info("Payment status stored orderId=%s status=%s source=%s", result.order_id, body["paymentStatus"], source)
        return CallbackResult(body=body, duplicate=False)

    def _finalize(self, result, order, event_id):
        try:
            finalized = self._store.finalize(result.order_id, decide_outcome(result, order["amount"]), event_id)
        except StoreUnavailable:
            # The write may still land after the timeout: find out once the store answers again.
            self._settler.watch(result.order_id)
            raise
        if finalized is None:
            raise NotFound()
        return finalized

    def _confirmed(self, order):
        """Strict mode: PayHero's transaction-status must say SUCCESS for the order's reference."""
        reference = order.get("payheroReference")
        if not reference:
            return False
        try:
            answer = self._verifier.transaction_status(reference)
        except PaymentProviderError:
            return False
        return str(answer.get("status", "")).upper() == "SUCCESS"


def _summary(result):
    return {
        "paid": result.paid,
        "resultCode": result.result_code,
        "amount": result.amount,
        "description": result.description,
        "receipt": result.receipt,
        "reference": result.reference,
        "checkoutRequestId": result.checkout_request_id,
    }
