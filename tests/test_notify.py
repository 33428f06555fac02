"""The notify package's own promises, beyond what the wait tests show: fallback waiters can be woken,
the hub's reconnection backoff reaches its cap, and the hub subscribes to exactly the orders its waits
hold (first wait subscribes, last one unsubscribes, many at once share a command, a reconnect
resubscribes them all), checked against a real redis-server."""
import socket
import uuid
from contextlib import ExitStack

import gevent
import pytest
import redis
from gevent.event import Event
from redis.backoff import NoBackoff
from redis.retry import Retry

from devstack.wait import eventually
from eventi.notify import Notification, PerRequestNotifier, Signal, channel_for, encode_message
from eventi.notify.fallback import StorePollingWaiter
from eventi.notify.hub import MAX_DOUBLINGS, RECONNECT_BACKOFF
from eventi.services.status import StatusReader
from eventi.services.waiting import WaitService
from tests.support.api import order_fields
from tests.support.notify import hooked_hub, numsub


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


# Per-order subscriptions: the hub subscribes to exactly the orders its waits hold, over one connection.

def new_order_id():
    return uuid.uuid4().hex[:24]


@pytest.fixture
def hub(redis_server):
    """A started hub on the session's Redis (a HookedSubscriber without hooks: it counts its commands)."""
    started = hooked_hub(redis_server.url, client_name=f"hub-test-{uuid.uuid4().hex[:8]}")
    assert started.start(timeout=10)
    yield started
    started.stop()


def test_hub_subscribes_with_the_first_wait_of_an_order_and_unsubscribes_after_the_last(hub, redis_server):
    order_id = new_order_id()
    channel = channel_for(order_id)
    client = redis.Redis.from_url(redis_server.url)
    assert numsub(redis_server.url, channel) == 0
    with hub.waiter(order_id):
        # Confirmed before the block starts: Redis already lists the channel.
        assert channel.encode() in client.pubsub_channels(channel)
        with hub.waiter(order_id):
            assert numsub(redis_server.url, channel) == 1  # one connection, whatever the waits
        assert hub.commands["UNSUBSCRIBE"] == 0  # one wait still holds the order
        assert numsub(redis_server.url, channel) == 1
    eventually(lambda: channel.encode() not in client.pubsub_channels(channel), 10, "the UNSUBSCRIBE")
    assert hub.commands == {"SUBSCRIBE": 1, "UNSUBSCRIBE": 1}
    assert hub.channels == set()


def test_a_message_for_an_order_no_wait_holds_never_reaches_the_worker(hub, redis_server):
    watched, unwatched = new_order_id(), new_order_id()
    client = redis.Redis.from_url(redis_server.url)
    with hub.waiter(watched) as waiter:
        # One client, so Redis handles these in this order: had the hub received the first one,
        # it would have read it before the second.
        assert client.publish(channel_for(unwatched), encode_message(body(unwatched))) == 0
        assert client.publish(channel_for(watched), encode_message(body(watched))) == 1
        message = waiter.next(10)
        assert isinstance(message, Notification) and message.body["orderId"] == watched
    assert (hub.messages_read, hub.messages_dropped) == (1, 0)


def test_many_waits_opened_at_once_share_a_few_subscribe_commands(hub, redis_server):
    order_ids = [new_order_id() for _ in range(500)]
    entered, leave = [], Event()

    def hold(order_id):
        with hub.waiter(order_id):
            entered.append(order_id)
            leave.wait()

    holders = [gevent.spawn(hold, order_id) for order_id in order_ids]
    eventually(lambda: len(entered) == len(order_ids), 30, "every wait to be confirmed")
    assert hub.commands["SUBSCRIBE"] <= 3, hub.commands  # not 500 round trips
    assert hub.subscribe_commands == hub.commands["SUBSCRIBE"]
    counts = dict(redis.Redis.from_url(redis_server.url).pubsub_numsub(*(channel_for(o) for o in order_ids)))
    assert set(counts.values()) == {1}
    leave.set()
    gevent.joinall(holders, timeout=10, raise_error=True)
    client = redis.Redis.from_url(redis_server.url)
    eventually(lambda: not any(count for _, count in client.pubsub_numsub(*(channel_for(o) for o in order_ids))),
               10, "the UNSUBSCRIBEs")
    assert hub.commands["UNSUBSCRIBE"] <= 3, hub.commands


def test_a_reconnected_hub_resubscribes_every_held_channel_in_one_batch_and_every_waiter_rereads(hub, redis_server):
    order_ids = [new_order_id() for _ in range(3)]
    client = redis.Redis.from_url(redis_server.url)
    with ExitStack() as stack:
        waiters = [stack.enter_context(hub.waiter(order_id)) for order_id in order_ids]
        before = hub.commands["SUBSCRIBE"]
        [hub_link] = [c["id"] for c in client.client_list() if c["name"] == hub.client_name]
        assert client.client_kill_filter(_id=hub_link) == 1
        eventually(lambda: hub.commands["SUBSCRIBE"] == before + 1 and hub.connected, 30, "the hub to resubscribe")
        assert hub.subscribe_commands == hub.commands["SUBSCRIBE"]
        assert [numsub(redis_server.url, channel_for(o)) for o in order_ids] == [1, 1, 1]
        # Messages sent while it was away are gone: every waiter re-reads the store.
        assert [waiter.next(10) for waiter in waiters] == [Signal.RECHECK] * 3
        assert client.publish(channel_for(order_ids[1]), encode_message(body(order_ids[1]))) == 1
        assert waiters[1].next(10).body["orderId"] == order_ids[1]


def body(order_id):
    return {"orderId": order_id, "paymentStatus": "completed", "final": True}
