"""The notify package's own promises, beyond what the wait tests show: fallback waiters can be woken,
and the hub's reconnection backoff reaches its cap.

The two tests that hold waits run on one server, a Redis Cluster and a Sentinel group (the notifier a
runtime builds differs: the hub, or per-wait SSUBSCRIBE on a cluster); the other two never reach Redis."""
import socket

import gevent
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from devstack.wait import eventually
from eventi import redis_topology
from eventi.notify import PerRequestNotifier, Signal
from eventi.notify.fallback import StorePollingWaiter
from eventi.notify.hub import MAX_DOUBLINGS, RECONNECT_BACKOFF
from eventi.notify.sharded import ShardedPerRequestNotifier
from eventi.redis_url import parse
from eventi.services.status import StatusReader
from eventi.services.waiting import WaitService
from tests.conftest import on_every_topology
from tests.support.api import order_fields


def unused_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def unreachable_redis():
    """A client for a port nobody listens on."""
    return redis.Redis(host="127.0.0.1", port=unused_port(), socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))


def unreachable_per_wait_notifier(kind, recheck_seconds):
    """The per-wait notifier of a topology of this kind whose servers (or sentinels) nobody listens on."""
    if kind == "cluster":
        cluster = redis_topology.lazy_cluster(parse(f"redis+cluster://127.0.0.1:{unused_port()}/"), "wait",
                                              socket_timeout=None, health_check_interval=0)
        return ShardedPerRequestNotifier(cluster, recheck_seconds)
    if kind == "sentinel":
        client = redis_topology.subscriber_client(parse(f"redis+sentinel://127.0.0.1:{unused_port()}/eventi/0"),
                                                  "wait", socket_timeout=None, health_check_interval=0)
        return PerRequestNotifier(client, recheck_seconds)
    return PerRequestNotifier(unreachable_redis(), recheck_seconds)


def test_a_store_polling_waiter_returns_at_once_when_woken():
    waiter = StorePollingWaiter(recheck_seconds=60.0)
    blocked = gevent.spawn(waiter.next, 60.0)
    waiter.wake()
    assert blocked.get(timeout=5) is Signal.IDLE


@on_every_topology
def test_per_request_stop_answers_a_wait_held_without_redis_at_once(runtime):
    """A wait whose SUBSCRIBE failed re-reads the store every minute here; stopping must not wait for that."""
    notifier = unreachable_per_wait_notifier(runtime.topology.kind, recheck_seconds=60.0)
    order_id = str(runtime.orders.create(order_fields())["_id"])
    waits = WaitService(notifier, StatusReader(runtime.store, runtime.cache, runtime.broadcaster))
    held = gevent.spawn(waits.wait, order_id, 60)
    eventually(lambda: waits.held == 1, 10, "the wait to be held")
    waits.drain()
    result = held.get(timeout=10)
    assert (result.outcome, result.body["paymentStatus"]) == ("shutdown", "pending")


def test_hub_reconnection_backoff_reaches_its_cap():
    """Failures are counted up to MAX_DOUBLINGS only: that must be enough to reach the 10 s cap."""
    assert min(RECONNECT_BACKOFF.compute(MAX_DOUBLINGS) for _ in range(20)) >= 5.0
    assert max(RECONNECT_BACKOFF.compute(MAX_DOUBLINGS) for _ in range(20)) <= 10.0


@on_every_topology
def test_the_runtimes_notifier_answers_a_held_wait_with_the_announcement_and_drains_the_rest(runtime):
    """The notifier a runtime builds for its topology: a held wait hears the broadcaster's announcement
    (PUBLISH, or SPUBLISH on a cluster's slot owner), and a drain answers the other held wait at once."""
    assert runtime.notifier.start(timeout=10)
    paid, waiting = (str(runtime.orders.create(order_fields())["_id"]) for _ in range(2))
    waits = WaitService(runtime.notifier, runtime.reader)
    held = {order_id: gevent.spawn(waits.wait, order_id, 60) for order_id in (paid, waiting)}
    eventually(lambda: waits.held == 2, 10, "both waits to be held")
    body = {**runtime.reader.from_store(paid), "paymentStatus": "completed"}
    runtime.broadcaster.announce(body)
    answered = held[paid].get(timeout=15)
    assert (answered.outcome, answered.body) == ("final", body)
    waits.drain()
    drained = held[waiting].get(timeout=10)
    assert (drained.outcome, drained.body["paymentStatus"]) == ("shutdown", "pending")
