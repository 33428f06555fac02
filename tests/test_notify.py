"""The notify package's own promises, beyond what the wait tests show: fallback waiters can be woken,
the hub's reconnection backoff reaches its cap, and the hub subscribes to exactly the orders its waits
hold (first wait subscribes, last one unsubscribes, many at once share a command, a reconnect
resubscribes them all), checked against a real redis-server and a Redis Cluster (sharded: a connection
per node, and one node's link lost alone)."""
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
from tests.support.notify import cluster, hooked_hub, hub_links, is_cluster_url, numsub, publish


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


# Per-order subscriptions: the hub subscribes to exactly the orders its waits hold, over one connection (one
# per master on a Redis Cluster: SSUBSCRIBE on the node of the order's slot). Each test runs on one server
# and on a cluster.

def new_order_id():
    return uuid.uuid4().hex[:24]


@pytest.fixture(params=["standalone", "cluster"])
def redis_url(request):
    return request.getfixturevalue({"standalone": "redis_server", "cluster": "redis_cluster"}[request.param]).url


@pytest.fixture
def hub(redis_url):
    """A started hub on the session's Redis (a HookedSubscriber without hooks: it counts its commands)."""
    started = hooked_hub(redis_url, client_name=f"hub-test-{uuid.uuid4().hex[:8]}")
    assert started.start(timeout=10)
    yield started
    started.stop()


def test_hub_subscribes_with_the_first_wait_of_an_order_and_unsubscribes_after_the_last(hub, redis_url):
    order_id = new_order_id()
    channel = channel_for(order_id)
    assert numsub(redis_url, channel) == 0
    with hub.waiter(order_id):
        # Confirmed before the block starts: Redis already lists the channel.
        assert numsub(redis_url, channel) == 1
        with hub.waiter(order_id):
            assert numsub(redis_url, channel) == 1  # one connection, whatever the waits
        assert hub.commands["UNSUBSCRIBE"] == 0  # one wait still holds the order
        assert numsub(redis_url, channel) == 1
    eventually(lambda: numsub(redis_url, channel) == 0, 10, "the UNSUBSCRIBE")
    assert hub.commands == {"SUBSCRIBE": 1, "UNSUBSCRIBE": 1}
    assert hub.channels == set()


def test_a_message_for_an_order_no_wait_holds_never_reaches_the_worker(hub, redis_url):
    watched, unwatched = new_order_id(), new_order_id()
    if is_cluster_url(redis_url):  # both on one node, so one connection carries (or would carry) both
        client = cluster(redis_url)
        node = client.get_node_from_key(channel_for(watched)).name
        while client.get_node_from_key(channel_for(unwatched)).name != node:
            unwatched = new_order_id()
        client.close()
    with hub.waiter(watched) as waiter:
        # In this order on one node: had the hub received the first one, it would have read it before the second.
        assert publish(redis_url, channel_for(unwatched), encode_message(body(unwatched))) == 0
        assert publish(redis_url, channel_for(watched), encode_message(body(watched))) == 1
        message = waiter.next(10)
        assert isinstance(message, Notification) and message.body["orderId"] == watched
    assert (hub.messages_read, hub.messages_dropped) == (1, 0)


def test_many_waits_opened_at_once_share_a_few_subscribe_commands(hub, redis_url):
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
    assert {numsub(redis_url, channel_for(o)) for o in order_ids[:50]} == {1}
    if is_cluster_url(redis_url):  # one write per node and batch, whatever the slots: not one per order
        links = hub.subscriber.links
        assert len(links) == 3 and all(link.writes <= hub.commands["SUBSCRIBE"] + 2 for link in links.values())
    leave.set()
    gevent.joinall(holders, timeout=10, raise_error=True)
    eventually(lambda: not any(numsub(redis_url, channel_for(o)) for o in order_ids[:50]), 10, "the UNSUBSCRIBEs")
    assert hub.commands["UNSUBSCRIBE"] <= 3, hub.commands


def test_a_reconnected_hub_resubscribes_every_held_channel_in_one_batch_and_every_waiter_rereads(hub, redis_url):
    order_ids = [new_order_id() for _ in range(3)]
    with ExitStack() as stack:
        waiters = [stack.enter_context(hub.waiter(order_id)) for order_id in order_ids]
        before = hub.commands["SUBSCRIBE"]
        links = hub_links(redis_url, hub.client_name)
        assert links and len(links) <= 3  # one per node holding a channel
        for node, link in links:  # every link: the hub reconnects as a whole (one node alone: the next test)
            assert node.client_kill_filter(_id=link) == 1
        eventually(lambda: hub.commands["SUBSCRIBE"] > before and hub.connected
                   and all(hub.confirmed(channel_for(o)) for o in order_ids), 30, "the hub to resubscribe")
        assert hub.subscribe_commands == hub.commands["SUBSCRIBE"]
        assert [numsub(redis_url, channel_for(o)) for o in order_ids] == [1, 1, 1]
        # Messages sent while it was away are gone: every waiter re-reads the store.
        assert [waiter.next(10) for waiter in waiters] == [Signal.RECHECK] * 3
        assert publish(redis_url, channel_for(order_ids[1]), encode_message(body(order_ids[1]))) == 1
        assert waiters[1].next(10).body["orderId"] == order_ids[1]


def test_a_cluster_hub_that_loses_one_nodes_link_resubscribes_that_nodes_orders_alone(redis_cluster):
    """One node's link dropped: its orders are subscribed again (on a new link to that node) and their waits
    re-read; the other nodes' links and waits are untouched."""
    hub = hooked_hub(redis_cluster.url, client_name=f"hub-test-{uuid.uuid4().hex[:8]}")
    client = cluster(redis_cluster.url)
    try:
        assert hub.start(timeout=10)
        by_node = {}
        while len(by_node) < 3 or min(len(ids) for ids in by_node.values()) < 2:
            order_id = new_order_id()
            by_node.setdefault(client.get_node_from_key(channel_for(order_id)).name, []).append(order_id)
        with ExitStack() as stack:
            waiters = {o: stack.enter_context(hub.waiter(o)) for ids in by_node.values() for o in ids}
            links = dict(hub.subscriber.links)
            assert len(links) == 3
            victim = sorted(by_node)[0]
            [(node, link)] = [(n, i) for n, i in hub_links(redis_cluster.url, hub.client_name)
                              if f"{n.connection_pool.connection_kwargs['host']}:"
                                 f"{n.connection_pool.connection_kwargs['port']}" == victim]
            assert node.client_kill_filter(_id=link) == 1
            lost = by_node[victim]
            assert [waiters[o].next(10) for o in lost] == [Signal.RECHECK] * len(lost)  # re-read once confirmed
            assert all(hub.confirmed(channel_for(o)) for o in lost) and hub.channels_lost == len(lost)
            assert hub.connected  # the hub as a whole never went down
            assert {name: link for name, link in hub.subscriber.links.items() if name != victim} == {
                name: link for name, link in links.items() if name != victim}
            assert hub.subscriber.links[victim] is not links[victim]
            untouched = [o for name, ids in by_node.items() if name != victim for o in ids]
            assert [waiters[o].next(0) for o in untouched] == [Signal.IDLE] * len(untouched)
            for order_id in waiters:
                assert publish(redis_cluster.url, channel_for(order_id), encode_message(body(order_id))) == 1
                assert waiters[order_id].next(10).body["orderId"] == order_id
    finally:
        hub.stop()
        client.close()


def test_a_cluster_hub_whose_slot_map_is_stale_follows_the_moved_reply(redis_cluster, monkeypatch):
    """The slot map sends an order's SSUBSCRIBE to a master that does not own the slot (as after a failover
    or a slot migration not yet seen): Redis answers -MOVED, the hub drops that node's link, refreshes the
    map and subscribes on the owner; the wait, which could not be confirmed at first, re-reads then."""
    hub = hooked_hub(redis_cluster.url, client_name=f"hub-test-{uuid.uuid4().hex[:8]}")
    client = hub.client
    try:
        assert hub.start(timeout=10)
        order_id = new_order_id()
        channel = channel_for(order_id)
        owner = client.get_node_from_key(channel)
        wrong = next(node for node in client.get_primaries() if node.name != owner.name)
        real, misroutes = client.nodes_manager.get_node_from_slot, [wrong]

        def stale(slot, *args, **kwargs):
            if slot == client.keyslot(channel) and misroutes:
                return misroutes.pop()
            return real(slot, *args, **kwargs)

        monkeypatch.setattr(client.nodes_manager, "get_node_from_slot", stale)
        with hub.waiter(order_id) as waiter:
            eventually(lambda: hub.confirmed(channel), 10, "the SSUBSCRIBE on the slot's owner")
            assert misroutes == [] and hub.channels_lost == 1 and hub.connected
            assert list(hub.subscriber.links) == [owner.name]  # the wrong node's link is gone
            assert numsub(redis_cluster.url, channel) == 1
            assert waiter.next(10) is Signal.RECHECK
            assert publish(redis_cluster.url, channel, encode_message(body(order_id))) == 1
            assert waiter.next(10).body["orderId"] == order_id
    finally:
        hub.stop()
        hub.client.close()


def body(order_id):
    return {"orderId": order_id, "paymentStatus": "completed", "final": True}
