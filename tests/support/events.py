"""Events for the tests, stored through the same code as `flask --app wsgi events load`."""
import json
from datetime import timedelta

from devstack.processes import ROOT
from eventi.domain import event_file
from eventi.domain.models import utcnow
from eventi.storage.event_store import EventStore
from eventi.storage.order_store import connect

TEST_EVENT = "ev-test"
REGULAR, VIP = "regular", "vip"
DEMO_FILE = ROOT / "eventi" / "demo_event.json"


def event_spec(event_id=TEST_EVENT, starts_in=timedelta(days=30), capacity=1_000_000, vip_capacity=1_000_000, **extra):
    """An event file entry: Regular at KES 1,500 (10 per order) and VIP at KES 2,500 (4 per order)."""
    return {"id": event_id, "name": f"Test event {event_id}", "startsAt": (utcnow() + starts_in).isoformat(),
            "venue": "Test Hall, Nairobi", "currency": "KES",
            "ticketTypes": [{"id": REGULAR, "name": "Regular", "price": 1500, "capacity": capacity, "maxPerOrder": 10},
                            {"id": VIP, "name": "VIP", "price": 2500, "capacity": vip_capacity, "maxPerOrder": 4}],
            **extra}


def save_events(mongo_uri, *specs):
    """Store the given event specs (validated like a file) in the database of mongo_uri."""
    client = connect(mongo_uri)
    try:
        store = EventStore(client.get_default_database())
        for document in event_file.parse(list(specs)):
            store.save(document)
    finally:
        client.close()


def seed_test_events(mongo_uri):
    """The events most tests order from: ev-test (huge capacity) and the shipped demo event."""
    save_events(mongo_uri, event_spec(), json.loads(DEMO_FILE.read_text()))
