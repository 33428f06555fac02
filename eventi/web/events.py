"""Blueprint for events: what is on sale, with the tickets left of each type."""
from typing import Any

from flask import Blueprint, Response, jsonify

from ..errors import EventNotFound
from ..models import iso_utc
from ..runtime import current_runtime
from ..schemas import EVENT_ID, EventSchema
from . import examples as ex
from .declare import declare, ok

bp = Blueprint("events", __name__, url_prefix="/api/events")


@bp.get("/<event_id>")
@declare("An event on sale, with its ticket types, prices and tickets left", tags=["checkout"],
         params=[ex.EVENT_ID_PARAM], responses={200: ok(EventSchema, {"demo": ex.EVENT})},
         errors=["event_not_found", "store_unavailable"])
def get_event(event_id: str) -> Response:
    """The event, its ticket types and prices, and how many tickets of each are left."""
    p = current_runtime()
    event = p.events.on_sale(event_id) if EVENT_ID.match(event_id) else None
    if event is None:
        raise EventNotFound()
    return jsonify(public_event(event, p.tickets.left(event)))


def public_event(event: dict[str, Any], left: dict[str, int]) -> dict[str, Any]:
    """The public view of an event: capacity stays private, what is left is shown."""
    return {
        "id": event["_id"], "name": event["name"], "startsAt": iso_utc(event["startsAt"]), "venue": event["venue"],
        "currency": event["currency"],
        "ticketTypes": [{"id": t["id"], "name": t["name"], "price": t["price"], "maxPerOrder": t["maxPerOrder"],
                         "left": left[t["id"]]} for t in event["ticketTypes"]],
    }
