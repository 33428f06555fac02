"""The shopper's views in Chromium: each brought to its state, checked by axe-core (WCAG 2.1 AA) and
photographed at each viewport. Run as its own process (not under the tests' gevent patching):

    python -m tests.browser.views SPEC_JSON

SPEC: {"base_url", "event_id" (Regular KES 1,500 and VIP KES 2,500, see tests/support/events.py),
"output" (screenshots' folder), "views" (names; all when absent), "viewports" ([[390, 844], [1280, 800]]),
"prepared" (prepare_each_size's answer; made here when absent), "claims" (a folder: see claimed)}.
Prints one JSON line: {view: {"390x844": {"violations", "screenshot", "facts", "urls"}, ...}}.

Adding a view: write a function that takes (page, spec), brings the page to the state to check and
returns facts (a dict) the test asserts on, and register it with @view("name") (javascript=False for a
browser without JavaScript: then read the page with locators, page.evaluate never returns there; axe
checks the page's HTML as it stands, <noscript> content shown, in a second context where JavaScript
runs but the page's own scripts are blocked). @view("name", prepare=f) runs f(spec) before any view
runs, for something that takes real time (an order whose prompt must expire): the view finds its
result in spec["prepared"]["name"]. @view("name", clock=True) installs Playwright's clock in the page
before the view runs: the view may pause it (pause_clock) and move it (page.clock.run_for); the clock
runs again for axe, whose checks wait on the page's timers. tests/browser/test_views_browser.py runs every registered view at
both sizes and fails on any violation; assert the view's own facts there.

The payment page's views (payment-*) make their orders through the API, as the checkout page does,
with the phone's last digit choosing the simulator's outcome. Those that stay pending run on
Playwright's clock, paused once the page has loaded: the countdown, the help and the prompt's expiry
move only when the view moves the page's clock (no waiting, and nothing shows before it is asked for).
For axe the clock runs again: the next of them is seconds away, and axe needs the page's timers.
"""
import json
import os
import random
import re
import sys
import time
import traceback
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qs

from tests.browser import axe

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORTS = [(390, 844), (1280, 800)]
PAYMENT_TIMEOUT_MS = 60_000


class View:
    def __init__(self, name: str, run: Callable, javascript: bool, prepare: Callable | None, clock: bool) -> None:
        self.name, self.run, self.javascript, self.prepare, self.clock = name, run, javascript, prepare, clock


VIEWS: dict[str, View] = {}


def view(name: str, javascript: bool = True, prepare: Callable | None = None, clock: bool = False) -> Callable:
    """Register run(page, spec) -> facts as the view `name`; prepare(spec), if given, runs before all views;
    clock: the page runs on Playwright's clock (see the module)."""
    def register(run: Callable) -> Callable:
        VIEWS[name] = View(name, run, javascript, prepare, clock)
        return run
    return register


# --- Helpers for views ---------------------------------------------------------------------------


def shopper(last_digit: int) -> dict:
    """A fresh shopper; the phone's last digit picks what the simulator does (docs/payments.md: the simulator)."""
    digits = "".join(random.choice("0123456789") for _ in range(7))
    return {"name": "Wanjiru Kamau", "email": f"w{uuid.uuid4().hex[:10]}@example.com",
            "phone": f"07{digits[:2]}-{digits[2:5]}-{digits[5:]}{last_digit}"}


def personal(who: dict) -> list[str]:
    """Every spelling of the shopper's details that must never appear in a URL."""
    digits = "".join(c for c in who["phone"] if c.isdigit())
    return [who["name"], who["name"].replace(" ", "+"), who["name"].replace(" ", "%20"), who["email"],
            who["email"].replace("@", "%40"), who["phone"], digits, digits[1:]]


def checkout_url(spec: dict) -> str:
    return f"{spec['base_url']}/events/{spec['event_id']}/checkout"


def fill_checkout(page, who: dict, ticket_type: str = "vip", tickets: str = "2") -> None:
    page.select_option("#ticket-type", ticket_type)
    page.select_option("#tickets", tickets)
    page.fill("#name", who["name"])
    page.fill("#email", who["email"])
    page.fill("#phone", who["phone"])


def form_values(page) -> dict:
    """The checkout form as the shopper sees it (locators only: they work without JavaScript too)."""
    return {"ticketType": page.input_value("#ticket-type"), "tickets": page.input_value("#tickets"),
            "name": page.input_value("#name"), "email": page.input_value("#email"), "phone": page.input_value("#phone"),
            "total": page.text_content("#total"), "line": page.text_content("#line")}


def focused(page) -> str | None:
    """The focused element's id; None when nothing takes the focus. A page's autofocus lands at its next rendering,
    after the load a view waits for, so a moment is allowed for it (more with the runners sharing the cores)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    try:
        page.wait_for_selector(":focus", state="attached", timeout=5_000)
    except PlaywrightTimeoutError:
        return None
    return page.locator(":focus").get_attribute("id")


def links(page) -> list[str]:
    return [a.get_attribute("href") for a in page.locator("main a").all()]


def pay_and_wait_for_the_result(page, spec: dict, who: dict) -> str:
    """Pay through the checkout form; the status page's final view ("success" or "failure")."""
    page.goto(checkout_url(spec))
    fill_checkout(page, who)
    page.click("#pay")
    page.wait_for_url("**/orders/*/status?token=*", timeout=30_000)
    page.wait_for_selector("#view-success:not([hidden]), #view-failure:not([hidden])", timeout=PAYMENT_TIMEOUT_MS)
    return "success" if page.is_visible("#view-success") else "failure"


# --- The views -----------------------------------------------------------------------------------


@view("events")
def events(page, spec: dict) -> dict:
    page.goto(f"{spec['base_url']}/events")
    return {"title": page.title(), "links": [a.get_attribute("href") for a in page.locator(".events a").all()]}


@view("checkout")
def checkout(page, spec: dict) -> dict:
    page.goto(checkout_url(spec))
    page.select_option("#ticket-type", "vip")
    page.select_option("#tickets", "2")
    return {"title": page.title(), **form_values(page), **pay_in_view(page), "button": page.inner_text("#pay"),
            "name_label": page.inner_text("label[for=name]"), "tickets_hint": page.inner_text("#tickets-hint"),
            "live_total": page.is_visible("#live-total")}


def pay_in_view(page) -> dict:
    """Whether Pay shows without scrolling: its bottom edge and the viewport's height."""
    box = page.locator("#pay").bounding_box()
    return {"pay_bottom": box["y"] + box["height"], "viewport_height": page.viewport_size["height"]}


@view("checkout-errors")
def checkout_errors(page, spec: dict) -> dict:
    page.goto(checkout_url(spec))
    page.fill("#name", "N" * 150)  # past the stated limit: refused with the limit in words, never cut
    page.fill("#email", "not-an-email")
    page.fill("#phone", "12345")
    page.click("#pay")
    page.wait_for_selector("#phone-error:not(:empty)", timeout=15_000)
    return {"email_error": page.text_content("#email-error"), "phone_error": page.text_content("#phone-error"),
            "name_error": page.text_content("#name-error"), "name_length": len(page.input_value("#name")),
            "focused": focused(page)}


@view("checkout-errors-nojs", javascript=False)
def checkout_errors_without_javascript(page, spec: dict) -> dict:
    who = {**shopper(0), "phone": "0712/345/678"}
    page.goto(checkout_url(spec))
    fill_checkout(page, who, tickets="3")
    page.fill("#email", "not-an-email")
    page.click("#pay")
    page.wait_for_selector("#phone-error:not(:empty)", timeout=15_000)
    return {"title": page.title(), "url": page.url, "email_error": page.text_content("#email-error"),
            "phone_error": page.text_content("#phone-error"), "focused": focused(page),
            **form_values(page), "personal": personal(who)}


@view("checkout-nojs", javascript=False)
def checkout_without_javascript(page, spec: dict) -> dict:
    who = shopper(0)
    page.goto(checkout_url(spec))
    fill_checkout(page, who)
    form_shows = {"live_total": page.is_visible("#live-total"), "next": page.inner_text("#total-next"),
                  "button": page.inner_text("#pay")}
    page.click("#pay")
    page.wait_for_selector("#confirm")
    confirm = {**confirmed(page), **pay_in_view(page), "url": page.url}
    with page.expect_request(lambda r: r.method == "POST") as posted:
        page.click("#pay")
    page.wait_for_url("**/orders/*/status?token=*", timeout=30_000)
    return {"url": page.url, "order_total": page.text_content("#order-total"), "order_line": page.text_content("#order-line"),
            "personal": personal(who), "posted": posted_form(posted.value), "form": form_shows, "confirm": confirm}


def confirmed(page) -> dict:
    """The confirm step as shown: the line, the total, the Pay button and the amount it posts."""
    return {"line": page.inner_text("#confirm-line"), "total": page.inner_text("#confirm-total"),
            "button": page.inner_text("#pay"), "amount": page.get_attribute("input[name=expectedAmount]", "value")}


DEMO_PRICES = {"regular": (1500, 10, "Regular"), "vip": (4000, 4, "VIP")}
"""eventi/demo_event.json: each type's price, the most per order and its name."""


@view("checkout-nojs-every-total", javascript=False)
def every_total_without_javascript(page, spec: dict) -> dict:
    """The demo event without JavaScript: every ticket type and quantity (at the phone's size; one at the desktop's,
    to keep the suite short) goes to a confirm step showing its exact total before any push; a quantity past the
    type's limit is refused on the form; 2 VIP is then paid."""
    who = shopper(5)  # no callback: the order stays pending, its amount is what the page and the push say
    url = f"{spec['base_url']}/events/demo/checkout"
    seen, refused = {}, {}
    page.goto(url)
    quantities = [o.get_attribute("value") for o in page.locator("#tickets option").all()]
    every = page.viewport_size["width"] < 600
    for ticket_type, (_, most, _) in DEMO_PRICES.items():
        for quantity in quantities if every else ["3"]:
            if int(quantity) > most + 1 and quantity != quantities[-1]:
                continue  # past the limit: the first and the last are enough
            page.goto(url)
            fill_checkout(page, who, ticket_type, quantity)
            page.click("#pay")
            if int(quantity) > most:
                page.wait_for_selector("#tickets-error:not(:empty)")
                refused[f"{ticket_type} {quantity}"] = page.text_content("#tickets-error")
                continue
            page.wait_for_selector("#confirm")
            seen[f"{ticket_type} {quantity}"] = confirmed(page)
    page.goto(url)
    fill_checkout(page, who, "vip", "2")
    page.click("#pay")
    page.wait_for_selector("#confirm")
    page.click("#pay")
    page.wait_for_url("**/orders/*/status?token=*", timeout=30_000)
    return {"every": every, "quantities": quantities, "seen": seen, "refused": refused,
            "order_total": page.text_content("#order-total"),
            "order_line": page.text_content("#order-line"), "order_id": page.url.split("/orders/")[1].split("/")[0]}


@view("checkout-script-failed")
def checkout_when_the_script_fails(page, spec: dict) -> dict:
    """JavaScript on, but checkout.js never arrives: the form's own path, through the confirm step."""
    page.route("**/js/checkout.js", lambda route: route.abort())
    who = shopper(5)
    page.goto(checkout_url(spec))
    fill_checkout(page, who, "vip", "3")
    form_shows = {"live_total": page.is_visible("#live-total"), "button": page.inner_text("#pay")}
    page.click("#pay")
    page.wait_for_selector("#confirm")
    return {"form": form_shows, "confirm": confirmed(page), "url": page.url}


def posted_form(request) -> dict:
    """What the browser itself sent with a form post: the fields' names and the headers our check reads."""
    headers = request.all_headers()
    return {"fields": sorted(parse_qs(request.post_data or "")), "origin": headers.get("origin"),
            "sec_fetch_site": headers.get("sec-fetch-site")}


ELSEWHERE = "http://shop-elsewhere.test"
"""Another site, served by Playwright itself (page.route): its page posts our checkout form."""


@view("checkout-cross-site", javascript=False)
def checkout_from_another_site(page, spec: dict) -> dict:
    """Another site's page with a copy of our form, even with a fresh key and form token fetched from us, posted by
    the shopper's browser: the 403 page (issue 19, item 7), which links back to the checkout."""
    with urllib.request.urlopen(checkout_url(spec), timeout=30) as answer:
        ours = answer.read().decode()
    hidden = "".join(re.findall(r'<input type="hidden"[^>]*>', ours))
    who = shopper(0)
    fields = "".join(f'<input type="hidden" name="{name}" value="{value}">' for name, value in {
        "ticketTypeId": "vip", "quantity": "1", "name": who["name"], "email": who["email"], "phone": who["phone"]}.items())
    html = (f'<!doctype html><html lang="en"><title>Win tickets</title><form method="post" action="{checkout_url(spec)}">'
            f'{hidden}{fields}<button id="win">Win</button></form></html>')
    page.route(f"{ELSEWHERE}/**", lambda route: route.fulfill(status=200, content_type="text/html", body=html))
    page.goto(f"{ELSEWHERE}/win")
    with page.expect_request(lambda r: r.method == "POST") as posted, page.expect_navigation() as navigation:
        page.click("#win")
    return {"status": navigation.value.status, "title": page.title(), "links": links(page), "email": who["email"],
            "posted": posted_form(posted.value)}


def not_found_page(page, url: str) -> dict:
    """A 404 page: its status, title and links."""
    response = page.goto(url)
    return {"status": response.status, "title": page.title(), "links": links(page)}


@view("not-found")
def not_found(page, spec: dict) -> dict:
    return not_found_page(page, f"{spec['base_url']}/no/such/page")


@view("not-found-event")
def not_found_under_an_event(page, spec: dict) -> dict:
    return not_found_page(page, f"{spec['base_url']}/events/{spec['event_id']}/pay")


@view("not-found-order")
def not_found_order(page, spec: dict) -> dict:
    return not_found_page(page, f"{spec['base_url']}/orders/6751a3f2c9e77b0012ab34cd/status?token=nope")


@view("try-again")
def try_again(page, spec: dict) -> dict:
    """A cancelled payment, then "Try again": the form as the shopper filled it."""
    who = shopper(1)
    result = pay_and_wait_for_the_result(page, spec, who)
    page.click("#retry")
    page.wait_for_url("**/checkout?retry=*", timeout=15_000)
    page.wait_for_load_state("networkidle")
    return {"result": result, "url": page.url, **form_values(page), "form_visible": page.is_visible("#checkout"),
            "personal": personal(who), "expected_phone": who["phone"]}


@view("back-after-paying")
def back_after_paying(page, spec: dict) -> dict:
    """Paid, then the Back button: the paid order, not a fresh form."""
    who = shopper(0)
    result = pay_and_wait_for_the_result(page, spec, who)
    status_url = page.url
    page.go_back()
    page.wait_for_selector("#earlier-order:not([hidden])", timeout=15_000)
    return {"result": result, "status_url": status_url, "title": page.title(),
            "heading": page.text_content("#earlier-order-title"), "text": page.text_content("#earlier-order-text"),
            "link": page.get_attribute("#earlier-order-link", "href"), "form_visible": page.is_visible("#checkout"),
            "focused": focused(page), "personal": personal(who)}


def fresh_event(spec: dict, **capacities: int) -> str:
    """A new event like the views' own (Regular KES 1,500, VIP KES 2,500) with these capacities, for a view that
    sells it out."""
    from tests.support.events import event_spec, save_events

    event_id = "views-" + uuid.uuid4().hex[:10]
    save_events(spec["mongo_uri"], event_spec(event_id, **capacities))
    return event_id


def ticket_choices(page) -> dict:
    """The form's choices as shown: the chosen type and number, the VIP option, the total and Pay."""
    return {"ticketType": page.input_value("#ticket-type"), "tickets": page.input_value("#tickets"),
            "quantities": [o.inner_text() for o in page.locator("#tickets option").all()],
            "vip": page.inner_text("#ticket-type option[value=vip]"),
            "vip_disabled": page.locator("#ticket-type option[value=vip]").is_disabled(),
            "line": page.text_content("#line"), "total": page.text_content("#total"), "button": page.inner_text("#pay"),
            "pay_enabled": page.is_enabled("#pay")}


@view("sold-out-paths")
def sold_out_paths(page, spec: dict) -> dict:
    """A form loaded before someone else bought 2 of the 3 VIP tickets: Pay for 2 gets 409 sold_out, which says
    how many are left and refreshes the choices; the shopper buys the last one, goes Back, and "Buy more
    tickets" offers only what is left (Regular), never a sold-out VIP with an empty number and KES 0."""
    event_id = fresh_event(spec, vip_capacity=3)
    who = shopper(0)
    page.goto(f"{spec['base_url']}/events/{event_id}/checkout")
    create_order(spec, 5, event_id=event_id, ticket_type="vip", quantity=2)
    fill_checkout(page, who, "vip", "2")
    page.click("#pay")
    page.wait_for_selector("#form-error:not([hidden])")
    page.wait_for_selector("#pay:not([disabled])")
    stale = {"error": page.text_content("#form-error"), **ticket_choices(page)}
    page.click("#pay")
    page.wait_for_url("**/orders/*/status?token=*", timeout=30_000)
    page.wait_for_selector("#view-success:not([hidden])", timeout=PAYMENT_TIMEOUT_MS)
    bought = page.text_content("#order-line")
    page.go_back()
    page.wait_for_selector("#earlier-order:not([hidden])", timeout=15_000)
    page.click("#buy-more")
    page.wait_for_selector("#checkout:not([hidden])")
    return {"stale": stale, "bought": bought, "buy_more": ticket_choices(page), "focused": focused(page)}


@view("events-sold-out")
def events_sold_out(page, spec: dict) -> dict:
    """Every ticket of an event bought: the home page (/) marks it sold out, its page says so with a way back."""
    gone = fresh_event(spec, capacity=1, vip_capacity=1)
    create_order(spec, 5, event_id=gone, quantity=1)
    create_order(spec, 5, event_id=gone, ticket_type="vip", quantity=1)
    response = page.goto(f"{spec['base_url']}/")
    item = page.locator(f"li:has(> a[href='/events/{gone}/checkout'])")
    facts = {"status": response.status, "title": page.title(), "url": page.url, "item": item.inner_text()}
    item.locator("a").click()
    page.wait_for_selector("#sold-out")
    shown_links = [a.get_attribute("href") for a in page.locator("main a:visible").all()]
    return {**facts, "event_page": page.inner_text("main"), "links": shown_links, "form": page.locator("#checkout").count()}


# --- The payment page ---------------------------------------------------------------------------

SHOWN_VIEWS = """() => ["pending", "unknown", "success", "failure", "refund"].filter(
    (v) => { const e = document.getElementById(`view-${v}`); return e !== null && !e.hidden; })"""
FINAL = "#view-success:not([hidden]), #view-failure:not([hidden]), #view-refund:not([hidden])"


def create_order(spec: dict, last_digit: int, event_id: str | None = None, ticket_type: str = "regular",
                 quantity: int = 2, phone: str | None = None) -> dict:
    """A new order (by default of 2 Regular tickets, KES 3,000, of the views' event) made through the API, as
    checkout.js makes it: the answer (orderId, statusToken, pushState...) plus its payment page's "url" and the
    shopper's "phone" and "email"."""
    who = {**shopper(last_digit), **({"phone": phone} if phone else {})}
    body = json.dumps({"eventId": event_id or spec["event_id"], "ticketTypeId": ticket_type, "quantity": quantity,
                       "phone": who["phone"], "email": who["email"], "name": who["name"]}).encode()
    request = urllib.request.Request(f"{spec['base_url']}/api/orders", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        created = json.loads(answer.read())
    return {**created, "phone": who["phone"], "email": who["email"],
            "url": f"{spec['base_url']}/orders/{created['orderId']}/status?token={created['statusToken']}"}


def settle(spec: dict, order: dict, kind: str) -> None:
    """PayHero's callback for the order (kind: a devstack fixture, e.g. success, wrong-pin, cancelled), sent by the
    test once the page is waiting: the order is made with a number the simulator never calls back for."""
    from devstack.payhero_payloads import callback_body
    from eventi.domain.tokens import OrderTokens

    token = OrderTokens(spec["secret"]).callback_token(order["orderId"])
    body = json.dumps(callback_body(order["orderId"], kind, order["amount"])).encode()
    request = urllib.request.Request(f"{spec['base_url']}/api/payhero/callback?token={token}", data=body,
                                     method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 200, answer.read()


def refund_needed(spec: dict, order: dict, receipt: str = "SAE3YULR0Y") -> None:
    """What the late-payment backend does to an order paid after it had failed, its tickets sold out since:
    MongoDB first (status refund_needed, the receipt), then its status body cached and published through the
    app's StatusBroadcaster, which wakes the page's held wait. (The callback path cannot produce this status.)"""
    import redis

    from eventi.domain.models import status_body, utcnow
    from eventi.services.broadcast import StatusBroadcaster
    from eventi.storage.order_store import OrderStore, connect
    from eventi.storage.status_cache import StatusCache

    client, cache = connect(spec["mongo_uri"]), redis.Redis.from_url(spec["redis_url"])
    try:
        store = OrderStore(client.get_default_database())
        store.set_fields(order["orderId"], {"status": "refund_needed", "mpesaReceipt": receipt, "updatedAt": utcnow()})
        StatusBroadcaster(cache, StatusCache(cache, ttl_seconds=300)).announce(status_body(store.get_order(order["orderId"])))
    finally:
        client.close()
        cache.close()


def open_payment(page, order: dict, pause: bool = False) -> None:
    """The order's payment page; pause: its clock stands still from its load on (a view with clock=True)."""
    page.goto(order["url"])
    page.wait_for_selector("#payment")
    if pause:
        pause_clock(page)


def pause_clock(page) -> None:
    """Stop the page's clock (Playwright's, in a view with clock=True) a moment ahead of its now: pause_at
    cannot go back in time. Python's Playwright takes the time in seconds."""
    page.clock.pause_at(page.evaluate("Date.now()") / 1000 + 0.5)


def seconds_left(page, attribute: str) -> int:
    """#payment's data-prompt-left or data-help-after: seconds from the page's load, as the server said."""
    return int(page.get_attribute("#payment", f"data-{attribute}"))


def shown(page, order: dict | None = None) -> dict:
    """What the shopper sees: the tab title, the shown view(s), the main card's text, the page's state."""
    facts = {"title": page.title(), "views": page.evaluate(SHOWN_VIEWS), "text": page.inner_text("main"),
             "state": page.get_attribute("#payment", "data-state")}
    if order:
        facts.update(orderId=order["orderId"], pushState=order.get("pushState"), phone=order["phone"], email=order["email"])
    return facts


def after_the_outcome(page) -> dict:
    """Where the page put the focus, and what its live region said, once the order is final."""
    return {"focused": page.evaluate("document.activeElement.textContent"), "announce": page.text_content("#announce")}


def expired_prompt(spec: dict) -> dict:
    """An order nobody answers (ending 5), made before the views run, so that its prompt has expired (in real
    time, on the server's clock) when its view opens it, or soon after."""
    return create_order(spec, 5)


def uncertain_push(spec: dict) -> dict:
    """A push that times out (ending 9) and is paid later, made before the views run."""
    return create_order(spec, 9)


@view("payment-waiting", clock=True)
def payment_waiting(page, spec: dict) -> dict:
    """Prompt sent, countdown running (one second moved on the page's clock), no help yet."""
    order = create_order(spec, 5)
    open_payment(page, order, pause=True)
    first = page.text_content("#countdown-left")
    help_hidden = page.is_hidden("#prompt-help")
    page.clock.run_for(1000)
    return {**shown(page, order), "countdown_first": first, "countdown_later": page.text_content("#countdown-left"),
            "help_hidden_at_first": help_hidden}


@view("payment-help", clock=True)
def payment_help(page, spec: dict) -> dict:
    """Still waiting when the help is due: "Didn't get a prompt?"."""
    order = create_order(spec, 5)
    open_payment(page, order, pause=True)
    page.clock.run_for(seconds_left(page, "help-after") * 1000)
    page.wait_for_selector("#prompt-help:not([hidden])")
    return {**shown(page, order), "change_number": page.get_attribute("#change-number", "href"),
            "announce": page.text_content("#announce")}


@view("payment-not-heard", clock=True)
def payment_not_heard(page, spec: dict) -> dict:
    """The countdown ran out with no answer: "We have not heard from M-Pesa yet", as status.js shows it."""
    order = create_order(spec, 5)
    open_payment(page, order, pause=True)
    page.clock.run_for(seconds_left(page, "prompt-left") * 1000)
    page.wait_for_selector("#view-unknown:not([hidden])")
    return {**shown(page, order), **after_the_outcome(page), "countdown": page.text_content("#countdown-left")}


@view("payment-not-heard-reloaded", prepare=expired_prompt)
def payment_not_heard_reloaded(page, spec: dict) -> dict:
    """The same state from the server: the page of a prompt that expired, back from the back/forward cache
    (status.js reloads it)."""
    order = spec["prepared"]["payment-not-heard-reloaded"]
    open_payment(page, order)
    page.wait_for_selector("#view-unknown:not([hidden])", timeout=PAYMENT_TIMEOUT_MS)  # at once, or at the expiry
    with page.expect_navigation():
        page.evaluate("window.dispatchEvent(new PageTransitionEvent('pageshow', {persisted: true}))")
    page.wait_for_selector("#payment")
    return {**shown(page, order), "pending_view_in_page": page.locator("#view-pending").count()}


@view("payment-uncertain", clock=True)
def payment_uncertain(page, spec: dict) -> dict:
    """The push timed out (ending 9): "If a prompt appears, approve it: don't pay twice"."""
    order = create_order(spec, 9)
    open_payment(page, order, pause=True)
    return shown(page, order)


@view("payment-uncertain-paid", prepare=uncertain_push)
def payment_uncertain_paid(page, spec: dict) -> dict:
    """That order's status decides: paid."""
    order = spec["prepared"]["payment-uncertain-paid"]
    open_payment(page, order)
    page.wait_for_selector(FINAL, timeout=PAYMENT_TIMEOUT_MS)
    return shown(page, order)


def settled_while_waiting(page, spec: dict, kind: str) -> dict:
    """An order whose payment page waits, then PayHero's callback of this kind: what the page shows after it."""
    order = create_order(spec, 5)  # no callback from the simulator: the test sends it once the page waits
    open_payment(page, order)
    page.wait_for_selector("#view-pending:not([hidden])")
    settle(spec, order, kind)
    page.wait_for_selector(FINAL, timeout=PAYMENT_TIMEOUT_MS)
    return {**shown(page, order), **after_the_outcome(page)}


@view("payment-paid")
def payment_paid(page, spec: dict) -> dict:
    """Paid while the page waited; also how it fits a 320 px phone (photographed as payment-paid-320x640)."""
    facts = settled_while_waiting(page, spec, "success")
    size = page.viewport_size
    page.set_viewport_size({"width": 320, "height": 640})
    facts["narrow"] = page.evaluate("""() => ({
        scrollWidth: document.documentElement.scrollWidth,
        referenceLines: Array.from(document.querySelectorAll('.reference'))
            .filter((e) => e.offsetParent !== null).map((e) => e.getClientRects().length),
    })""")
    if size["width"] == VIEWPORTS[0][0]:  # one photo: the sizes may run at once, in two processes
        page.screenshot(path=str(Path(spec["output"]) / "payment-paid-320x640.png"), full_page=True)
    page.set_viewport_size(size)
    return facts


@view("payment-wrong-pin")
def payment_wrong_pin(page, spec: dict) -> dict:
    return settled_while_waiting(page, spec, "wrong-pin")


@view("payment-cancelled")
def payment_cancelled(page, spec: dict) -> dict:
    return settled_while_waiting(page, spec, "cancelled")


@view("payment-refund")
def payment_refund(page, spec: dict) -> dict:
    """Paid after the order had failed, its tickets sold out since (refund_needed) while the page waited:
    "We received your payment: a refund is due", and the same words when the page is reloaded."""
    order = create_order(spec, 5)
    open_payment(page, order)
    page.wait_for_selector("#view-pending:not([hidden])")
    refund_needed(spec, order)
    page.wait_for_selector(FINAL, timeout=PAYMENT_TIMEOUT_MS)
    shown_links = [a.get_attribute("href") for a in page.locator("main a:visible").all()]
    facts = {**shown(page, order), **after_the_outcome(page), "links": shown_links, "card": page.inner_text("#view-refund")}
    page.reload()
    page.wait_for_selector("#payment")
    return {**facts, "reloaded": {**shown(page), "card": page.inner_text("#view-refund")}}


@view("payment-offline", clock=True)
def payment_offline(page, spec: dict) -> dict:
    """The browser goes offline while the page waits: the offline notice."""
    order = create_order(spec, 5)
    open_payment(page, order, pause=True)
    page.context.set_offline(True)
    page.wait_for_selector("#offline-notice:not([hidden])")
    return {**shown(page, order), "notice": page.text_content("#offline-notice"),
            "announce": page.text_content("#announce")}


WAIT_REQUEST = re.compile(r"/api/orders/[^/]+/wait\?")


def aged(spec: dict, order: dict, hours: int = 2) -> None:
    """As if the order had been made hours ago: past its prompt and reconcile's give-up age, so the page's window
    for listening (data-listen-left) is over."""
    from datetime import timedelta

    from eventi.domain.models import utcnow
    from eventi.storage.order_store import OrderStore, connect

    client = connect(spec["mongo_uri"])
    try:
        at = utcnow() - timedelta(hours=hours)
        OrderStore(client.get_default_database()).set_fields(
            order["orderId"], {"createdAt": at, "pushedAt": at, "promptExpiresAt": at + timedelta(minutes=1)})
    finally:
        client.close()


@view("payment-stopped")
def payment_stopped(page, spec: dict) -> dict:
    """An order past the time it can change by itself: one hold runs out (answered at once by the browser here),
    and the page says it stopped listening and what to do."""
    order = create_order(spec, 5)
    aged(spec, order)
    pending = {"orderId": order["orderId"], "paymentStatus": "pending", "amount": order["amount"], "final": False,
               "waitedMs": 1}
    page.route(WAIT_REQUEST, lambda route: route.fulfill(status=200, content_type="application/json",
                                                         body=json.dumps(pending)))
    page.goto(order["url"])
    page.wait_for_selector("#check-again:not([hidden])")
    return {**shown(page, order), **after_the_outcome(page), "reason": page.text_content("#unknown-reason"),
            "listen_left": page.get_attribute("#payment", "data-listen-left"), "checking": page.is_visible("#checking")}


@view("payment-connection-lost", clock=True)
def payment_connection_lost(page, spec: dict) -> dict:
    """Every wait fails (the server unreachable, the browser online) until the error budget is spent: the page
    blames the connection, not M-Pesa. Each backoff is skipped on the page's clock."""
    order = create_order(spec, 5)
    page.route(WAIT_REQUEST, lambda route: route.abort("connectionrefused"))
    open_payment(page, order, pause=True)
    for _ in range(60):  # one failure per step: each prints one "Long polling:" line
        with page.expect_console_message(lambda m: m.text.startswith("Long polling:")) as line:
            page.clock.run_for(15_000)
        if "giving up" in line.value.text:
            break
    page.wait_for_selector("#view-unknown:not([hidden])")
    return {**shown(page, order), **after_the_outcome(page), "reason": page.text_content("#unknown-reason"),
            "heading": page.text_content("#view-unknown h1"), "notice_shown": page.is_visible("#offline-notice")}


@view("payment-push-limit")
def payment_push_limit(page, spec: dict) -> dict:
    """The third try in the push limit's window (3 per 10 minutes here) is cancelled: the page says when the next
    can go and offers no "Try again", which the server would refuse (a fourth try: 429 with Retry-After)."""
    phone = shopper(1)["phone"]  # ending 1: the simulator cancels each push 2 s after it
    orders = [create_order(spec, 1, phone=phone) for _ in range(3)]
    open_payment(page, orders[-1])
    page.wait_for_selector("#view-failure:not([hidden])", timeout=PAYMENT_TIMEOUT_MS)
    try:
        create_order(spec, 1, phone=phone)
        fourth = {"status": 201}
    except urllib.error.HTTPError as refused:
        fourth = {"status": refused.code, "retry_after": refused.headers.get("Retry-After"),
                  "error": json.loads(refused.read())["error"]}
    facts = {**shown(page, orders[-1]), "note": page.inner_text("#push-limit"), "note_visible": page.is_visible("#push-limit"),
             "retry_visible": page.is_visible("#retry"), "fourth": fourth,
             "retry_after": int(page.get_attribute("#push-limit", "data-retry-after"))}
    page.goto(checkout_url(spec))  # the checkout anyway, with that phone: refused, said, and Pay waits for it
    fill_checkout(page, {**shopper(1), "phone": phone})
    page.click("#pay")
    page.wait_for_selector("#form-error:not([hidden])")
    facts["checkout"] = {"error": page.text_content("#form-error"), "pay_enabled": page.is_enabled("#pay")}
    page.fill("#phone", shopper(5)["phone"])
    facts["checkout"]["pay_enabled_for_another_phone"] = page.is_enabled("#pay")
    return facts


@view("payment-nojs", javascript=False)
def payment_without_javascript(page, spec: dict) -> dict:
    """Without JavaScript: waiting, and the page reloads itself (<noscript> refresh) until M-Pesa answers. The
    reload is awaited at the first size only (the viewport does not change it; it takes the refresh's 5 s)."""
    order = create_order(spec, 5)
    page.goto(order["url"])
    refresh = page.get_attribute("head meta[http-equiv=refresh]", "content")
    reloaded = page.viewport_size["width"] == VIEWPORTS[0][0]
    if reloaded:
        with page.expect_navigation(timeout=PAYMENT_TIMEOUT_MS):  # the refresh, by itself
            pass
    return {"reloaded": reloaded, "title": page.title(), "text": page.inner_text("main"), "refresh": refresh, "url": page.url,
            "order_url": order["url"], "live_note_visible": page.is_visible("#live-note"),
            "pending_visible": page.is_visible("#view-pending"), "phone": order["phone"]}


# --- Running them --------------------------------------------------------------------------------


MPESA_LINES = """() => {
    const walker = document.createTreeWalker(document.querySelector('main'), NodeFilter.SHOW_TEXT);
    let shown = 0; const breakable = [];
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const parent = node.parentElement;
        if (!node.data.includes('M-Pesa') || parent.closest('[hidden], noscript, .visually-hidden')) continue;
        shown += node.data.split('M-Pesa').length - 1;
        if (!['nowrap', 'pre'].includes(getComputedStyle(parent).whiteSpace)) breakable.push(node.data.trim());
    }
    return {shown, breakable};
}"""
"""Every "M-Pesa" shown in the page's main card, and the text of those a line could break inside (at "M-")."""


def prepare_each_size(spec: dict, names: list[str], sizes) -> dict:
    """{size: {name: prepare(spec)}} for the named views that have a prepare step: one result per size, all made at
    once (an uncertain push takes the shop's 2 s push timeout)."""
    steps = [(f"{w}x{h}", name) for w, h in sizes for name in names if VIEWS[name].prepare]
    with ThreadPoolExecutor(max(1, len(steps))) as pool:
        made = list(pool.map(lambda step: VIEWS[step[1]].prepare(spec), steps))
    prepared: dict[str, dict] = {f"{w}x{h}": {} for w, h in sizes}
    for (size, name), result in zip(steps, made, strict=True):
        prepared[size][name] = result
    return prepared


def claimed(claims: str | None, name: str, size: str) -> bool:
    """Whether this runner takes the view at this size: runners given one claims folder each take the next view
    no other has taken (a file made with O_EXCL), so the slow views spread over them; without one, every view."""
    if not claims:
        return True
    try:
        os.close(os.open(Path(claims) / f"{name}-{size}", os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return False
    return True


def run_view(browser, spec: dict, item: View, size: tuple[int, int], axe_source: str) -> dict:
    width, height = size
    context = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=1,
                                  java_script_enabled=item.javascript)
    context.set_default_timeout(30_000)  # a step that cannot happen fails the view, not the whole run
    page = context.new_page()
    urls = []
    page.on("request", lambda r: urls.append(r.url))
    shot = Path(spec["output"]) / f"{item.name}-{width}x{height}.png"
    if item.clock:
        page.clock.install()
    try:
        facts = item.run(page, spec)
        if item.javascript:
            facts["_mpesa"] = page.evaluate(MPESA_LINES)
        page.screenshot(path=str(shot), full_page=True)
        if item.clock:
            page.clock.resume()
        violations = axe.audit(page, axe_source) if item.javascript else audit_as_is(browser, page, size, axe_source)
        return {"facts": facts, "violations": violations, "screenshot": str(shot), "urls": urls + [page.url]}
    except Exception:  # one broken view must not hide the others' results
        page.screenshot(path=str(shot), full_page=True)
        return {"error": traceback.format_exc(), "screenshot": str(shot), "urls": urls}
    finally:
        context.close()


def audit_as_is(browser, page, size: tuple[int, int], axe_source: str) -> list[dict]:
    """axe on a page of a context without JavaScript (where axe cannot run): its HTML, served again at
    its URL to a context with JavaScript whose page scripts are blocked, so the DOM stays as it was."""
    html, url = page.content(), page.url
    context = browser.new_context(viewport={"width": size[0], "height": size[1]}, device_scale_factor=1)
    try:
        copy = context.new_page()
        copy.route("**/*.js", lambda route: route.abort())
        copy.route(lambda address: address == url,
                   lambda route: route.fulfill(status=200, content_type="text/html; charset=utf-8", body=html))
        copy.goto(url)
        # As a browser without JavaScript shows it: <noscript> content in the page (not in <head>: a meta
        # refresh there would reload the copy).
        copy.evaluate("""() => { for (const n of document.body.querySelectorAll('noscript')) {
            const parsed = document.createElement('template');
            parsed.innerHTML = n.textContent;
            n.replaceWith(parsed.content);
        } }""")
        return axe.audit(copy, axe_source)
    finally:
        context.close()


def main(spec: dict) -> dict:
    from playwright.sync_api import sync_playwright

    Path(spec["output"]).mkdir(parents=True, exist_ok=True)
    axe_source = axe.source()
    names = spec.get("views") or list(VIEWS)
    sizes = [tuple(s) for s in spec.get("viewports", VIEWPORTS)]
    prepared = spec.get("prepared") or prepare_each_size(spec, names, sizes)
    results: dict[str, dict] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        for name in names:
            for w, h in sizes:
                if not claimed(spec.get("claims"), name, f"{w}x{h}"):
                    continue
                print(f"view {name} {w}x{h}", end="", file=sys.stderr, flush=True)
                began = time.monotonic()
                results.setdefault(name, {})[f"{w}x{h}"] = run_view(
                    browser, {**spec, "prepared": prepared[f"{w}x{h}"]}, VIEWS[name], (w, h), axe_source)
                print(f": {time.monotonic() - began:.1f}s", file=sys.stderr, flush=True)
        browser.close()
    return results


if __name__ == "__main__":
    started = time.monotonic()
    print(json.dumps(main(json.loads(sys.argv[1]))))
    print(f"views: {time.monotonic() - started:.1f}s", file=sys.stderr)
