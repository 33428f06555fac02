"""The hub: one Redis PSUBSCRIBE per worker, read by one greenlet, shared by all the worker's waits.

The hub PSUBSCRIBEs to every order channel once, so registering a waiter is a dict insert and the
number of Redis connections does not grow with the number of waits. Whenever the link is lost the
hub reconnects with backoff, and every waiter re-reads the store: a message may have been missed.
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import gevent
from gevent.event import Event
from redis import Redis
from redis.backoff import EqualJitterBackoff
from redis.client import PubSub
from redis.exceptions import RedisError

from .. import metrics
from .fallback import recheck_pause
from .protocol import Signal, WaitEvent
from .pubsub import close_quietly, open_pubsub
from .wire import CHANNEL_PATTERN, Notification, channel_for, order_id_of, text

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0
"""The hub PINGs this often and treats three beats of silence as a dead link."""
RECONNECT_BACKOFF = EqualJitterBackoff(cap=10.0, base=0.2)
"""Waits between reconnection attempts: 0.2 s doubling up to 10 s, each drawn from its upper half."""
MAX_DOUBLINGS = 6
"""The backoff reaches its cap after this many failures; counting further would only grow 2**failures."""


class HubWaiter:
    """One waiting request inside a hub: an event and a one-message slot."""

    __slots__ = ("_hub", "_event", "_message", "_recheck")

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._event = Event()
        self._message: Notification | None = None
        self._recheck = False

    def deliver(self, notification: Notification) -> None:
        self._message = notification
        self._event.set()

    def request_recheck(self) -> None:
        self._recheck = True
        self._event.set()

    def wake(self) -> None:
        self._event.set()

    def next(self, timeout: float) -> WaitEvent:
        """Block up to timeout; while the hub is disconnected, ask for a store re-check every few seconds."""
        degraded = not self._hub.connected
        limit = min(timeout, recheck_pause(self._hub.recheck_seconds)) if degraded else timeout
        woke = self._event.wait(limit)
        self._event.clear()
        if self._message is not None:
            message, self._message = self._message, None
            return message
        if self._recheck or (degraded and not woke and limit < timeout):
            self._recheck = False
            return Signal.RECHECK
        return Signal.IDLE


class Hub:
    """One Redis pub/sub connection per worker, read by one greenlet, shared by all its waits.

    redis_client: a client of the hub's own with no socket timeout, no health checks and no
    retries: the hub bounds its reads with heartbeats and reconnects itself.
    recheck_seconds: the store re-check period of its waiters while Redis is unreachable.
    """

    def __init__(self, redis_client: Redis, recheck_seconds: float = 2.0) -> None:
        self._redis = redis_client
        self.recheck_seconds = recheck_seconds
        self._waiters: defaultdict[str, set[HubWaiter]] = defaultdict(set)
        self._greenlet: gevent.Greenlet[[], None] | None = None
        self._stopping = False
        self._connected_event = Event()
        self._failures = 0
        self._subscribed_before = False

    @property
    def connected(self) -> bool:
        """True while the hub is subscribed."""
        return bool(self._connected_event.is_set())

    @contextmanager
    def waiter(self, order_id: str) -> Iterator[HubWaiter]:
        """Register a waiter for the order for the duration of the block."""
        self._spawn()
        waiter = HubWaiter(self)
        self._waiters[order_id].add(waiter)
        log.info("Subscribed to Redis channel %s (hub) orderId=%s", channel_for(order_id), order_id)
        try:
            yield waiter
        finally:
            group = self._waiters.get(order_id)
            if group is not None:
                group.discard(waiter)
                if not group:
                    del self._waiters[order_id]

    def start(self, timeout: float) -> bool:
        """Start reading and block until subscribed; False when Redis did not answer within timeout
        (the hub keeps retrying)."""
        self._spawn()
        return bool(self._connected_event.wait(timeout))

    def stop(self) -> None:
        """Stop reading and wake every waiter so it answers its last known status and leaves.

        No store re-read here: at a deploy that would be one MongoDB read per held wait at once,
        and the page simply waits again.
        """
        self._stopping = True
        self._wake_all(recheck=False)
        if self._greenlet is not None:
            self._greenlet.join(timeout=2 * HEARTBEAT_SECONDS)

    def _spawn(self) -> None:
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        while not self._stopping:
            pubsub = open_pubsub(self._redis)
            try:
                pubsub.psubscribe(CHANNEL_PATTERN)
                self._pump(pubsub)
            except (RedisError, OSError, ValueError) as exc:
                self._failures += 1
                delay = RECONNECT_BACKOFF.compute(min(self._failures, MAX_DOUBLINGS))
                if self.connected or self._failures == 1:
                    log.warning("Redis hub disconnected (%s); reconnecting in %.1fs", exc.__class__.__name__, delay)
                self._set_connected(False)
                gevent.sleep(delay)
            finally:
                close_quietly(pubsub)

    def _pump(self, pubsub: PubSub) -> None:
        last_seen = last_ping = time.monotonic()
        while not self._stopping:
            message = pubsub.get_message(timeout=1.0)
            now = time.monotonic()
            if message is not None:
                last_seen = now
                self._handle(message)
            if now - last_ping >= HEARTBEAT_SECONDS:
                pubsub.ping()
                last_ping = now
            if now - last_seen > 3 * HEARTBEAT_SECONDS:
                raise TimeoutError("no reply from Redis within three heartbeats")

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "pmessage":
            self._dispatch(message["channel"], message["data"])
        elif kind == "psubscribe":
            reconnected, self._subscribed_before, self._failures = self._subscribed_before, True, 0
            if reconnected:
                metrics.REDIS_RECONNECTS.inc()
                log.warning("Redis hub reconnected; every waiter re-reads its status")
            else:
                log.info("Redis hub subscribed to %s", CHANNEL_PATTERN)
            self._set_connected(True)
            # Waiters registered while we were not subscribed may have missed a message: re-read.
            self._wake_all(recheck=True)

    def _dispatch(self, channel: str | bytes, data: str | bytes) -> None:
        """Hand a published message to the order's waiters (every message read passes here)."""
        order_id = order_id_of(channel)
        group = self._waiters.get(order_id)
        if not group:
            return
        try:
            notification = Notification.decode(data)
        except (ValueError, KeyError, TypeError):
            log.warning("Ignored a malformed message on %s", text(channel))
            return
        # DEBUG: each woken wait logs its own INFO line.
        log.debug("Redis message received orderId=%s waiters=%d", order_id, len(group))
        for waiter in list(group):
            waiter.deliver(notification)

    def _set_connected(self, connected: bool) -> None:
        was = self.connected
        if connected:
            self._connected_event.set()
        else:
            self._connected_event.clear()
        metrics.HUB_CONNECTED.set(1 if connected else 0)
        if was and not connected:
            self._wake_all(recheck=False)  # waiters switch to bounded store re-checks

    def _wake_all(self, recheck: bool) -> None:
        for group in list(self._waiters.values()):
            for waiter in list(group):
                if recheck:
                    waiter.request_recheck()
                else:
                    waiter.wake()
