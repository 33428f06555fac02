"""The Redis clients EVENTI_REDIS_URL asks for: one server, a Redis Cluster, or a Sentinel-watched master.

eventi/storage/redis_url.py parses the setting; this module builds, per worker (after fork):

- commands_client(): the client for the status cache, publishing and the push limit: a redis.Redis on
  a small blocking pool for one server, a redis.cluster.RedisCluster (which routes each key to its
  slot's master and follows MOVED and failovers) for a cluster, and for Sentinel a redis.Redis whose
  pool asks the sentinels for the master whenever it connects (redis-py's Sentinel.master_for), so
  it reaches the new master after a failover;
- subscriber_client(): the client the hub or the per-request notifier opens its PubSubs on (one
  server or the Sentinel master; on a cluster the hub's ShardedSubscriber (eventi/notify/sharded.py)
  opens a connection per node itself, routed by the commands client's slot map);
- check_server(): at worker start, a cluster whose nodes run Redis older than 7 (no sharded pub/sub)
  is refused in one line.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, TypeAlias, cast

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.commands.core import Script
from redis.connection import BlockingConnectionPool, Encoder, SSLConnection  # type: ignore[attr-defined]
from redis.exceptions import RedisClusterException, RedisError
from redis.retry import Retry
from redis.sentinel import (
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
)

from .redis_url import RedisTopology, parse

RedisClient: TypeAlias = "redis.Redis | RedisCluster"
"""What the commands client is: the cache, the broadcaster and the push limit take either."""

POOL_SIZE = 2
"""Commands (cache, publish) share this many connections per worker (per node on a cluster); greenlets
queue for them."""
POOL_TIMEOUT = 5
CONNECTION_OPTIONS: dict[str, Any] = dict(socket_connect_timeout=2, socket_timeout=5, socket_keepalive=True,
                                          health_check_interval=30)
SENTINEL_OPTIONS: dict[str, Any] = dict(socket_connect_timeout=1, socket_timeout=1, socket_keepalive=True)
"""Asking a sentinel is quick or that sentinel is skipped for the next one, with no retries (sentinel_master):
redis-py's default retries a refused connection 10 times with backoff, ~8 s per dead sentinel."""
SHARDED_PUBSUB_SINCE = (7, 0)


class RedisVersionError(RuntimeError):
    """The Redis named cannot do what eventi needs of it; the message is one line naming EVENTI_REDIS_URL."""


class BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """redis-py's Sentinel pool (asks the sentinels for the master on each connect, drops connections to
    a demoted one) with BlockingConnectionPool's bound: greenlets queue for a connection instead of
    failing with "Too many connections"."""


class SentinelConnection(SentinelManagedConnection):
    """The Sentinel master's connection: it drops itself when a read fails, as redis-py's other connections do.

    redis-py's SentinelManagedConnection reads with disconnect_on_error=False: a command cut short while
    waiting for its reply (a greenlet killed, a gevent.Timeout) went back to the pool connected, and the
    next command on it read that reply as its own (a status cache read got another command's 'OK')."""

    def read_response(self, disable_decoding: bool = False, *,  # type: ignore[override]
                      disconnect_on_error: bool = True, **options: Any) -> Any:
        return super().read_response(disable_decoding, disconnect_on_error=disconnect_on_error, **options)


class SentinelSSLConnection(SentinelConnection, SSLConnection):
    """The Sentinel master's connection over TLS (as redis-py's SentinelManagedSSLConnection)."""


class LazyRedisCluster:
    """A RedisCluster built on first use. RedisCluster() connects at once to learn the slots, and a worker
    must start (and serve from MongoDB) while Redis is down, as it does with one server. Until built, a
    failure to build is a RedisError like any other Redis failure."""

    def __init__(self, build: Callable[[], RedisCluster]) -> None:
        self._build = build
        self._client: RedisCluster | None = None
        self._lock = threading.Lock()

    def client(self) -> RedisCluster:
        """The RedisCluster; ClusterUnreachable (a RedisError) while no seed node answers."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    try:
                        self._client = self._build()
                    except RedisClusterException as exc:
                        raise ClusterUnreachable(str(exc)) from exc
        return self._client

    def register_script(self, script: str) -> Script:
        """A Script run through this client (building the cluster only when the script first runs)."""
        return Script(cast(RedisCluster, self), script)

    def get_encoder(self) -> Any:
        """RedisCluster's default encoder until it is built: Script() encodes its text at once."""
        if self._client is not None:
            return self._client.get_encoder()  # type: ignore[no-untyped-call]
        return Encoder("utf-8", "strict", False)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client(), name)


class ClusterUnreachable(RedisError):
    """No seed node of the cluster answered (redis-py's RedisClusterException is no RedisError)."""


def is_cluster(client: object) -> bool:
    return isinstance(client, (RedisCluster, LazyRedisCluster))


def client_name(role: str) -> str:
    return f"eventi:{os.getpid()}:{role}"


def commands_client(url: str | RedisTopology, role: str = "pool") -> RedisClient:
    """The worker's client for commands: a small bounded pool per server (per node on a cluster)."""
    topology = parse(url) if isinstance(url, str) else url
    if topology.kind == "cluster":
        return lazy_cluster(topology, role)
    if topology.kind == "sentinel":
        return sentinel_master(topology, role, connection_pool_class=BlockingSentinelPool,
                               max_connections=POOL_SIZE, timeout=POOL_TIMEOUT)
    pool = BlockingConnectionPool.from_url(
        topology.url, max_connections=POOL_SIZE, timeout=POOL_TIMEOUT, **CONNECTION_OPTIONS,
        retry=Retry(NoBackoff(), 1), client_name=client_name(role),
    )
    return redis.Redis(connection_pool=pool)


def subscriber_client(url: str | RedisTopology, role: str, **overrides: Any) -> redis.Redis:
    """A client to open PubSubs on: the one server, or the current Sentinel master (a new PubSub after a
    failover connects to the new one). overrides replace the connection options (socket_timeout, …)."""
    topology = parse(url) if isinstance(url, str) else url
    options: dict[str, Any] = {**CONNECTION_OPTIONS, "retry": Retry(NoBackoff(), 1), **overrides}
    if topology.kind == "sentinel":
        return sentinel_master(topology, role, **options)
    if topology.kind == "cluster":
        raise ValueError("a cluster's subscribers are eventi.notify.sharded's")
    client: redis.Redis = redis.Redis.from_url(topology.url, client_name=client_name(role), **options)
    return client


def lazy_cluster(topology: RedisTopology, role: str, **overrides: Any) -> RedisCluster:
    """cluster_client(), built on first use (LazyRedisCluster: no connection now)."""
    return cast(RedisCluster, LazyRedisCluster(lambda: cluster_client(topology, role, **overrides)))


def cluster_client(topology: RedisTopology, role: str, **overrides: Any) -> RedisCluster:
    """A RedisCluster over the seed nodes: it learns the slots from them and follows MOVED and failovers."""
    # BlockingConnectionPool per node (its own 20 s queue timeout: RedisCluster passes no pool timeout).
    # redis-py builds each node's pool from connection_pool_class only for a cluster given by URL; given
    # startup nodes alone it makes a plain ConnectionPool, which raises "Too many connections" for the
    # (POOL_SIZE + 1)th concurrent command on a node instead of queueing it. So the first seed node is
    # also passed as a URL (its scheme, rediss:// for TLS, picks the connection class for every node).
    options: dict[str, Any] = {**CONNECTION_OPTIONS, "max_connections": POOL_SIZE,
                               "connection_pool_class": BlockingConnectionPool, **overrides}
    host, port = topology.nodes[0]
    seed = f"{'rediss' if topology.tls else 'redis'}://{f'[{host}]' if ':' in host else host}:{port}"
    return RedisCluster(
        url=seed,
        startup_nodes=[ClusterNode(host, port) for host, port in topology.nodes],  # type: ignore[no-untyped-call]
        username=topology.username, password=topology.password,  # TLS: the seed URL's rediss:// scheme
        client_name=client_name(role), require_full_coverage=False, **options,
    )


def sentinel_master(topology: RedisTopology, role: str, **options: Any) -> redis.Redis:
    """A redis.Redis on the master the sentinels name, re-asked on every new connection."""
    assert topology.master_name is not None
    sentinel = Sentinel(list(topology.nodes), sentinel_kwargs={**SENTINEL_OPTIONS, "ssl": topology.tls,
                                                                  "retry": Retry(NoBackoff(), 0)},
                        min_other_sentinels=0)  # type: ignore[no-untyped-call]
    options = {**CONNECTION_OPTIONS, "retry": Retry(NoBackoff(), 1), **options}
    master: redis.Redis = sentinel.master_for(
        topology.master_name, db=topology.db, username=topology.username, password=topology.password,
        client_name=client_name(role), connection_class=SentinelSSLConnection if topology.tls else SentinelConnection,
        **options)  # type: ignore[no-untyped-call]
    return master


def check_server(client: RedisClient) -> None:
    """Refuse a cluster with a node older than Redis 7 (RedisVersionError). A server that does not answer
    is not refused here: the service starts and keeps retrying, as with one server."""
    if not is_cluster(client):
        return
    try:
        infos: dict[str, Any] = client.info("server", target_nodes=RedisCluster.ALL_NODES)
    except RedisError:
        return
    for node, info in sorted(infos.items()):
        version = str(info.get("redis_version", "0"))
        if _version(version) < SHARDED_PUBSUB_SINCE:
            raise RedisVersionError(
                f"EVENTI_REDIS_URL names a Redis Cluster whose node {node} runs Redis {version}: "
                "sharded pub/sub (SPUBLISH, SSUBSCRIBE) needs Redis 7 or later")


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.split(".")[:2]:
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)
