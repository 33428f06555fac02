"""The cache never moves an order backwards, and a status write that timed out is settled without PayHero.

Forced interleavings against the real Redis and FerretDB (eventi/status_cache.py has the argument).
"""
from bson import ObjectId

from devstack.wait import eventually
from eventi.errors import StoreUnavailable
from eventi.models import PaymentResult, utcnow
from eventi.services.callbacks import CallbackService
from eventi.services.settle import Settler
from eventi.services.status import StatusReader
from eventi.store import OrderStore
from tests.support.api import order_fields
from tests.support.listen import ChannelListener

PAID = dict(paid=True, amount=1500, result_code=0, receipt="RCPT123")


def new_order(parts):
    return str(parts.orders.create(order_fields())["_id"])


class CallbackLandsAfterRead:
    """The real store, except that after a reader's order read a paid callback is stored and
    announced before the reader gets what it read (and so before it caches it)."""

    def __init__(self, parts):
        self._parts = parts

    def get_order(self, order_id):
        order = self._parts.store.get_order(order_id)
        self._parts.callbacks.apply(PaymentResult(order_id=order_id, **PAID), raw="{}")
        return order


def test_a_reader_caching_pending_after_the_callback_cached_final_leaves_final(parts):
    order_id = new_order(parts)
    parts.redis.delete(f"order:cache:{order_id}")  # a miss: expired, evicted, or Redis restarted empty
    reader = StatusReader(CallbackLandsAfterRead(parts), parts.cache)

    assert reader.current(order_id)["paymentStatus"] == "pending"  # read before the callback's write

    assert parts.cache.get(order_id)["paymentStatus"] == "completed"
    assert parts.reader.current(order_id)["paymentStatus"] == "completed"


class FinalizeTimesOut(OrderStore):
    """The real store whose status write times out, as a stalled server makes the driver do."""

    def finalize(self, order_id, outcome, event_id=None):
        raise StoreUnavailable()


def settling_callbacks(parts, window):
    settler = Settler(parts.store, parts.broadcaster.announce, window=window, recheck=0.05)
    return CallbackService(FinalizeTimesOut(parts.store.db), parts.broadcaster, settler), settler


def test_a_timed_out_status_write_that_lands_later_is_applied_and_announced(parts, settings):
    order_id = new_order(parts)
    callbacks, settler = settling_callbacks(parts, window=30)
    listener = ChannelListener(settings["REDIS_URL"], order_id)
    try:
        try:
            callbacks.apply(PaymentResult(order_id=order_id, **PAID), raw="{}")
            raise AssertionError("the callback should have answered 503")
        except StoreUnavailable:
            pass
        assert parts.store.get_order(order_id)["status"] == "pending"
        # The server applies the timed-out claim insert after all.
        parts.store.claims.insert_one({"_id": ObjectId(order_id), "status": "completed", "mpesaReceipt": "RCPT123",
                                       "failureReason": None, "eventId": None, "claimedAt": utcnow()})
        published = listener.next_body(timeout=15)
    finally:
        listener.close()
        settler.close()
    assert (published["paymentStatus"], published["mpesaReceipt"]) == ("completed", "RCPT123")
    assert parts.store.get_order(order_id)["status"] == "completed"
    assert parts.cache.get(order_id) == published
    assert settler.watched == set()


def test_a_timed_out_status_write_that_never_lands_is_let_go(parts):
    order_id = new_order(parts)
    callbacks, settler = settling_callbacks(parts, window=0.3)
    try:
        callbacks.apply(PaymentResult(order_id=order_id, **PAID), raw="{}")
    except StoreUnavailable:
        pass
    assert settler.watched == {order_id}
    eventually(lambda: settler.watched == set(), 15, "the settler to let the order go")
    assert parts.store.get_order(order_id)["status"] == "pending"
    assert parts.store.claims.find_one({"_id": ObjectId(order_id)}) is None
