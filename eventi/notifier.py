"""Status notifications over Redis pub/sub: the message format, the per-worker hub, the per-request baseline.

A message on ``order:status:<orderId>`` is JSON ``{"body": <status body>, "sentAt": <epoch seconds>}``;
it is sent (by eventi/services/broadcast.py) only after the store holds the same status, so a waiter
may answer with its body.
Pub/sub is at-most-once: whenever the link to Redis was lost, waiters re-read the store.
"""
import json
import logging
import random
import time
from collections import defaultdict
from contextlib import contextmanager

import gevent
from gevent.event import Event
from redis.exceptions import RedisError

from . import metrics

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "order:status:"
CHANNEL_PATTERN = CHANNEL_PREFIX + "*"
HEARTBEAT_SECONDS = 5.0
"""The hub PINGs this often and treats three beats of silence as a dead link."""
MAX_BACKOFF_SECONDS = 10.0


def channel_for(order_id):
    return CHANNEL_PREFIX + order_id


def encode_message(body, sent_at=None):
    return json.dumps({"body": body, "sentAt": time.time() if sent_at is None else sent_at})


class Notification:
    """A status body received from Redis, with the time it was published."""

    __slots__ = ("body", "sent_at")

    def __init__(self, body, sent_at):
        self.body = body
        self.sent_at = sent_at

    @classmethod
    def decode(cls, data):
        message = json.loads(data)
        return cls(message["body"], message.get("sentAt"))


RECHECK = object()
"""Returned by a waiter when its status must be re-read from the store."""


def jittered(seconds):
    return seconds * random.uniform(0.8, 1.2)


class _HubWaiter:
    """One waiting request inside a hub: an event and a one-message slot."""

    __slots__ = ("_hub", "_event", "_message", "_recheck")

    def __init__(self, hub):
        self._hub = hub
        self._event = Event()
        self._message = None
        self._recheck = False

    def deliver(self, notification):
        self._message = notification
        self._event.set()

    def request_recheck(self):
        self._recheck = True
        self._event.set()

    def wake(self):
        self._event.set()

    def next(self, timeout):
        """Block up to timeout: a Notification, RECHECK, or None when nothing happened."""
        degraded = not self._hub.connected
        limit = min(timeout, jittered(self._hub.recheck_seconds)) if degraded else timeout
        woke = self._event.wait(limit)
        self._event.clear()
        if self._message is not None:
            message, self._message = self._message, None
            return message
        if self._recheck or (degraded and not woke and limit < timeout):
            self._recheck = False
            return RECHECK
        return None


class Hub:
    """One Redis pub/sub connection per worker, read by one greenlet, shared by all its waits.

    The hub PSUBSCRIBEs to every order channel once, so registering a waiter is a dict insert
    and the number of Redis connections does not grow with the number of waits.
    """

    def __init__(self, redis_client, recheck_seconds=2.0):
        self._redis = redis_client
        self.recheck_seconds = recheck_seconds
        self._waiters = defaultdict(set)
        self._greenlet = None
        self._stopping = False
        self._connected_event = Event()
        self._failures = 0
        self._subscribed_before = False
        self.received = 0
        """Messages read from Redis so far (all orders)."""

    @property
    def connected(self):
        return self._connected_event.is_set()

    @contextmanager
    def waiter(self, order_id):
        """Register a waiter for the order for the duration of the block."""
        self.start()
        waiter = _HubWaiter(self)
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

    def start(self):
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def stop(self):
        """Stop reading and wake every waiter so it answers its last known status and leaves.

        No store re-read here: at a deploy that would be one MongoDB read per held wait at once,
        and the page simply waits again.
        """
        self._stopping = True
        self._wake_all(recheck=False)
        if self._greenlet is not None:
            self._greenlet.join(timeout=2 * HEARTBEAT_SECONDS)

    def wait_connected(self, timeout):
        """Start the hub and block until it is subscribed (used by readiness checks and tests)."""
        self.start()
        return self._connected_event.wait(timeout)

    def _run(self):
        while not self._stopping:
            pubsub = self._redis.pubsub()
            try:
                pubsub.psubscribe(CHANNEL_PATTERN)
                self._pump(pubsub)
            except (RedisError, OSError, ValueError) as exc:
                self._failures += 1
                delay = min(MAX_BACKOFF_SECONDS, 0.2 * 2 ** min(self._failures, 6)) * random.uniform(0.5, 1.0)
                if self.connected or self._failures == 1:
                    log.warning("Redis hub disconnected (%s); reconnecting in %.1fs", exc.__class__.__name__, delay)
                self._set_connected(False)
                gevent.sleep(delay)
            finally:
                _close_quietly(pubsub)

    def _pump(self, pubsub):
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

    def _handle(self, message):
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

    def _dispatch(self, channel, data):
        self.received += 1
        order_id = _text(channel)[len(CHANNEL_PREFIX):]
        group = self._waiters.get(order_id)
        if not group:
            return
        try:
            notification = Notification.decode(data)
        except (ValueError, KeyError, TypeError):
            log.warning("Ignored a malformed message on %s", _text(channel))
            return
        log.debug("Redis message received orderId=%s waiters=%d", order_id, len(group))  # each woken wait logs its own line
        for waiter in list(group):
            waiter.deliver(notification)

    def _set_connected(self, connected):
        was = self.connected
        self._connected_event.set() if connected else self._connected_event.clear()
        metrics.HUB_CONNECTED.set(1 if connected else 0)
        if was and not connected:
            self._wake_all(recheck=False)  # waiters switch to bounded store re-checks

    def _wake_all(self, recheck):
        for group in list(self._waiters.values()):
            for waiter in list(group):
                waiter.request_recheck() if recheck else waiter.wake()


class _PubSubWaiter:
    """A waiter with its own PubSub: the per-request baseline."""

    def __init__(self, pubsub, recheck_seconds):
        self._pubsub = pubsub
        self._recheck_seconds = recheck_seconds

    def wake(self):
        pass  # next() returns at least every second anyway

    def next(self, timeout):
        """A Notification, RECHECK after a Redis error, or None after at most a second."""
        try:
            message = self._pubsub.get_message(timeout=min(timeout, 1.0))
        except (RedisError, OSError):
            gevent.sleep(min(timeout, jittered(self._recheck_seconds)))
            return RECHECK
        if message is not None and message["type"] == "message":
            return Notification.decode(message["data"])
        return None


class _StorePollingWaiter:
    """Used while Redis is unreachable: asks for a store re-check every few seconds."""

    def __init__(self, recheck_seconds):
        self._recheck_seconds = recheck_seconds

    def wake(self):
        pass

    def next(self, timeout):
        pause = jittered(self._recheck_seconds)
        if pause >= timeout:
            gevent.sleep(timeout)
            return None
        gevent.sleep(pause)
        return RECHECK


class PerRequestNotifier:
    """Every waiting request opens, and always closes, its own Redis PubSub."""

    def __init__(self, redis_client, recheck_seconds=2.0):
        self._redis = redis_client
        self.recheck_seconds = recheck_seconds

    @contextmanager
    def waiter(self, order_id):
        pubsub = self._redis.pubsub()
        try:
            channel = channel_for(order_id)
            try:
                pubsub.subscribe(channel)
                _await_confirmation(pubsub, timeout=5.0)
            except (RedisError, OSError) as exc:
                log.warning("Redis subscribe failed (%s); re-checking the store instead", exc.__class__.__name__)
                yield _StorePollingWaiter(self.recheck_seconds)
                return
            log.info("Subscribed to Redis channel %s orderId=%s", channel, order_id)
            yield _PubSubWaiter(pubsub, self.recheck_seconds)
        finally:
            _close_quietly(pubsub)

    def wait_connected(self, timeout):
        return True

    def stop(self):
        pass


def _await_confirmation(pubsub, timeout):
    """Read until Redis confirms the subscription, so it is live before the status read."""
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        message = pubsub.get_message(timeout=remaining)
        if message is not None and message["type"] == "subscribe":
            return
    raise TimeoutError("Redis did not confirm the subscription")


def _close_quietly(pubsub):
    try:
        pubsub.close()
    except (RedisError, OSError):
        pass


def _text(value):
    return value.decode() if isinstance(value, bytes) else value
