"""A callback takes the order's status and amount from the status cache, and the cache can never make a wrong outcome.

Against the real Redis and FerretDB: the status claim still decides, whatever the cache says.
"""
from bson import ObjectId
from prometheus_client import REGISTRY

from eventi.domain.models import iso_utc, utcnow
from eventi.storage.status_cache import cache_key
from tests.support.api import create_order, post_callback
from tests.support.events import REGULAR, VIP
from tests.support.listen import ChannelListener


def store_reads():
    return REGISTRY.get_sample_value("eventi_store_reads_total")


def make_order(client, ticket_type=REGULAR):
    """An order for one ticket: Regular costs KES 1,500, VIP 2,500 (tests/support/events.py)."""
    return create_order(client, ticket_type=ticket_type)[0]


def test_a_callback_for_a_cached_order_reads_no_order_from_the_store(client, runtime):
    order_id = make_order(client)  # creation caches the pending status
    before = store_reads()

    assert post_callback(client, runtime, order_id).json == {"received": True}

    assert store_reads() == before
    order = runtime.store.orders.find_one({"_id": ObjectId(order_id)})
    assert (order["status"], order["mpesaReceipt"]) == ("completed", "SAE3YULR0Y")
    assert [e["_id"] for e in runtime.store.events_for(order_id)] == [order["statusEventId"]]


def test_a_cache_miss_reads_the_order_from_the_store_once(client, runtime):
    order_id = make_order(client)
    runtime.redis.delete(cache_key(order_id))  # expired, evicted, or Redis restarted empty
    before = store_reads()

    assert post_callback(client, runtime, order_id, "cancelled").json == {"received": True}

    assert store_reads() == before + 1
    assert runtime.store.orders.find_one({"_id": ObjectId(order_id)})["status"] == "cancelled"


def test_the_amount_is_checked_against_the_cached_amount(client, runtime):
    order_id = make_order(client, ticket_type=VIP)
    assert post_callback(client, runtime, order_id, amount=1500).json == {"received": True}
    order = runtime.store.orders.find_one({"_id": ObjectId(order_id)})
    assert (order["status"], order["failureReason"]) == ("failed", "amount_mismatch")


def test_a_stale_pending_entry_cannot_change_a_final_order(client, runtime, settings):
    """The cache says pending while MongoDB says completed (its final entry not yet written): the
    claim that completed the order decides, the delivery is a duplicate, and the truth is announced."""
    order_id = make_order(client)
    post_callback(client, runtime, order_id)
    stored = runtime.store.orders.find_one({"_id": ObjectId(order_id)})
    runtime.redis.delete(cache_key(order_id))
    runtime.cache.put({"orderId": order_id, "paymentStatus": "pending", "amount": 1500, "updatedAt": iso_utc(utcnow())})
    with ChannelListener(settings["REDIS_URL"], order_id) as listener:
        assert post_callback(client, runtime, order_id, "cancelled").json == {"received": True, "duplicate": True}
        published = listener.next_body()

    assert runtime.store.orders.find_one({"_id": ObjectId(order_id)}) == stored
    assert (published["paymentStatus"], published["mpesaReceipt"]) == ("completed", "SAE3YULR0Y")
    assert runtime.cache.get(order_id) == published


def test_a_pending_entry_for_an_order_not_in_the_store_is_not_found(client, runtime):
    order_id = str(ObjectId())
    runtime.cache.put({"orderId": order_id, "paymentStatus": "pending", "amount": 1500, "updatedAt": iso_utc(utcnow())})

    assert post_callback(client, runtime, order_id).status_code == 404

    assert runtime.store.orders.find_one({"_id": ObjectId(order_id)}) is None
    assert runtime.cache.get(order_id)["paymentStatus"] == "pending"  # nothing final was announced
