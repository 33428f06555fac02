"""Reconciliation: ask PayHero about orders whose callback never came, and apply the answer.

The answer goes through CallbackService.apply, exactly like a callback: audited, idempotent,
published to waiters. An order still unanswered past the give-up age fails with "no_callback".
"""
import logging
import os
import random
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import gevent
import redis

from ..errors import PaymentProviderError
from ..models import PaymentResult, utcnow
from ..payhero_client import PayHeroClient
from ..store import OrderStore
from ..tickets import TicketHolds
from .callbacks import CallbackService

log = logging.getLogger(__name__)

NO_CALLBACK = "no_callback"


@dataclass
class ReconcileReport:
    checked: int = 0
    applied: dict[str, int] = field(default_factory=dict)
    unanswered: int = 0
    errors: int = 0
    releases_finished: int = 0

    def count(self, status: str) -> None:
        """One more order applied with this outcome."""
        self.applied[status] = self.applied.get(status, 0) + 1


class Reconciler:
    """One sweep over stale pending orders; what it learns goes through the callback path (and its broadcaster)."""

    def __init__(self, store: OrderStore, payhero: PayHeroClient | None, callbacks: CallbackService,
                 pending_after_seconds: float = 120, give_up_after_seconds: float = 900,
                 tickets: TicketHolds | None = None) -> None:
        self._store = store
        self._tickets = tickets
        self._payhero = payhero
        self._callbacks = callbacks
        self._pending_after = timedelta(seconds=pending_after_seconds)
        self._give_up_after = timedelta(seconds=give_up_after_seconds)

    def run_once(self, limit: int = 500) -> ReconcileReport:
        """Check up to limit stale pending orders; return what was done."""
        report = ReconcileReport()
        now = utcnow()
        for order in self._store.stale_pending(now - self._pending_after, limit):
            report.checked += 1
            result = self._ask_payhero(order, report)
            if result is None and order["pushedAt"] <= now - self._give_up_after:
                result = PaymentResult(order_id=str(order["_id"]), paid=False, description=NO_CALLBACK)
            if result is None:
                report.unanswered += 1
                continue
            outcome = self._callbacks.apply(result, raw=result.raw, source="reconcile")
            report.count("duplicate" if outcome.duplicate or outcome.body is None else outcome.body["paymentStatus"])
        if self._tickets is not None:
            report.releases_finished = self._tickets.finish_interrupted(now)
        log.info("Reconcile checked=%d applied=%s unanswered=%d errors=%d releases_finished=%d",
                 report.checked, report.applied, report.unanswered, report.errors, report.releases_finished)
        return report

    def _ask_payhero(self, order: dict[str, Any], report: ReconcileReport) -> PaymentResult | None:
        reference = order.get("payheroReference")
        if not reference or self._payhero is None:
            return None
        try:
            answer = self._payhero.transaction_status(reference)
        except PaymentProviderError:
            report.errors += 1
            return None
        return result_from_status(order, answer)


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


def reconcile_forever(reconciler: Reconciler, redis_client: redis.Redis, interval_seconds: float) -> None:
    """The optional periodic sweep (EVENTI_RECONCILE_INTERVAL_SECONDS): one worker per interval runs it."""
    while True:
        gevent.sleep(interval_seconds * random.uniform(0.9, 1.1))
        try:
            if redis_client.set(LOCK_KEY, os.getpid(), nx=True, ex=max(1, int(interval_seconds * 0.8))):
                reconciler.run_once()
        except Exception:  # a background sweep must outlive outages; the next interval tries again
            log.exception("Reconcile sweep failed")
