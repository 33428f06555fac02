"""No lost wake-ups: a status change landing between the wait's status read and its wait still wakes it.

The interleaving is forced: the status reader returns the stale `pending` it read, but only after the
callback has been stored and published. A wait that read before registering would miss the message
and time out instead.
"""
import gevent
import pytest

from devstack.wait import eventually
from eventi.models import PaymentResult
from eventi.services.status import StatusReader
from eventi.services.waiting import WaitService
from tests.support.api import order_fields
from tests.support.notify import CountingHub, notifier


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
