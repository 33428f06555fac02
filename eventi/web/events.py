"""Blueprint for events: what is on sale, with the tickets left of each type."""
from flask import Blueprint, jsonify

from ..errors import EventNotFound
from ..models import iso_utc
from ..schemas import EVENT_ID
from .common import current_runtime

bp = Blueprint("events", __name__, url_prefix="/api/events")


@bp.get("/<event_id>")
def get_event(event_id):
    """The event, its ticket types and prices, and how many tickets of each are left."""
    p = current_runtime()
    event = p.events.on_sale(event_id) if EVENT_ID.match(event_id) else None
    if event is None:
        raise EventNotFound()
    return jsonify(public_event(event, p.tickets.left(event)))


def public_event(event, left):
    """The public view of an event: capacity stays private, what is left is shown."""
    return {
        "id": event["_id"], "name": event["name"], "startsAt": iso_utc(event["startsAt"]), "venue": event["venue"],
        "currency": event["currency"],
        "ticketTypes": [{"id": t["id"], "name": t["name"], "price": t["price"], "maxPerOrder": t["maxPerOrder"],
                         "left": left[t["id"]]} for t in event["ticketTypes"]],
    }
