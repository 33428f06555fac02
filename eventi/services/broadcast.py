"""The one home of "the status changed": cache it and PUBLISH it in one Redis round trip, and never give up.

On a Redis Cluster the message goes by SPUBLISH (sharded pub/sub) to the node owning the order's slot,
the node its cache key lives on too (one hash tag, eventi/notify/wire.py); redis-py's cluster pipeline
sends each node its own orders' commands, so a backlog of many orders is still one round trip per node.

Callbacks, reconciliation, settled writes and failed STK pushes all announce through one StatusBroadcaster,
after MongoDB holds the status (eventi/storage/status_cache.py has the whole argument); order creation and
the status reader cache what they read or wrote through it too (remember), so every write to the
status cache goes through here. When Redis fails, the
body joins a per-process backlog that one greenlet drains with capped, jittered exponential backoff
for as long as the process lives: a final status the cache lacks is not abandoned after a few tries.
The backlog holds one body per order (bodies of one order are all the same), so it is bounded by
the orders decided during the outage.
"""
import logging
import time
from typing import TYPE_CHECKING, Any

import gevent
from redis.backoff import AbstractBackoff
from redis.exceptions import RedisError

from .. import metrics
from ..notify import channel_for, encode_message
from ..storage.status_cache import StatusCache
from .background import retry_backoff

if TYPE_CHECKING:
    from ..storage.redis_clients import RedisClient

log = logging.getLogger(__name__)

ALARM_AFTER_SECONDS = 60.0
"""A backlog still undelivered this long is logged at ERROR (once per outage); retrying goes on."""
BATCH = 500
"""Bodies per pipeline when the backlog drains."""


class StatusBroadcaster:
    """Caches and publishes final status bodies; retries in the background until Redis takes them."""

    def __init__(self, redis_client: "RedisClient", cache: StatusCache, backoff: AbstractBackoff | None = None,
                 alarm_after: float = ALARM_AFTER_SECONDS, sharded: bool = False) -> None:
        self._redis = redis_client
        self._sharded = sharded
        self._cache = cache
        self._backoff = backoff or retry_backoff()
        self._alarm_after = alarm_after
        self._backlog: dict[str, dict[str, Any]] = {}
        self._greenlet: gevent.Greenlet[..., None] | None = None
        self.attempts = 0
        """Background delivery attempts so far (tests watch it)."""

    @property
    def backlog(self) -> set[str]:
        """Order ids whose announcement waits for Redis."""
        return set(self._backlog)

    def announce(self, body: dict[str, Any]) -> None:
        """Cache and publish a final body now; if Redis fails, keep it until Redis takes it."""
        try:
            self.send([body])
        except RedisError as exc:
            metrics.REDIS_ERRORS.inc()
            log.warning("Redis notification failed orderId=%s (%s); retrying in background",
                        body["orderId"], exc.__class__.__name__)
            self._backlog[body["orderId"]] = body
            if self._greenlet is None:
                self._greenlet = gevent.spawn(self._drain)

    def remember(self, body: dict[str, Any]) -> None:
        """Cache a body read from or written to the store, without publishing; when Redis fails, a later
        read costs one store read (a pending body never replaces a final one: eventi/storage/status_cache.py)."""
        try:
            self._cache.put(body)
        except RedisError:
            pass

    def close(self) -> None:
        """Stop retrying (the process is going away)."""
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None

    def send(self, bodies: list[dict[str, Any]]) -> None:
        """Cache and publish bodies in one pipelined round trip (SPUBLISH on a cluster); raises RedisError."""
        pipe = self._redis.pipeline(transaction=False)
        for body in bodies:
            self._cache.put(body, via=pipe)
            if self._sharded:  # a cluster: SPUBLISH to the node of the order's slot, where its cache key is
                pipe.spublish(channel_for(body["orderId"]), encode_message(body))
            else:
                pipe.publish(channel_for(body["orderId"]), encode_message(body))
        replies = pipe.execute()
        if log.isEnabledFor(logging.DEBUG):  # a failure is a WARNING; success is implied (one INFO line fewer per callback)
            for body, receivers in zip(bodies, replies[1::2], strict=True):
                log.debug("Redis notification sent orderId=%s status=%s receivers=%d",
                          body["orderId"], body["paymentStatus"], receivers)

    def _drain(self) -> None:
        failures, since, alarmed = 0, time.monotonic(), False
        try:
            while self._backlog:
                gevent.sleep(self._backoff.compute(failures))
                batch = dict(list(self._backlog.items())[:BATCH])
                self.attempts += 1
                try:
                    self.send(list(batch.values()))
                except RedisError as exc:
                    failures += 1
                    metrics.REDIS_ERRORS.inc()
                    if not alarmed and time.monotonic() - since >= self._alarm_after:
                        alarmed = True
                        log.error("Redis notifications undelivered for %.0fs count=%d (%s); still retrying",
                                  time.monotonic() - since, len(self._backlog), exc.__class__.__name__)
                    continue
                for order_id, body in batch.items():
                    if self._backlog.get(order_id) is body:
                        del self._backlog[order_id]
                log.info("Redis notifications delivered after retrying count=%d remaining=%d",
                         len(batch), len(self._backlog))
                failures = 0
        finally:
            self._greenlet = None
