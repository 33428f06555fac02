"""What a wait needs from a notifier, declared once; the hub and the per-request mode both implement it.

Pub/sub is at-most-once: whenever a notifier may have missed a message, its waiter answers
``Signal.RECHECK`` and the wait re-reads the store.
"""
from __future__ import annotations

import enum
from contextlib import AbstractContextManager
from typing import Protocol, TypeAlias

from .wire import Notification


class Signal(enum.Enum):
    """What Waiter.next() returns when no message came."""

    IDLE = "idle"
    """Nothing arrived (the timeout passed or wake() was called): look at the clock and the client again."""
    RECHECK = "recheck"
    """A message may have been missed: re-read the status from the store."""


WaitEvent: TypeAlias = Notification | Signal
"""What one Waiter.next() call returns."""


class Waiter(Protocol):
    """One waiting request's view of its order's channel."""

    def next(self, timeout: float) -> WaitEvent:
        """Block up to timeout seconds for the order's next notification."""
        ...

    def wake(self) -> None:
        """Make a blocked next() return soon (Signal.IDLE), so the wait looks at its client again."""
        ...


class Notifier(Protocol):
    """Hands out waiters on order channels; started after fork, stopped when the worker stops."""

    def waiter(self, order_id: str) -> AbstractContextManager[Waiter]:
        """A waiter for the order, subscribed (so no later message is lost) for the duration of the block."""
        ...

    def start(self, timeout: float) -> bool:
        """Get ready to deliver; True when ready within timeout, False while Redis is not reachable yet."""
        ...

    def stop(self) -> None:
        """Wake every held waiter so its wait answers the status it knows and leaves (the worker is stopping)."""
        ...
