"""Holding a long-poll wait until the order's status is final or the wait times out."""
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Generator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from .. import metrics
from ..domain.models import is_final
from ..errors import NotFound, TooManyWaits
from ..notify import Notification, Notifier, Signal, Waiter
from .status import StatusReader

log = logging.getLogger(__name__)


class Client(Protocol):
    """The client's end of a wait (eventi/web/client_socket.py): a wait ends early when it goes."""

    def watch(self, wake: Callable[[], None]) -> None:
        """Call wake when the client goes."""

    def gone(self) -> bool:
        """True once the client closed its connection."""

    def close(self) -> None:
        """Stop watching."""


@dataclass(frozen=True)
class WaitResult:
    body: dict[str, Any]
    final: bool
    waited_ms: int
    outcome: str  # final | timeout | client_gone | shutdown

    @property
    def cut_short(self) -> bool:
        """Still pending because this worker is stopping, not because the hold ran out: not a hold
        the client should count; it should ask again at once (and reach a worker that is not stopping)."""
        return self.outcome == "shutdown"


class WaitService:
    """Registers the waiter first, then reads the status, then waits: no lost wake-ups."""

    def __init__(self, notifier: Notifier, reader: StatusReader, max_per_order: int = 20,
                 max_per_worker: int = 10_000) -> None:
        self._notifier = notifier
        self._reader = reader
        self._max_per_order = max_per_order
        self._max_per_worker = max_per_worker
        self._held: Counter[str] = Counter()
        self._stopping = False

    @property
    def stopping(self) -> bool:
        """True once drain() was called: waits are answered at once with outcome shutdown."""
        return self._stopping

    def drain(self) -> None:
        """The worker is stopping: answer every held wait now, with its last known status, and hold no new one."""
        self._stopping = True
        self._notifier.stop()

    @property
    def held(self) -> int:
        """Waits held by this worker right now."""
        return sum(self._held.values())

    def wait(self, order_id: str, timeout: float, client: Client | None = None) -> WaitResult:
        """Wait up to timeout seconds for a final status; a client that leaves ends the wait early."""
        return self.begin(order_id, timeout, client).run()

    def begin(self, order_id: str, timeout: float, client: Client | None = None) -> "HeldWait":
        """Take a slot, register the waiter and read the status: every refusal (NotFound, TooManyWaits, the
        store down) is raised here, before an answer starts; the HeldWait then holds it."""
        started = time.monotonic()
        log.info("Long polling started orderId=%s timeout=%ss", order_id, timeout)
        self._take_slot(order_id)
        subscription: AbstractContextManager[Waiter] | None = None
        try:
            subscription = self._notifier.waiter(order_id)
            waiter = subscription.__enter__()
            body = self._reader.current(order_id)
            if body is None:
                raise NotFound()
            if client is not None:
                client.watch(waiter.wake)
        except BaseException:
            if subscription is not None:
                subscription.__exit__(*sys.exc_info())
            self._release_slot(order_id)
            raise
        return HeldWait(self, order_id, subscription, waiter, body, started, started + timeout, client)

    def _take_slot(self, order_id: str) -> None:
        if self._held[order_id] >= self._max_per_order:
            raise TooManyWaits("Too many waits for this order; retry shortly.")
        if self.held >= self._max_per_worker:
            raise TooManyWaits()
        self._held[order_id] += 1
        metrics.WAITS_STARTED.inc()
        metrics.WAITS_HELD.inc()

    def _release_slot(self, order_id: str) -> None:
        metrics.WAITS_HELD.dec()
        self._held[order_id] -= 1
        if not self._held[order_id]:
            del self._held[order_id]

    def _hold(self, held: "HeldWait", beat_at: float | None) -> str | None:
        """Hold until final or deadline (the outcome; held.body is the status then), or until beat_at (None).
        A plain loop, not a generator: a parked wait keeps fewer C frames on its greenlet's saved stack."""
        client = held.client
        while not is_final(held.body):
            if self._stopping:
                return "shutdown"
            if client is not None and client.gone():
                return "client_gone"
            now = time.monotonic()
            remaining = held.deadline - now
            if remaining <= 0:
                return "timeout"
            if beat_at is not None:
                if now >= beat_at:
                    return None
                remaining = min(remaining, beat_at - now)
            held.body = self._next_body(held.order_id, held.waiter, remaining, held.body, held.started)
        return "final"

    def _next_body(self, order_id: str, waiter: Waiter, remaining: float, body: dict[str, Any],
                   started: float) -> dict[str, Any]:
        event = waiter.next(remaining)
        if event is Signal.RECHECK:
            return self._reader.recheck(order_id, body)
        if isinstance(event, Notification) and is_final(event.body):
            if event.sent_at:
                metrics.CALLBACK_TO_ANSWER.observe(max(0.0, time.time() - event.sent_at))
            log.info(
                "Payment status changed via Redis orderId=%s status=%s elapsedMs=%d",
                order_id, event.body["paymentStatus"], (time.monotonic() - started) * 1000,
            )
            final: dict[str, Any] = event.body
            return final
        return body

    def _finish(self, order_id: str, body: dict[str, Any], outcome: str, started: float) -> WaitResult:
        waited_ms = int((time.monotonic() - started) * 1000)
        metrics.WAITS_ANSWERED.labels(outcome).inc()
        if outcome == "timeout":
            log.info("Long poll timed out orderId=%s waitedMs=%d", order_id, waited_ms)
        elif outcome != "final":
            log.info("Long poll ended (%s) orderId=%s waitedMs=%d", outcome, order_id, waited_ms)
        return WaitResult(body=body, final=is_final(body), waited_ms=waited_ms, outcome=outcome)


class HeldWait:
    """A wait past its checks (WaitService.begin): its slot and waiter are held until it ends. Slots, and no
    ExitStack or generator-based context managers: thousands are held at once, each costs what it keeps."""

    __slots__ = ("_service", "order_id", "_subscription", "waiter", "body", "started", "deadline", "client", "_open")

    def __init__(self, service: WaitService, order_id: str, subscription: AbstractContextManager[Waiter],
                 waiter: Waiter, body: dict[str, Any], started: float, deadline: float, client: Client | None) -> None:
        self._service, self.order_id, self._subscription, self.waiter = service, order_id, subscription, waiter
        self.body, self.started, self.deadline, self.client = body, started, deadline, client
        self._open = True

    def run(self) -> WaitResult:
        """Hold to the end, without heartbeats."""
        try:
            outcome = self._service._hold(self, None)
        finally:
            self.close()
        return self._service._finish(self.order_id, self.body, outcome or "timeout", self.started)

    def steps(self, beat_every: float | None) -> Generator[WaitResult | None, None, None]:
        """None every beat_every seconds while held, then the WaitResult. Closing the iterator early (the
        client went while a heartbeat was written) or an error reading the store releases the slot and waiter."""
        next_beat = self.started + beat_every if beat_every else None
        try:
            while (outcome := self._service._hold(self, next_beat)) is None:
                yield None
                next_beat = time.monotonic() + beat_every  # type: ignore[operator]
        finally:
            self.close()
        yield self._service._finish(self.order_id, self.body, outcome, self.started)

    def close(self) -> None:
        """Stop watching the client, drop the waiter, free the slot (once; in that order)."""
        if not self._open:
            return
        self._open = False
        try:
            if self.client is not None:
                self.client.close()
        finally:
            try:
                self._subscription.__exit__(None, None, None)
            finally:
                self._service._release_slot(self.order_id)
