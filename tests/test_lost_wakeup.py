"""No lost wake-ups: a status change landing between the wait's status read and its wait still wakes it.

The interleaving is forced: the status reader returns the stale `pending` it read, but only after the
callback has been stored and published. A wait that read before registering would miss the message
and time out instead.
"""
import gevent
import pytest
from gevent.event import Event

from devstack.wait import eventually
from eventi.domain.models import PaymentResult
from eventi.notify import channel_for
from eventi.runtime import current_runtime
from eventi.services.status import StatusReader
from eventi.services.waiting import WaitService
from tests.support.api import order_fields
from tests.support.notify import CountingHub, hooked_hub, notifier, numsub


class ChangeAfterRead(StatusReader):
    """Reads the status, then lets a callback land before handing back what it read."""

    def __init__(self, runtime, notifier):
        super().__init__(runtime.store, runtime.cache, runtime.broadcaster)
        self.runtime = runtime
        self.notifier = notifier

    def current(self, order_id):
        stale = super().current(order_id)
        assert stale["paymentStatus"] == "pending"
        result = PaymentResult(order_id=order_id, paid=True, amount=1500, result_code=0, receipt="RCPT123")
        hub = self.notifier if isinstance(self.notifier, CountingHub) else None
        seen = hub.received if hub else 0
        self.runtime.callbacks.apply(result, raw="{}")
        if hub:  # make sure the message was dispatched before we return
            eventually(lambda: hub.received > seen, 10, "the hub to read the message")
        return stale


@pytest.mark.parametrize("mode", ["hub", "per-request"])
def test_change_between_read_and_wait_still_wakes_the_waiter(settings, runtime, mode):
    waits_notifier = notifier(mode, settings["REDIS_URL"], recheck_seconds=60.0)
    try:
        assert waits_notifier.start(timeout=10)
        order_id = str(runtime.orders.create(order_fields())["_id"])
        waits = WaitService(waits_notifier, ChangeAfterRead(runtime, waits_notifier))
        result = waits.wait(order_id, timeout=10)
        answer = (result.outcome, result.body["paymentStatus"], result.body["mpesaReceipt"])
        assert answer == ("final", "completed", "RCPT123")
    finally:
        waits_notifier.stop()


class CountingReader(StatusReader):
    """A status reader that counts its MongoDB reads."""

    def __init__(self, runtime):
        super().__init__(runtime.store, runtime.cache, runtime.broadcaster)
        self.store_reads = 0

    def from_store(self, order_id, refresh_cache=False):
        self.store_reads += 1
        return super().from_store(order_id, refresh_cache)


@pytest.mark.parametrize("mode", ["hub", "per-request"])
def test_shutdown_answers_held_waits_without_reading_the_store(settings, runtime, mode):
    """At a deploy every held wait answers its last known status; 10,000 store reads at once would stall it."""
    waits_notifier = notifier(mode, settings["REDIS_URL"], recheck_seconds=1.0)
    try:
        assert waits_notifier.start(timeout=10)
        order_id = str(runtime.orders.create(order_fields())["_id"])
        reader = CountingReader(runtime)
        waits = WaitService(waits_notifier, reader)
        held = gevent.spawn(waits.wait, order_id, 60)
        eventually(lambda: waits.held == 1, 10, "the wait to be held")
        reads_before_stop = reader.store_reads
        waits.drain()
        result = held.get(timeout=10)
        assert (result.outcome, result.body["paymentStatus"], result.final) == ("shutdown", "pending", False)
        assert reader.store_reads == reads_before_stop
    finally:
        waits_notifier.stop()


# Per-order subscriptions open two more windows: the SUBSCRIBE is on its way while the wait starts, and an
# UNSUBSCRIBE (the order's last wait just ended) is on its way when a new wait for the order starts.

class ReadsAfterConfirmation(StatusReader):
    """Records, at each status read, whether the hub had read Redis's confirmation of the order's channel
    (before any I/O, so the reader greenlet cannot catch up meanwhile) and whether Redis lists it."""

    def __init__(self, runtime, redis_url, hub):
        super().__init__(runtime.store, runtime.cache, runtime.broadcaster)
        self.redis_url = redis_url
        self.hub = hub
        self.subscribed_at_read = []

    def current(self, order_id):
        channel = channel_for(order_id)
        confirmed = self.hub.confirmed(channel)
        self.subscribed_at_read.append((confirmed, numsub(self.redis_url, channel)))
        return super().current(order_id)


def pay(runtime, order_id):
    result = PaymentResult(order_id=order_id, paid=True, amount=1500, result_code=0, receipt="RCPT123")
    runtime.callbacks.apply(result, raw="{}")


@pytest.fixture(params=["standalone", "cluster"])
def redis_at(request, make_app):
    """(Redis URL, a runtime on it): the session's redis-server, or its Redis Cluster (SSUBSCRIBE, SPUBLISH)."""
    url = request.getfixturevalue({"standalone": "redis_server", "cluster": "redis_cluster"}[request.param]).url
    return url, current_runtime(make_app(REDIS_URL=url))


def test_a_change_after_the_subscribe_is_sent_but_before_it_is_confirmed_still_wakes_the_waiter(redis_at):
    """The callback lands (stored, then published) while the hub's SUBSCRIBE is sent but its confirmation
    not read: Redis may or may not have subscribed when the PUBLISH came, so either the message or the
    status read, which waits for the confirmation, must carry the change."""
    redis_url, runtime = redis_at
    order_id = str(runtime.orders.create(order_fields())["_id"])
    landed = []

    def callback_in_the_window(channels):
        if channel_for(order_id) in channels and not landed:
            pay(runtime, order_id)  # in the reader greenlet: the confirmation cannot be read meanwhile
            landed.append(True)

    hub = hooked_hub(redis_url, recheck_seconds=60.0, on_subscribe=callback_in_the_window)
    try:
        assert hub.start(timeout=10)
        reader = ReadsAfterConfirmation(runtime, redis_url, hub)
        result = WaitService(hub, reader).wait(order_id, timeout=10)
        assert landed == [True]
        assert reader.subscribed_at_read == [(True, 1)]  # the status was read after Redis confirmed, not before
        answer = (result.outcome, result.body["paymentStatus"], result.body["mpesaReceipt"])
        assert answer == ("final", "completed", "RCPT123")
    finally:
        hub.stop()


def test_a_new_wait_racing_the_unsubscribe_of_the_orders_last_wait_still_wakes(redis_at):
    """The order's last wait ends, the hub sends UNSUBSCRIBE, and before its reply is read a new wait for
    the same order starts and the callback lands (Redis has already unsubscribed: the PUBLISH reaches
    nobody). The new wait must not take the old subscription for its own: it reads the status only
    after its own SUBSCRIBE is confirmed, and so sees the change."""
    redis_url, runtime = redis_at
    order_id = str(runtime.orders.create(order_fields())["_id"])
    channel = channel_for(order_id)
    unsubscribe_sent, go_on = Event(), Event()

    def pause_after_unsubscribe(channels):
        if channel in channels and not unsubscribe_sent.is_set():
            unsubscribe_sent.set()
            go_on.wait()  # the reader greenlet stops here, before reading the UNSUBSCRIBE's reply

    hub = hooked_hub(redis_url, recheck_seconds=60.0, on_unsubscribe=pause_after_unsubscribe)
    try:
        assert hub.start(timeout=10)
        with hub.waiter(order_id):
            pass  # the order's first and last wait
        assert unsubscribe_sent.wait(10)
        reader = ReadsAfterConfirmation(runtime, redis_url, hub)
        second = gevent.spawn(WaitService(hub, reader).wait, order_id, 10)
        eventually(lambda: channel in hub.channels, 10, "the new wait to register")
        assert not hub.confirmed(channel) and reader.subscribed_at_read == []  # it waits for its own SUBSCRIBE
        eventually(lambda: numsub(redis_url, channel) == 0, 10, "Redis to process the UNSUBSCRIBE")
        pay(runtime, order_id)  # published to nobody
        go_on.set()
        result = second.get(timeout=20)
        assert reader.subscribed_at_read == [(True, 1)]
        assert (result.outcome, result.body["paymentStatus"]) == ("final", "completed")
        assert hub.commands == {"SUBSCRIBE": 2, "UNSUBSCRIBE": 1}
    finally:
        go_on.set()
        hub.stop()
