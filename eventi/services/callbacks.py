"""Applying a payment result: audit it, change the order once, then tell the waiters.

Every delivery with a valid token announces the order's final status, not only the one that
decided it: a duplicate re-announces (cache + publish, idempotent), so a publish that was lost
heals on PayHero's next delivery. Why this keeps the shopper's view true: eventi/status_cache.py.

The order's status and amount, needed before the claim, come from the status cache when it holds
them (one Redis round trip instead of a MongoDB read; docs/benchmarks.md). That can never make a
wrong outcome: every cache entry is a status body of the stored order (written after MongoDB took
it), an order's amount never changes, a final entry is only ever the final truth, and a pending one
only sends the delivery on to the status claim, whose unique insert decides as before: when the
order is final already, the claim that made it so is found and applied again (the same values), so
the delivery is a duplicate. (That needs every final status to come from a claim: OrderStore.finalize
must stay the only writer of an order's status.) A pending entry whose order is gone from the store ends in
NotFound at the order update, as the read would have, leaving a claim that no order follows. Only strict mode
reads the order, for its PayHero reference.
"""
import logging
from dataclasses import dataclass
from typing import Any

from bson import ObjectId

from .. import metrics
from ..errors import NotFound, PaymentProviderError, StoreUnavailable
from ..models import PaymentResult, decide_outcome, is_final, status_body
from ..payhero_client import PayHeroClient
from ..store import Finalized, OrderStore
from .broadcast import StatusBroadcaster
from .settle import Settler
from .status import StatusReader

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CallbackResult:
    body: dict[str, Any] | None
    duplicate: bool
    verified: bool = True


class CallbackService:
    """The one code path for every payment result (callbacks and reconciliation alike)."""

    def __init__(self, store: OrderStore, broadcaster: StatusBroadcaster, settler: Settler,
                 verifier: PayHeroClient | None = None, reader: StatusReader | None = None) -> None:
        self._store = store
        self._broadcaster = broadcaster
        self._settler = settler
        self._verifier = verifier  # strict mode: a PayHero client asked before completing
        self._reader = reader  # a StatusReader: the cache first; without one every delivery reads the store

    def apply(self, result: PaymentResult, raw: str, source: str = "callback") -> CallbackResult:
        """Record the delivery, finalize a pending order, announce its final status. Idempotent.

        duplicate is True when an earlier delivery had decided the status already.
        """
        event_id = self._store.record_event(result.order_id, source, raw, _summary(result))
        order = None
        if result.paid and source == "callback" and self._verifier is not None:
            order = self._store.get_order(result.order_id)  # strict mode needs its PayHero reference
            body = None if order is None else status_body(order)
        else:
            body = self._current(result.order_id)
        if body is None:
            raise NotFound()
        decided = False
        if not is_final(body):
            if order is not None and not self._confirmed(order):
                metrics.CALLBACKS.labels("unverified").inc()
                log.warning("Paid callback not confirmed by transaction-status orderId=%s; left pending",
                            result.order_id)
                return CallbackResult(body=None, duplicate=False, verified=False)
            finalized = self._finalize(result, body["amount"], event_id)
            body, decided = status_body(finalized.order), finalized.decided
        self._broadcaster.announce(body)
        if not decided:
            metrics.CALLBACKS.labels("duplicate").inc()
            log.info("Payment result ignored, order already final orderId=%s status=%s source=%s",
                     result.order_id, body["paymentStatus"], source)
            return CallbackResult(body=body, duplicate=True)
        metrics.CALLBACKS.labels(body["paymentStatus"]).inc()
        log.info("Payment status stored orderId=%s status=%s source=%s", result.order_id, body["paymentStatus"], source)
        return CallbackResult(body=body, duplicate=False)

    def _current(self, order_id: str) -> dict[str, Any] | None:
        """The status body from the cache, or from the store on a miss; None when there is no such order."""
        if self._reader is not None:
            return self._reader.current(order_id)
        order = self._store.get_order(order_id)
        return None if order is None else status_body(order)

    def _finalize(self, result: PaymentResult, amount: int, event_id: ObjectId) -> Finalized:
        try:
            outcome = decide_outcome(result, amount)
            finalized: Finalized | None = self._store.finalize(result.order_id, outcome, event_id)
        except StoreUnavailable:
            # The write may still land after the timeout: find out once the store answers again.
            self._settler.watch(result.order_id)
            raise
        if finalized is None:
            raise NotFound()
        return finalized

    def _confirmed(self, order: dict[str, Any]) -> bool:
        """Strict mode: PayHero's transaction-status must say SUCCESS for the order's reference."""
        reference = order.get("payheroReference")
        if not reference or self._verifier is None:
            return False
        try:
            answer = self._verifier.transaction_status(reference)
        except PaymentProviderError:
            return False
        return str(answer.get("status", "")).upper() == "SUCCESS"


def _summary(result: PaymentResult) -> dict[str, Any]:
    return {
        "paid": result.paid,
        "resultCode": result.result_code,
        "amount": result.amount,
        "description": result.description,
        "receipt": result.receipt,
        "reference": result.reference,
        "checkoutRequestId": result.checkout_request_id,
    }
