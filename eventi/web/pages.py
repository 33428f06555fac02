"""Blueprint for the shopper's pages: events on sale, the checkout form and the payment status page (server-rendered)."""
from datetime import timedelta, timezone
from typing import Any

from flask import Blueprint, render_template, request, url_for

from ..models import is_final, utcnow
from ..schemas import EVENT_ID
from . import examples as ex
from .common import current_runtime, status_token_matches
from .converters import OrderId
from .declare import declare, text
from .payment_page import countdown_text, payment_view

bp = Blueprint("pages", __name__)

EAT = timezone(timedelta(hours=3), "EAT")
"""Events are in Kenya (prices in KES): times are shown in East Africa Time."""


@bp.get("/events")
@declare("The events on sale, soonest first (HTML)", tags=["pages"],
         responses={200: text("text/html", "A list of links to each event's checkout", "<!doctype html>...")})
def events() -> tuple[str, int, dict[str, str]]:
    """The events whose tickets are on sale, soonest first."""
    return _page(render_template("events.html", events=[_event_view(e) for e in current_runtime().events.upcoming()]))


@bp.get("/events/<event_id>/checkout")
@declare(
    "The checkout form for one event (HTML)", tags=["pages"],
    description="Shows the event's name, date, venue and ticket types with their stored prices; posts to "
                "POST /api/orders with an Idempotency-Key per submission.",
    params=[ex.EVENT_ID_PARAM],
    responses={200: text("text/html", "The form; it posts to POST /api/orders", "<!doctype html>..."),
               404: text("text/html", "No such event, or it has started: a page linking to the events on sale",
                         "<!doctype html>...")})
def checkout(event_id: str) -> tuple[str, int, dict[str, str]]:
    """The checkout form: ticket type, number of tickets, name, email, phone. Prices come from the stored event."""
    p = current_runtime()
    event = p.events.on_sale(event_id) if EVENT_ID.match(event_id) else None
    if event is None:
        return _not_found("This event does not exist, or its ticket sales have closed.")
    left = p.tickets.left(event)
    ticket_types = [{**t, "left": left[t["id"]], "most": min(t["maxPerOrder"], left[t["id"]])} for t in event["ticketTypes"]]
    chosen = next((t for t in ticket_types if t["most"] > 0), None)
    return _page(render_template("checkout.html", event=_event_view(event), ticket_types=ticket_types, chosen=chosen))


@bp.get("/orders/<order_id:order_id>/status")
@declare(
    "The payment page: the status now, then one long poll (HTML)", tags=["pages"],
    description="Served with `Cache-Control: no-store` and `Referrer-Policy: no-referrer`: its URL holds the token.",
    params=[{"in": "query", "name": "token", "required": True, "example": ex.STATUS_TOKEN,
             "description": "The statusToken.", "schema": {"type": "string"}}],
    responses={200: text("text/html", "The page", "<!doctype html>..."),
               404: text("text/html", "Unknown order or wrong token", "<!doctype html>...")},
    errors=["store_unavailable"], security="statusToken")
def status(order_id: OrderId | None) -> tuple[str, int, dict[str, str]]:
    """The payment page: what was bought, the order's status now, then one long poll until it is final."""
    token = request.args.get("token", "")
    p = current_runtime()
    found = p.reader.with_order(order_id) if order_id and status_token_matches(order_id, token) else None
    if found is None:
        return _not_found()
    order, body = found
    event = p.events.get(order["eventId"])
    return _page(render_template(
        "status.html", order=body, final=is_final(body), event_id=order["eventId"],
        event=_event_view(event) if event else None, bought=_bought(order), email=order.get("email"),
        view=payment_view(order, utcnow(), p.settings.prompt_help_seconds), countdown_text=countdown_text,
        support=p.settings.support_contact,
        wait_url=url_for("orders.wait_for_status", order_id=order_id, token=token),
        hold_seconds=p.settings.wait_default_seconds,  # long-poll.js's deadline per hold: this + a margin
        retry_url=url_for("pages.checkout", event_id=order["eventId"]),
    ))


def _event_view(event: dict[str, Any]) -> dict[str, str]:
    starts = event["startsAt"].astimezone(EAT)
    return {"id": event["_id"], "name": event["name"], "venue": event["venue"], "currency": event["currency"],
            "starts_iso": starts.isoformat(), "starts": starts.strftime("%a %d %b %Y, %H:%M EAT").replace(" 0", " ")}


def _bought(order: dict[str, Any]) -> dict[str, Any] | None:
    """What the order buys, as stored on it (orders from before issue 12 have no ticket type)."""
    if "quantity" not in order:
        return None
    return {"quantity": order["quantity"], "name": order["ticketTypeName"], "unit_price": order["unitPrice"],
            "amount": order["amount"], "currency": order.get("currency", "KES")}


def _not_found(message: str | None = None) -> tuple[str, int, dict[str, str]]:
    return _page(render_template("not_found.html", message=message), 404)


def _page(html: str, status: int = 200) -> tuple[str, int, dict[str, str]]:
    """Pages hold a per-order token in their URL: never cache them, never leak the URL onward."""
    return html, status, {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
                  "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'"}
