"""Creating orders and sending their M-Pesa STK push."""
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Any

from bson import ObjectId

from .. import metrics
from ..domain import pricing
from ..domain.models import OrderStatus, Outcome, short_reference, status_body, utcnow
from ..errors import EventNotFound, PaymentProviderError, PriceChanged, SoldOut, StoreUnavailable
from ..payhero.client import PayHeroClient
from ..storage.event_store import EventStore
from ..storage.order_store import OrderStore
from ..storage.push_limit import PushLimiter, Reservation
from ..storage.ticket_holds import TicketHolds
from .broadcast import StatusBroadcaster
from .settle import Settler
from .write_retry import WriteRetrier

log = logging.getLogger(__name__)

STK_PUSH_FAILED = "stk_push_failed"
PUSH_UNCERTAIN = "uncertain"
"""`pushState` of an order whose push may or may not have reached the phone (PayHero timed out or answered 5xx)."""


class OrderService:
    """Prices the order from the stored event, checks the push limit, holds the tickets, stores the
    order, caches its status, then sends one STK push.

    payhero is None when no PAYHERO_BASE_URL is set (development and test only): orders
    stay pending until a callback arrives. callback_url(order_id) gives the URL PayHero calls.
    """

    def __init__(self, store: OrderStore, events: EventStore, tickets: TicketHolds, broadcaster: StatusBroadcaster,
                 settler: Settler, callback_url: Callable[[str], str], payhero: PayHeroClient | None = None,
                 limiter: PushLimiter | None = None, prompt_seconds: int = 60,
                 retrier: WriteRetrier | None = None) -> None:
        self._store = store
        self._events = events
        self._tickets = tickets
        self._broadcaster = broadcaster
        self._payhero = payhero
        self._limiter = limiter
        self._callback_url = callback_url
        self._settler = settler
        self._prompt_life = timedelta(seconds=prompt_seconds)
        self._retrier = retrier

    def next_push_in(self, phone: str) -> int:
        """Seconds until the phone's next STK push may go under the push limit (0: now, or no limit)."""
        return self._limiter.wait_seconds(phone) if self._limiter is not None and phone else 0

    def create(self, fields: dict[str, Any], order_id: ObjectId | None = None) -> dict[str, Any]:
        """Store a pending order from validated fields (under order_id when given), push it; the stored document.

        The amount is the stored price times the quantity: the client sends no amount. Raises
        EventNotFound, ValidationFailed (ticket type, quantity), PriceChanged (fields' `expectedAmount`, the total
        the shopper saw, is not the amount now), TooManyPushes and SoldOut (with how many are left) before
        anything is stored; PaymentProviderError (with orderId) after the order was stored and
        marked failed, when PayHero surely did not queue the push. A push whose fate is unknown (a
        timeout, a 5xx) leaves the order pending with `pushState: "uncertain"`: a callback or the
        reconcile sweep decides it. The push limit counts the push only once it went out: any
        failure before that gives the reservation back.
        """
        event, quote = self._priced(fields)
        if fields.get("expectedAmount") not in (None, quote.amount):
            raise PriceChanged(amount=quote.amount, currency=quote.currency)
        order_id = order_id or ObjectId()
        contact: dict[str, Any] = {name: fields[name] for name in ("phone", "email", "name") if name in fields}
        with self._reserve_push(fields["phone"]) as reservation:
            try:
                slots = self._tickets.hold(order_id, quote.event_id, quote.ticket_type_id, quote.capacity,
                                           quote.quantity, slot_range=quote.slot_range)
            except SoldOut:
                raise self._sold_out(event, quote) from None
            try:
                fields = {**quote.order_fields(), **contact, "ticketSlots": slots, "reference": short_reference(str(order_id))}
                order = self._store.create_order(fields, order_id)
            except StoreUnavailable:
                raise  # the insert may still land: the holds stay, and the sweep frees them if it did not
            except BaseException:
                self._tickets.give_back(order_id, slots)
                raise
            if self._payhero is not None:
                order = self._push(order, reservation)
            self._broadcaster.remember(status_body(order))  # a pending body never replaces a final one a callback cached
        stored: dict[str, Any] = order
        return stored

    def preview(self, fields: dict[str, Any]) -> pricing.Quote:
        """What create(fields) would charge now, checked as create checks it (event on sale, ticket type, quantity,
        tickets left) but with nothing held, stored or pushed: the confirm step of the checkout without JavaScript.
        Raises EventNotFound, ValidationFailed and SoldOut (with how many are left)."""
        event, quote = self._priced(fields)
        if self._tickets.left(event)[quote.ticket_type_id] < quote.quantity:
            raise self._sold_out(event, quote)
        return quote

    def _priced(self, fields: dict[str, Any]) -> tuple[dict[str, Any], pricing.Quote]:
        event = self._events.on_sale(fields["eventId"])
        if event is None:
            raise EventNotFound()
        return event, pricing.quote(event, fields["ticketTypeId"], fields["quantity"])

    def _sold_out(self, event: dict[str, Any], quote: pricing.Quote) -> SoldOut:
        """SoldOut saying how many tickets of the type are left now."""
        return SoldOut.with_left(quote.ticket_type_name, self._tickets.left(event)[quote.ticket_type_id])

    def _reserve_push(self, phone: str) -> AbstractContextManager[Reservation]:
        if self._limiter is None or self._payhero is None:
            return Reservation()
        reservation: AbstractContextManager[Reservation] = self._limiter.reserve(phone)
        return reservation

    def _push(self, order: dict[str, Any], reservation: Reservation) -> dict[str, Any]:
        order_id = str(order["_id"])
        try:
            push = self._payhero.stk_push(  # type: ignore[union-attr]  # create() pushes only with a client
                amount=order["amount"], phone=order["phone"], external_reference=order_id,
                customer_name=order.get("name") or "Customer", callback_url=self._callback_url(order_id),
            )
        except PaymentProviderError as exc:
            if exc.sent:  # PayHero may have prompted the phone (timeout, rejection): it counts
                reservation.sent()
            if exc.uncertain:
                return self._uncertain(order, exc)
            metrics.STK_PUSHES.labels(getattr(exc, "reason", "rejected")).inc()
            log.warning("STK push failed orderId=%s (%s)", order_id, exc.message)
            self._fail(order_id, exc)
            raise PaymentProviderError(orderId=order_id) from None  # the shopper's sentence; details in log and audit
        reservation.sent()
        metrics.STK_PUSHES.labels("queued").inc()
        fields = {"payheroReference": push.reference, "checkoutRequestId": push.checkout_request_id,
                  **self._pushed_now()}
        log.info("STK push queued orderId=%s reference=%s", order_id, push.reference)
        self._after_push(f"push record orderId={order_id} reference={push.reference}",
                         lambda: self._store.set_fields(order_id, fields))
        return {**order, **fields}

    def _after_push(self, what: str, write: Callable[[], object]) -> None:
        """A write after a push that may have prompted the phone: the shopper hears 201 whatever the store does
        (a 5xx would invite a second order and a second prompt), so a failed write is retried in the background."""
        if self._retrier is None:
            write()
        else:
            self._retrier.write(what, write)

    def _pushed_now(self) -> dict[str, Any]:
        now = utcnow()
        return {"pushedAt": now, "promptExpiresAt": now + self._prompt_life}

    def _uncertain(self, order: dict[str, Any], exc: PaymentProviderError) -> dict[str, Any]:
        """PayHero may have queued the push: the order stays pending (a second push could charge twice).

        pushedAt makes it one of reconcile's stale pending orders, which fails it with no_callback
        once nothing came; a callback decides it before that.
        """
        order_id = str(order["_id"])
        metrics.STK_PUSHES.labels(PUSH_UNCERTAIN).inc()
        log.warning("STK push outcome unknown, order kept pending orderId=%s (%s)", order_id, exc.message)
        summary = {"error": exc.code, "reason": getattr(exc, "reason", None), "description": exc.message,
                   "pushState": PUSH_UNCERTAIN}
        fields = {"pushState": PUSH_UNCERTAIN, **self._pushed_now()}
        self._after_push(f"uncertain push audit orderId={order_id}",
                         lambda: self._store.record_event(order_id, "stk_push", "", summary))
        self._after_push(f"uncertain push record orderId={order_id}", lambda: self._store.set_fields(order_id, fields))
        return {**order, **fields}

    def _fail(self, order_id: str, exc: PaymentProviderError) -> None:
        """The push did not go out: the order fails (only if still pending) and waiters learn it."""
        summary = {"error": exc.code, "reason": getattr(exc, "reason", None), "description": exc.message}
        event_id = self._store.record_event(order_id, "stk_push", "", summary)
        try:
            outcome = Outcome(OrderStatus.FAILED, failure_reason=STK_PUSH_FAILED)
            finalized = self._store.finalize(order_id, outcome, event_id)
        except StoreUnavailable:
            self._settler.watch(order_id)  # the write may land later: see eventi/services/settle.py
            raise
        if finalized is not None:
            self._broadcaster.announce(status_body(finalized.order))
