"""The per-request mode: every wait opens, and always closes, its own Redis PubSub.

Kept as the baseline the hub is measured against (docs/benchmarks.md): its Redis connections grow
with the waits held. When the subscription fails the wait falls back to re-reading the store.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import gevent
from redis import Redis
from redis.client import PubSub
from redis.exceptions import RedisError

from .fallback import StorePollingWaiter, recheck_pause
from .protocol import Signal, Waiter, WaitEvent
from .pubsub import await_confirmation, close_quietly, open_pubsub
from .wire import Notification, channel_for

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
"""A waiter's next() returns at least this often, so a wait notices a gone client or a stop in time."""
SUBSCRIBE_TIMEOUT_SECONDS = 5.0


class PubSubWaiter:
    """A waiter reading its own PubSub, subscribed to one order's channel."""

    def __init__(self, pubsub: PubSub, recheck_seconds: float) -> None:
        self._pubsub = pubsub
        self._recheck_seconds = recheck_seconds

    def wake(self) -> None:
        """Nothing to interrupt: next() blocks at most POLL_SECONDS."""

    def next(self, timeout: float) -> WaitEvent:
        """A Notification, Signal.RECHECK after a Redis error, or Signal.IDLE after at most POLL_SECONDS."""
        try:
            message = self._pubsub.get_message(timeout=min(timeout, POLL_SECONDS))
        except (RedisError, OSError):
            gevent.sleep(min(timeout, recheck_pause(self._recheck_seconds)))
            return Signal.RECHECK
        if message is not None and message["type"] == "message":
            return Notification.decode(message["data"])
        return Signal.IDLE


class PerRequestNotifier:
    """Every waiting request subscribes on its own PubSub, taken from redis_client's pool.

    redis_client: a client of its own for waits, with no socket timeout, no health checks and a
    pool as large as the waits a worker may hold (one connection each).
    recheck_seconds: the store re-check period of a wait whose subscription failed.
    """

    def __init__(self, redis_client: Redis, recheck_seconds: float = 2.0) -> None:
        self._redis = redis_client
        self.recheck_seconds = recheck_seconds
        self._held: set[Waiter] = set()

    def start(self, timeout: float) -> bool:
        """Always ready: there is nothing to connect ahead, each wait subscribes when it starts."""
        return True

    def stop(self) -> None:
        for waiter in list(self._held):
            waiter.wake()

    @contextmanager
    def waiter(self, order_id: str) -> Iterator[Waiter]:
        pubsub = open_pubsub(self._redis)
        try:
            waiter = self._subscribe(pubsub, order_id)
            self._held.add(waiter)
            try:
                yield waiter
            finally:
                self._held.discard(waiter)
        finally:
            close_quietly(pubsub)

    def _subscribe(self, pubsub: PubSub, order_id: str) -> Waiter:
        channel = channel_for(order_id)
        try:
            pubsub.subscribe(channel)
            await_confirmation(pubsub, SUBSCRIBE_TIMEOUT_SECONDS)
        except (RedisError, OSError) as exc:
            log.warning("Redis subscribe failed (%s); re-checking the store instead", exc.__class__.__name__)
            return StorePollingWaiter(self.recheck_seconds)
        log.debug("Subscribed to Redis channel %s orderId=%s", channel, order_id)
        return PubSubWaiter(pubsub, self.recheck_seconds)
