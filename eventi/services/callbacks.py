"""Applying a payment result: audit it, change the order once, then tell the waiters.

Every delivery with a valid token announces the order's final status, not only the one that
decided it: a duplicate re-announces (cache + publish, idempotent), so a publish that was lost
heals on PayHero's next delivery. Why this keeps the shopper's view true: eventi/storage/status_cache.py.

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

Every delivery is audited (payment_events). For a pending order the audit record rides in the status
claim's insert (one write, not two: OrderStore.finalize); a delivery whose claim loses stores it on its
own. A delivery answered 503 because that insert failed leaves no record unless the insert landed, as
when the audit insert alone failed: nothing was decided, and PayHero delivers again.
"""
import logging
from dataclasses import dataclass
from typing import Any

from bson import ObjectId

from .. import metrics
from ..domain.models import PaymentResult, decide_outcome, is_final, status_body, utcnow
from ..errors import NotFound, PaymentProviderError, StoreUnavailable
from ..payhero.client import PayHeroClient
from ..storage.order_store import RELEASING, Finalized, OrderStore
from .broadcast import StatusBroadcaster
from .late_payment import LatePayments
from .second_payment import SecondPayments
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
                 verifier: PayHeroClient | None = None, reader: StatusReader | None = None,
                 late: LatePayments | None = None, second: SecondPayments | None = None) -> None:
        self._store = store
        self._second = second  # a paid result for an order paid already by another receipt
        self._late = late  # what a payment for a failed or cancelled order becomes
        self._broadcaster = broadcaster
        self._settler = settler
        self._verifier = verifier  # strict mode: a PayHero client asked before completing
        self._reader = reader  # a StatusReader: the cache first; without one every delivery reads the store

    def apply(self, result: PaymentResult, raw: str, source: str = "callback") -> CallbackResult:
        """Record the delivery, finalize a pending order, announce its final status. Idempotent.

        duplicate is True when an earlier delivery had decided the status already. A payment for an
        order already failed or cancelled is no duplicate: it is a late payment (eventi/services/late_payment.py).
        """
        delivery = self._store.delivery(result.order_id, source, raw, _summary(result))
        order = None
        audited = False
        if result.paid and source == "callback" and self._verifier is not None:
            self._store.record(delivery)  # strict mode: an unconfirmed payment names its delivery
            audited = True
            order = self._store.get_order(result.order_id)  # strict mode needs its PayHero reference
            body = None if order is None else status_body(order)
        else:
            body = self._current(result.order_id)
        pending = body is not None and not is_final(body)
        if not (pending or audited):  # a pending order's status claim carries the audit record: one insert
            self._store.record(delivery)
        if body is None:
            raise NotFound()
        decided = False
        late = result.paid and body["paymentStatus"] in RELEASING
        if pending or late:
            if order is not None and not self._confirmed(order, result, delivery["_id"], late):
                return CallbackResult(body=None, duplicate=False, verified=False)
            body, decided, late = self._decide(result, body, None if audited else delivery, delivery["_id"], late)
        elif body["paymentStatus"] in RELEASING:
            self._store.finish_release(result.order_id)  # a release a stall interrupted ends here, at the latest
        self._broadcaster.announce(body)
        if not decided:
            if self._second is not None and source in ("callback", "reconcile"):
                self._second.check(result, body, source)  # another receipt than the order's: paid twice
            metrics.CALLBACKS.labels("duplicate").inc()
            log.info("Payment result ignored, order already final orderId=%s status=%s source=%s",
                     result.order_id, body["paymentStatus"], source)
            return CallbackResult(body=body, duplicate=True)
        metrics.CALLBACKS.labels("late" if late else body["paymentStatus"]).inc()
        log.info("Payment status stored orderId=%s status=%s source=%s", result.order_id, body["paymentStatus"], source)
        return CallbackResult(body=body, duplicate=False)

    def _decide(self, result: PaymentResult, body: dict[str, Any], delivery: dict[str, Any] | None, event_id: ObjectId,
                late: bool) -> tuple[dict[str, Any], bool, bool]:
        """(the status body after this result, whether this delivery decided it, whether as a late payment).
        delivery is the audit record still to store (the status claim carries it), None when stored already."""
        if late:
            finalized = self._late_payment(result, event_id)
        else:
            finalized = self._finalize(result, body["amount"], event_id, delivery)
        if result.paid and not finalized.decided and finalized.order["status"] in RELEASING:
            # The order looked pending, but a failure had just been claimed (reconcile racing this payment,
            # a claim whose order had not followed yet): the payment came after it, so it is a late payment.
            finalized, late = self._late_payment(result, event_id), True
        return status_body(finalized.order), finalized.decided, late

    def _late_payment(self, result: PaymentResult, event_id: ObjectId) -> Finalized:
        if self._late is None:
            raise NotFound()  # only a CallbackService built without LatePayments (a test's) gets here
        try:
            return self._late.apply(result, event_id)
        except StoreUnavailable:
            self._settler.watch(result.order_id)
            raise

    def announce(self, order: dict[str, Any]) -> None:
        """Cache and publish an order's status, changed outside a delivery (the reconcile sweep's repairs)."""
        self._broadcaster.announce(status_body(order))

    def _current(self, order_id: str) -> dict[str, Any] | None:
        """The status body from the cache, or from the store on a miss; None when there is no such order."""
        if self._reader is not None:
            return self._reader.current(order_id)
        order = self._store.get_order(order_id)
        return None if order is None else status_body(order)

    def _finalize(self, result: PaymentResult, amount: int, event_id: ObjectId,
                  delivery: dict[str, Any] | None) -> Finalized:
        try:
            outcome = decide_outcome(result, amount)
            finalized: Finalized | None = self._store.finalize(result.order_id, outcome, event_id, delivery)
        except StoreUnavailable:
            # The write may still land after the timeout: find out once the store answers again.
            self._settler.watch(result.order_id)
            raise
        if finalized is None:
            raise NotFound()
        return finalized

    def _confirmed(self, order: dict[str, Any], result: PaymentResult, event_id: ObjectId, late: bool) -> bool:
        """Strict mode: PayHero's transaction-status must say SUCCESS for the order's reference (or, when the
        push never told us one, the reference the callback carries).

        A payment that cannot be confirmed, on an order nothing else will look at again (a late payment, or
        an order with no reference to ask about), is marked `unconfirmedPayment` for a person to check
        (`eventi order refunds`, eventi_payments_unconfirmed_total); a pending order with a reference is
        asked about again by reconcile.
        """
        reference = order.get("payheroReference") or result.reference
        try:
            confirmed = reference is not None and self._says_success(reference)
        except PaymentProviderError:
            confirmed = False
        if confirmed:
            return True
        metrics.CALLBACKS.labels("unverified").inc()
        if late or not order.get("payheroReference"):
            metrics.PAYMENTS_UNCONFIRMED.inc()
            self._store.set_fields(result.order_id, {"unconfirmedPayment": {"eventId": event_id, "at": utcnow()}})
            log.error("Paid callback not confirmed by transaction-status orderId=%s status=%s; marked for a person "
                      "to check (eventi order refunds)", result.order_id, order["status"])
        else:
            log.warning("Paid callback not confirmed by transaction-status orderId=%s; left pending", result.order_id)
        return False

    def _says_success(self, reference: str) -> bool:
        answer = self._verifier.transaction_status(reference)  # type: ignore[union-attr]  # strict mode has one
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
