"""Store writes that must land although the request that made them has answered: retried in the background.

After an STK push went out, the shopper's phone may be prompted whatever the store does, so the checkout
answers 201 even when recording the push (PayHero's reference, pushedAt, the audit record) fails. Those
writes are retried here, one greenlet per process, with capped, jittered backoff, for GIVE_UP_AFTER
seconds; each failure is logged with the order id. If the process dies first, nothing is lost that
matters: the order is stored, and reconcile settles every pending order past its window, pushed or not.
"""
import logging
import time
from collections.abc import Callable

import gevent
from redis.backoff import AbstractBackoff

from ..errors import StoreUnavailable
from .background import Background, retry_backoff

log = logging.getLogger(__name__)

GIVE_UP_AFTER = 600.0
"""Seconds a write is retried; past it reconcile's sweep is what settles the order."""


class WriteRetrier:
    """Retries store writes (callables raising StoreUnavailable) until they succeed or GIVE_UP_AFTER passes."""

    def __init__(self, backoff: AbstractBackoff | None = None, give_up_after: float = GIVE_UP_AFTER) -> None:
        self._backoff = backoff or retry_backoff()
        self._give_up_after = give_up_after
        self._pending: list[tuple[str, Callable[[], object], float]] = []
        self._background = Background(self._run)

    @property
    def pending(self) -> list[str]:
        """What is still being retried, as described when it was handed over."""
        return [what for what, _, _ in self._pending]

    def write(self, what: str, write: Callable[[], object]) -> None:
        """Run write now; when the store fails, keep retrying it in the background. what names it in logs."""
        try:
            write()
        except StoreUnavailable:
            log.warning("Store write failed, retrying in background: %s", what)
            self._pending.append((what, write, time.monotonic()))
            self._background.start()

    def close(self) -> None:
        """Stop retrying (the process is going away)."""
        self._background.close()

    def _run(self) -> None:
        failures = 0
        while self._pending:
            gevent.sleep(self._backoff.compute(failures))
            failures = failures + 1 if self._retry_all() else 0

    def _retry_all(self) -> bool:
        """Retry every pending write once, in order; True when one failed."""
        failed = False
        for item in list(self._pending):
            what, write, since = item
            try:
                write()
            except StoreUnavailable:
                failed = True
                if time.monotonic() - since >= self._give_up_after:
                    self._pending.remove(item)
                    log.error("Store write given up after %.0fs (reconcile settles the order): %s",
                              self._give_up_after, what)
                continue
            self._pending.remove(item)
            log.info("Store write landed after retrying: %s", what)
        return failed
