"""The hub: one Redis pub/sub connection per worker, read by one greenlet, subscribed to the orders its waits hold.

A worker SUBSCRIBEs to an order's channel when it starts holding the first wait for that order and
UNSUBSCRIBEs when the last one ends, so Redis sends it only the messages it has a waiter for. All of
it goes over the one connection, and only the reader greenlet touches it: a wait registers its
waiter (a dict insert) and marks the channel; the reader sends what was marked since its last turn
as one SUBSCRIBE (and one UNSUBSCRIBE) with many channels, reads Redis's confirmation of each
channel, and only then lets the wait read the status (no lost wake-ups: tests/test_lost_wakeup.py).

Whenever the link is lost the hub reconnects with backoff, resubscribes every channel it holds (in
batches), and every waiter re-reads the store once its channel is confirmed again: a message may
have been missed. The connection side is a Subscriber (subscriber.py): RedisSubscriber on one server
or a Sentinel master, sharded.ShardedSubscriber on a Redis Cluster (SSUBSCRIBE, a connection per node).
A Subscriber with several links may lose one of them alone: it reports that link's channels ``lost``,
and the hub subscribes them again and has their waiters re-read once confirmed, as after a reconnect,
while the other channels stay as they are.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from functools import partial

import gevent
from gevent.event import Event
from redis import Redis
from redis.backoff import EqualJitterBackoff
from redis.cluster import RedisCluster
from redis.exceptions import RedisError

from .. import metrics
from .fallback import recheck_pause
from .protocol import Signal, WaitEvent
from .subscriber import RedisSubscriber, Reply, Subscriber, SubscriberFactory
from .wire import Notification, channel_for

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0
"""The hub PINGs this often and treats three beats of silence as a dead link."""
RECONNECT_BACKOFF = EqualJitterBackoff(cap=10.0, base=0.2)
"""Waits between reconnection attempts: 0.2 s doubling up to 10 s, each drawn from its upper half."""
MAX_DOUBLINGS = 6
"""The backoff reaches its cap after this many failures; counting further would only grow 2**failures."""
SUBSCRIBE_TIMEOUT_SECONDS = 5.0
"""How long a new wait waits for Redis to confirm its channel before reading the status anyway
(it then re-reads the store when the confirmation comes)."""
CHANNELS_PER_COMMAND = 1000
"""At most this many channels in one SUBSCRIBE or UNSUBSCRIBE (a reconnect with 10,000 held sends 10)."""


class HubWaiter:
    """One waiting request inside a hub: an event and a one-message slot. Its own context manager (Hub.waiter):
    a class with slots rather than a generator's, since thousands are held at once."""

    __slots__ = ("_hub", "_channel", "_order_id", "_event", "_message", "_recheck", "_confirmed", "_late")

    def __init__(self, hub: Hub, order_id: str) -> None:
        self._hub = hub
        self._order_id = order_id
        self._channel = channel_for(order_id)
        self._event = Event()
        self._message: Notification | None = None
        self._recheck = False
        self._confirmed: Event | None = None
        """While the wait starts: set when Redis confirmed the channel on the live link, or when waiting for
        that is pointless. None before and after (a held wait keeps one Event, not two)."""
        self._late = False
        """The wait may have read its status without a confirmed subscription: re-read at the next confirmation."""

    def __enter__(self) -> HubWaiter:
        """Register for the order's channel; return once Redis confirmed it (or at once while Redis is
        unreachable: then the waiter re-reads the store when the channel is confirmed)."""
        self._hub._register(self, self._channel)
        try:
            self._hub._await_confirmation(self, self._channel)
        except BaseException:
            self._hub._unregister(self, self._channel)
            raise
        log.debug("Subscribed to Redis channel %s (hub) orderId=%s", self._channel, self._order_id)
        return self

    def __exit__(self, *exc: object) -> None:
        self._hub._unregister(self, self._channel)

    def deliver(self, notification: Notification) -> None:
        self._message = notification
        self._event.set()

    def request_recheck(self) -> None:
        self._recheck = True
        self._event.set()

    def wake(self) -> None:
        self._event.set()

    def confirm(self) -> None:
        """Redis confirmed the order's channel on the live link."""
        if self._late:
            self._late = False
            self.request_recheck()
        if self._confirmed is not None:
            self._confirmed.set()

    def release(self) -> None:
        """The link is gone (or the hub stops): re-read at the next confirmation, and stop waiting for one."""
        self._late = True
        if self._confirmed is not None:
            self._confirmed.set()

    def next(self, timeout: float) -> WaitEvent:
        """Block up to timeout; while the hub is disconnected, or this wait's channel was lost and is not
        confirmed again (a cluster node's link), ask for a store re-check every few seconds."""
        degraded = not self._hub.connected or self._late
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
    retries: the hub bounds its reads with heartbeats and reconnects itself. On a cluster: the
    RedisCluster whose slot map subscriber follows (the link opens connections of its own).
    recheck_seconds: the store re-check period of its waiters while Redis is unreachable.
    subscriber: opens the link (RedisSubscriber on redis_client by default; required for a cluster).

    Counters for tests and the benchmark: messages_read (every published message this worker
    received), messages_dropped (those no waiter held: only in the moment an UNSUBSCRIBE is on its
    way), subscribe_commands and unsubscribe_commands (commands sent, each with many channels),
    channels_lost (channels a Subscriber reported lost alone: a cluster node's link or slot).
    """

    def __init__(self, redis_client: Redis | RedisCluster, recheck_seconds: float = 2.0,
                 subscriber: SubscriberFactory | None = None) -> None:
        if subscriber is None:
            if not isinstance(redis_client, Redis):
                raise TypeError("a cluster's hub needs its subscriber (eventi.notify.sharded.ShardedSubscriber)")
            subscriber = partial(RedisSubscriber, redis_client)
        self._open: SubscriberFactory = subscriber
        self.recheck_seconds = recheck_seconds
        self._waiters: dict[str, set[HubWaiter]] = {}
        """Channel -> the waiters holding it: the channels this worker wants."""
        self._greenlet: gevent.Greenlet[[], None] | None = None
        self._stopping = False
        self._connected_event = Event()
        self._failures = 0
        self._subscribed_before = False
        self._wake = Event()
        """Set when the reader has something to do: a reply may be readable, or a channel was marked."""
        # The reader greenlet's view of the link (reset whenever it is lost):
        self._dirty: set[str] = set()
        """Channels whose first waiter came or last waiter left since the reader's last turn."""
        self._sent: set[str] = set()
        """Channels whose last command sent on this link was SUBSCRIBE."""
        self._unacked: dict[str, int] = {}
        """Channel -> SUBSCRIBE confirmations still to come on this link."""
        self._resubscribing: set[str] = set()
        """Channels of the link's first batch not confirmed yet."""
        self._pong_seen = False
        self.subscriber: Subscriber | None = None
        """The link of the reader's current session (tests look into it)."""
        self.channels_lost = 0
        self.messages_read = 0
        self.messages_dropped = 0
        self.subscribe_commands = 0
        self.unsubscribe_commands = 0

    @property
    def connected(self) -> bool:
        """True while the link is up and every channel held when it opened is confirmed."""
        return bool(self._connected_event.is_set())

    @property
    def channels(self) -> set[str]:
        """The channels this worker holds a wait on (subscribed, or about to be)."""
        return set(self._waiters)

    def confirmed(self, channel: str) -> bool:
        """True when Redis has confirmed the channel on the live link and no UNSUBSCRIBE has been sent since."""
        return channel in self._sent and channel not in self._unacked

    def waiter(self, order_id: str) -> HubWaiter:
        """A waiter for the order, registered for the duration of its `with` block; the block starts once Redis
        confirmed the order's channel (or at once while Redis is unreachable: the waiter re-reads the store
        when the channel is confirmed)."""
        return HubWaiter(self, order_id)

    def _register(self, waiter: HubWaiter, channel: str) -> None:
        self._spawn()
        group = self._waiters.get(channel)
        if group is None:
            group = self._waiters[channel] = set()
            self._mark(channel)
        group.add(waiter)

    def _unregister(self, waiter: HubWaiter, channel: str) -> None:
        group = self._waiters.get(channel)
        if group is None:
            return
        group.discard(waiter)
        if not group:
            del self._waiters[channel]
            self._mark(channel)

    def start(self, timeout: float) -> bool:
        """Start reading and block until connected; False when Redis did not answer within timeout
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
        self._release_all()
        self._wake.set()
        if self._greenlet is not None:
            self._greenlet.join(timeout=2 * HEARTBEAT_SECONDS)

    def _await_confirmation(self, waiter: HubWaiter, channel: str) -> None:
        if self.confirmed(channel):
            waiter.confirm()
            return
        if self.connected and not self._stopping:
            waiter._confirmed = Event()
            try:
                waiter._confirmed.wait(SUBSCRIBE_TIMEOUT_SECONDS)
            finally:
                waiter._confirmed = None
        if not self.confirmed(channel):  # unreachable, lost meanwhile, or slow: re-read when confirmed
            waiter._late = True
            if self.connected and not self._stopping:
                log.warning("Redis did not confirm %s within %.0fs; the wait re-reads when it does",
                            channel, SUBSCRIBE_TIMEOUT_SECONDS)

    def _mark(self, channel: str) -> None:
        """The channel's first waiter came or its last left: the reader (un)subscribes on its next turn."""
        self._dirty.add(channel)
        self._wake.set()

    def _spawn(self) -> None:
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        while not self._stopping:
            subscriber: Subscriber | None = None
            try:
                subscriber = self.subscriber = self._open(self._wake.set)
                self._session(subscriber)
            except (RedisError, OSError, ValueError) as exc:
                self._failures += 1
                delay = RECONNECT_BACKOFF.compute(min(self._failures, MAX_DOUBLINGS))
                if self.connected or self._failures == 1:
                    log.warning("Redis hub disconnected (%s); reconnecting in %.1fs", exc.__class__.__name__, delay)
                self._lost()
                gevent.sleep(delay)
            finally:
                if subscriber is not None:
                    subscriber.close()

    def _session(self, subscriber: Subscriber) -> None:
        """Resubscribe every held channel, then read replies and send (un)subscribes until the link fails."""
        self._dirty.update(self._waiters)
        self._resubscribing = set(self._flush(subscriber))
        self._pong_seen = False
        subscriber.ping()  # its PONG follows the confirmations of the batch: then the hub is connected
        last_seen = last_ping = time.monotonic()
        while not self._stopping:
            self._wake.clear()
            replies = subscriber.read()
            if replies:
                last_seen = time.monotonic()
                for reply in replies:
                    self._handle(reply)
            if self._dirty:
                gevent.sleep(0)  # waits opening in this loop turn join the same command
                self._flush(subscriber)
                self._maybe_connected()  # a lost channel whose waits left is not waited for
            now = time.monotonic()
            if now - last_ping >= HEARTBEAT_SECONDS:
                subscriber.ping()
                last_ping = now
            if now - last_seen > 3 * HEARTBEAT_SECONDS:
                raise TimeoutError("no reply from Redis within three heartbeats")
            if not self._dirty:
                self._wake.wait(max(0.0, last_ping + HEARTBEAT_SECONDS - now))

    def _flush(self, subscriber: Subscriber) -> list[str]:
        """Send one UNSUBSCRIBE for the channels no wait holds any more and one SUBSCRIBE for the new ones
        (per CHANNELS_PER_COMMAND); the channels subscribed."""
        dirty, self._dirty = self._dirty, set()
        self._resubscribing.difference_update(channel for channel in dirty if channel not in self._waiters)
        join = [channel for channel in dirty if channel in self._waiters and channel not in self._sent]
        leave = [channel for channel in dirty if channel not in self._waiters and channel in self._sent]
        for batch in batches(leave):
            self._sent.difference_update(batch)  # before sending: a wait arriving meanwhile subscribes anew
            self.unsubscribe_commands += 1
            subscriber.unsubscribe(batch)
        for batch in batches(join):
            self._sent.update(batch)
            for channel in batch:
                self._unacked[channel] = self._unacked.get(channel, 0) + 1
            self.subscribe_commands += 1
            subscriber.subscribe(batch)
        return join

    def _handle(self, reply: Reply) -> None:
        if reply.kind == "message" and reply.data is not None:
            self._dispatch(reply.channel, reply.data)
        elif reply.kind == "subscribe":
            self._confirm(reply.channel)
        elif reply.kind == "pong":
            self._pong_seen = True
            self._maybe_connected()
        elif reply.kind == "lost":
            self._lose(reply.channel)

    def _lose(self, channel: str) -> None:
        """One channel's subscription went away with its node's link (the rest of the link is up): subscribe
        it again, and its waiters re-read the store when that is confirmed."""
        self.channels_lost += 1
        self._sent.discard(channel)
        self._unacked.pop(channel, None)
        if channel in self._waiters:
            self._dirty.add(channel)
            for waiter in list(self._waiters[channel]):
                waiter.release()
        else:
            self._resubscribing.discard(channel)
            self._maybe_connected()

    def _confirm(self, channel: str) -> None:
        """Redis confirmed one SUBSCRIBE of the channel (they come back in the order they were sent)."""
        left = self._unacked.get(channel, 0) - 1
        if left > 0:
            self._unacked[channel] = left  # a later SUBSCRIBE of it is still on its way: that one counts
            return
        self._unacked.pop(channel, None)
        self._resubscribing.discard(channel)
        if channel in self._sent:
            for waiter in list(self._waiters.get(channel, ())):
                waiter.confirm()
        self._maybe_connected()

    def _maybe_connected(self) -> None:
        if self.connected or not self._pong_seen or self._resubscribing:
            return
        reconnected, self._subscribed_before, self._failures = self._subscribed_before, True, 0
        if reconnected:
            metrics.REDIS_RECONNECTS.inc()
            log.warning("Redis hub reconnected; every waiter re-reads its status (channels=%d)", len(self._sent))
        else:
            log.info("Redis hub connected (channels=%d)", len(self._sent))
        self._set_connected(True)

    def _dispatch(self, channel: str, data: str | bytes) -> None:
        """Hand a published message to the order's waiters (every message read passes here)."""
        self.messages_read += 1
        group = self._waiters.get(channel)
        if not group:
            self.messages_dropped += 1  # its UNSUBSCRIBE is on its way
            return
        try:
            notification = Notification.decode(data)
        except (ValueError, KeyError, TypeError):
            log.warning("Ignored a malformed message on %s", channel)
            return
        # DEBUG: each woken wait logs its own INFO line.
        log.debug("Redis message received channel=%s waiters=%d", channel, len(group))
        for waiter in list(group):
            waiter.deliver(notification)

    def _lost(self) -> None:
        """The link is gone: nothing is subscribed any more, and every waiter re-reads once its channel is again."""
        self._sent.clear()
        self._unacked.clear()
        self._resubscribing.clear()
        self._dirty.clear()  # the next link subscribes every held channel
        self._pong_seen = False
        self._release_all()
        self._set_connected(False)

    def _set_connected(self, connected: bool) -> None:
        was = self.connected
        if connected:
            self._connected_event.set()
        else:
            self._connected_event.clear()
        metrics.HUB_CONNECTED.set(1 if connected else 0)
        if was and not connected:
            self._wake_all(recheck=False)  # waiters switch to bounded store re-checks

    def _release_all(self) -> None:
        for group in list(self._waiters.values()):
            for waiter in list(group):
                waiter.release()

    def _wake_all(self, recheck: bool) -> None:
        for group in list(self._waiters.values()):
            for waiter in list(group):
                if recheck:
                    waiter.request_recheck()
                else:
                    waiter.wake()


def batches(channels: list[str], size: int = CHANNELS_PER_COMMAND) -> Iterator[Sequence[str]]:
    """The channels in slices of at most size."""
    for start in range(0, len(channels), size):
        yield channels[start:start + size]
