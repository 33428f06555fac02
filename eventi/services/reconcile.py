"""Reconciliation: settle orders whose callback never came, and finish what a failure left half done.

Every pending order past EVENTI_RECONCILE_AFTER_SECONDS is looked at, pushed or not (a push that went out
while the store failed to record it leaves no pushedAt). An order with a PayHero reference is asked about
with transaction-status; the answer goes through CallbackService.apply, exactly like a callback: audited,
idempotent, published to waiters. Past the give-up age an order fails with "no_callback" only on an
answer: PayHero says FAILED, or knows no such transaction (404), or there is nothing to ask (no reference:
the push's answer was lost). An error, a timeout or QUEUED leaves it pending, asked again with backoff,
and after OVERDUE_AFTER such tries each sweep logs an ERROR and counts eventi_reconcile_overdue_total.
A payment that comes after no_callback is not lost: its callback is a late payment
(eventi/services/late_payment.py), and for GIVEN_UP_WATCH the sweep keeps asking PayHero about orders it
failed with no_callback that have a reference, in case that callback never comes (a sender may drop a
delivery we answered 5xx): a SUCCESS then goes through the same late-payment path.

The sweep also decides late payments whose decider failed, applies late-payment decisions whose order did
not follow (a writer failed midway), announcing both, finishes interrupted ticket releases
(eventi/storage/ticket_holds.py) and removes a bounded batch of expired idempotency keys (eventi/storage/idempotency_keys.py:
FerretDB has no TTL index to do it).
"""
import logging
import os
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import gevent
from redis.backoff import EqualJitterBackoff

from .. import metrics
from ..domain.models import PaymentResult, utcnow
from ..errors import ChangeInProgress, PaymentProviderError
from ..payhero.client import PayHeroClient, PayHeroRejected
from ..storage.idempotency_keys import IdempotencyKeys
from ..storage.order_store import OrderStore
from ..storage.ticket_holds import TicketHolds
from .callbacks import CallbackService
from .late_payment import LatePayments

if TYPE_CHECKING:
    from ..storage.redis_clients import RedisClient

log = logging.getLogger(__name__)

NO_CALLBACK = "no_callback"
OVERDUE_AFTER = 5
"""Tries past the give-up age without an answer, after which each sweep raises the alarm."""
RETRY_BACKOFF = EqualJitterBackoff(cap=3600, base=60)
"""How long an order PayHero could not answer about waits before it is asked again: 60 s doubling to 1 h, each
drawn from the upper half (so never at once)."""
MAX_DOUBLINGS = 6
"""60 s doubled 6 times passes the 1 h cap: counting further would only grow 2**tries."""
GIVEN_UP_WATCH = timedelta(hours=24)
"""How long after failing an order with no_callback the sweep keeps asking PayHero whether it was paid after all."""


@dataclass
class ReconcileReport:
    checked: int = 0
    applied: dict[str, int] = field(default_factory=dict)
    unanswered: int = 0
    errors: int = 0
    overdue: int = 0
    late_followed: int = 0
    releases_finished: int = 0
    rechecked: int = 0
    keys_removed: int = 0

    def count(self, status: str) -> None:
        """One more order applied with this outcome."""
        self.applied[status] = self.applied.get(status, 0) + 1


@dataclass(frozen=True)
class Answer:
    """What PayHero said about one order: a result to apply, that it knows no such push, or nothing sure."""

    result: PaymentResult | None = None
    unknown_push: bool = False
    error: bool = False


class Reconciler:
    """One sweep over stale pending orders; what it learns goes through the callback path (and its broadcaster)."""

    def __init__(self, store: OrderStore, payhero: PayHeroClient | None, callbacks: CallbackService,
                 pending_after_seconds: float = 120, give_up_after_seconds: float = 900,
                 tickets: TicketHolds | None = None, late: LatePayments | None = None,
                 keys: IdempotencyKeys | None = None) -> None:
        self._store = store
        self._keys = keys
        self._late = late
        self._tickets = tickets
        self._payhero = payhero
        self._callbacks = callbacks
        self._pending_after = timedelta(seconds=pending_after_seconds)
        self._give_up_after = timedelta(seconds=give_up_after_seconds)

    def run_once(self, limit: int = 500) -> ReconcileReport:
        """Check up to limit stale pending orders, then finish half-done changes; return what was done."""
        report = ReconcileReport()
        now = utcnow()
        for order in self._store.stale_pending(now - self._pending_after, now, limit):
            report.checked += 1
            try:
                self._settle(order, now, report)
            except ChangeInProgress:  # another writer is changing the order right now: the next sweep
                report.errors += 1
        for order in self._store.given_up_recently(now - GIVEN_UP_WATCH, now, limit):
            report.rechecked += 1
            self._recheck_given_up(order, now, report)
        report.late_followed = self._finish_late_payments(now)
        if self._tickets is not None:
            report.releases_finished = self._tickets.finish_interrupted(now)
        if self._keys is not None:
            report.keys_removed = self._keys.remove_expired(now)
        log.info("Reconcile checked=%d rechecked=%d applied=%s unanswered=%d errors=%d overdue=%d late_followed=%d "
                 "releases_finished=%d keys_removed=%d", report.checked, report.rechecked, report.applied,
                 report.unanswered, report.errors, report.overdue, report.late_followed, report.releases_finished,
                 report.keys_removed)
        return report

    def _recheck_given_up(self, order: dict[str, Any], now: datetime, report: ReconcileReport) -> None:
        """An order failed with no_callback may still have been paid (PayHero drops a delivery after a 5xx, or
        the payment came later): ask again, and a SUCCESS goes through the callback path as a late payment."""
        answer = self._ask_payhero(order)
        report.errors += answer.error
        if answer.result is not None and answer.result.paid:
            outcome = self._callbacks.apply(answer.result, raw=answer.result.raw, source="reconcile")
            report.count("duplicate" if outcome.duplicate or outcome.body is None else outcome.body["paymentStatus"])
            return
        self._ask_later(order, now)

    def _ask_later(self, order: dict[str, Any], now: datetime) -> tuple[int, datetime]:
        """Put the order aside for RETRY_BACKOFF after its tries so far; (its tries now, when it is due)."""
        tries = order.get("reconcileTries", 0) + 1
        later = now + timedelta(seconds=RETRY_BACKOFF.compute(min(tries - 1, MAX_DOUBLINGS)))
        self._store.set_fields(str(order["_id"]), {"reconcileTries": tries, "reconcileAfter": later})
        return tries, later

    def _finish_late_payments(self, now: datetime) -> int:
        """Decide, follow and announce late payments a failure left half done; how many."""
        repaired = self._late.finish_undecided(now) if self._late is not None else []
        repaired += [self._store.follow_late_payment(decision) for decision in self._store.unfollowed_late_payments()]
        for order in repaired:
            if order is not None:
                self._callbacks.announce(order)
        return sum(order is not None for order in repaired)

    def _settle(self, order: dict[str, Any], now: datetime, report: ReconcileReport) -> None:
        answer = self._ask_payhero(order)
        report.errors += answer.error
        result = answer.result
        past_give_up = (order.get("pushedAt") or order["createdAt"]) <= now - self._give_up_after
        if result is None and past_give_up and (answer.unknown_push or not order.get("payheroReference")):
            result = PaymentResult(order_id=str(order["_id"]), paid=False, description=NO_CALLBACK)
        if result is not None:
            outcome = self._callbacks.apply(result, raw=result.raw, source="reconcile")
            report.count("duplicate" if outcome.duplicate or outcome.body is None else outcome.body["paymentStatus"])
            return
        report.unanswered += 1
        if past_give_up:
            self._postpone(order, now, report)
        elif not order.get("payheroReference") or self._payhero is None:  # nothing to ask until the give-up age
            give_up_at = (order.get("pushedAt") or order["createdAt"]) + self._give_up_after
            self._store.set_fields(str(order["_id"]), {"reconcileAfter": give_up_at})

    def _ask_payhero(self, order: dict[str, Any]) -> Answer:
        reference = order.get("payheroReference")
        if not reference or self._payhero is None:
            return Answer()
        try:
            answer = self._payhero.transaction_status(reference)
        except PayHeroRejected as exc:
            return Answer(unknown_push=True) if exc.http_status == 404 else Answer(error=True)
        except PaymentProviderError:
            return Answer(error=True)
        return Answer(result=result_from_status(order, answer))

    def _postpone(self, order: dict[str, Any], now: datetime, report: ReconcileReport) -> None:
        """Past the give-up age with no sure answer: ask again later, and raise the alarm after OVERDUE_AFTER tries."""
        tries, later = self._ask_later(order, now)
        if tries >= OVERDUE_AFTER:
            report.overdue += 1
            metrics.RECONCILE_OVERDUE.inc()
            log.error("Reconcile cannot settle orderId=%s after %d tries past the give-up age: PayHero gives no "
                      "answer (errors, timeouts or QUEUED); asking again after %s", order["_id"], tries,
                      later.isoformat(timespec="seconds"))


def result_from_status(order: dict[str, Any], answer: dict[str, Any]) -> PaymentResult | None:
    """A PaymentResult from a transaction-status answer, or None while PayHero knows no result."""
    status = str(answer.get("status", "")).upper()
    order_id = str(order["_id"])
    raw = repr(answer)
    if status == "SUCCESS":
        receipt = answer.get("provider_reference") or answer.get("third_party_reference") or None
        # transaction-status carries no amount: PayHero's own record for our reference stands for it.
        return PaymentResult(order_id=order_id, paid=True, amount=order["amount"], receipt=receipt,
                             reference=answer.get("reference"), raw=raw)
    if status == "FAILED":
        return PaymentResult(order_id=order_id, paid=False, description="transaction_status_failed",
                             reference=answer.get("reference"), raw=raw)
    return None


LOCK_KEY = "eventi:reconcile:lock"
"""One key, set alone (SET NX EX): on a cluster it lives on its slot's master like any other."""


def reconcile_forever(reconciler: Reconciler, redis_client: "RedisClient", interval_seconds: float) -> None:
    """The optional periodic sweep (EVENTI_RECONCILE_INTERVAL_SECONDS): one worker per interval runs it."""
    while True:
        gevent.sleep(interval_seconds * random.uniform(0.9, 1.1))
        try:
            if redis_client.set(LOCK_KEY, os.getpid(), nx=True, ex=max(1, int(interval_seconds * 0.8))):
                reconciler.run_once()
        except Exception:  # a background sweep must outlive outages; the next interval tries again
            log.exception("Reconcile sweep failed")
