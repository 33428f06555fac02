"""A payment that arrives after its order failed or was cancelled: tickets again, or a refund someone sees.

It happens when M-Pesa is slower than our patience: reconcile gave up on an order (no_callback), a push
that looked refused reached the phone after all, or PayHero delivers a paid callback after a failed one.
The shopper's money is taken, so such a payment is never a duplicate. Under EVENTI_LATE_PAYMENTS=fulfil
(the default) the order's tickets are held again and the order completes when enough are left; when they
are not (or under `refund`, or when the amount differs from the order's) it becomes refund_needed: the
payment page says so, `eventi order refunds` lists it, and `eventi_late_payments_total{outcome}` with its
alert rule tells ops.

Exactly once, as everywhere: the first delivery inserts a claim under the order's id (late_payments, a
unique insert), and only it decides: it finishes the order's first release, holds new tickets (owned by
"<orderId>.late", so no leftover of the first release can delete them), writes the outcome into the claim,
then the order follows it (OrderStore.follow_late_payment). A delivery that finds the claim decided follows
it; one that finds it undecided answers 503 (ChangeInProgress) while the decider may still be working, and
takes over once the claim is as old as an interrupted ticket release (EVENTI_RELEASE_INTERRUPTED_AFTER_SECONDS,
30 s by default: the decider died; holds it left are unlisted, and the reconcile sweep frees them).
A claim decided but not followed is followed by the next delivery or the sweep.
"""
import logging
from datetime import datetime
from typing import Any

from bson import ObjectId

from .. import metrics
from ..domain.models import OrderStatus, PaymentResult, decide_outcome, utcnow
from ..errors import ChangeInProgress, NotFound, SoldOut
from ..storage.event_store import EventStore, ticket_type
from ..storage.order_store import LATE, Finalized, OrderStore
from ..storage.ticket_holds import TicketHolds

log = logging.getLogger(__name__)

FULFIL, REFUND = "fulfil", "refund"
"""EVENTI_LATE_PAYMENTS: hold the tickets again when any are left, or always ask for a refund."""
class LatePayments:
    """Decides, once, what a payment for an already failed or cancelled order becomes."""

    def __init__(self, store: OrderStore, events: EventStore, tickets: TicketHolds, policy: str = FULFIL) -> None:
        self._store = store
        self._events = events
        self._tickets = tickets
        # An undecided claim this old belongs to a decider that failed: the next delivery decides instead.
        # The same age as a release's: both say how long a writer may go quiet before it is presumed dead.
        self._take_over_after = tickets.interrupted_after
        self._policy = policy

    def apply(self, result: PaymentResult, event_id: ObjectId) -> Finalized:
        """The order after its late payment (completed with new ticket slots, or refund_needed), and whether
        this delivery decided it. Idempotent."""
        order = self._store.get_order(result.order_id)
        if order is None:
            raise NotFound()
        now = utcnow()
        claim = {"_id": order["_id"], "eventId": event_id, "mpesaReceipt": result.receipt, "status": None,
                 "slots": [], "claimedAt": now, "followed": False}
        standing = self._store.claim_late_payment(claim)
        decided = standing is None or self._ours_to_decide(standing, event_id, now)
        if decided:
            standing = {**(standing or claim), **self._decide(order, result)}
        followed = self._store.follow_late_payment(standing or claim)
        if followed is None:
            raise NotFound()
        return Finalized(followed, decided)

    def finish_undecided(self, now: datetime) -> list[dict[str, Any] | None]:
        """Decide the late payments whose decider failed (claims undecided for the take-over age), from the
        delivery each claim names in the audit trail; the orders after. The reconcile sweep calls it."""
        orders: list[dict[str, Any] | None] = []
        for claim in self._store.undecided_late_payments(now - self._take_over_after):
            delivery = self._store.event_by_id(claim["eventId"])
            if delivery is not None:
                summary = delivery["summary"]
                result = PaymentResult(order_id=str(claim["_id"]), paid=True, amount=summary.get("amount"),
                                       receipt=summary.get("receipt"), reference=summary.get("reference"))
                orders.append(self.apply(result, claim["eventId"]).order)
        return orders

    def _ours_to_decide(self, standing: dict[str, Any], event_id: ObjectId, now: datetime) -> bool:
        if standing["status"] is not None:
            return False  # decided: follow it
        if standing["eventId"] == event_id or standing["claimedAt"] <= now - self._take_over_after:
            return True  # the driver retried our insert, or the decider died
        raise ChangeInProgress()

    def _decide(self, order: dict[str, Any], result: PaymentResult) -> dict[str, Any]:
        self._tickets.finish_release(order["_id"])  # the first holds are gone before new ones are taken
        slots, refund = self._hold_again(order, result)
        now = utcnow()
        status = OrderStatus.REFUND_NEEDED if refund else OrderStatus.COMPLETED
        decision = {"status": status.value, "slots": slots, "refundReason": refund, "mpesaReceipt": result.receipt,
                    "decidedAt": now.replace(microsecond=now.microsecond // 1000 * 1000)}
        self._store.decide_late_payment(order["_id"], decision)
        metrics.LATE_PAYMENTS.labels(status.value).inc()
        log.log(logging.ERROR if refund else logging.WARNING,
                "Late payment for a %s order orderId=%s outcome=%s refundReason=%s receipt=%s",
                order["status"], order["_id"], status.value, refund, result.receipt)
        return decision

    def _hold_again(self, order: dict[str, Any], result: PaymentResult) -> tuple[list[str], str | None]:
        """(the new slots, None) when the order can complete; ([], why a refund is needed) when not."""
        if decide_outcome(result, order["amount"]).status is not OrderStatus.COMPLETED:
            return [], "amount_mismatch"
        if self._policy == REFUND:
            return [], "late"
        event = self._events.get(order["eventId"])
        ticket = None if event is None else ticket_type(event, order["ticketTypeId"])
        if ticket is None:
            return [], "sold_out"
        try:
            slots = self._tickets.hold(order["_id"], order["eventId"], ticket["id"], ticket["capacity"],
                                       order["quantity"], slot_range=ticket.get("slots"),
                                       holder=str(order["_id"]) + LATE)
        except SoldOut:
            return [], "sold_out"
        return slots, None
