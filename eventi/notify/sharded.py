"""Status notifications on a Redis Cluster: sharded pub/sub (SSUBSCRIBE, Redis 7), one connection per node.

On a cluster the broadcaster SPUBLISHes an order's message to the node owning the slot of
``order:{<orderId>}:status`` (eventi/services/broadcast.py); only connections SSUBSCRIBEd to that
channel on that node receive it. There is no sharded PSUBSCRIBE, so subscribing is per order.

ShardedSubscriber  the hub's Subscriber on a cluster (eventi/notify/subscriber.py): one plain connection
                   per master that owns a held channel, each channel SSUBSCRIBEd on the master of its
                   slot, the commands of a batch grouped per slot (SSUBSCRIBE of several slots is a
                   CROSSSLOT error) and sent to each node in one write. The slot map is the commands
                   client's (its RedisCluster), so a worker holds one pub/sub connection per node besides
                   its command pools. A node's link lost, an error reply on it (MOVED after a failover,
                   CLUSTERDOWN) or an SUNSUBSCRIBE nobody asked for (Redis drops a channel when its slot
                   moves or its master is demoted) reports the channels it held as ``lost``: the hub
                   subscribes them again, on the slot's owner after a slot-map refresh, and their waiters
                   re-read the store once confirmed. The other nodes' channels stay as they are.
                   After such a loss every node a channel is sent to says whether it is a master (ROLE):
                   the map may still lag (the node asked for it, or a refresh of the commands client
                   under way, had not heard of the failover) and name the demoted master, now the new
                   one's replica. Redis lets that replica serve SSUBSCRIBE and confirms at once, but the
                   new master sends a replica the shard's SPUBLISHes only once it has learned of it (a
                   cluster-bus heartbeat later, up to a second): the messages in between were lost
                   after the waits had re-read the store. So a channel goes to the master a replica
                   names, and the link of a node that dropped channels and turned replica is closed
                   (what it still held is lost and goes to its master the same way). Links dropping
                   MAX_STRIKES times in a row make read() raise: the hub then reconnects every node
                   with its backoff.
ShardedPerRequestNotifier
                   EVENTI_NOTIFIER=per-request on a cluster: each wait owns a ShardPubSub (a redis-py
                   ClusterPubSub) for its order: one connection per held wait, the baseline design to
                   compare the hub with, as per-request mode is on one server. After a loss, a wait
                   checks (ROLE) that the node confirming its new SSUBSCRIBE is a master, for the same
                   reason as the hub; on a replica it re-reads the store and subscribes again later.

Pub/sub is at-most-once: after any error, and when Redis takes a subscription away, the wait re-reads
the store.
"""
from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from select import POLLIN
from typing import TYPE_CHECKING, Any, Literal

import gevent
from gevent import select
from gevent.event import Event
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, ClusterPubSub, RedisCluster
from redis.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError
from redis.retry import Retry

from ..storage.redis_clients import LazyRedisCluster
from .fallback import recheck_pause
from .protocol import Signal, Waiter, WaitEvent
from .subscriber import Reply, parse_reply
from .wire import Notification, channel_for, order_id_of, text

if TYPE_CHECKING:
    from gevent._types import _IoWatcher

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
"""A waiter's next() returns at least this often, so a wait notices a gone client or a stop in time."""
SUBSCRIBE_TIMEOUT_SECONDS = 5.0
SUBSCRIBE_ERRORS = (RedisError, RedisClusterException, OSError, TimeoutError)
"""What subscribing or reading may raise; RedisClusterException is no RedisError in redis-py."""


@dataclass(frozen=True, slots=True)
class ShardEvent:
    """What a ShardPubSub read: a message, or Redis confirming or ending a subscription.

    kind "unsubscribed" without a preceding unsubscribe() means Redis dropped the subscription (the
    slot moved or its master changed): subscribe again and re-read the store.
    """

    kind: Literal["message", "subscribed", "unsubscribed"]
    order_id: str
    data: str | bytes | None = None


def cluster_of(client: RedisCluster | LazyRedisCluster) -> RedisCluster:
    """The RedisCluster behind a client built lazily (eventi.storage.redis_clients.LazyRedisCluster)."""
    return client.client() if isinstance(client, LazyRedisCluster) else client


class ShardPubSub:
    """Per-order sharded subscriptions over one redis-py ClusterPubSub, for one wait (per-request mode on a
    cluster); to be used from one greenlet. The hub uses ShardedSubscriber instead."""

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
                _wait_readable(sockets, remaining)
            else:
                gevent.sleep(min(remaining, POLL_SECONDS))

    def node_of(self, order_id: str) -> str | None:
        """The name (host:port) of the node the order's channel was SSUBSCRIBEd on, if it was."""
        channel = channel_for(order_id)  # kept as str or bytes, as the client decodes
        nodes = self._pubsub._shard_channel_to_node
        return nodes.get(channel) or nodes.get(channel.encode())

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


MAX_STRIKES = 3
"""A ShardedSubscriber gives up (read() raises, and the hub reconnects every node with backoff) when node
links drop this many times in a row with no SSUBSCRIBE confirmed in between: a cluster in the middle
of a failover is not hammered with resubscriptions."""


def _wait_readable(sockets: list[Any], timeout: float) -> None:
    """Until one socket is readable or timeout passes. gevent's poll, not select: select() refuses descriptors
    above 1,023, which a worker holding hundreds of waits (a socket each) passes."""
    poller = select.poll()
    for sock in sockets:
        poller.register(sock, POLLIN)
    poller.poll(timeout * 1000)


@dataclass(eq=False)
class NodeLink:
    """One pub/sub connection to one cluster node, and what was sent on it."""

    name: str
    connection: Connection
    watcher: _IoWatcher | None
    channels: set[str] = field(default_factory=set)
    """SSUBSCRIBEd here and not SUNSUBSCRIBEd since."""
    leaving: Counter[str] = field(default_factory=Counter)
    """Channel -> SUNSUBSCRIBEs sent here whose confirmation is still to come."""
    writes: int = 0
    """Writes on this link (each carries every command of a batch for this node)."""

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher.close()
            self.watcher = None
        try:
            self.connection.disconnect()  # type: ignore[no-untyped-call]  # unannotated in redis-py
        except (RedisError, OSError):
            pass


class ShardedSubscriber:
    """The hub's Subscriber on a Redis Cluster: SSUBSCRIBE per slot, one connection per node that owns held
    channels; used by the hub's reader greenlet alone (see the module's docstring).

    cluster: the worker's RedisCluster (its commands client), for the slot map only: the links are
    connections of their own, never taken from its pools (a slot-map refresh marks a pool's connections
    for reconnection, which would silently drop a pub/sub connection's subscriptions).
    connection_options: replace the cluster's connection options for the links (client_name, …); they
    never time out, check health or retry by default: the hub bounds reads with its heartbeats.
    """

    def __init__(self, cluster: RedisCluster | LazyRedisCluster, on_readable: Callable[[], None],
                 **connection_options: Any) -> None:
        try:
            self._cluster = cluster_of(cluster)
        except RedisClusterException as exc:  # no RedisError: the hub must see one
            raise RedisConnectionError(str(exc)) from exc
        self._on_readable = on_readable
        self._options: dict[str, Any] = dict(socket_timeout=None, health_check_interval=0,
                                             retry=Retry(NoBackoff(), 0), **connection_options)
        self.links: dict[str, NodeLink] = {}
        """Node name (host:port) -> the open link to it."""
        self._home: dict[str, NodeLink] = {}
        """Channel -> the link it was SSUBSCRIBEd on (where an SUNSUBSCRIBE must go, whoever owns it now)."""
        self._made: list[Reply] = []
        """Replies made here rather than read (channels lost with their link, a PONG with no link)."""
        self._rounds: deque[set[str]] = deque()
        """Per PING sent (oldest first): the links that have not answered it yet."""
        self._stale = False
        self._strikes = 0
        self._dropped_some: set[str] = set()
        """Links on which Redis dropped a channel nobody asked to leave: each may be a demoted master."""

    def subscribe(self, channels: Sequence[str]) -> None:
        masters: dict[str, ClusterNode] | None = None
        if self._stale:  # after a loss: the map is refreshed, and every node is asked whether it is a master
            self._refresh()
            masters = {}
            self._leave_replicas(masters)
        groups: dict[str, dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
        nodes: dict[str, ClusterNode] = {}
        for channel in channels:
            slot: int = self._cluster.keyslot(channel)  # type: ignore[no-untyped-call]
            try:
                node = self._cluster.nodes_manager.get_node_from_slot(slot)
            except RedisClusterException as exc:  # SlotNotCoveredError: a failover in progress
                raise RedisConnectionError(str(exc)) from exc
            if masters is not None:
                node = self._master_of(node, masters)
            nodes[node.name] = node
            groups[node.name][slot].append(channel)
        for name, by_slot in groups.items():
            link = self.links.get(name) or self._connect(nodes[name])
            for group in by_slot.values():
                link.channels.update(group)
                for channel in group:
                    self._home[channel] = link
            self._send(link, [("SSUBSCRIBE", *group) for group in by_slot.values()])

    def unsubscribe(self, channels: Sequence[str]) -> None:
        groups: dict[str, dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
        for channel in channels:
            link = self._home.pop(channel, None)
            if link is None:  # its link is gone (and the channel reported lost): nothing to leave
                self._made.append(Reply("unsubscribe", channel))
                continue
            link.channels.discard(channel)
            link.leaving[channel] += 1
            groups[link.name][self._cluster.keyslot(channel)].append(channel)  # type: ignore[no-untyped-call]
        for name, by_slot in groups.items():
            self._send(self.links[name], [("SUNSUBSCRIBE", *group) for group in by_slot.values()])
        if self._made:
            self._on_readable()

    def ping(self) -> None:
        self._rounds.append(set(self.links))
        for link in list(self.links.values()):
            self._send(link, [("PING",)])
        self._pongs()

    def read(self) -> list[Reply]:
        replies: list[Reply] = []
        for link in list(self.links.values()):
            try:
                while link.connection.can_read(timeout=0):
                    response = link.connection.read_response(push_request=True)
                    reply = parse_reply(response)
                    if reply is not None:
                        replies.extend(self._arrived(link, reply))
            except (RedisError, OSError, ValueError) as exc:  # lost, or an error reply: MOVED, CLUSTERDOWN, …
                self._drop(link, exc)
        self._pongs()
        if self._strikes > MAX_STRIKES:
            raise RedisConnectionError(f"cluster node links dropped {self._strikes} times in a row")
        made, self._made = self._made, []
        return replies + made

    def close(self) -> None:
        for link in list(self.links.values()):
            link.close()
        self.links.clear()
        self._home.clear()
        self._dropped_some.clear()

    def _master_of(self, node: ClusterNode, masters: dict[str, ClusterNode]) -> ClusterNode:
        """The node when it says it is a master (ROLE), else the master it replicates; memoised in masters."""
        if node.name in masters:
            return masters[node.name]
        master = node
        role = self._role(node)
        if role[0] != "master":
            host, port = role[1], int(role[2])
            # The map lists masters only: a new master it does not know yet is made here (its link takes the
            # connection options of the map's nodes).
            master = self._cluster.nodes_manager.get_node(host, port) or ClusterNode(host, port)  # type: ignore[no-untyped-call]
            log.warning("Redis cluster slot map names %s, now a replica of %s: subscribing there", node.name, master.name)
            self._stale = True  # the map lags: refreshed again at the next subscribe
        masters[node.name] = master
        return master

    def _role(self, node: ClusterNode) -> list[str]:
        """The node's ROLE reply as text: ["master", …] or ["slave", master host, master port, …]."""
        try:
            role = self._cluster.get_redis_connection(node).execute_command("ROLE")  # type: ignore[no-untyped-call]
        except (RedisError, OSError) as exc:
            raise RedisConnectionError(f"ROLE on {node.name}: {exc.__class__.__name__}") from exc
        return [text(part) if isinstance(part, bytes | str) else str(part) for part in role]

    def _leave_replicas(self, masters: dict[str, ClusterNode]) -> None:
        """Close the links of nodes that dropped channels and are replicas now: what they still hold (an
        SSUBSCRIBE that reached a demoted master after its drop was confirmed there) is lost, and subscribed
        again on the master."""
        for name in list(self._dropped_some):
            self._dropped_some.discard(name)
            link, node = self.links.get(name), self._cluster.nodes_manager.get_node(node_name=name)
            if link is None:
                continue
            if node is None or self._master_of(node, masters).name != name:
                self._drop(link, RedisConnectionError(f"{name} is no master any more"))
                self._on_readable()

    def _connect(self, node: ClusterNode) -> NodeLink:
        pool = self._cluster.get_redis_connection(node).connection_pool
        connection: Connection = pool.connection_class(**{**pool.connection_kwargs, **self._options})
        connection.connect()  # type: ignore[no-untyped-call]  # raises ConnectionError: the hub retries
        sock = connection._sock
        if sock is None:
            raise RedisConnectionError(f"the pub/sub connection to {node.name} closed at once")
        watcher: _IoWatcher = gevent.get_hub().loop.io(sock.fileno(), 1)
        watcher.start(self._on_readable)
        link = self.links[node.name] = NodeLink(node.name, connection, watcher)
        return link

    def _send(self, link: NodeLink, commands: list[tuple[str, ...]]) -> None:
        """Every command for this node in one write; a failure drops the link (its channels are lost)."""
        try:
            packed = link.connection.pack_commands(commands)  # type: ignore[no-untyped-call]
            link.connection.send_packed_command(packed, check_health=False)  # type: ignore[no-untyped-call]
            link.writes += 1
        except (RedisError, OSError) as exc:
            self._drop(link, exc)
            self._on_readable()

    def _arrived(self, link: NodeLink, reply: Reply) -> list[Reply]:
        if reply.kind == "subscribe":
            self._strikes = 0
        elif reply.kind == "unsubscribe":
            if link.leaving[reply.channel] > 0:  # the confirmation of one we sent
                link.leaving[reply.channel] -= 1
                if not link.leaving[reply.channel]:
                    del link.leaving[reply.channel]
                return [reply]
            # Pushed by Redis: the slot moved, or this node stopped being its master.
            log.warning("Redis cluster node %s dropped the subscription to %s; subscribing again",
                        link.name, reply.channel)
            self._stale = True
            self._dropped_some.add(link.name)
            if self._home.get(reply.channel) is link:
                del self._home[reply.channel]
                link.channels.discard(reply.channel)
                return [Reply("lost", reply.channel)]
            return []
        elif reply.kind == "pong":
            for waiting in self._rounds:
                if link.name in waiting:
                    waiting.discard(link.name)
                    break
            return []
        return [reply]

    def _drop(self, link: NodeLink, exc: BaseException) -> None:
        """The link failed: close it, report its channels lost (and its pending SUNSUBSCRIBEs as done)."""
        if self.links.get(link.name) is not link:
            return
        log.warning("Redis cluster node %s: pub/sub link lost (%s); its %d channels subscribe again",
                    link.name, exc.__class__.__name__, len(link.channels))
        del self.links[link.name]
        link.close()
        self._stale = True
        self._strikes += 1
        for channel in link.channels:
            if self._home.get(channel) is link:
                del self._home[channel]
            self._made.append(Reply("lost", channel))
        for channel, count in link.leaving.items():
            self._made.extend(Reply("unsubscribe", channel) for _ in range(count))
        for waiting in self._rounds:
            waiting.discard(link.name)

    def _pongs(self) -> None:
        """A PONG for each PING every link has answered (oldest first)."""
        while self._rounds and not self._rounds[0]:
            self._rounds.popleft()
            self._made.append(Reply("pong"))
            self._on_readable()

    def _refresh(self) -> None:
        """Ask the cluster for its slots again (a failover or a slot migration happened)."""
        try:
            self._cluster.nodes_manager.initialize()
        except RedisClusterException as exc:
            raise RedisConnectionError(str(exc)) from exc
        self._stale = False


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
        self._subscriber: ShardPubSub | None = None
        self._woken = Event()
        self._lost_once = False
        """A subscription was lost or refused: from then on, each one confirmed is checked to be on a master."""

    def open(self) -> bool:
        """Subscribe and wait for Redis to confirm (so no later message is lost); False when that failed."""
        self.close()
        subscriber = None
        try:
            subscriber = ShardPubSub(self._cluster)
            subscriber.subscribe(self._order_id)
            deadline = time.monotonic() + SUBSCRIBE_TIMEOUT_SECONDS
            while (remaining := deadline - time.monotonic()) > 0:
                event = subscriber.get_message(remaining)
                if event is not None and event.kind == "subscribed":
                    if self._lost_once:
                        self._confirmed_on_a_master(subscriber)
                    self._subscriber = subscriber
                    log.info("Subscribed to Redis shard channel %s orderId=%s", channel_for(self._order_id),
                             self._order_id)
                    return True
            raise TimeoutError("Redis did not confirm the SSUBSCRIBE")
        except SUBSCRIBE_ERRORS as exc:
            log.warning("Redis SSUBSCRIBE failed (%s); re-checking the store instead", exc.__class__.__name__)
            if subscriber is not None:
                subscriber.close()
            self._lost_once = True
            self._refresh_slots()
            return False

    def _confirmed_on_a_master(self, subscriber: ShardPubSub) -> None:
        """Raise when the node that confirmed the SSUBSCRIBE is a replica. After a failover the slot map may
        still name the demoted master: it confirms at once, but the new master sends it the shard's SPUBLISHes
        only once it has learned of its new replica (a cluster-bus heartbeat later), so a message published
        meanwhile would be lost after the wait re-read the store. Refused, the wait re-reads the store every
        recheck period and subscribes again, until the map names the new master."""
        cluster = cluster_of(self._cluster)
        name = subscriber.node_of(self._order_id)
        node = cluster.get_node(node_name=name) if name else None  # type: ignore[no-untyped-call]
        if node is None:
            raise RedisConnectionError(f"no node known for {channel_for(self._order_id)}")
        role = cluster.get_redis_connection(node).execute_command("ROLE")  # type: ignore[no-untyped-call]
        if text(role[0]) != "master":
            raise RedisConnectionError(f"{name} confirmed the SSUBSCRIBE but is a replica now")

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
            self._lost_once = True
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
            self._lost_once = True
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
    """Every wait SSUBSCRIBEs its order's channel on a connection of its own (EVENTI_NOTIFIER=per-request on a cluster).

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
