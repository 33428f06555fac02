"""The events on sale, for the API (prices and what is left per ticket type, never capacity) and the pages
(the stored event with what is left): the routes' one way to events and ticket holds."""
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
        return [public_event(event, left) for event, left in self.upcoming()]

    def upcoming(self) -> list[tuple[dict[str, Any], dict[str, int]]]:
        """Every stored event on sale, soonest first, with what is left per ticket type (for the pages)."""
        events = self._events.upcoming()
        return list(zip(events, self._tickets.left_of_each(events), strict=True))

    def stored_on_sale(self, event_id: str) -> dict[str, Any] | None:
        """The stored event when it is on sale; None for a malformed id, an unknown or a started event."""
        return self._events.on_sale(event_id) if EVENT_ID.match(event_id) else None

    def stored(self, event_id: str) -> dict[str, Any] | None:
        """The stored event, started or not (an order's payment page names its event either way)."""
        return self._events.get(event_id)

    def left(self, event: dict[str, Any]) -> dict[str, int]:
        """Ticket type id -> tickets left (capacity minus holds, never below 0)."""
        return self._tickets.left(event)

    def one(self, event_id: str) -> dict[str, Any]:
        """One event on sale; EventNotFound when there is no such event or it has started."""
        event = self.stored_on_sale(event_id)
        if event is None:
            raise EventNotFound()
        return public_event(event, self._tickets.left(event))


def public_event(event: dict[str, Any], left: dict[str, int]) -> dict[str, Any]:
    """The public view of an event: capacity stays private, what is left is shown."""
    types = [{"id": t["id"], "name": t["name"], "price": t["price"], "maxPerOrder": t["maxPerOrder"],
              "left": left[t["id"]], "soldOut": left[t["id"]] == 0} for t in event["ticketTypes"]]
    return {"id": event["_id"], "name": event["name"], "startsAt": iso_utc(event["startsAt"]), "venue": event["venue"],
            "currency": event["currency"], "soldOut": all(t["soldOut"] for t in types), "ticketTypes": types}
