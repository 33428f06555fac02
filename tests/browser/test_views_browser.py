"""Every view of tests/browser/views.py in Chromium at 390×844 and 1280×800: zero WCAG 2.1 AA violations
(axe-core), a screenshot each under tests/output/, and what each view must show."""
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from urllib.parse import unquote, urlparse

import pymongo
import pytest

from devstack.processes import ROOT, Gunicorn
from devstack.simulator import PayHeroSimulator
from tests.browser import axe
from tests.browser.views import VIEWPORTS, VIEWS
from tests.conftest import TEST_SECRET, gunicorn_env
from tests.support.events import event_spec, save_events

OUTPUT = ROOT / "tests" / "output"
EVENT = "views-2026"
SIZES = [f"{w}x{h}" for w, h in VIEWPORTS]
SUPPORT = "call 0700 000 000 or write to help@example.com"
PROMPT_SECONDS, HELP_SECONDS = 15, 10


@pytest.fixture(scope="module")
def shop(redis_server, mongo_server, tmp_path_factory) -> Iterator[Gunicorn]:
    """gunicorn over the session's stores, PayHero's simulator settling each push 2 s after it; a push to a
    number ending in 9 answers after 10 s, past the 2 s push timeout (uncertain), and is paid 2 s later.
    Prompts live 15 s, the help shows after 10 s: the views that wait move the page's clock instead."""
    assert os.path.exists("/usr/bin/chromium"), "install Debian's chromium (make deps does)"
    assert axe.AXE_JS.exists(), "run `make deps`: it installs axe-core into tests/browser/node_modules"
    save_events(mongo_server.uri, event_spec(EVENT))  # Regular KES 1,500, VIP KES 2,500
    simulator = PayHeroSimulator(delay=2, slow_seconds=10).start()
    settings = {"ENV": "test", "PUSH_LIMIT": 0, "SECRET_KEY": TEST_SECRET, "REDIS_URL": redis_server.url,
                "MONGO_URI": mongo_server.uri, "VAR_DIR": str(tmp_path_factory.mktemp("views") / "var"),
                "PUSH_TIMEOUT": 2, "PROMPT_SECONDS": PROMPT_SECONDS, "PROMPT_HELP_SECONDS": HELP_SECONDS,
                "SUPPORT_CONTACT": SUPPORT}
    server = Gunicorn(gunicorn_env(settings, **simulator.settings), workers=2).start()
    yield server
    server.stop()
    simulator.stop()


@pytest.fixture(scope="module")
def seen(shop: Gunicorn) -> dict:
    """Every registered view, run once at each size in one Chromium."""
    only = [name for name in os.environ.get("EVENTI_BROWSER_VIEWS", "").split(",") if name]  # to try a few views
    spec = {"base_url": shop.base_url, "event_id": EVENT, "output": str(OUTPUT), "views": only, "secret": TEST_SECRET,
            "mongo_uri": shop.env["EVENTI_MONGO_URI"], "redis_url": shop.env["EVENTI_REDIS_URL"]}
    env = {k: v for k, v in os.environ.items() if k != "PLAYWRIGHT_BROWSERS_PATH"}
    OUTPUT.mkdir(parents=True, exist_ok=True)
    with open(OUTPUT / "views.log", "w") as log:  # which view is running, and the driver's errors
        done = subprocess.run([sys.executable, "-m", "tests.browser.views", json.dumps(spec)], stdout=subprocess.PIPE,
                              stderr=log, text=True, timeout=300, env=env, cwd=str(ROOT))
    assert done.returncode == 0, (OUTPUT / "views.log").read_text()[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def facts(seen: dict, name: str) -> list[dict]:
    """The view's facts at each size; fails with the view's own error when it could not be reached."""
    if name not in seen:
        pytest.skip(f"{name} not in EVENTI_BROWSER_VIEWS")
    for size in SIZES:
        assert "error" not in seen[name][size], f"{name} at {size}:\n{seen[name][size]['error']}"
    return [seen[name][size]["facts"] for size in SIZES]


@pytest.mark.parametrize("name", list(VIEWS))
def test_view_has_no_wcag_aa_violations_and_a_screenshot(seen, name) -> None:
    facts(seen, name)
    for size in SIZES:
        result = seen[name][size]
        assert result["violations"] == [], f"{name} at {size}:\n" + axe.describe(result["violations"])
        assert os.path.getsize(result["screenshot"]) > 0


@pytest.mark.parametrize("name", [name for name, v in VIEWS.items() if v.name in ("checkout-nojs", "checkout-errors-nojs",
                                                                                   "try-again", "back-after-paying")])
def test_no_personal_data_in_any_url(seen, name) -> None:
    for size, found in zip(SIZES, facts(seen, name), strict=True):
        for url in seen[name][size]["urls"]:
            for text in found["personal"]:
                assert text not in url and text not in unquote(url), (size, url)


def test_pages_have_titles_that_say_what_they_are(seen) -> None:
    for found in facts(seen, "events"):
        assert found["title"] == "Events on sale · eventi" and f"/events/{EVENT}/checkout" in found["links"]
    for found in facts(seen, "checkout"):
        assert found["title"] == f"Tickets for Test event {EVENT} · eventi"
        assert (found["total"], found["line"]) == ("5,000", "2 × VIP at KES 2,500")


def test_field_errors_land_under_their_fields(seen) -> None:
    for found in facts(seen, "checkout-errors"):
        assert found["phone_error"] == "Enter a Kenyan mobile number, like 0712 345 678."
        assert found["email_error"] == "Enter an email address, like name@example.com." and found["focused"] == "email"


def test_without_javascript_errors_come_back_with_the_values_kept(seen) -> None:
    for found in facts(seen, "checkout-errors-nojs"):
        assert found["url"].endswith(f"/events/{EVENT}/checkout")  # posted: nothing in the query string
        assert found["phone_error"] == "Enter a Kenyan mobile number, like 0712 345 678."
        assert found["email_error"] == "Enter an email address, like name@example.com." and found["focused"] == "email"
        assert (found["ticketType"], found["tickets"], found["name"]) == ("vip", "3", "Wanjiru Kamau")
        assert found["phone"] == "0712/345/678"
        assert found["title"].startswith("Check the form:")


def test_without_javascript_the_form_posts_and_moves_to_the_payment_page(seen) -> None:
    for found in facts(seen, "checkout-nojs"):
        assert urlparse(found["url"]).path.startswith("/orders/") and urlparse(found["url"]).query.startswith("token=")
        assert (found["order_line"], found["order_total"]) == ("2 × VIP at KES 2,500", "KES 5,000")
        # Chromium's own post, checked as a cross-site one would be (issue 19, item 7): it carries the form token
        # and comes from our page, by its own headers
        posted = found["posted"]
        assert {"idempotencyKey", "formToken"} <= set(posted["fields"])
        assert (posted["sec_fetch_site"], posted["origin"]) == ("same-origin", found["url"].split("/orders/")[0])


def test_another_sites_page_cannot_post_the_checkout_form(seen, mongo_server) -> None:
    """Even with a key and form token fetched from us a moment before: Chromium says where the post comes from."""
    orders = pymongo.MongoClient(mongo_server.uri).get_default_database()["orders"]
    for found in facts(seen, "checkout-cross-site"):
        # Chromium sends no Sec-Fetch-Site from this http:// page (not a secure context): its Origin is what tells
        assert found["posted"]["origin"] == "http://shop-elsewhere.test"
        assert found["posted"]["sec_fetch_site"] in (None, "cross-site")
        assert {"idempotencyKey", "formToken"} <= set(found["posted"]["fields"])
        assert found["status"] == 403 and found["title"] == "Checkout not sent · eventi"
        assert found["links"] == [f"/events/{EVENT}/checkout", "/events"]
        assert orders.count_documents({"email": found["email"]}) == 0


def test_not_found_pages_link_to_the_events_and_the_event(seen) -> None:
    for name in ("not-found", "not-found-event", "not-found-order"):
        for found in facts(seen, name):
            assert found["status"] == 404 and found["title"] == "Page not found · eventi" and "/events" in found["links"], name
    for found in facts(seen, "not-found-event"):
        assert f"/events/{EVENT}/checkout" in found["links"]


def test_try_again_brings_back_the_shoppers_details_and_tickets(seen) -> None:
    for found in facts(seen, "try-again"):
        assert found["result"] == "failure" and found["form_visible"]
        assert (found["ticketType"], found["tickets"], found["name"]) == ("vip", "2", "Wanjiru Kamau")
        digits = "".join(c for c in found["expected_phone"] if c.isdigit())
        assert found["phone"] == f"{digits[:4]} {digits[4:7]} {digits[7:]}" and "@example.com" in found["email"]
        assert (found["total"], found["line"]) == ("5,000", "2 × VIP at KES 2,500")


def test_back_after_paying_shows_the_paid_order_not_a_form(seen) -> None:
    for found in facts(seen, "back-after-paying"):
        assert found["result"] == "success" and not found["form_visible"]
        assert found["heading"] == "You have paid for this event" and found["text"].startswith("KES 5,000 paid, M-Pesa receipt ")
        status = urlparse(found["status_url"])
        assert found["link"] == f"{status.path}?{status.query}" and found["title"] == f"Your order: Test event {EVENT} · eventi"
        assert found["focused"] == "earlier-order-title"


# --- The payment page (its orders: 2 Regular tickets, KES 3,000) ------------------------------------


def reference(found: dict) -> str:
    return found["orderId"][-8:].upper()


def test_waiting_shows_the_masked_phone_the_amount_and_a_running_countdown(seen) -> None:
    for found in facts(seen, "payment-waiting"):
        assert (found["title"], found["views"], found["pushState"]) == ("Approve on your phone · eventi", ["pending"], None)
        assert f"Prompt sent to 07•• ••• {found['phone'][-3:]} for KES 3,000" in found["text"]
        assert "Enter your M-Pesa PIN" in found["text"] and "This page changes by itself" in found["text"]
        assert reference(found) in found["text"]
        assert found["help_hidden_at_first"] and "Didn't get a prompt?" not in found["text"]
        assert found["countdown_first"] != found["countdown_later"]  # it ticks with the page's clock
        assert found["countdown_later"] in found["text"]


def test_the_help_comes_when_due_and_offers_to_change_the_number(seen) -> None:
    for found in facts(seen, "payment-help"):
        assert found["views"] == ["pending"] and "Didn't get a prompt?" in found["text"]
        assert "Change the number" in found["text"] and f"retry={found['orderId']}" in found["change_number"]
        assert found["announce"].startswith("Didn't get a prompt? Check that your phone is on")  # screen readers too


def test_an_expired_prompt_says_not_heard_yet_with_the_reference_and_support_and_no_pin(seen) -> None:
    for found in facts(seen, "payment-not-heard"):
        assert (found["title"], found["views"]) == ("Waiting for M-Pesa · eventi", ["unknown"])
        assert "We have not heard from M-Pesa yet" in found["text"] and "do not pay again" in found["text"]
        assert f"{reference(found)}: {SUPPORT}." in found["text"].replace("\n", " ")
        assert "PIN" not in found["text"] and found["countdown"] == "0:00"
        assert found["focused"] == "We have not heard from M-Pesa yet"
        assert found["announce"].startswith("We have not heard from M-Pesa yet.")
    for found in facts(seen, "payment-not-heard-reloaded"):  # from the server after Back: still no PIN
        assert (found["title"], found["views"]) == ("Waiting for M-Pesa · eventi", ["unknown"])
        assert found["pending_view_in_page"] == 0 and "PIN" not in found["text"]
        assert f"{reference(found)}: {SUPPORT}." in found["text"].replace("\n", " ")


def test_an_uncertain_push_warns_not_to_pay_twice_and_the_status_decides(seen) -> None:
    for found in facts(seen, "payment-uncertain"):
        assert (found["pushState"], found["views"]) == ("uncertain", ["pending"])
        assert "If a prompt appears, approve it: don't pay twice." in found["text"]
        assert "Enter your M-Pesa PIN" not in found["text"]
    for found in facts(seen, "payment-uncertain-paid"):
        assert found["pushState"] == "uncertain"
        assert (found["title"], found["views"]) == ("Paid · eventi", ["success"])


def test_paid_names_the_tickets_event_and_email_and_takes_the_focus(seen) -> None:
    for found in facts(seen, "payment-paid"):
        assert (found["title"], found["views"]) == ("Paid · eventi", ["success"])
        assert f"KES 3,000 paid for 2 × Regular, Test event {EVENT}." in found["text"]
        assert f"Your tickets are on their way to {found['email']}." in found["text"] and reference(found) in found["text"]
        assert found["focused"] == "Payment received" and found["announce"].startswith("Payment received. M-Pesa receipt ")
        narrow = found["narrow"]  # at 320 px nothing scrolls sideways and the reference stays on one line
        assert narrow["scrollWidth"] <= 320 and narrow["referenceLines"] and set(narrow["referenceLines"]) == {1}
    assert (OUTPUT / "payment-paid-320x640.png").stat().st_size > 0


def test_failures_say_what_happened_in_plain_words_with_a_way_on(seen) -> None:
    for found in facts(seen, "payment-wrong-pin"):
        assert (found["title"], found["views"]) == ("Payment not completed · eventi", ["failure"])
        assert "Wrong M-Pesa PIN: try again with the right PIN." in found["text"] and SUPPORT in found["text"]
        assert found["focused"] == "Payment not completed" and "Try again" in found["text"]
    for found in facts(seen, "payment-cancelled"):
        assert (found["title"], found["views"]) == ("Payment cancelled · eventi", ["failure"])
        assert "You cancelled the request" in found["text"] and found["focused"] == "Payment cancelled"
    for name in ("payment-paid", "payment-wrong-pin", "payment-cancelled"):
        for found in facts(seen, name):
            assert "Total\nKES 3,000" in found["text"] or "Total\tKES 3,000" in found["text"], name


def test_refund_needed_says_the_payment_came_and_will_be_refunded_with_no_second_payment(seen) -> None:
    for found in facts(seen, "payment-refund"):
        heading = "We received your payment: a refund is due"
        assert (found["title"], found["views"], found["state"]) == ("Refund due · eventi", ["refund"], "refund")
        assert heading in found["text"] and "we will refund you" in found["text"]
        assert "M-Pesa receipt\nSAE3YULR0Y" in found["text"] or "M-Pesa receipt\tSAE3YULR0Y" in found["text"]
        assert f"{reference(found)}: {SUPPORT}." in found["text"].replace("\n", " ")
        assert "Try again" not in found["text"] and "PIN" not in found["text"] and "/events" in found["links"]
        assert found["links"] == ["/events"]  # the only link shown: nothing leads to paying again
        assert found["focused"] == heading
        assert found["announce"].startswith(f"{heading}. We received your payment after this order had expired")
        assert found["announce"].endswith("M-Pesa receipt SAE3YULR0Y.")
        reloaded = found["reloaded"]  # the server renders the same words
        assert (reloaded["title"], reloaded["views"], reloaded["card"]) == (found["title"], found["views"], found["card"])


def test_offline_the_page_says_so_and_keeps_waiting(seen) -> None:
    for found in facts(seen, "payment-offline"):
        assert found["notice"].startswith("You are offline: we will check your payment") and found["views"] == ["pending"]
        assert found["notice"] in found["text"] and found["announce"] == found["notice"]


def test_past_the_time_an_order_can_change_the_page_says_it_stopped_and_what_to_do(seen) -> None:
    for found in facts(seen, "payment-stopped"):
        assert found["listen_left"] == "0" and found["views"] == ["unknown"] and not found["checking"]
        assert found["reason"].startswith("We have stopped checking for now.") and "press Check again" in found["reason"]
        assert found["announce"].endswith(found["reason"])


def test_when_the_server_stays_unreachable_the_page_says_the_connection_is_lost_not_m_pesa(seen) -> None:
    for found in facts(seen, "payment-connection-lost"):
        assert (found["heading"], found["focused"], found["title"]) == ("Connection lost",) * 2 + ("Connection lost · eventi",)
        assert found["views"] == ["unknown"] and not found["notice_shown"]
        assert found["reason"].startswith("We could not reach the server") and "every minute" in found["reason"]
        assert found["announce"] == f"Connection lost. {found['reason']}"


def test_without_javascript_the_payment_page_reloads_itself_while_waiting(seen) -> None:
    for found in facts(seen, "payment-nojs"):
        assert (found["title"], found["refresh"], found["url"]) == ("Approve on your phone · eventi", "5", found["order_url"])
        assert found["pending_visible"] and not found["live_note_visible"]
        assert "This page reloads every 5 seconds until M-Pesa answers." in found["text"]
        assert "This page changes by itself" not in found["text"]
