"""The cache never moves an order backwards, and a status write that timed out is settled without PayHero.

Forced interleavings against the real Redis and FerretDB (eventi/storage/status_cache.py has the argument).
The two whose outcome is in Redis (the cache's rule against a late pending; a settled write's
announcement) run on one server, a Redis Cluster and a Sentinel group; the third writes nothing to Redis.
"""
from bson import ObjectId

from devstack.wait import eventually
from eventi.domain.models import PaymentResult, utcnow
from eventi.errors import StoreUnavailable
from eventi.services.callbacks import CallbackService
from eventi.services.settle import Settler
from eventi.services.status import StatusReader
from eventi.storage.order_store import OrderStore
from eventi.storage.status_cache import cache_key
from tests.conftest import on_every_topology
from tests.support.api import order_fields
from tests.support.listen import ChannelListener

PAID = dict(paid=True, amount=1500, result_code=0, receipt="RCPT123")


def new_order(runtime):
    return str(runtime.orders.create(order_fields())["_id"])


class CallbackLandsAfterRead:
    """The real store, except that after a reader's order read a paid callback is stored and
    announced before the reader gets what it read (and so before it caches it)."""

    def __init__(self, runtime):
        self._runtime = runtime

    def get_order(self, order_id):
        order = self._runtime.store.get_order(order_id)
        self._runtime.callbacks.apply(PaymentResult(order_id=order_id, **PAID), raw="{}")
        return order


@on_every_topology
def test_a_reader_caching_pending_after_the_callback_cached_final_leaves_final(runtime):
    order_id = new_order(runtime)
    runtime.redis.delete(cache_key(order_id))  # a miss: expired, evicted, or Redis restarted empty
    reader = StatusReader(CallbackLandsAfterRead(runtime), runtime.cache, runtime.broadcaster)

    assert reader.current(order_id)["paymentStatus"] == "pending"  # read before the callback's write

    assert runtime.cache.get(order_id)["paymentStatus"] == "completed"
    assert runtime.reader.current(order_id)["paymentStatus"] == "completed"


class FinalizeTimesOut(OrderStore):
    """The real store whose status write times out, as a stalled server makes the driver do."""

    def finalize(self, order_id, outcome, event_id=None, delivery=None):
        raise StoreUnavailable()


def settling_callbacks(runtime, window):
    settler = Settler(runtime.store, runtime.broadcaster, window=window, recheck=0.05)
    return CallbackService(FinalizeTimesOut(runtime.store.db), runtime.broadcaster, settler), settler


@on_every_topology
def test_a_timed_out_status_write_that_lands_later_is_applied_and_announced(runtime, settings):
    order_id = new_order(runtime)
    callbacks, settler = settling_callbacks(runtime, window=30)
    listener = ChannelListener(settings["REDIS_URL"], order_id)
    try:
        try:
            callbacks.apply(PaymentResult(order_id=order_id, **PAID), raw="{}")
            raise AssertionError("the callback should have answered 503")
        except StoreUnavailable:
            pass
        assert runtime.store.get_order(order_id)["status"] == "pending"
        # The server applies the timed-out claim insert after all.
        runtime.store.claims.insert_one({"_id": ObjectId(order_id), "status": "completed", "mpesaReceipt": "RCPT123",
                                       "failureReason": None, "eventId": None, "claimedAt": utcnow()})
        published = listener.next_body(timeout=15)
    finally:
        listener.close()
        settler.close()
    assert (published["paymentStatus"], published["mpesaReceipt"]) == ("completed", "RCPT123")
    assert runtime.store.get_order(order_id)["status"] == "completed"
    assert runtime.cache.get(order_id) == published
    assert settler.watched == set()


def test_a_timed_out_status_write_that_never_lands_is_let_go(runtime):
    order_id = new_order(runtime)
    callbacks, settler = settling_callbacks(runtime, window=0.3)
    try:
        callbacks.apply(PaymentResult(order_id=order_id, **PAID), raw="{}")
    except StoreUnavailable:
        pass
    assert settler.watched == {order_id}
    eventually(lambda: settler.watched == set(), 15, "the settler to let the order go")
    assert runtime.store.get_order(order_id)["status"] == "pending"
    assert runtime.store.claims.find_one({"_id": ObjectId(order_id)}) is None
