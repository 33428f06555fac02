"""Settling status writes whose outcome is unknown: the callback answered 503, but did the store apply it?

A store that stalls (FerretDB stopped, a MongoDB failover) times the driver out while the server
still holds the write, and may apply it when it comes back: a callback answered 503 yet its status
claim, or its order update, lands later. The callback path hands such an order to the Settler,
which re-reads it (one greenlet per process, backoff while the store is down) and, when a status
claim exists, applies it to the order and announces it, so the late write becomes visible and
announced within seconds of the store answering again, without PayHero's help. An order with no
claim is watched for WINDOW_SECONDS of the store answering, then let go: nothing landed, the 503
changed nothing, and PayHero's redelivery (or reconciliation) decides it as usual.
"""
import logging
import time

import gevent
from redis.backoff import AbstractBackoff

from ..domain.models import status_body
from ..errors import StoreUnavailable
from ..storage.order_store import OrderStore
from .background import Background, retry_backoff
from .broadcast import StatusBroadcaster

log = logging.getLogger(__name__)

WINDOW_SECONDS = 30.0
"""How long after the store answers again a timed-out write is still looked for. A stalled server
applies what it held within moments of resuming; 30 s leaves room for a slow one."""
RECHECK_SECONDS = 1.0
"""Re-read period while the store answers but no claim has appeared: inside the 5 s promise."""


class Settler:
    """Watches orders whose status write timed out until their claim is applied or the window passes."""

    def __init__(self, store: OrderStore, broadcaster: StatusBroadcaster, window: float = WINDOW_SECONDS,
                 recheck: float = RECHECK_SECONDS, backoff: AbstractBackoff | None = None) -> None:
        self._store = store
        self._broadcaster = broadcaster
        self._window = window
        self._recheck = recheck
        self._backoff = backoff or retry_backoff()
        self._watched: dict[str, float | None] = {}  # order id -> when the store first answered "no claim yet"
        self._background = Background(self._run)

    @property
    def watched(self) -> set[str]:
        """Order ids still watched."""
        return set(self._watched)

    def watch(self, order_id: str) -> None:
        """Find out, in the background, whether a timed-out status write for the order landed."""
        self._watched.setdefault(order_id, None)
        self._background.start()

    def close(self) -> None:
        """Stop watching (the process is going away)."""
        self._background.close()

    def _run(self) -> None:
        failures = 0
        while self._watched:
            gevent.sleep(self._backoff.compute(failures) if failures else self._recheck)
            try:
                for order_id in list(self._watched):
                    self._settle(order_id)
                failures = 0
            except StoreUnavailable:
                failures += 1

    def _settle(self, order_id: str) -> None:
        order = self._store.settle(order_id)
        if order is not None:
            del self._watched[order_id]
            log.warning("Status write that timed out was applied; announcing orderId=%s status=%s",
                        order_id, order["status"])
            self._broadcaster.announce(status_body(order))
            return
        now = time.monotonic()
        first = self._watched[order_id]
        if first is None:
            self._watched[order_id] = now
        elif now - first >= self._window:
            del self._watched[order_id]
            log.info("No status write landed for orderId=%s; the 503 changed nothing", order_id)
