"""Blueprint for the shopper's pages: events on sale, the checkout form and the payment status page (server-rendered)."""
from datetime import timedelta, timezone

from flask import Blueprint, render_template, request, url_for

from ..models import is_final, status_body, utcnow
from ..schemas import EVENT_ID
from ..store import parse_order_id
from .common import current_runtime
from .payment_page import countdown_text, payment_view

bp = Blueprint("pages", __name__)

EAT = timezone(timedelta(hours=3), "EAT")
"""Events are in Kenya (prices in KES): times are shown in East Africa Time."""


@bp.get("/events")
def events():
    """The events whose tickets are on sale, soonest first."""
    return _page(render_template("events.html", events=[_event_view(e) for e in current_runtime().events.upcoming()]))


@bp.get("/events/<event_id>/checkout")
def checkout(event_id):
    """The checkout form: ticket type, number of tickets, name, email, phone. Prices come from the stored event."""
    p = current_runtime()
    event = p.events.on_sale(event_id) if EVENT_ID.match(event_id) else None
    if event is None:
        return _not_found("This event does not exist, or its ticket sales have closed.")
    left = p.tickets.left(event)
    ticket_types = [{**t, "left": left[t["id"]], "most": min(t["maxPerOrder"], left[t["id"]])} for t in event["ticketTypes"]]
    chosen = next((t for t in ticket_types if t["most"] > 0), None)
    return _page(render_template("checkout.html", event=_event_view(event), ticket_types=ticket_types, chosen=chosen))


@bp.get("/orders/<order_id>/status")
def status(order_id: str) -> tuple[str, int, dict[str, str]]:
    """The payment page: what was bought, the order's status now, then one long poll until it is final."""
    token = request.args.get("token", "")
    p = current_runtime()
    if parse_order_id(order_id) is None or not p.tokens.check_status_token(order_id, token):
        return _not_found()
    order = p.store.get_order(order_id)
    if order is None:
        return _not_found()
    body = status_body(order)
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


def _event_view(event):
    starts = event["startsAt"].astimezone(EAT)
    return {"id": event["_id"], "name": event["name"], "venue": event["venue"], "currency": event["currency"],
            "starts_iso": starts.isoformat(), "starts": starts.strftime("%a %d %b %Y, %H:%M EAT").replace(" 0", " ")}


def _bought(order):
    """What the order buys, as stored on it (orders from before issue 12 have no ticket type)."""
    if "quantity" not in order:
        return None
    return {"quantity": order["quantity"], "name": order["ticketTypeName"], "unit_price": order["unitPrice"],
            "amount": order["amount"], "currency": order.get("currency", "KES")}


def _not_found(message=None):
    return _page(render_template("not_found.html", message=message), 404)


def _page(html, status=200):
    """Pages hold a per-order token in their URL: never cache them, never leak the URL onward."""
    return html, status, {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
                  "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'"}
