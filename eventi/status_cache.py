"""The Redis status cache, and why the status a shopper reads never contradicts MongoDB.

MongoDB is the truth; Redis holds copies (this cache) and carries news (pub/sub). Every reader
(GET /api/orders/<id>, a new wait, a re-wait) reads the cache first and MongoDB on a miss, so the
rules below are what keep "paid in MongoDB, pending on the page" from happening (issue 11).

1. A cache entry never moves an order backwards. An order changes status once, pending -> final,
   so "newer" simply means "final":
   - a final body is SET unconditionally, for EVENTI_STATUS_CACHE_TTL: it can only be the truth
     (every writer writes the same body, see OrderStore.finalize);
   - a pending body is written only with SET NX and PENDING_TTL_SECONDS. A reader that missed the
     cache, read `pending` from MongoDB just before a callback's write, and puts it back just after
     the callback cached `completed`, finds the key taken and writes nothing.
2. A pending entry lives PENDING_TTL_SECONDS (2 s), so any stale pending, however it got there,
   lasts at most that long. That covers what rule 1 cannot see: a reader whose SET NX landed in an
   empty key before a callback whose own cache write then failed; Redis restarted from an old RDB
   file that still holds entries written before the callback (RDB keeps absolute expiry times, so
   an expired pending is dropped on load); a final write evicted. The price: a wait on a pending
   order more than 2 s old reads MongoDB once (still at most one store read per wait); final
   bodies, which every re-wait and status page after a payment reads, stay cached for the TTL.
3. The news is never given up: a final status is cached and published by the StatusBroadcaster
   (eventi/services/broadcast.py), which keeps retrying while Redis fails, for as long as the
   process lives. Each later delivery of the callback re-announces the final status too, so a
   publish lost with a crashed process heals on PayHero's next delivery.
4. A callback whose store write timed out (503) may still be applied by the store later. The
   callback path then watches that order (eventi/services/settle.py): once the store answers, a
   status claim that landed is applied to the order and announced, without PayHero's help; a
   redelivery applies an existing claim at once (OrderStore.finalize).
5. Held waits: the hub re-reads MongoDB for every waiter whenever it (re)subscribes, and waits
   re-check MongoDB every EVENTI_RECHECK_SECONDS while Redis is unreachable (eventi/notifier.py).
"""
import json

from redis.exceptions import RedisError

from .models import is_final

CACHE_PREFIX = "order:cache:"

PENDING_TTL_SECONDS = 2
"""Longest a pending entry lives: the bound on any stale pending (rule 2 above). Short, because
it is the time a shopper could read `pending` after paying; not shorter, because it still spares
MongoDB the status page and first wait that follow an order's creation within a second or two."""


class StatusCache:
    """Status bodies by order id: final ones for the TTL, pending ones briefly and never over a final one."""

    def __init__(self, redis_client, ttl_seconds=60):
        self._redis = redis_client
        self._ttl = ttl_seconds

    def get(self, order_id):
        """The cached body, or None. Raises RedisError."""
        raw = self._redis.get(CACHE_PREFIX + order_id)
        return json.loads(raw) if raw else None

    def put(self, body, via=None):
        """Cache the body by the rules above, on the client or on a pipeline given as via. Raises RedisError."""
        client = self._redis if via is None else via
        key, value = CACHE_PREFIX + body["orderId"], json.dumps(body)
        if is_final(body):
            return client.set(key, value, ex=self._ttl)
        return client.set(key, value, ex=PENDING_TTL_SECONDS, nx=True)

    def remember(self, body):
        """Cache a body read from or written to the store; when Redis fails, a later read costs one store read."""
        try:
            self.put(body)
        except RedisError:
            pass
