"""Notifiers for tests that must know when a message has reached the waiters, or must act inside the hub's
reader greenlet between sending a (UN)SUBSCRIBE and reading its confirmation."""
from collections.abc import Callable, Sequence

import redis
from redis.cluster import RedisCluster

from eventi.notify import Hub, Notifier, PerRequestNotifier
from eventi.notify.sharded import ShardedSubscriber
from eventi.notify.subscriber import RedisSubscriber
from eventi.storage import redis_clients as redis_topology
from eventi.storage.redis_url import parse


class CountingHub(Hub):
    """A Hub whose `received` counts the messages it has read from Redis (all orders)."""

    @property
    def received(self):
        return self.messages_read


Hook = Callable[[Sequence[str]], None]


class _Hooks:
    """Counts the hub's SUBSCRIBE / UNSUBSCRIBE calls and calls a hook right after sending each."""

    def _hook(self, counts, on_subscribe=None, on_unsubscribe=None):
        self._counts = counts
        self._on_subscribe = on_subscribe
        self._on_unsubscribe = on_unsubscribe

    def subscribe(self, channels):
        super().subscribe(channels)
        self._counts["SUBSCRIBE"] += 1
        if self._on_subscribe:
            self._on_subscribe(channels)

    def unsubscribe(self, channels):
        super().unsubscribe(channels)
        self._counts["UNSUBSCRIBE"] += 1
        if self._on_unsubscribe:
            self._on_unsubscribe(channels)


class HookedSubscriber(_Hooks, RedisSubscriber):
    """A RedisSubscriber that counts the commands it sends and calls a hook right after sending each
    SUBSCRIBE / UNSUBSCRIBE, in the hub's reader greenlet, before the reader can read the reply."""

    def __init__(self, client, on_readable, counts, on_subscribe=None, on_unsubscribe=None):
        super().__init__(client, on_readable)
        self._hook(counts, on_subscribe, on_unsubscribe)


class HookedShardedSubscriber(_Hooks, ShardedSubscriber):
    """HookedSubscriber's counterpart on a Redis Cluster: counts the hub's subscribe / unsubscribe calls (each
    one write per node) under the same names, and calls the hooks after sending."""

    def __init__(self, cluster, on_readable, counts, on_subscribe=None, on_unsubscribe=None, client_name=None):
        super().__init__(cluster, on_readable, **({"client_name": client_name} if client_name else {}))
        self._hook(counts, on_subscribe, on_unsubscribe)


def is_cluster_url(redis_url):
    return parse(redis_url).kind == "cluster"


def cluster(redis_url, role="test"):
    """A RedisCluster on the cluster redis_url names (the caller closes it)."""
    return redis_topology.cluster_client(parse(redis_url), role)


def hooked_hub(redis_url, recheck_seconds=60.0, on_subscribe: Hook | None = None, on_unsubscribe: Hook | None = None,
               client_name=None):
    """A CountingHub on its own client whose subscriber is a HookedSubscriber (a HookedShardedSubscriber on a
    cluster URL); hub.commands counts what it sent (a cluster's SSUBSCRIBE / SUNSUBSCRIBE under the same names)."""
    counts = {"SUBSCRIBE": 0, "UNSUBSCRIBE": 0}
    if is_cluster_url(redis_url):
        client = cluster(redis_url)

        def open_subscriber(on_readable):
            return HookedShardedSubscriber(client, on_readable, counts, on_subscribe, on_unsubscribe, client_name)
    else:
        client = redis.Redis.from_url(redis_url, client_name=client_name)

        def open_subscriber(on_readable):
            return HookedSubscriber(client, on_readable, counts, on_subscribe, on_unsubscribe)

    hub = CountingHub(client, recheck_seconds, subscriber=open_subscriber)
    hub.commands = counts
    hub.client_name = client_name
    hub.client = client
    return hub


def numsub(redis_url, channel):
    """How many connections Redis has subscribed to the channel (PUBSUB NUMSUB; on a cluster PUBSUB
    SHARDNUMSUB on the master owning the channel's slot)."""
    if is_cluster_url(redis_url):
        client = cluster(redis_url)
        try:
            node = client.get_node_from_key(channel)
            reply = client.get_redis_connection(node).execute_command("PUBSUB", "SHARDNUMSUB", channel)
            return int(reply[1])
        finally:
            client.close()
    return dict(redis.Redis.from_url(redis_url).pubsub_numsub(channel)).get(channel.encode(), 0)


def publish(redis_url, channel, message):
    """PUBLISH (SPUBLISH on a cluster) and the number of connections that received it."""
    if is_cluster_url(redis_url):
        client = cluster(redis_url)
        try:
            return client.spublish(channel, message)
        finally:
            client.close()
    return redis.Redis.from_url(redis_url).publish(channel, message)


def hub_links(redis_url, client_name):
    """The hub's pub/sub connections by node: [(node_client, connection id)], found by CLIENT LIST name."""
    if is_cluster_url(redis_url):
        client: RedisCluster = cluster(redis_url)
        nodes = [client.get_redis_connection(node) for node in client.get_primaries()]
    else:
        nodes = [redis.Redis.from_url(redis_url)]
    return [(node, c["id"]) for node in nodes for c in node.client_list() if c["name"] == client_name]


def notifier(mode: str, redis_url: str, recheck_seconds: float) -> Notifier:
    """A notifier of the mode on its own Redis client: CountingHub for "hub"."""
    if is_cluster_url(redis_url):
        assert mode == "hub"
        return hooked_hub(redis_url, recheck_seconds)
    client = redis.Redis.from_url(redis_url)
    if mode == "hub":
        return CountingHub(client, recheck_seconds)
    return PerRequestNotifier(client, recheck_seconds)
