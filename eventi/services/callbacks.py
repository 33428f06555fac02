"""Applying a payment result: audit it, change the order once, then tell the waiters."""
import logging
from dataclasses import dataclass

import gevent
from redis.exceptions import RedisError

from .. import metrics
from ..errors import NotFound, PaymentProviderError
from ..models import OrderStatus, decide_outcome, status_body

log = logging.getLogger(__name__)

ANNOUNCE_RETRIES = 5


@dataclass(frozen=True)
class CallbackResult:
    body: dict | None
    duplicate: bool
    verified: bool = True


class CallbackService:
    """The one code path for every payment result (callbacks and reconciliation alike)."""

    def __init__(self, store, cache, publisher, verifier=None):
        self._store = store
        self._cache = cache
        self._publisher = publisher
        self._verifier = verifier  # strict mode: a PayHero client asked before completing

    def apply(self, result, raw, source="callback"):
        """Record the delivery, finalize a pending order, announce the change. Idempotent."""
        event_id = self._store.record_event(result.order_id, source, raw, _summary(result))
        order = self._store.get_order(result.order_id)
        if order is None:
            raise NotFound()
        if result.paid and source == "callback" and self._verifier is not None and not self._confirmed(order):
            metrics.CALLBACKS.labels("unverified").inc()
            log.warning("Paid callback not confirmed by transaction-status orderId=%s; left pending", result.order_id)
            return CallbackResult(body=None, duplicate=False, verified=False)
        updated = None
        if order["status"] == OrderStatus.PENDING.value:
            updated = self._store.finalize(result.order_id, decide_outcome(result, order["amount"]), event_id)
        if updated is None:
            metrics.CALLBACKS.labels("duplicate").inc()
            log.info("Payment result ignored, order already final orderId=%s source=%s", result.order_id, source)
            return CallbackResult(body=status_body(order), duplicate=True)
        body = status_body(updated)
        metrics.CALLBACKS.labels(body["paymentStatus"]).inc()
        log.info("Payment status stored orderId=%s status=%s source=%s", result.order_id, body["paymentStatus"], source)
        self.announce(body)
        return CallbackResult(body=body, duplicate=False)

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

    def announce(self, body):
        """Cache and publish the new status; if Redis fails, keep trying in the background."""
        try:
            self._cache_and_publish(body)
        except RedisError as exc:
            metrics.REDIS_ERRORS.inc()
            log.warning("Redis notification failed orderId=%s (%s); retrying in background",
                        body["orderId"], exc.__class__.__name__)
            gevent.spawn(self._retry_announce, body)

    def _cache_and_publish(self, body):
        self._cache.put(body)
        self._publisher.publish(body)

    def _retry_announce(self, body):
        for attempt in range(1, ANNOUNCE_RETRIES + 1):
            gevent.sleep(0.5 * 2 ** attempt)
            try:
                self._cache_and_publish(body)
                return
            except RedisError:
                metrics.REDIS_ERRORS.inc()
        log.error("Redis notification abandoned orderId=%s; waiters will re-read the store", body["orderId"])


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
