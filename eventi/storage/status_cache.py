"""The Redis status cache, and why the status a shopper reads never contradicts MongoDB.

MongoDB is the truth; Redis holds copies (this cache) and carries news (pub/sub). Every reader
(GET /api/orders/<id>, a new wait, a re-wait) reads the cache first and MongoDB on a miss, so the
rules below are what keep "paid in MongoDB, pending on the page" from happening (issue 11).

1. A cache entry never moves an order backwards. An order changes status once, pending -> final,
   except that a payment arriving after the order failed or was cancelled moves it on once more, to
   completed or refund_needed (eventi/services/late_payment.py); so "newer" means "final", and among
   finals "paid" (completed, refund_needed: both never change again):
   - a paid body is SET unconditionally, for EVENTI_STATUS_CACHE_TTL: it can only be the truth
     (every writer writes the same body, see OrderStore.finalize);
   - a failed or cancelled body is written by a Lua script that leaves a paid entry alone, so a late
     re-announcement of the failure (a retry of the broadcaster's backlog, a duplicate callback) cannot
     hide the payment that came after it;
   - a pending body is written by a Lua script that leaves a final entry alone (the check and the
     write are one atomic step). A reader that missed the cache, read `pending` from MongoDB just
     before a callback's write, and caches it just after the callback cached `completed`, writes
     nothing.
2. A pending entry is trusted only by the Redis server process that wrote it. The script stamps it
   with the server's run_id (INFO server) and the read script returns it only when the run_id still
   matches. A Redis restarted from an RDB or AOF file, or a replica promoted by a failover, has a new
   run_id: the pending entries it brings back, saved before a callback whose `completed` the file
   may not hold, read as misses, so the reader asks MongoDB and caches what it finds. Final entries
   it brings back are still true. This keeps pending entries for the full TTL, so a wait on a
   pending order reads Redis, not MongoDB (docs/benchmarks.md, finding 1: a store read per wait is
   a storm when thousands of waits open or re-wait together), and the status of a cached order can
   still be answered while the store is down. The price is Redis CPU (the INFO call in the scripts;
   docs/benchmarks.md, "The status cache's scripts"); the round trips are the same.
3. The news is never given up: a final status is cached and published by the StatusBroadcaster
   (eventi/services/broadcast.py), which keeps retrying while Redis fails, for as long as the
   process lives. Each later delivery of the callback re-announces the final status too, so a
   publish lost with a crashed process heals on PayHero's next delivery.
4. A callback whose store write timed out (503) may still be applied by the store later. The
   callback path then watches that order (eventi/services/settle.py): once the store answers, a
   status claim that landed is applied to the order and announced, without PayHero's help; a
   redelivery applies an existing claim at once (OrderStore.finalize).
5. Held waits: after a reconnect the hub has every waiter re-read MongoDB once its order's channel is
   subscribed again, and waits
   re-check MongoDB every EVENTI_RECHECK_SECONDS while Redis is unreachable (eventi/notify/).

What is left: a final cache write that failed while Redis stayed up, in a process that then died
before its retry, leaves the pending entry until the TTL ends or PayHero delivers again; the same
for a timed-out store write that landed after its process died. Both need two faults at once.
"""
import json
from typing import TYPE_CHECKING, Any

from redis.client import Pipeline
from redis.cluster import ClusterPipeline
from redis.commands.core import Script

from ..domain.models import OrderStatus, is_final
from ..notify.wire import hash_tag

if TYPE_CHECKING:
    from .redis_clients import RedisClient

def cache_key(order_id: str) -> str:
    """An order's cache key: order:{<orderId>}:cache, in the slot of its channel (eventi/notify/wire.py)."""
    return f"order:{hash_tag(order_id)}:cache"


# A pending entry is "<run_id> <body>"; a final entry is the body alone (it starts with "{"). A bare
# pending body (json.dumps's spacing) was stored before entries carried a run_id: not trusted.
_BARE_PENDING = '"paymentStatus": "pending"'
_READ = """
local value = redis.call('GET', KEYS[1])
if not value then return false end
local run, body = string.match(value, '^(%x+) (.*)$')
if not run then
  if string.find(value, ARGV[1], 1, true) then return false end
  return value
end
if run == string.match(redis.call('INFO', 'server'), 'run_id:(%x+)') then return body end
return false
"""
_PUT_PENDING = """
local value = redis.call('GET', KEYS[1])
if value and string.sub(value, 1, 1) == '{' and not string.find(value, ARGV[3], 1, true) then
  return 0
end
local run = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
redis.call('SET', KEYS[1], run .. ' ' .. ARGV[1], 'EX', ARGV[2])
return 1
"""
_PUT_UNPAID_FINAL = """
local value = redis.call('GET', KEYS[1])
if value and string.sub(value, 1, 1) == '{' then
  for i = 3, #ARGV do
    if string.find(value, ARGV[i], 1, true) then return 0 end
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""
_PAID = tuple(f'"paymentStatus": "{status}"' for status in (OrderStatus.COMPLETED, OrderStatus.REFUND_NEEDED))
_UNPAID_FINAL = frozenset({OrderStatus.FAILED.value, OrderStatus.CANCELLED.value})


class StatusCache:
    """Status bodies by order id: final ones as they are, pending ones never over a final one and
    trusted only by the Redis process that stored them."""

    def __init__(self, redis_client: "RedisClient", ttl_seconds: int = 60) -> None:
        self._redis = redis_client
        self._ttl = ttl_seconds
        self._read = redis_client.register_script(_READ)
        self._put_pending = redis_client.register_script(_PUT_PENDING)
        self._put_unpaid_final = redis_client.register_script(_PUT_UNPAID_FINAL)

    def get(self, order_id: str) -> dict[str, Any] | None:
        """The cached body, or None (also for a pending entry this Redis process did not store). Raises RedisError."""
        raw = self._read(keys=[cache_key(order_id)], args=[_BARE_PENDING])
        body: dict[str, Any] | None = json.loads(raw) if raw else None
        return body

    def put(self, body: dict[str, Any], via: Pipeline | ClusterPipeline | None = None) -> object:
        """Cache the body by the rules above, on the client or on a pipeline given as via. Raises RedisError."""
        key, value = cache_key(body["orderId"]), json.dumps(body)
        if body["paymentStatus"] in _UNPAID_FINAL:
            return _run(self._put_unpaid_final, key, [value, self._ttl, *_PAID], via)
        if is_final(body):
            return (self._redis if via is None else via).set(key, value, ex=self._ttl)
        return _run(self._put_pending, key, [value, self._ttl, _BARE_PENDING], via)


def _run(script: Script, key: str, args: list[Any], via: Pipeline | ClusterPipeline | None) -> object:
    """Run a script on its client or a pipeline. A cluster's pipeline cannot load scripts (redis-py has no
    SCRIPT LOAD there, and a promoted replica may lack them): EVAL carries the script itself, and runs on
    the node of the key's slot, where INFO server gives that node's run_id."""
    if isinstance(via, ClusterPipeline):  # its eval() raises "not implemented"; the command itself works
        return via.execute_command("EVAL", script.script, 1, key, *args)  # type: ignore[no-untyped-call]
    return script(keys=[key], args=args, client=via)
