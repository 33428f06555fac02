"""Status notifications on a Redis Cluster: sharded pub/sub (SSUBSCRIBE, Redis 7), one connection per node.

On a cluster the broadcaster SPUBLISHes an order's message to the node owning the slot of
``order:{<orderId>}:status`` (eventi/services/broadcast.py); only connections SSUBSCRIBEd to that
channel on that node receive it. There is no sharded PSUBSCRIBE, so subscribing is per order.

ShardedSubscriber  one redis-py ClusterPubSub: subscribe(order_id) / unsubscribe(order_id) send
                   SSUBSCRIBE / SUNSUBSCRIBE on the node of the order's slot (a connection per node that
                   holds channels), get_message(timeout) waits on all those connections at once (no
                   nodes × timeout polling) and returns what arrived as a ShardEvent. It is the
                   "subscriber" a per-order hub drives from its one reader greenlet.
ShardedPerRequestNotifier
                   the interim notifier of a cluster runtime: each wait owns a ShardedSubscriber for
                   its order (one connection per held wait, like EVENTI_NOTIFIER=per-request), until the
                   hub subscribes per order.

Pub/sub is at-most-once: after any error, and when Redis takes a subscription away (a slot moved or
its master failed over: the server sends an unasked SUNSUBSCRIBE), the waiter subscribes again and
answers Signal.RECHECK so the wait re-reads the store.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import gevent
from gevent import select
from gevent.event import Event
from redis.cluster import ClusterPubSub, RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from ..redis_topology import LazyRedisCluster
from .fallback import recheck_pause
from .protocol import Signal, Waiter, WaitEvent
from .wire import Notification, channel_for, order_id_of, text

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
"""A waiter's next() returns at least this often, so a wait notices a gone client or a stop in time."""
SUBSCRIBE_TIMEOUT_SECONDS = 5.0
SUBSCRIBE_ERRORS = (RedisError, RedisClusterException, OSError, TimeoutError)
"""What subscribing or reading may raise; RedisClusterException is no RedisError in redis-py."""


@dataclass(frozen=True, slots=True)
class ShardEvent:
    """What a ShardedSubscriber read: a message, or Redis confirming or ending a subscription.

    kind "unsubscribed" without a preceding unsubscribe() means Redis dropped the subscription (the
    slot moved or its master changed): subscribe again and re-read the store.
    """

    kind: Literal["message", "subscribed", "unsubscribed"]
    order_id: str
    data: str | bytes | None = None


def cluster_of(client: RedisCluster | LazyRedisCluster) -> RedisCluster:
    """The RedisCluster behind a client built lazily (eventi.redis_topology.LazyRedisCluster)."""
    return client.client() if isinstance(client, LazyRedisCluster) else client


class ShardedSubscriber:
    """Per-order sharded subscriptions over one ClusterPubSub; to be used from one greenlet."""

    def __init__(self, cluster: RedisCluster | LazyRedisCluster) -> None:
        self._cluster = cluster_of(cluster)
        self._pubsub: ClusterPubSub = self._cluster.pubsub()  # type: ignore[no-untyped-call]
        self._asked_off: set[str] = set()

    @property
    def order_ids(self) -> set[str]:
        """The orders subscribed (or being subscribed) now."""
        return {order_id_of(channel) for channel in self._pubsub.shard_channels}

    def subscribe(self, order_id: str) -> None:
        """SSUBSCRIBE the order's channel on its slot's node; confirmed later by a "subscribed" event."""
        self._asked_off.discard(order_id)
        self._pubsub.ssubscribe(channel_for(order_id))

    def unsubscribe(self, order_id: str) -> None:
        """SUNSUBSCRIBE the order's channel; confirmed later by an "unsubscribed" event."""
        self._asked_off.add(order_id)
        self._pubsub.sunsubscribe(channel_for(order_id))  # type: ignore[no-untyped-call]

    def get_message(self, timeout: float) -> ShardEvent | None:
        """The next event from any node, waiting up to timeout; None when nothing came. Raises RedisError
        or OSError when a node's connection failed: close() and start again."""
        deadline = time.monotonic() + timeout
        while True:
            for name in list(self._pubsub.node_pubsub_mapping):
                # Through ClusterPubSub, so its bookkeeping sees each SUNSUBSCRIBE confirmed.
                message = self._pubsub.get_sharded_message(  # type: ignore[no-untyped-call]
                    timeout=0, target_node=_Node(name))
                if message is not None:
                    event = self._event(message)
                    if event is not None:
                        return event
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            sockets = [sock for pubsub in self._pubsub.node_pubsub_mapping.values()
                       if pubsub.connection is not None and (sock := getattr(pubsub.connection, "_sock", None))]
            if sockets:
                select.select(sockets, [], [], remaining)
            else:
                gevent.sleep(min(remaining, POLL_SECONDS))

    def ping(self) -> None:
        """PING every node connection (the replies come back as nothing through get_message)."""
        for pubsub in list(self._pubsub.node_pubsub_mapping.values()):
            pubsub.ping()

    def close(self) -> None:
        """Give every node connection back; safe on a broken one."""
        try:
            self._pubsub.close()
        except (RedisError, OSError):
            pass

    def _event(self, message: dict[str, Any]) -> ShardEvent | None:
        kind, channel = message["type"], message.get("channel")
        if channel is None:
            return None
        order_id = order_id_of(channel)
        if kind == "smessage":
            return ShardEvent("message", order_id, message["data"])
        if kind == "ssubscribe":
            return ShardEvent("subscribed", order_id)
        if kind == "sunsubscribe":
            if order_id in self._asked_off:
                self._asked_off.discard(order_id)
            else:  # Redis took it away: forget it here too, so subscribe() goes to the new owner
                for name in (channel, text(channel), text(channel).encode()):
                    self._pubsub.shard_channels.pop(name, None)
                    self._pubsub._shard_channel_to_node.pop(name, None)
            return ShardEvent("unsubscribed", order_id)
        return None


@dataclass(frozen=True, slots=True)
class _Node:
    """What ClusterPubSub.get_sharded_message needs of a target node: its name (host:port)."""

    name: str


class ShardedWaiter:
    """One wait's own sharded subscription to its order's channel, renewed after any failure."""

    def __init__(self, cluster: RedisCluster | LazyRedisCluster, order_id: str, recheck_seconds: float) -> None:
        self._cluster = cluster
        self._order_id = order_id
        self._recheck_seconds = recheck_seconds
        self._subscriber: ShardedSubscriber | None = None
        self._woken = Event()

    def open(self) -> bool:
        """Subscribe and wait for Redis to confirm (so no later message is lost); False when that failed."""
        self.close()
        subscriber = None
        try:
            subscriber = ShardedSubscriber(self._cluster)
            subscriber.subscribe(self._order_id)
            deadline = time.monotonic() + SUBSCRIBE_TIMEOUT_SECONDS
            while (remaining := deadline - time.monotonic()) > 0:
                event = subscriber.get_message(remaining)
                if event is not None and event.kind == "subscribed":
                    self._subscriber = subscriber
                    log.info("Subscribed to Redis shard channel %s orderId=%s", channel_for(self._order_id),
                             self._order_id)
                    return True
            raise TimeoutError("Redis did not confirm the SSUBSCRIBE")
        except SUBSCRIBE_ERRORS as exc:
            log.warning("Redis SSUBSCRIBE failed (%s); re-checking the store instead", exc.__class__.__name__)
            if subscriber is not None:
                subscriber.close()
            self._refresh_slots()
            return False

    def close(self) -> None:
        if self._subscriber is not None:
            self._subscriber.close()
            self._subscriber = None

    def wake(self) -> None:
        self._woken.set()

    def next(self, timeout: float) -> WaitEvent:
        """A Notification; Signal.RECHECK when the subscription failed or was renewed; else Signal.IDLE
        after at most POLL_SECONDS."""
        if self._subscriber is None:
            woken = bool(self._woken.wait(min(timeout, recheck_pause(self._recheck_seconds))))
            self._woken.clear()
            if woken:
                return Signal.IDLE
            self.open()
            return Signal.RECHECK
        try:
            event = self._subscriber.get_message(min(timeout, POLL_SECONDS))
        except SUBSCRIBE_ERRORS as exc:
            log.warning("Redis shard subscription lost (%s) orderId=%s", exc.__class__.__name__, self._order_id)
            self.close()
            self._refresh_slots()
            return Signal.RECHECK
        if event is None:
            return Signal.IDLE
        if event.kind == "message" and event.data is not None:
            try:
                return Notification.decode(event.data)
            except (ValueError, KeyError, TypeError):
                log.warning("Ignored a malformed message on %s", channel_for(self._order_id))
                return Signal.IDLE
        if event.kind == "unsubscribed":  # the slot moved or its master changed: subscribe on the new owner
            log.warning("Redis dropped the shard subscription orderId=%s; subscribing again", self._order_id)
            # Learn the new owner first: with the old slot map the SSUBSCRIBE went back to the node that
            # dropped it (after CLUSTER FAILOVER, the demoted master), was confirmed there, and the new
            # master's SPUBLISH never reached it: the wait sat until its hold ended.
            self._refresh_slots()
            self.open()
            return Signal.RECHECK
        return Signal.IDLE

    def _refresh_slots(self) -> None:
        """Ask the cluster for its slots again (after a failover the old master is gone), leaving every
        connection alone: by default redis-py marks all the seed nodes' connections in use for reconnection,
        and every other wait's subscription on them was then silently renewed on its next read (redis-py's
        PubSub resubscribes on connect): a message published meanwhile was lost with no RECHECK, and the
        wait sat until its hold ended."""
        try:
            cluster_of(self._cluster).nodes_manager.initialize(disconnect_startup_nodes_pools=False)
        except SUBSCRIBE_ERRORS:
            pass


class ShardedPerRequestNotifier:
    """Every wait SSUBSCRIBEs its order's channel on a connection of its own (the cluster's interim mode).

    cluster: a RedisCluster for waits, with no socket timeout, no health checks, and per-node pools as
    large as the waits a worker may hold.
    """

    def __init__(self, cluster: RedisCluster | LazyRedisCluster, recheck_seconds: float = 2.0) -> None:
        self._cluster = cluster
        self.recheck_seconds = recheck_seconds
        self._held: set[ShardedWaiter] = set()

    def start(self, timeout: float) -> bool:
        """Ready when the cluster's slots are known (each wait subscribes when it starts)."""
        try:
            cluster_of(self._cluster)
        except SUBSCRIBE_ERRORS:
            return False
        return True

    def stop(self) -> None:
        for waiter in list(self._held):
            waiter.wake()

    @contextmanager
    def waiter(self, order_id: str) -> Iterator[Waiter]:
        waiter = ShardedWaiter(self._cluster, order_id, self.recheck_seconds)
        waiter.open()
        self._held.add(waiter)
        try:
            yield waiter
        finally:
            self._held.discard(waiter)
            waiter.close()
