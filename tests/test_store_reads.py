"""The store's read bulkhead: a storm of reads queues in the worker instead of piling onto MongoDB."""
import gevent
import pytest
from gevent.event import Event

from devstack.wait import eventually
from eventi.errors import StoreUnavailable
from eventi.storage.order_store import OrderStore
from tests.support.api import order_fields


class HeldCollection:
    """The real orders collection, with find_one held at a gate so reads in flight can be counted."""

    def __init__(self, collection):
        self._collection = collection
        self.gate = Event()
        self.in_flight = 0
        self.most_in_flight = 0

    def find_one(self, *args, **kwargs):
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            self.gate.wait(timeout=15)  # a bound, so a broken bulkhead fails the test instead of hanging it
            return self._collection.find_one(*args, **kwargs)
        finally:
            self.in_flight -= 1


@pytest.fixture
def order_id(runtime):
    return str(runtime.orders.create(order_fields())["_id"])


def gated_store(runtime, **limits):
    store = OrderStore(runtime.store.db, **limits)
    store.orders = HeldCollection(store.orders)
    return store


def test_reads_beyond_the_limit_queue_and_all_complete(runtime, order_id):
    store = gated_store(runtime, max_reads=3)
    readers = [gevent.spawn(store.get_order, order_id) for _ in range(20)]
    eventually(lambda: store.orders.in_flight == 3, 10, "three reads at the gate")
    store.orders.gate.set()
    gevent.joinall(readers, timeout=30, raise_error=True)
    assert [str(r.value["_id"]) for r in readers] == [order_id] * 20
    assert store.orders.most_in_flight == 3


def test_a_read_that_cannot_get_a_slot_in_time_is_store_unavailable(runtime, order_id):
    store = gated_store(runtime, max_reads=1, read_queue_seconds=0.2)
    holder = gevent.spawn(store.get_order, order_id)
    eventually(lambda: store.orders.in_flight == 1, 10, "the first read at the gate")
    with pytest.raises(StoreUnavailable):
        store.get_order(order_id)
    store.orders.gate.set()
    assert str(holder.get(timeout=30)["_id"]) == order_id
