"""Waiting for a condition against a deadline: the one polling loop of the tests and the benchmark."""
from __future__ import annotations

import time
from collections.abc import Callable

import gevent


def poll_until(predicate: Callable[[], object], timeout: float, interval: float = 0.05) -> bool:
    """Poll predicate until it is true (True) or timeout seconds have passed (False). The pause between
    polls only paces the polling; it never decides."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        gevent.sleep(interval)
    return True


def eventually(predicate: Callable[[], object], timeout: float = 30, what: str = "condition",
               interval: float = 0.05) -> None:
    """Poll predicate until it is true; AssertionError after timeout seconds."""
    if not poll_until(predicate, timeout, interval):
        raise AssertionError(f"timed out waiting for {what}")
