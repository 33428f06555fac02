"""Blueprint for the shopper's pages: the checkout form and the payment status page (server-rendered)."""
from flask import Blueprint, render_template, request, url_for

from ..models import is_final, status_body
from ..schemas import EVENT_ID
from ..store import parse_order_id
from .common import parts

bp = Blueprint("pages", __name__)


@bp.get("/events/<event_id>/checkout")
def checkout(event_id):
    """The checkout form: name, email, phone, number of tickets."""
    if not EVENT_ID.match(event_id):
        return _not_found()
    settings = parts().settings
    return _page(render_template("checkout.html", event_id=event_id, ticket_price=settings["TICKET_PRICE"],
                                 max_tickets=settings["MAX_TICKETS"]))


@bp.get("/orders/<order_id>/status")
def status(order_id):
    """The payment page: the order's status now, then one long poll until it is final."""
    token = request.args.get("token", "")
    p = parts()
    if parse_order_id(order_id) is None or not p.tokens.check_status_token(order_id, token):
        return _not_found()
    order = p.store.get_order(order_id)
    if order is None:
        return _not_found()
    body = status_body(order)
    return _page(render_template(
        "status.html", order=body, final=is_final(body), event_id=order["eventId"],
        wait_url=url_for("orders.wait_for_status", order_id=order_id, token=token),
        retry_url=url_for("pages.checkout", event_id=order["eventId"]),
    ))


def _not_found():
    return _page(render_template("not_found.html"), 404)


def _page(html, status=200):
    """Pages hold a per-order token in their URL: never cache them, never leak the URL onward."""
    return html, status, {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
                  "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'"}
