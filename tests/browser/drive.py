"""Drive Debian's headless Chromium through one checkout with Playwright; print what happened as JSON.

Run as its own process (not under the tests' gevent patching): python tests/browser/drive.py SPEC_JSON
"""
import json
import sys
import time

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main(spec):
    requests_seen, console = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=1)
        page.on("request", lambda r: requests_seen.append({"method": r.method, "url": r.url, "at": time.time(),
                                                           "key": r.headers.get("idempotency-key")}))
        page.on("console", lambda m: console.append(m.text))
        page.goto(f"{spec['base_url']}/events/{spec['event_id']}/checkout")
        if spec.get("invalid_first"):
            page.fill("#email", "not-an-email")
            page.fill("#phone", "12345")
            page.click("#pay")
            page.wait_for_selector("#phone-error:not(:empty)", timeout=15_000)
            result_invalid = {"phone_error": page.text_content("#phone-error"), "email_error": page.text_content("#email-error"),
                              "focused": page.evaluate("document.activeElement.id")}
            page.screenshot(path=spec["screenshot"].replace(".png", "-errors.png"), full_page=True)
        else:
            result_invalid = None
        page.fill("#name", "Wanjiru Kamau")
        page.fill("#email", "wanjiru@example.com")
        page.fill("#phone", spec["phone"])
        if spec.get("ticket_type"):
            page.select_option("#ticket-type", spec["ticket_type"])
        page.select_option("#tickets", "2")
        totals = {"checkout": page.text_content("#total"), "checkout_line": page.text_content("#line")}
        failed_tries = fail_first_posts(page, spec.get("first_answers", []))
        page.click("#pay")
        if spec.get("expect_form_error"):
            page.wait_for_selector("#form-error:not([hidden])", timeout=30_000)
            page.screenshot(path=spec["screenshot"], full_page=True)
            result = {"form_error": page.text_content("#form-error"), "url": page.url,
                      "focused": page.evaluate("document.activeElement.id"), "button": page.text_content("#pay")}
            browser.close()
            result.update(requests=requests_seen, console=console, totals=totals)
            print(json.dumps(result))
            return
        page.wait_for_url("**/orders/*/status?token=*", timeout=30_000)
        if spec.get("pending_screenshot"):
            page.wait_for_selector("#view-pending:not([hidden])", timeout=15_000)
            totals["pending"] = page.text_content("#order-total")
            totals["pending_prompt"] = page.text_content("#prompt-amount")
            page.screenshot(path=spec["screenshot"].replace(".png", "-pending.png"), full_page=True)
        page.wait_for_selector("#view-success:not([hidden]), #view-failure:not([hidden])", timeout=spec.get("timeout_ms", 60_000))
        final_at = time.time()
        view = "success" if page.is_visible("#view-success") else "failure"
        totals["final"] = page.text_content("#order-total")
        totals["final_line"] = page.text_content("#order-line")
        page.screenshot(path=spec["screenshot"], full_page=True)
        result = {
            "view": view,
            "final_at": final_at,
            "url": page.url,
            "receipt": page.text_content("#receipt"),
            "failure_reason": page.text_content("#failure-reason"),
            "retry_href": page.get_attribute("#retry", "href"),
            "announce": page.text_content("#announce"),
            "focused": page.evaluate("document.activeElement.textContent"),
            "invalid": result_invalid,
            "failed_tries": failed_tries,
        }
        if spec.get("back_after"):  # the Back button from the payment page: the form as it was left
            page.go_back()
            page.wait_for_selector("#earlier-order:not([hidden])", timeout=15_000)
            totals["back"] = page.text_content("#total")
            totals["back_line"] = page.text_content("#line")
            totals["back_notice_href"] = page.get_attribute("#earlier-order-link", "href")
            page.screenshot(path=spec["screenshot"].replace(".png", "-back.png"), full_page=True)
        browser.close()
    result.update(requests=requests_seen, console=console, totals=totals)
    print(json.dumps(result))


def fail_first_posts(page, answers):
    """Answer the first POSTs to /api/orders with answers (an HTTP status, or "abort": no answer at all) in the
    browser, before they reach the server; Pay is pressed for each and the form's error read. Later POSTs go on."""
    pending = list(answers)

    def answer(route):
        if route.request.method != "POST" or not pending:
            return route.continue_()
        status = pending.pop(0)
        if status == "abort":
            return route.abort("connectionreset")
        body = {"error": "store_unavailable", "message": "The order store is not reachable; try again."}
        return route.fulfill(status=int(status), content_type="application/json", body=json.dumps(body))

    page.route("**/api/orders", answer)
    shown = []
    for _ in answers:
        page.click("#pay")  # the submit handler hides the error and disables Pay before the click returns
        page.wait_for_selector("#pay:not([disabled])", timeout=30_000)
        shown.append(page.text_content("#form-error"))
    return shown


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
