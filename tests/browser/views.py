"""The shopper's views in Chromium: each brought to its state, checked by axe-core (WCAG 2.1 AA) and
photographed at each viewport. Run as its own process (not under the tests' gevent patching):

    python -m tests.browser.views SPEC_JSON

SPEC: {"base_url", "event_id" (Regular KES 1,500 and VIP KES 2,500, see tests/support/events.py),
"output" (screenshots' folder), "views" (names; all when absent), "viewports" ([[390, 844], [1280, 800]])}.
Prints one JSON line: {view: {"390x844": {"violations", "screenshot", "facts", "urls"}, ...}}.

Adding a view: write a function that takes (page, spec), brings the page to the state to check and
returns facts (a dict) the test asserts on, and register it with @view("name") (javascript=False for a
browser without JavaScript: then read the page with locators, page.evaluate never returns there; axe
checks the page's HTML as it stands, in a second context where JavaScript runs but the page's own
scripts are blocked). tests/browser/test_views_browser.py runs every registered view at both
sizes and fails on any violation; assert the view's own facts there.
"""
import json
import random
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path

from tests.browser import axe

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORTS = [(390, 844), (1280, 800)]
PAYMENT_TIMEOUT_MS = 60_000


class View:
    def __init__(self, name: str, run: Callable, javascript: bool) -> None:
        self.name, self.run, self.javascript = name, run, javascript


VIEWS: dict[str, View] = {}


def view(name: str, javascript: bool = True) -> Callable:
    """Register run(page, spec) -> facts as the view `name`."""
    def register(run: Callable) -> Callable:
        VIEWS[name] = View(name, run, javascript)
        return run
    return register


# --- Helpers for views ---------------------------------------------------------------------------


def shopper(last_digit: int) -> dict:
    """A fresh shopper; the phone's last digit picks what the simulator does (README: the simulator)."""
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
    return page.locator(":focus").get_attribute("id") if page.locator(":focus").count() else None


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
    return {"title": page.title(), **form_values(page)}


@view("checkout-errors")
def checkout_errors(page, spec: dict) -> dict:
    page.goto(checkout_url(spec))
    page.fill("#email", "not-an-email")
    page.fill("#phone", "12345")
    page.click("#pay")
    page.wait_for_selector("#phone-error:not(:empty)", timeout=15_000)
    return {"email_error": page.text_content("#email-error"), "phone_error": page.text_content("#phone-error"),
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
    page.click("#pay")
    page.wait_for_url("**/orders/*/status?token=*", timeout=30_000)
    return {"url": page.url, "order_total": page.text_content("#order-total"), "order_line": page.text_content("#order-line"),
            "personal": personal(who)}


@view("not-found")
def not_found(page, spec: dict) -> dict:
    response = page.goto(f"{spec['base_url']}/no/such/page")
    return {"status": response.status, "title": page.title(), "links": links(page)}


@view("not-found-event")
def not_found_under_an_event(page, spec: dict) -> dict:
    response = page.goto(f"{spec['base_url']}/events/{spec['event_id']}/pay")
    return {"status": response.status, "title": page.title(), "links": links(page)}


@view("not-found-order")
def not_found_order(page, spec: dict) -> dict:
    response = page.goto(f"{spec['base_url']}/orders/6751a3f2c9e77b0012ab34cd/status?token=nope")
    return {"status": response.status, "title": page.title(), "links": links(page)}


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


# --- Running them --------------------------------------------------------------------------------


def run_view(browser, spec: dict, item: View, size: tuple[int, int], axe_source: str) -> dict:
    width, height = size
    context = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=1,
                                  java_script_enabled=item.javascript)
    context.set_default_timeout(30_000)  # a step that cannot happen fails the view, not the whole run
    page = context.new_page()
    urls = []
    page.on("request", lambda r: urls.append(r.url))
    shot = Path(spec["output"]) / f"{item.name}-{width}x{height}.png"
    try:
        facts = item.run(page, spec)
        page.screenshot(path=str(shot), full_page=True)
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
        return axe.audit(copy, axe_source)
    finally:
        context.close()


def main(spec: dict) -> dict:
    from playwright.sync_api import sync_playwright

    Path(spec["output"]).mkdir(parents=True, exist_ok=True)
    axe_source = axe.source()
    names = spec.get("views") or list(VIEWS)
    sizes = [tuple(s) for s in spec.get("viewports", VIEWPORTS)]
    results = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        for name in names:
            results[name] = {}
            for w, h in sizes:
                print(f"view {name} {w}x{h}", file=sys.stderr, flush=True)
                results[name][f"{w}x{h}"] = run_view(browser, spec, VIEWS[name], (w, h), axe_source)
        browser.close()
    return results


if __name__ == "__main__":
    started = time.monotonic()
    print(json.dumps(main(json.loads(sys.argv[1]))))
    print(f"views: {time.monotonic() - started:.1f}s", file=sys.stderr)
