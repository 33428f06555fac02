"""EventStore: the events and their ticket types in MongoDB (loaded by `flask --app wsgi events load`)."""
from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.database import Database

from ..domain.models import utcnow
from .order_store import durable, unavailable_on_error


class EventStore:
    """Events by id; an event is on sale until it starts."""

    def __init__(self, database: Database[dict[str, Any]]) -> None:
        self.events = database.get_collection("events", write_concern=durable(database))

    @unavailable_on_error
    def save(self, document: dict[str, Any]) -> bool:
        """Create or replace one event document; True when it is new.

        Each ticket type keeps `slots`, the highest capacity it ever had: holds taken under a higher
        capacity stay where they are, and eventi/storage/ticket_holds.py counts them while capacity is below it.
        """
        earlier = self.events.find_one({"_id": document["_id"]}, {"ticketTypes": 1})
        document = {**document, "ticketTypes": with_slot_ranges(document["ticketTypes"], earlier)}
        result = self.events.replace_one({"_id": document["_id"]}, document, upsert=True)
        return result.upserted_id is not None

    @unavailable_on_error
    def get(self, event_id: str) -> dict[str, Any] | None:
        """The event, past or not, or None."""
        return self.events.find_one({"_id": event_id})

    def on_sale(self, event_id: str, now: datetime | None = None) -> dict[str, Any] | None:
        """The event while its tickets are sold (it has not started), else None."""
        event = self.get(event_id)
        if event is None or event["startsAt"] <= (now or utcnow()):
            return None
        return event

    @unavailable_on_error
    def upcoming(self, now: datetime | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Events not started yet, soonest first."""
        return list(self.events.find({"startsAt": {"$gt": now or utcnow()}}).sort("startsAt", ASCENDING).limit(limit))


def ticket_type(event: dict[str, Any], ticket_type_id: str) -> dict[str, Any] | None:
    """The event's ticket type with that id, or None."""
    return next((t for t in event["ticketTypes"] if t["id"] == ticket_type_id), None)


def with_slot_ranges(ticket_types: list[dict[str, Any]], earlier: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The ticket types, each with `slots`: the highest of its new capacity and what it had before."""
    before = {t["id"]: max(t["capacity"], t.get("slots", 0)) for t in (earlier or {}).get("ticketTypes", [])}
    return [{**t, "slots": max(t["capacity"], before.get(t["id"], 0))} for t in ticket_types]
