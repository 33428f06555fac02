"""Holding a long-poll wait until the order's status is final or the wait times out."""
import logging
import time
from dataclasses import dataclass

from .. import metrics
from ..errors import NotFound
from ..models import is_final
from ..notifier import RECHECK, Notification

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WaitResult:
    body: dict
    final: bool
    waited_ms: int
    outcome: str  # final | timeout | client_gone | shutdown


class WaitService:
    """Registers the waiter first, then reads the status, then waits: no lost wake-ups."""

    def __init__(self, notifier, reader):
        self._notifier = notifier
        self._reader = reader
        self.stopping = False

    def wait(self, order_id, timeout, client_gone=None):
        """Wait up to timeout seconds for a final status; client_gone() ends the wait early."""
        started = time.monotonic()
        deadline = started + timeout
        log.info("Long polling started orderId=%s timeout=%ss", order_id, timeout)
        metrics.WAITS_STARTED.inc()
        with metrics.WAITS_HELD.track_inprogress(), self._notifier.waiter(order_id) as waiter:
            body = self._reader.current(order_id)
            if body is None:
                raise NotFound()
            outcome = "final"
            while not is_final(body):
                remaining = deadline - time.monotonic()
                if self.stopping:
                    outcome = "shutdown"
                    break
                if client_gone is not None and client_gone():
                    outcome = "client_gone"
                    break
                if remaining <= 0:
                    outcome = "timeout"
                    break
                body = self._next_body(order_id, waiter, remaining, body, started)
        return self._finish(order_id, body, outcome, started)

    def _next_body(self, order_id, waiter, remaining, body, started):
        event = waiter.next(remaining)
        if event is RECHECK:
            return self._reader.recheck(order_id, body)
        if isinstance(event, Notification) and is_final(event.body):
            if event.sent_at:
                metrics.CALLBACK_TO_ANSWER.observe(max(0.0, time.time() - event.sent_at))
            log.info(
                "Payment status changed via Redis orderId=%s status=%s elapsedMs=%d",
                order_id, event.body["paymentStatus"], (time.monotonic() - started) * 1000,
            )
            return event.body
        return body

    def _finish(self, order_id, body, outcome, started):
        waited_ms = int((time.monotonic() - started) * 1000)
        metrics.WAITS_ANSWERED.labels(outcome).inc()
        if outcome == "timeout":
            log.info("Long poll timed out orderId=%s waitedMs=%d", order_id, waited_ms)
        return WaitResult(body=body, final=is_final(body), waited_ms=waited_ms, outcome=outcome)
