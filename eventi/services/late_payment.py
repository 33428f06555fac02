"""A payment that arrives after its order failed or was cancelled: tickets again, or a refund someone sees.

It happens when M-Pesa is slower than our patience: reconcile gave up on an order (no_callback), a push
that looked refused reached the phone after all, or PayHero delivers a paid callback after a failed one.
The shopper's money is taken, so such a payment is never a duplicate. Under EVENTI_LATE_PAYMENTS=fulfil
(the default) the order's tickets are held again and the order completes when enough are left; when they
are not (or under `refund`, or when the amount differs from the order's) it becomes refund_needed: the
payment page says so, `eventi order refunds` lists it, and `eventi_late_payments_total{outcome}` with its
alert rule tells ops.

Exactly once, as everywhere: the decision is a unique insert under the order's id (late_payments), the
order follows it (OrderStore.follow_late_payment). The order's first release is finished before new holds
are taken, and the new holds belong to "<orderId>.late", so no leftover of the first release can delete
them. A decider that loses the race gives its own holds back; one that dies between holding and deciding
leaves holds no order lists, which the reconcile sweep frees (eventi/tickets.py).
"""
import logging
from typing import Any

from bson import ObjectId

from .. import metrics
from ..errors import NotFound, SoldOut
from ..events import EventStore, ticket_type
from ..models import OrderStatus, PaymentResult, decide_outcome, utcnow
from ..store import LATE, OrderStore
from ..tickets import TicketHolds

log = logging.getLogger(__name__)

FULFIL, REFUND = "fulfil", "refund"
"""EVENTI_LATE_PAYMENTS: hold the tickets again when any are left, or always ask for a refund."""


class LatePayments:
    """Decides, once, what a payment for an already failed or cancelled order becomes."""

    def __init__(self, store: OrderStore, events: EventStore, tickets: TicketHolds, policy: str = FULFIL) -> None:
        self._store = store
        self._events = events
        self._tickets = tickets
        self._policy = policy

    def apply(self, result: PaymentResult, event_id: ObjectId) -> dict[str, Any]:
        """The order after its late payment: completed with new ticket slots, or refund_needed. Idempotent."""
        decision = self._store.late_payment(result.order_id)
        if decision is None:
            decision = self._decide(result, event_id)
        order = self._store.follow_late_payment(decision)
        if order is None:
            raise NotFound()
        return order

    def _decide(self, result: PaymentResult, event_id: ObjectId) -> dict[str, Any]:
        order = self._store.get_order(result.order_id)
        if order is None:
            raise NotFound()
        self._tickets.finish_release(order["_id"])  # the first holds are gone before new ones are taken
        slots, refund = self._hold_again(order, result)
        now = utcnow()
        decision = {"_id": order["_id"], "status": (OrderStatus.REFUND_NEEDED if refund else OrderStatus.COMPLETED).value,
                    "slots": slots, "refundReason": refund, "mpesaReceipt": result.receipt, "eventId": event_id,
                    "decidedAt": now.replace(microsecond=now.microsecond // 1000 * 1000), "followed": False}
        stands, ours = self._store.decide_late_payment(decision)
        if not ours:
            self._tickets.give_back(order["_id"], slots, holder=str(order["_id"]) + LATE)
            return stands
        metrics.LATE_PAYMENTS.labels(stands["status"]).inc()
        log_level = logging.ERROR if refund else logging.WARNING
        log.log(log_level, "Late payment for a %s order orderId=%s outcome=%s refundReason=%s receipt=%s",
                order["status"], result.order_id, stands["status"], refund, result.receipt)
        return stands

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
