"""A shopper in headless Chromium (Debian's package, driven by Playwright): checkout, M-Pesa, result."""
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

from devstack.payhero_simulator import PayHeroSimulator
from devstack.processes import ROOT, Gunicorn
from tests.conftest import gunicorn_env, settings_for, stop_quickly
from tests.support.api import phone_ending
from tests.support.events import event_spec, save_events

OUTPUT = ROOT / "tests" / "output"
DRIVER = Path(__file__).with_name("drive.py")


@pytest.fixture(scope="module")
def simulator():
    """PayHero's stand-in: the shopper 'approves' on the phone 2 s after the push."""
    with PayHeroSimulator(delay=2) as server:
        yield server


@pytest.fixture(scope="module")
def shop(redis_server, mongo_server, simulator, tmp_path_factory):
    """gunicorn (2 workers) over the session's stores and the simulator, shared by the module's shoppers: each
    makes orders of its own."""
    assert os.path.exists("/usr/bin/chromium"), "install Debian's chromium (make deps does)"
    settings = settings_for(redis_server.url, mongo_server.uri, str(tmp_path_factory.mktemp("checkout") / "var"))
    save_events(settings["MONGO_URI"], event_spec("concert-2026"))  # Regular KES 1,500, VIP KES 2,500
    server = Gunicorn(gunicorn_env(settings, **simulator.settings), workers=2).start()
    yield server
    stop_quickly(server)


def shop_in_browser(base_url, phone, screenshot, **spec):
    OUTPUT.mkdir(parents=True, exist_ok=True)
    spec = {"base_url": base_url, "event_id": "concert-2026", "phone": phone, "screenshot": str(OUTPUT / screenshot), **spec}
    env = {k: v for k, v in os.environ.items() if k != "PLAYWRIGHT_BROWSERS_PATH"}
    done = subprocess.run([sys.executable, str(DRIVER), json.dumps(spec)], capture_output=True, text=True,
                          timeout=120, env=env, cwd=str(ROOT))
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def api_calls(result):
    calls = []
    for r in result["requests"]:
        path = urlparse(r["url"]).path
        if path.startswith("/api/"):
            calls.append((r["method"], "wait" if path.endswith("/wait") else path))
    return calls


def test_paid_order_shows_the_receipt_after_one_wait(shop, simulator):
    result = shop_in_browser(shop.base_url, phone_ending(0), "checkout-success.png", invalid_first=True,
                             pending_screenshot=True, ticket_type="vip", back_after=True)
    assert result["view"] == "success"
    order_id = urlparse(result["url"]).path.split("/")[2]
    [push] = simulator.pushes(order_id)
    assert push["amount"] == 5000  # 2 VIP tickets at the stored KES 2,500
    totals = result["totals"]  # the same total on every page: the form, the pending view, the receipt
    assert (totals["checkout"], totals["checkout_line"]) == ("5,000", "2 × VIP at KES 2,500")
    assert (totals["pending"], totals["pending_prompt"], totals["final"]) == ("KES 5,000", "KES 5,000", "KES 5,000")
    assert totals["final_line"] == "2 × VIP at KES 2,500"
    # Back from the payment page: the paid order (tests/browser/views.py checks what it says); the hidden form
    # still holds its own total.
    assert (totals["back"], totals["back_line"]) == ("5,000", "2 × VIP at KES 2,500")
    assert totals["back_notice_href"] == urlparse(result["url"]).path + "?" + urlparse(result["url"]).query
    keys = [r["key"] for r in result["requests"] if r["method"] == "POST"]
    assert len(keys) == 2 and all(len(k) == 32 for k in keys) and keys[0] != keys[1]  # one key per submission
    assert result["receipt"] == push["receipt"] and result["receipt"]
    calls = api_calls(result)
    waits = calls.count(("GET", "wait"))
    assert 1 <= waits <= 2, calls  # two only if a hold expired before the callback
    assert calls[:2 + waits] == [("POST", "/api/orders")] * 2 + [("GET", "wait")] * waits, calls  # no other polling
    assert ("POST", "/api/orders") not in calls[2 + waits:]  # going Back and forth made no order
    assert "Long polling attempt 1/4 - Waiting for payment..." in result["console"]
    assert "Payment status resolved! Final status: completed" in result["console"]
    assert result["announce"].startswith("Payment received") and result["focused"] == "Payment received"
    invalid = result["invalid"]  # the first, invalid submission: messages next to the fields
    assert invalid["phone_error"] == "Enter a Kenyan mobile number, like 0712 345 678." and invalid["email_error"]
    assert invalid["focused"] == "email"


def test_cancelled_payment_shows_the_failure_view_with_a_retry_link(shop):
    result = shop_in_browser(shop.base_url, phone_ending(1), "checkout-cancelled.png")
    assert result["view"] == "failure"
    assert result["failure_reason"] == "You cancelled the request: try again when you are ready."  # the server's reasonText
    order_id, token = urlparse(result["url"]).path.split("/")[2], urlparse(result["url"]).query.split("=", 1)[1]
    assert result["retry_href"] == f"/events/concert-2026/checkout?retry={order_id}&token={token}"  # filled from the order
    assert api_calls(result).count(("GET", "wait")) == 1
    assert "Payment status resolved! Final status: cancelled" in result["console"]


def test_a_push_payhero_refuses_is_explained_on_the_form(shop):
    result = shop_in_browser(shop.base_url, phone_ending(7), "checkout-push-failed.png", expect_form_error=True)
    assert result["form_error"] == "The payment provider did not accept the M-Pesa request; try again shortly."
    assert result["url"].endswith("/events/concert-2026/checkout") and result["focused"] == "form-error"
    assert result["button"] == "Pay KES 3,000"  # enabled again for a retry by the shopper, saying the amount
    assert [c for c in api_calls(result)] == [("POST", "/api/orders")]



def test_pay_again_after_a_503_or_no_answer_sends_the_same_idempotency_key(shop, simulator):
    """The first Pay is answered 503 and the second not at all (in the browser, before the server): the third
    goes through. All three carry one Idempotency-Key, so the server could only ever make one order."""
    result = shop_in_browser(shop.base_url, phone_ending(0), "checkout-retry-after-503.png", first_answers=["503", "abort"])
    assert result["failed_tries"] == ["The order store is not reachable; try again.",
                                      "We could not reach the server. Check your connection and try again."]
    posts = [r for r in result["requests"] if r["method"] == "POST"]
    assert len(posts) == 3 and len(posts[0]["key"]) == 32 and {p["key"] for p in posts} == {posts[0]["key"]}
    assert result["view"] == "success"
    order_id = urlparse(result["url"]).path.split("/")[2]
    assert len(simulator.pushes(order_id)) == 1
