"""What a callback and a ticket hold write to MongoDB: in as few round trips as the guarantees allow.

The commands are counted with a pymongo CommandListener on a second client whose collections replace the
runtime's (the same FerretDB): a paid callback for a pending order is two writes, the status claim (which
carries the delivery's audit record) and the order following it; an order's ticket slots are one insert.
"""
from contextlib import contextmanager
from datetime import timedelta

import pytest
from bson import ObjectId
from pymongo import MongoClient, monitoring
from pymongo.errors import AutoReconnect, BulkWriteError

from eventi.domain.models import OrderStatus, Outcome, utcnow
from eventi.errors import SoldOut, StoreUnavailable
from eventi.storage import ticket_holds
from eventi.storage.order_store import OrderStore
from eventi.storage.ticket_holds import LISTED_SLOTS, TicketHolds, slot_id
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
    """Route the runtime store's orders, audit trail and claims, and the ticket holds, through a client that
    records its commands."""
    commands = Commands()
    names = {runtime.store: ("orders", "events", "claims"), runtime.tickets: ("holds",)}
    own = {(target, name): getattr(target, name) for target, some in names.items() for name in some}
    with MongoClient(settings["MONGO_URI"], tz_aware=True, event_listeners=[commands]) as mongo:
        watched = {runtime.store: OrderStore(mongo.get_default_database()),
                   runtime.tickets: TicketHolds(mongo.get_default_database())}
        for target, name in own:
            setattr(target, name, getattr(watched[target], name))
        try:
            yield commands
        finally:
            for (target, name), collection in own.items():
                setattr(target, name, collection)


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


# --- ticket slots -------------------------------------------------------------------------------------------


def holds_of(runtime, holder):
    return sorted(doc["_id"] for doc in runtime.tickets.holds.find({"orderId": holder}))


def test_an_order_for_three_tickets_holds_them_in_one_insert(client, runtime, settings, new_event):
    event_id = new_event(capacity=50)
    with listened(runtime, settings) as commands:
        order_id, _ = create_order(client, event_id=event_id, quantity=3)

    assert [seen for seen in commands.writes() if seen[1] == "ticket_holds"] == [("insert", "ticket_holds")]
    order = runtime.store.orders.find_one({"_id": ObjectId(order_id)})
    assert len(order["ticketSlots"]) == 3 and sorted(order["ticketSlots"]) == holds_of(runtime, order_id)


def test_the_event_list_counts_every_events_holds_in_one_command(client, runtime, settings, new_event):
    for minutes in (30, 31, 32):
        new_event(capacity=50, starts_in=timedelta(minutes=minutes))
    with listened(runtime, settings) as commands:
        events = client.get("/api/events").json["events"]

    assert len(events) >= 3
    assert [seen for seen in commands.seen if seen[1] == "ticket_holds"] == [("aggregate", "ticket_holds")]


def test_a_batch_that_meets_taken_slots_keeps_exactly_the_free_ones(runtime, new_event):
    """Capacity 4, two slots held by another order: the first batch's random slots may hit them; the order
    ends with the two free slots, whatever the draw, and the other order's are untouched."""
    event_id = new_event(capacity=4)
    other = runtime.tickets.hold(ObjectId(), event_id, "regular", 4, 2)
    order_id = ObjectId()

    mine = runtime.tickets.hold(order_id, event_id, "regular", 4, 2)

    assert sorted(mine) == holds_of(runtime, str(order_id)) and not set(mine) & set(other)
    assert runtime.tickets.holds.count_documents({"event": event_id}) == 4


def test_a_large_type_draws_again_before_reading_its_holds(runtime, settings, new_event, monkeypatch):
    """Above LISTED_SLOTS a draw that meets a taken slot is followed by another draw, not by reading every
    hold of the type (a row each: at 100,000 held, 10 % of orders would read them all)."""
    event_id = new_event(capacity=10_000)
    taken = runtime.tickets.hold(ObjectId(), event_id, "regular", 10_000, 1)
    taken_slot = int(taken[0].rsplit(":", 1)[1])
    draws = iter([[taken_slot], [taken_slot], [taken_slot + 1 if taken_slot < 9_999 else 0]])
    monkeypatch.setattr(ticket_holds.random, "sample", lambda population, k: next(draws))
    order_id = ObjectId()
    with listened(runtime, settings) as commands:
        mine = runtime.tickets.hold(order_id, event_id, "regular", 10_000, 1)

    assert mine == holds_of(runtime, str(order_id)) and mine != taken
    assert [seen for seen in commands.seen if seen[1] == "ticket_holds"] == [("insert", "ticket_holds")] * 3


def test_a_large_type_nearly_full_reads_its_holds_after_the_random_rounds(runtime, new_event):
    """Every slot but one held: the random rounds (almost surely) meet taken slots; the read finds the free one."""
    capacity = LISTED_SLOTS + 1
    event_id = new_event(capacity=capacity)
    free = 7
    runtime.tickets.holds.insert_many([{"_id": slot_id(event_id, "regular", n), "event": event_id, "type": "regular",
                                        "n": n, "orderId": "other", "heldAt": utcnow()}
                                       for n in range(capacity) if n != free])
    order_id = ObjectId()

    assert runtime.tickets.hold(order_id, event_id, "regular", capacity, 1) == [slot_id(event_id, "regular", free)]
    with pytest.raises(SoldOut):
        runtime.tickets.hold(ObjectId(), event_id, "regular", capacity, 1)


class LandsThenFails:
    """The holds collection whose insert_many is applied by the server, then the connection drops."""

    def __init__(self, collection):
        self._collection = collection

    def __getattr__(self, name):
        return getattr(self._collection, name)

    def insert_many(self, *args, **kwargs):
        try:
            self._collection.insert_many(*args, **kwargs)
        except BulkWriteError:
            pass  # the random draw met the other order's slots: the rest went in
        raise AutoReconnect("connection closed")


class FirstRefused:
    """The holds collection whose insert_many refuses its first document with a server error (not a taken
    slot) and inserts the others."""

    def __init__(self, collection):
        self._collection = collection

    def __getattr__(self, name):
        return getattr(self._collection, name)

    def insert_many(self, documents, **kwargs):
        documents = list(documents)
        self._collection.insert_many(documents[1:], **kwargs)
        raise BulkWriteError({"writeErrors": [{"index": 0, "code": 2, "errmsg": "refused"}],
                              "nInserted": len(documents) - 1, "writeConcernErrors": []})


def holding_through(runtime, wrapper, order_id, event_id, capacity, quantity):
    holds = runtime.tickets.holds
    runtime.tickets.holds = wrapper(holds)
    try:
        with pytest.raises(StoreUnavailable):
            runtime.tickets.hold(order_id, event_id, "regular", capacity, quantity)
    finally:
        runtime.tickets.holds = holds


def test_a_batch_refused_for_another_reason_gives_back_what_went_in(runtime, new_event):
    event_id = new_event(capacity=10)
    order_id = ObjectId()
    holding_through(runtime, FirstRefused, order_id, event_id, 10, 3)
    assert holds_of(runtime, str(order_id)) == []


def test_a_batch_whose_outcome_is_unknown_leaves_what_landed_to_the_sweep(client, runtime, new_event):
    """Nothing is deleted on an unknown outcome (a slot of the batch may be one this order id held before and
    its stored order lists); the sweep frees the holds no stored order lists, a stored order's stay."""
    event_id = new_event(capacity=10)
    other, _ = create_order(client, event_id=event_id, quantity=2)
    order_id = ObjectId()
    holding_through(runtime, LandsThenFails, order_id, event_id, 10, 3)
    assert holds_of(runtime, str(order_id))  # landed, unlisted

    runtime.tickets.finish_interrupted(utcnow() + timedelta(minutes=3))  # the sweep, once they are 2 minutes old

    assert holds_of(runtime, str(order_id)) == []
    assert sorted(doc["_id"] for doc in runtime.tickets.holds.find({"event": event_id})) == holds_of(runtime, other)
    assert len(holds_of(runtime, other)) == 2
