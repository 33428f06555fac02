"""Blueprint for events: what is on sale, with the tickets left of each type (eventi/services/catalogue.py)."""
from flask import Blueprint, Response, jsonify

from ..runtime import current_runtime
from ..schemas import EventListSchema, EventSchema
from . import examples as ex
from .declare import declare, ok

bp = Blueprint("events", __name__, url_prefix="/api/events")


@bp.get("")
@declare("The events on sale, soonest first, with the tickets left of each type", tags=["checkout"],
         description="Events whose tickets are sold (they have not started), at most 100. A ticket type with "
                     "`soldOut: true` has no tickets left (`left: 0`); an event is `soldOut` when all its types are.",
         responses={200: ok(EventListSchema, {"on sale": {"events": [ex.EVENT, ex.SOLD_OUT_EVENT]},
                                              "nothing on sale": {"events": []}})},
         errors=["store_unavailable"])
def list_events() -> Response:
    """The events on sale, soonest first."""
    return jsonify(events=current_runtime().catalogue.on_sale())


@bp.get("/<event_id>")
@declare("An event on sale, with its ticket types, prices and tickets left", tags=["checkout"],
         params=[ex.EVENT_ID_PARAM], responses={200: ok(EventSchema, {"demo": ex.EVENT})},
         errors=["event_not_found", "store_unavailable"])
def get_event(event_id: str) -> Response:
    """The event, its ticket types and prices, and how many tickets of each are left."""
    return jsonify(current_runtime().catalogue.one(event_id))
