"""The events on sale as the API shows them: prices and what is left per ticket type, never capacity."""
from typing import Any

from ..domain.models import iso_utc
from ..errors import EventNotFound
from ..schemas import EVENT_ID
from ..storage.event_store import EventStore
from ..storage.ticket_holds import TicketHolds


class EventCatalogue:
    """Public views of the events whose tickets are on sale (they have not started)."""

    def __init__(self, events: EventStore, tickets: TicketHolds) -> None:
        self._events = events
        self._tickets = tickets

    def on_sale(self) -> list[dict[str, Any]]:
        """Every event on sale, soonest first."""
        return [public_event(event, self._tickets.left(event)) for event in self._events.upcoming()]

    def one(self, event_id: str) -> dict[str, Any]:
        """One event on sale; EventNotFound when there is no such event or it has started."""
        event = self._events.on_sale(event_id) if EVENT_ID.match(event_id) else None
        if event is None:
            raise EventNotFound()
        return public_event(event, self._tickets.left(event))


def public_event(event: dict[str, Any], left: dict[str, int]) -> dict[str, Any]:
    """The public view of an event: capacity stays private, what is left is shown."""
    types = [{"id": t["id"], "name": t["name"], "price": t["price"], "maxPerOrder": t["maxPerOrder"],
              "left": left[t["id"]], "soldOut": left[t["id"]] == 0} for t in event["ticketTypes"]]
    return {"id": event["_id"], "name": event["name"], "startsAt": iso_utc(event["startsAt"]), "venue": event["venue"],
            "currency": event["currency"], "soldOut": all(t["soldOut"] for t in types), "ticketTypes": types}
