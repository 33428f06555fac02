"""Drive headless Chromium through the payment page's states; print what each page showed as JSON.

One browser, one page per simulator outcome, all waiting at once (each holds its own long poll). Orders are
made through the API, as the checkout page makes them, so this driver depends on the payment page alone.
Run as its own process (not under the tests' gevent patching): python tests/browser/status_drive.py SPEC_JSON
"""
import json
import sys
import urllib.request

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 30_000
SHOWN_VIEW = """() => ["pending", "unknown", "success", "failure"].filter(
    (v) => { const e = document.getElementById(`view-${v}`); return e && !e.hidden; })"""


def create_order(base_url, event_id, phone):
    body = json.dumps({"eventId": event_id, "ticketTypeId": "regular", "quantity": 2, "phone": phone,
                       "email": "wanjiru@example.com", "name": "Wanjiru Kamau"}).encode()
    request = urllib.request.Request(f"{base_url}/api/orders", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        created = json.loads(answer.read())
    return created, f"{base_url}/orders/{created['orderId']}/status?token={created['statusToken']}"


def snapshot(page, shot=None):
    """What the shopper sees now: the shown view, the tab title, the visible text of the main card."""
    if shot:
        page.screenshot(path=shot, full_page=True)
    return {"title": page.title(), "views": page.evaluate(SHOWN_VIEW), "text": page.inner_text("main"),
            "state": page.get_attribute("#payment", "data-state")}


def open_page(context, spec, name, phone):
    created, url = create_order(spec["base_url"], spec["event_id"], phone)
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("#payment", timeout=TIMEOUT_MS)
    return page, {"created": created, "url": url}


def drive_viewport(browser, spec, width, height):
    context = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=1)
    size = f"{width}x{height}"
    shot = lambda name: f"{spec['output']}/status-{name}-{size}.png"  # noqa: E731
    seen = {}
    # No callback ever comes for 5: the waiting view, its countdown and help, then "not heard yet".
    waiting, seen["waiting"] = open_page(context, spec, "waiting", spec["phones"]["no_callback"])
    seen["waiting"]["first"] = snapshot(waiting, shot("waiting"))
    seen["waiting"]["help_hidden_at_first"] = waiting.is_hidden("#prompt-help")
    seen["waiting"]["countdown_first"] = waiting.text_content("#countdown-left")
    pages = {}
    for name in ("paid", "wrong_pin", "cancelled", "uncertain"):
        pages[name], seen[name] = open_page(context, spec, name, spec["phones"][name])
    seen["uncertain"]["first"] = snapshot(pages["uncertain"], shot("uncertain-waiting"))

    waiting.wait_for_function("(first) => document.getElementById('countdown-left').textContent !== first",
                              arg=seen["waiting"]["countdown_first"], timeout=TIMEOUT_MS)
    waiting.wait_for_selector("#prompt-help:not([hidden])", timeout=TIMEOUT_MS)
    seen["waiting"]["countdown_later"] = waiting.text_content("#countdown-left")
    seen["waiting"]["with_help"] = snapshot(waiting, shot("waiting-help"))

    for name, page in pages.items():
        page.wait_for_selector("#view-success:not([hidden]), #view-failure:not([hidden])", timeout=TIMEOUT_MS)
        seen[name]["final"] = snapshot(page, shot("uncertain-paid" if name == "uncertain" else name))
        seen[name]["focused"] = page.evaluate("document.activeElement.textContent")
        seen[name]["announce"] = page.text_content("#announce")

    waiting.wait_for_selector("#view-unknown:not([hidden])", timeout=TIMEOUT_MS)
    seen["waiting"]["expired"] = snapshot(waiting, shot("expired"))
    seen["waiting"]["countdown_at_expiry"] = waiting.text_content("#countdown-left")
    # Back/Forward from the back/forward cache: the page asks the server again (a reload).
    with waiting.expect_navigation(timeout=TIMEOUT_MS):
        waiting.evaluate("window.dispatchEvent(new PageTransitionEvent('pageshow', {persisted: true}))")
    waiting.wait_for_selector("#payment", timeout=TIMEOUT_MS)
    seen["waiting"]["after_bfcache"] = snapshot(waiting)
    context.close()
    return seen


def narrow_phone(browser, url, output):
    """A 320 px phone: nothing scrolls sideways and the order reference stays on one line."""
    context = browser.new_context(viewport={"width": 320, "height": 640}, device_scale_factor=1)
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("#view-success:not([hidden])", timeout=TIMEOUT_MS)
    page.screenshot(path=f"{output}/status-paid-320x640.png", full_page=True)
    result = page.evaluate("""() => ({
        scrollWidth: document.documentElement.scrollWidth,
        referenceLines: Array.from(document.querySelectorAll('.reference'))
            .filter((e) => e.offsetParent !== null).map((e) => e.getClientRects().length),
    })""")
    context.close()
    return result


def main(spec):
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        result = {f"{w}x{h}": drive_viewport(browser, spec, w, h) for w, h in spec["viewports"]}
        first = next(iter(result.values()))
        result["narrow"] = narrow_phone(browser, first["paid"]["url"], spec["output"])
        browser.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
