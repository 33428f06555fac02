"""The notify package's own promises, beyond what the wait tests show: fallback waiters can be woken,
and the hub's reconnection backoff reaches its cap."""
import socket

import gevent
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from devstack.wait import eventually
from eventi.notify import PerRequestNotifier, Signal
from eventi.notify.fallback import StorePollingWaiter
from eventi.notify.hub import MAX_DOUBLINGS, RECONNECT_BACKOFF
from eventi.services.status import StatusReader
from eventi.services.waiting import WaitService
from tests.support.api import order_fields


def unreachable_redis():
    """A client for a port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))


def test_a_store_polling_waiter_returns_at_once_when_woken():
    waiter = StorePollingWaiter(recheck_seconds=60.0)
    blocked = gevent.spawn(waiter.next, 60.0)
    waiter.wake()
    assert blocked.get(timeout=5) is Signal.IDLE


def test_per_request_stop_answers_a_wait_held_without_redis_at_once(runtime):
    """A wait whose SUBSCRIBE failed re-reads the store every minute here; stopping must not wait for that."""
    notifier = PerRequestNotifier(unreachable_redis(), recheck_seconds=60.0)
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
