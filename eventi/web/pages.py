"""Blueprint for the shopper's pages: events on sale, the checkout form (with and without JavaScript),
the payment status page and the not-found page (server-rendered)."""
import logging
import re
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta, timezone
from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from ..domain import phones
from ..domain.models import is_final, utcnow
from ..domain.pricing import Quote
from ..errors import (
    EventiError,
    EventNotFound,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    PaymentProviderError,
    PriceChanged,
    TooManyPushes,
    ValidationFailed,
)
from ..runtime import current_runtime
from ..schemas import EVENT_ID, IDEMPOTENCY_KEY, NAME_MAX, OrderCreateSchema
from ..services.idempotent_checkout import Created
from . import examples as ex
from . import form_token, nobreak
from .common import load, status_token_matches
from .converters import OrderId
from .created import created_body
from .declare import declare, text
from .manual_page import manual_offer
from .payment_page import countdown_text, listen_left, payment_view

bp = Blueprint("pages", __name__)
log = logging.getLogger(__name__)

EAT = timezone(timedelta(hours=3), "EAT")
"""Events are in Kenya (prices in KES): times are shown in East Africa Time."""

PAGE_MODULES = {
    "checkout.html": ("js/checkout.js",),
    "status.html": ("js/status.js", "js/long-poll.js"),
}
"""Each page's script and every module it imports: base.html preloads them all at once (modulepreload),
so the browser does not discover long-poll.js only after status.js has arrived."""

FORM_FIELDS = ("ticketTypeId", "quantity", "name", "email", "phone")
"""The checkout form's fields, named as POST /api/orders names them, so an error lands under its field."""

CHECKOUT_REFERRER_POLICY = "strict-origin"
"""The checkout page's: under no-referrer the browser posts its form with `Origin: null`, which says nothing
(form_token.from_our_pages); strict-origin sends our origin, and as Referer only the origin, never the path or
the ?retry= token."""

FORM_TOKEN = "formToken"
"""The checkout form's hidden field holding its form_token: without a valid one, a post is refused (403)."""

_CREATE = OrderCreateSchema()
_EVENT_PATH = re.compile(r"^/events/([A-Za-z0-9_-]{1,64})(?:/|$)")
_RETRY_PAUSE = 0.25
STILL_SENDING = "Your order is still being sent to M-Pesa: check your phone, then reload this page to see it."
PRICE_CHANGED = "The price changed since you confirmed: the total is now {total}. Check it, then press Pay."

bp.add_app_template_filter(nobreak.keep_whole, "nobreak")  # base.html: "M-Pesa" never breaks at its hyphen


@dataclass
class Submission:
    """One press of Pay without JavaScript: the Idempotency-Key its order is created under (the posted one, or a
    new one when the posted key was sent before with other details)."""

    key: str


@bp.get("/events")
@declare("The events on sale, soonest first (HTML)", tags=["pages"],
         responses={200: text("text/html", "A list of links to each event's checkout", "<!doctype html>...")})
def events() -> ResponseReturnValue:
    """The events whose tickets are on sale, soonest first, each sold-out type (or the whole event) marked."""
    p = current_runtime()
    listed = [{**_event_view(e), **_sold_out_view(e, left)} for e, left in p.catalogue.upcoming()]
    return _page(_render("events.html", events=listed))


@bp.get("/")
@declare("The home page: the events on sale (HTML)", tags=["pages"],
         description="The same page as GET /events: what someone who types the domain sees.",
         responses={200: text("text/html", "A list of links to each event's checkout", "<!doctype html>...")})
def home() -> ResponseReturnValue:
    """The events on sale: a person who types the domain lands on them."""
    return events()


@bp.get("/events/<event_id>/checkout")
@declare(
    "The checkout form for one event (HTML)", tags=["pages"],
    description="Shows the event's name, date, venue and ticket types with their stored prices; with JavaScript "
                "it posts to POST /api/orders with an Idempotency-Key per submission, without it the form posts "
                "to this same path. `?retry={orderId}&token={statusToken}` (the payment page's \"Try again\") "
                "fills the form from that order.",
    params=[ex.EVENT_ID_PARAM],
    responses={200: text("text/html", "The form; it posts to POST /api/orders", "<!doctype html>..."),
               404: text("text/html", "No such event, or it has started: a page linking to the events on sale",
                         "<!doctype html>...")})
def checkout(event_id: str) -> ResponseReturnValue:
    """The checkout form: ticket type, number of tickets, name, email, phone. Prices come from the stored event.

    With ?retry=<orderId>&token=<statusToken> (the payment page's "Try again"), the form is filled from that order.
    """
    event = _on_sale(event_id)
    if event is None:
        return _event_not_found()
    return _checkout_page(event, _retry_values(event_id))


CHECKOUT_FORM: dict[str, Any] = {"type": "object", "required": ["ticketTypeId", "quantity", "email", "phone"], "properties": {
    "ticketTypeId": {"type": "string"}, "quantity": {"type": "string", "pattern": "^[0-9]{1,3}$"},
    "name": {"type": "string", "maxLength": NAME_MAX}, "email": {"type": "string"}, "phone": {"type": "string"},
    "idempotencyKey": {"type": "string", "pattern": IDEMPOTENCY_KEY.pattern},
    FORM_TOKEN: {"type": "string", "pattern": r"^[0-9]{1,12}\.[0-9a-f]{64}$"}}}
"""The checkout form's fields as the browser posts them (both steps)."""

FORM_CHECKS = ("Accepted only from our own pages: a valid `formToken` (issued with the form, for this event and key, at "
               "most 4 hours ago) and, when the browser sends them, `Sec-Fetch-Site` same-origin (or none) and our "
               "`Origin`. Checked by the same schema as POST /api/orders; nothing personal goes into a URL.")


@bp.post("/events/<event_id>/checkout")
@declare(
    "The checkout without JavaScript, step 1: the total to confirm (HTML)", tags=["pages"],
    description="The form's fields, form-encoded, named as in POST /api/orders (`ticketTypeId`, `quantity`, `name`, "
                "`email`, `phone`), plus a one-time `idempotencyKey` and its `formToken` from hidden fields. Nothing "
                "is held, stored or pushed: the answer is the confirm step, which shows the ticket type, quantity "
                "and the exact total priced now, and whose \"Pay KES …\" button posts them with that total to "
                "/events/{eventId}/checkout/pay. " + FORM_CHECKS,
    params=[ex.EVENT_ID_PARAM], form=CHECKOUT_FORM,
    responses={
        200: text("text/html", "The confirm step: the order and its total, a Pay button carrying that total",
                  "<!doctype html>..."),
        400: text("text/html", "A field is invalid: the form again, the values kept, each error under its field",
                  "<!doctype html>..."),
        403: text("text/html", "Not posted from our checkout form: a page linking back to the checkout",
                  "<!doctype html>..."),
        404: text("text/html", "No such event, or it has started", "<!doctype html>..."),
        409: text("text/html", "Fewer tickets of the type are left: the form again, saying how many, with the "
                               "choices refreshed", "<!doctype html>..."),
        503: text("text/html", "The store did not answer: the form again with a message", "<!doctype html>..."),
    })
def confirm_order(event_id: str) -> ResponseReturnValue:
    """The checkout without JavaScript, step 1: the order priced now, to confirm; nothing is pushed from here, so
    no form the shopper saw a stale total on (the type or quantity changed without the script) can charge them."""
    refused = _refused_post(event_id)
    if refused is not None:
        return refused
    event = _on_sale(event_id)
    if event is None:
        return _event_not_found()
    values = _posted_values()
    key = request.form.get("idempotencyKey", "")
    try:
        quote = current_runtime().orders.preview(load(_CREATE, _order_body(event_id, values)))
    except ValidationFailed as exc:
        return _checkout_page(event, values, errors=_details(exc), status=400)
    except EventNotFound:
        return _event_not_found()
    except EventiError as exc:  # sold out (how many are left), store down: said on the form
        return _checkout_page(event, values, message=exc.message, status=exc.status, key=key)
    return _confirm_page(event, values, quote, key)


@bp.post("/events/<event_id>/checkout/pay")
@declare(
    "The checkout without JavaScript, step 2: pay the confirmed total, then on to the payment page", tags=["pages"],
    description="The confirm step's hidden fields (those of step 1) plus `expectedAmount`, the total it showed. The "
                "order is created by the same service as POST /api/orders under the `idempotencyKey` (a double "
                "submit, a reload of the POST or Pay again after a 5xx makes one order), and refused before anything "
                "is held or pushed when `expectedAmount` is not what it costs now: the confirm step again with the "
                "new total. `action=change` (the \"Change the order\" button) answers the form with the values. "
                + FORM_CHECKS,
    params=[ex.EVENT_ID_PARAM],
    form={**CHECKOUT_FORM, "required": [*CHECKOUT_FORM["required"], "expectedAmount"], "properties": {
        **CHECKOUT_FORM["properties"], "expectedAmount": {"type": "string", "pattern": "^[0-9]{1,9}$"},
        "action": {"type": "string", "enum": ["pay", "change"]}}},
    responses={
        200: text("text/html", "`action=change`: the form with the values", "<!doctype html>..."),
        303: {"description": "Created: `Location` is the payment page, /orders/{orderId}/status?token={statusToken}"},
        400: text("text/html", "A field is invalid (the form again), or no confirmed total (the confirm step)",
                  "<!doctype html>..."),
        403: text("text/html", "Not posted from our checkout form (another site's page, or a form older than 4 "
                               "hours): a page linking back to the checkout; nothing stored, nothing pushed",
                  "<!doctype html>..."),
        404: text("text/html", "No such event, or it has started", "<!doctype html>..."),
        409: text("text/html", "The price changed (the confirm step again, with the new total), sold out (the form "
                               "again, saying how many are left) or the same submission still being created",
                  "<!doctype html>..."),
        429: text("text/html", "Too many M-Pesa requests to this phone: the form again, saying when the next try "
                               "can go", "<!doctype html>..."),
        502: text("text/html", "PayHero refused the push: the form again with a message (and a new key)",
                  "<!doctype html>..."),
        503: text("text/html", "The store did not answer: the form again with a message and the same key, so "
                               "Pay again cannot make a second order", "<!doctype html>..."),
    })
def place_order(event_id: str) -> ResponseReturnValue:
    """Step 2: the confirmed order, checked by the schema of POST /api/orders and created by the same service (the
    confirmed total, push limit, tickets, Idempotency-Key from a hidden field), then 303 to the payment page. A post
    not from our own checkout form for this event is refused (403) before anything else."""
    refused = _refused_post(event_id)
    if refused is not None:
        return refused
    event = _on_sale(event_id)
    if event is None:
        return _event_not_found()
    values = _posted_values()
    submission = Submission(request.form.get("idempotencyKey", ""))
    if request.form.get("action") == "change":
        return _checkout_page(event, values, key=submission.key)
    expected = request.form.get("expectedAmount", "")
    if not re.fullmatch(r"[0-9]{1,9}", expected):  # no total confirmed: never push one the shopper did not see
        return confirm_order(event_id)
    try:
        fields = load(_CREATE, {**_order_body(event_id, values), "expectedAmount": int(expected)})
        created = _create(fields, submission)
    except ValidationFailed as exc:
        return _checkout_page(event, values, errors=_details(exc), status=400)
    except EventNotFound:
        return _event_not_found()
    except PriceChanged:
        return _confirm_again(event, values, submission.key)
    except IdempotencyKeyInUse:  # the first of a double submit is slower than any push: its answer is not known yet
        return _checkout_page(event, values, message=STILL_SENDING, status=409, key=submission.key)
    except EventiError as exc:  # sold out, too many pushes, provider refused, store down: said on the form
        return _checkout_page(event, values, message=_sentence(exc), status=exc.status, key=_key_kept(exc, submission))
    if created.status != 201:  # the replayed answer of a refused push: that attempt is over
        return _checkout_page(event, values, message=created.body["message"], status=created.status)
    order_id = created.body["orderId"]
    return redirect(url_for("pages.status", order_id=order_id, token=created.body["statusToken"]), 303)


def _refused_post(event_id: str) -> ResponseReturnValue | None:
    """The 403 page when a checkout post is not from our own form for event_id, else None."""
    refusal = _refusal(event_id)
    if refusal is None:
        return None
    log.warning("Checkout form post refused (%s) eventId=%s", refusal, event_id)
    return _refused(event_id)


def _posted_values() -> dict[str, str]:
    return {name: request.form.get(name, "").strip() for name in FORM_FIELDS}


def _details(exc: ValidationFailed) -> dict[str, Any]:
    return exc.details if isinstance(exc.details, dict) else {}


def _confirm_again(event: dict[str, Any], values: dict[str, str], key: str) -> ResponseReturnValue:
    """The confirm step after a price change: the order priced now, saying the total changed (409)."""
    try:
        quote = current_runtime().orders.preview(load(_CREATE, _order_body(event["_id"], values)))
    except EventiError as exc:
        return _checkout_page(event, values, message=exc.message, status=409, key=key)
    message = PRICE_CHANGED.format(total=f"{quote.currency} {quote.amount:,}")
    return _confirm_page(event, values, quote, key, message=message, status=409)


def _confirm_page(event: dict[str, Any], values: dict[str, str], quote: Quote, key: str, message: str | None = None,
                  status: int = 200) -> ResponseReturnValue:
    """The confirm step: what the order buys and its exact total, with the values and that total in hidden fields
    for Pay, under the same key (a form token issued for it now)."""
    if not IDEMPOTENCY_KEY.fullmatch(key):
        key = new_key()
    return _page(_render(
        "confirm.html", event=_event_view(event), quote=quote, values=values, message=message, idempotency_key=key,
        form_token=form_token.issue(current_runtime().settings.secret_key, event["_id"], key),
        phone=phones.local(phones.normalise(values["phone"]) or values["phone"]),
    ), status, CHECKOUT_REFERRER_POLICY)


def _sentence(exc: EventiError) -> str:
    """exc's message for the form; the push limit's says at what time the next try can go."""
    if isinstance(exc, TooManyPushes) and exc.retry_after:
        at = (utcnow() + timedelta(seconds=exc.retry_after)).astimezone(EAT).strftime("%H:%M")
        return f"{exc.message[:-1]} (after {at})."
    return exc.message


@bp.get("/orders/<order_id:order_id>/status")
@declare(
    "The payment page: the status now, then one long poll (HTML)", tags=["pages"],
    description="Served with `Cache-Control: no-store` and `Referrer-Policy: no-referrer`: its URL holds the token.",
    params=[{"in": "query", "name": "token", "required": True, "example": ex.STATUS_TOKEN,
             "description": "The statusToken.", "schema": {"type": "string"}}],
    responses={200: text("text/html", "The page", "<!doctype html>..."),
               404: text("text/html", "Unknown order or wrong token", "<!doctype html>...")},
    errors=["store_unavailable"], security="statusToken")
def status(order_id: OrderId | None) -> ResponseReturnValue:
    """The payment page: what was bought, the order's status now, then one long poll until it is final."""
    token = request.args.get("token", "")
    p = current_runtime()
    found = p.reader.with_order(order_id) if order_id and status_token_matches(order_id, token) else None
    if order_id is None or found is None:
        return _not_found()
    order, body = found
    event = p.catalogue.stored(order["eventId"])
    return _page(_render(
        "status.html", order=body, final=is_final(body), event_id=order["eventId"],
        event=_event_view(event) if event else None, bought=_bought(order), email=order.get("email"),
        view=payment_view(order, utcnow(), p.settings.prompt_help_seconds), countdown_text=countdown_text,
        support=p.settings.support_contact,
        wait_url=url_for("orders.wait_for_status", order_id=order_id, token=token),
        hold_seconds=p.settings.wait_default_seconds,  # long-poll.js's deadline per hold: this + a margin
        listen_left=listen_left(order, utcnow(), p.settings.reconcile_give_up_seconds,
                                p.settings.reconcile_interval_seconds),
        retry_url=retry_url(order["eventId"], order_id, token),
        manual=manual_offer(p, order),
        push_limit=None if body["paymentStatus"] == "completed" else _push_limit(order.get("phone", "")),
    ))


def _push_limit(phone: str) -> dict[str, Any] | None:
    """When the phone's next M-Pesa prompt can go (the push limit's Retry-After), or None when it can now: the
    payment page offers no "Try again" that would be refused."""
    p = current_runtime()
    seconds = p.orders.next_push_in(phone)
    if seconds <= 0:
        return None
    return {"seconds": seconds, "limit": p.settings.push_limit, "minutes": max(1, p.settings.push_limit_window // 60),
            "at": (utcnow() + timedelta(seconds=seconds)).astimezone(EAT).strftime("%H:%M")}


def retry_url(event_id: str, order_id: str, token: str) -> str:
    """The checkout filled from an order (same tickets, name, e-mail, phone): only ids and the token in the URL."""
    return url_for("pages.checkout", event_id=event_id, retry=order_id, token=token)


def is_page_path(path: str) -> bool:
    """Paths a person may type or follow: everything but the API and static files, which answer JSON / nothing."""
    return not (path.startswith(("/api/", "/static/")) or path in ("/api", "/static"))


def unknown_path() -> ResponseReturnValue:
    """The 404 page for a path no route matches; it links to the event when the path names one on sale."""
    match = _EVENT_PATH.match(request.path)
    event = None
    if match:
        try:
            event = current_runtime().catalogue.stored_on_sale(match.group(1))
        except EventiError:  # the store is down: the page still answers, with the events list only
            event = None
    return _not_found(event=_event_view(event) if event else None)


def _on_sale(event_id: str) -> dict[str, Any] | None:
    return current_runtime().catalogue.stored_on_sale(event_id)


def _refusal(event_id: str) -> str | None:
    """Why this post is not from a checkout form we rendered for event_id (see form_token), or None."""
    settings = current_runtime().settings
    ours = {form_token.origin_of(settings.public_base_url), form_token.origin_of(request.host_url)} - {""}
    fetch_site, origin = request.headers.get("Sec-Fetch-Site"), request.headers.get("Origin")
    if not form_token.from_our_pages(fetch_site, origin, ours):
        return f"from another site: Sec-Fetch-Site={fetch_site} Origin={origin}"
    key, token = request.form.get("idempotencyKey", ""), request.form.get(FORM_TOKEN, "")
    if not form_token.is_valid(settings.secret_key, event_id, key, token):
        return "no valid form token" if token else "no form token"
    return None


def _refused(event_id: str) -> ResponseReturnValue:
    """The 403 page of a refused checkout post: nothing was stored or pushed; a link to the event's checkout."""
    checkout_url = url_for("pages.checkout", event_id=event_id) if EVENT_ID.fullmatch(event_id) else None
    return _page(_render("refused.html", checkout_url=checkout_url), 403)


def _key_kept(exc: EventiError, submission: Submission) -> str | None:
    """The key the re-rendered form carries after exc: the same one after a 5xx (the order may still land, so Pay
    again must replay it, not make a second one); None (a new key) once the attempt is surely over: a 4xx freed
    the key, or PayHero refused the push (the order is stored as failed and nothing went to the phone: the same
    key would only repeat that refusal)."""
    if exc.status >= 500 and not isinstance(exc, PaymentProviderError):
        return submission.key
    return None


def _create(fields: dict[str, Any], submission: Submission) -> Created:
    """POST /api/orders' service behind the form's Idempotency-Key. A double submit's second request waits for
    the first one's answer (as long as a push may take); a key sent again with changed details (Back, edit,
    submit) starts a new order under a new key (kept in submission)."""
    p = current_runtime()
    if not IDEMPOTENCY_KEY.fullmatch(submission.key):
        submission.key = new_key()
    deadline = time.monotonic() + p.settings.push_timeout + 2
    while True:
        try:
            return p.creations.create(fields, submission.key, created_body)
        except IdempotencyKeyReused:
            submission.key = new_key()
        except IdempotencyKeyInUse:
            if time.monotonic() > deadline:
                raise
            time.sleep(_RETRY_PAUSE)  # gevent's sleep under gunicorn: other requests go on meanwhile


def new_key() -> str:
    """A one-time Idempotency-Key for one checkout form."""
    return secrets.token_hex(16)


def _order_body(event_id: str, values: dict[str, str]) -> dict[str, Any]:
    """The form as the JSON body of POST /api/orders; empty fields are left out, so "required" says so."""
    body: dict[str, Any] = {"eventId": event_id, **{name: value for name, value in values.items() if value}}
    if re.fullmatch(r"[0-9]{1,3}", body.get("quantity", "")):
        body["quantity"] = int(body["quantity"])
    return body


def _retry_values(event_id: str) -> dict[str, str]:
    """The form's values from the order named by ?retry= with its status token; none when either is wrong."""
    order_id, token = request.args.get("retry", ""), request.args.get("token", "")
    found = current_runtime().reader.with_order(order_id) if status_token_matches(order_id or None, token) else None
    if found is None or found[0].get("eventId") != event_id:
        return {}
    order = found[0]
    return {"ticketTypeId": order.get("ticketTypeId", ""), "quantity": str(order.get("quantity", "")),
            "name": order.get("name", ""), "email": order.get("email", ""), "phone": phones.local(order.get("phone", ""))}


def _checkout_page(event: dict[str, Any], values: dict[str, str], errors: dict[str, Any] | None = None,
                   message: str | None = None, status: int = 200, key: str | None = None) -> ResponseReturnValue:
    """The form with the shopper's values, each error under its field and a message for the whole form. Its hidden
    Idempotency-Key is key (a retry of the same submission) or a new one, with a form token issued for it now."""
    left = current_runtime().catalogue.left(event)
    ticket_types = [{**t, "left": left[t["id"]], "most": min(t["maxPerOrder"], left[t["id"]])} for t in event["ticketTypes"]]
    on_sale = [t for t in ticket_types if t["most"] > 0]
    chosen = next((t for t in on_sale if t["id"] == values.get("ticketTypeId")), on_sale[0] if on_sale else None)
    quantity = int(values["quantity"]) if re.fullmatch(r"[0-9]{1,3}", values.get("quantity", "")) else 1
    texts_by_field = {name: " ".join(map(str, texts)) if isinstance(texts, list) else str(texts)
                      for name, texts in (errors or {}).items()}
    other = [text for name, text in texts_by_field.items() if name not in FORM_FIELDS]
    message = " ".join(filter(None, [message, *other])) or None
    key = key or new_key()
    first_invalid = next((name for name in FORM_FIELDS if name in texts_by_field), None)
    return _page(_render(
        "checkout.html", event=_event_view(event), ticket_types=ticket_types, chosen=chosen, on_sale=on_sale,
        quantity=max(1, min(quantity, chosen["most"])) if chosen else 1, values=values, errors=texts_by_field,
        most=max((t["most"] for t in on_sale), default=1), name_max=NAME_MAX,
        first_invalid=first_invalid, form_error=message, idempotency_key=key,
        form_token=form_token.issue(current_runtime().settings.secret_key, event["_id"], key),
        **({} if chosen else {"page_modules": ()}),  # sold out: no form, no script
    ), status, CHECKOUT_REFERRER_POLICY)


def _event_view(event: dict[str, Any]) -> dict[str, str]:
    starts = event["startsAt"].astimezone(EAT)
    return {"id": event["_id"], "name": event["name"], "venue": event["venue"], "currency": event["currency"],
            "starts_iso": starts.isoformat(), "starts": starts.strftime("%a %d %b %Y, %H:%M EAT").replace(" 0", " ")}


def _sold_out_view(event: dict[str, Any], left: dict[str, int]) -> dict[str, Any]:
    """Which of the event's ticket types are sold out, and whether all are (the events list marks them)."""
    gone = [t["name"] for t in event["ticketTypes"] if left[t["id"]] <= 0]
    return {"sold_out_types": gone, "sold_out": len(gone) == len(event["ticketTypes"])}


def _bought(order: dict[str, Any]) -> dict[str, Any] | None:
    """What the order buys, as stored on it (orders from before issue 12 have no ticket type)."""
    if "quantity" not in order:
        return None
    return {"quantity": order["quantity"], "name": order["ticketTypeName"], "unit_price": order["unitPrice"],
            "amount": order["amount"], "currency": order.get("currency", "KES")}


def _event_not_found() -> ResponseReturnValue:
    return _not_found("This event does not exist, or its ticket sales have closed.")


def _not_found(message: str | None = None, event: dict[str, str] | None = None) -> ResponseReturnValue:
    return _page(_render("not_found.html", message=message, event=event), 404)


def _render(template: str, **context: object) -> str:
    return render_template(template, **{"page_modules": PAGE_MODULES.get(template, ()), **context})


def _page(html: str, status: int = 200, referrer_policy: str = "no-referrer") -> ResponseReturnValue:
    """Pages hold a per-order token in their URL: never cache them, never leak the URL onward."""
    return html, status, {"Cache-Control": "no-store", "Referrer-Policy": referrer_policy,
                  "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'"}
