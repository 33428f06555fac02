"""Waiting without Redis: re-read the store every few seconds (jittered, so waits do not read in step)."""
from __future__ import annotations

import random

from gevent.event import Event

from .protocol import Signal, WaitEvent


def recheck_pause(seconds: float) -> float:
    """The store re-check period, jittered by ±20 %."""
    return seconds * random.uniform(0.8, 1.2)


class StorePollingWaiter:
    """A waiter used while Redis is unreachable: asks for a store re-check every few seconds."""

    def __init__(self, recheck_seconds: float) -> None:
        self._recheck_seconds = recheck_seconds
        self._woken = Event()

    def wake(self) -> None:
        self._woken.set()

    def next(self, timeout: float) -> WaitEvent:
        """Signal.RECHECK after a jittered re-check period, or Signal.IDLE at the timeout or when woken."""
        pause = recheck_pause(self._recheck_seconds)
        woken = bool(self._woken.wait(min(pause, timeout)))
        self._woken.clear()
        if woken or pause >= timeout:
            return Signal.IDLE
        return Signal.RECHECK
