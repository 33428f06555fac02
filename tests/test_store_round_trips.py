"""What a callback writes to MongoDB: each delivery audited, in as few round trips as the guarantees allow.

The commands are counted with a pymongo CommandListener on a second client whose collections replace the
runtime store's (the same FerretDB): a paid callback for a pending order is two writes, the status claim
(which carries the delivery's audit record) and the order following it.
"""
from contextlib import contextmanager

from bson import ObjectId
from pymongo import MongoClient, monitoring

from eventi.models import OrderStatus, Outcome
from eventi.store import OrderStore
from tests.support.api import create_order, post_callback

WRITES = {"insert", "update", "findAndModify", "delete"}


class Commands(monitoring.CommandListener):
    """(command, collection) of every command started."""

    def __init__(self):
        self.seen = []

    def started(self, event):
        self.seen.append((event.command_name, event.command.get(event.command_name)))

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass

    def writes(self):
        return [seen for seen in self.seen if seen[0] in WRITES]


@contextmanager
def listened(runtime, settings):
    """Route the runtime store's orders, audit trail and claims through a client that records its commands."""
    commands = Commands()
    names = ("orders", "events", "claims")
    own = {name: getattr(runtime.store, name) for name in names}
    with MongoClient(settings["MONGO_URI"], tz_aware=True, event_listeners=[commands]) as mongo:
        watched = OrderStore(mongo.get_default_database())
        for name in names:
            setattr(runtime.store, name, getattr(watched, name))
        try:
            yield commands
        finally:
            for name in names:
                setattr(runtime.store, name, own[name])


def test_a_paid_callback_for_a_pending_order_is_two_writes_and_its_delivery_is_audited(client, runtime, settings):
    order_id, _ = create_order(client)
    with listened(runtime, settings) as commands:
        assert post_callback(client, runtime, order_id).json == {"received": True}

    assert commands.writes() == [("insert", "status_claims"), ("findAndModify", "orders")]
    order = runtime.store.orders.find_one({"_id": ObjectId(order_id)})
    [delivery] = runtime.store.events_for(order_id)
    assert delivery["_id"] == order["statusEventId"] and delivery["source"] == "callback"
    assert delivery["summary"]["receipt"] == order["mpesaReceipt"] == "SAE3YULR0Y"
    assert runtime.store.event_by_id(order["statusEventId"]) == delivery
    assert "delivery" not in runtime.store.claim_for(order_id)  # support sees it once, among the deliveries


def test_a_duplicate_is_one_write_its_own_audit_record(client, runtime, settings):
    order_id, _ = create_order(client)
    post_callback(client, runtime, order_id)
    with listened(runtime, settings) as commands:
        assert post_callback(client, runtime, order_id).json == {"received": True, "duplicate": True}

    assert commands.writes() == [("insert", "payment_events")]
    assert len(runtime.store.events_for(order_id)) == 2


def test_a_claim_insert_the_driver_retried_after_it_landed_is_ours_and_audited_once(client, runtime):
    """finalize with the same delivery twice (the first insert landed, the driver raised, the caller tried
    again): the second finds its own claim, decides, and stores no second audit record."""
    order_id, _ = create_order(client)
    delivery = runtime.store.delivery(order_id, "callback", "{}", {"paid": True})
    outcome = Outcome(OrderStatus.COMPLETED, mpesa_receipt="RCPT1")

    first = runtime.store.finalize(order_id, outcome, delivery=delivery)
    again = runtime.store.finalize(order_id, outcome, delivery=delivery)

    assert first.decided and again.decided
    assert again.order["status"] == "completed"
    assert [e["_id"] for e in runtime.store.events_for(order_id)] == [delivery["_id"]]


def test_a_losing_claim_stores_its_delivery_on_its_own(client, runtime):
    order_id, _ = create_order(client)
    won = runtime.store.delivery(order_id, "callback", "{}", {"paid": False})
    lost = runtime.store.delivery(order_id, "reconcile", "", {"paid": True})

    assert runtime.store.finalize(order_id, Outcome(OrderStatus.CANCELLED), delivery=won).decided
    finalized = runtime.store.finalize(order_id, Outcome(OrderStatus.COMPLETED, mpesa_receipt="R"), delivery=lost)

    assert not finalized.decided and finalized.order["status"] == "cancelled"
    assert {e["_id"] for e in runtime.store.events_for(order_id)} == {won["_id"], lost["_id"]}
    assert runtime.store.events.find_one({"_id": lost["_id"]})["source"] == "reconcile"
