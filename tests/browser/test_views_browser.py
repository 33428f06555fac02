"""Every view of tests/browser/views.py in Chromium at 390×844 and 1280×800: zero WCAG 2.1 AA violations
(axe-core), a screenshot each under tests/output/, and what each view must show."""
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from urllib.parse import unquote, urlparse

import pymongo
import pytest

from devstack.payhero_simulator import PayHeroSimulator
from devstack.processes import ROOT, Gunicorn
from tests.browser import axe, views
from tests.browser.views import VIEWPORTS, VIEWS
from tests.conftest import TEST_SECRET, gunicorn_env, stop_quickly
from tests.support.events import DEMO_FILE, event_spec, save_events

OUTPUT = ROOT / "tests" / "output"
EVENT = "views-2026"
SIZES = [f"{w}x{h}" for w, h in VIEWPORTS]
SUPPORT = "call 0700 000 000 or write to help@example.com"
PROMPT_SECONDS, HELP_SECONDS = 15, 10


@pytest.fixture(scope="module")
def simulator() -> Iterator[PayHeroSimulator]:
    simulator = PayHeroSimulator(delay=2, slow_seconds=10).start()
    yield simulator
    simulator.stop()


@pytest.fixture(scope="module")
def shop(redis_server, mongo_server, simulator, tmp_path_factory) -> Iterator[Gunicorn]:
    """gunicorn over the session's stores (the views' event and the demo event), PayHero's simulator settling each
    push 2 s after it, at most 3 pushes to a phone in 10 minutes (each view's shopper has a new number); a push to a
    number ending in 9 answers after 10 s, past the 2 s push timeout (uncertain), and is paid 2 s later.
    Prompts live 15 s, the help shows after 10 s: the views that wait move the page's clock instead."""
    assert os.path.exists("/usr/bin/chromium"), "install Debian's chromium (make deps does)"
    assert axe.AXE_JS.exists(), "run `make deps`: it installs axe-core into tests/browser/node_modules"
    save_events(mongo_server.uri, event_spec(EVENT), json.loads(DEMO_FILE.read_text()))  # VIP KES 2,500; demo's 4,000
    settings = {"ENV": "test", "PUSH_LIMIT": 3, "PUSH_LIMIT_WINDOW": 600, "SECRET_KEY": TEST_SECRET,
                "REDIS_URL": redis_server.url,
                "MONGO_URI": mongo_server.uri, "VAR_DIR": str(tmp_path_factory.mktemp("views") / "var"),
                "PUSH_TIMEOUT": 2, "PROMPT_SECONDS": PROMPT_SECONDS, "PROMPT_HELP_SECONDS": HELP_SECONDS,
                "SUPPORT_CONTACT": SUPPORT}
    server = Gunicorn(gunicorn_env(settings, **simulator.settings), workers=2).start()
    yield server
    stop_quickly(server)


RUNNERS = 4
"""Runner processes, each with its own Chromium, sharing out the views at both sizes. Chromium keeps both cores
busy most of the run: more runners fill the gaps where a view waits on the simulator or the page's timers, and
no one runner is left with the slowest views at the end."""


@pytest.fixture(scope="module")
def seen(shop: Gunicorn, tmp_path_factory) -> dict:
    """Every registered view at each size, spread over RUNNERS processes: each takes the next view nobody has
    (views.claimed). The orders some views need made beforehand are made here, before the runners start."""
    only = [name for name in os.environ.get("EVENTI_BROWSER_VIEWS", "").split(",") if name]  # to try a few views
    spec = {"base_url": shop.base_url, "event_id": EVENT, "output": str(OUTPUT), "views": only or list(VIEWS),
            "secret": TEST_SECRET, "mongo_uri": shop.env["EVENTI_MONGO_URI"], "redis_url": shop.env["EVENTI_REDIS_URL"],
            "viewports": VIEWPORTS, "claims": str(tmp_path_factory.mktemp("view-claims"))}
    spec["prepared"] = views.prepare_each_size(spec, spec["views"], VIEWPORTS)
    env = {k: v for k, v in os.environ.items() if k != "PLAYWRIGHT_BROWSERS_PATH"}
    OUTPUT.mkdir(parents=True, exist_ok=True)
    runs, results = {}, {}
    try:
        for runner in range(RUNNERS):
            log = open(OUTPUT / f"views-{runner}.log", "w")  # which view is running, the driver's errors
            runs[runner] = (log, subprocess.Popen(
                [sys.executable, "-m", "tests.browser.views", json.dumps(spec)],
                stdout=subprocess.PIPE, stderr=log, text=True, env=env, cwd=str(ROOT)))
        for runner, (_, run) in runs.items():
            out, _ = run.communicate(timeout=420)
            assert run.returncode == 0, (OUTPUT / f"views-{runner}.log").read_text()[-3000:]
            for name, at_size in json.loads(out.strip().splitlines()[-1]).items():
                results.setdefault(name, {}).update(at_size)
    finally:
        for log, run in runs.values():
            run.kill()
            run.wait()
            log.close()
    return results


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
        # with the script, the one-step flow shows the live total, and Pay says the amount it sends
        assert found["live_total"] and found["button"] == "Pay KES 5,000"
        assert found["name_label"] == "Full name (optional, at most 100 characters)"
        assert found["tickets_hint"] == "At most 10 Regular or 4 VIP tickets per order."
    wide = dict(zip(SIZES, facts(seen, "checkout"), strict=True))["1280x800"]
    assert wide["pay_bottom"] <= wide["viewport_height"], wide  # Pay without scrolling at 1280x800


def test_field_errors_land_under_their_fields(seen) -> None:
    for found in facts(seen, "checkout-errors"):
        assert found["phone_error"] == "Enter a Kenyan mobile number, like 0712 345 678."
        assert found["email_error"] == "Enter an email address, like name@example.com."
        # a 150-character name: the limit in words, the name kept whole to shorten (never cut to 100 unsaid)
        assert (found["name_error"], found["name_length"], found["focused"]) == ("Use at most 100 characters.", 150, "name")


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
        # the form shows no total it cannot follow, and its button does not pay: the confirm step shows the total
        assert found["form"] == {"live_total": False, "button": "Continue",
                                 "next": "Next: the total to confirm before any prompt is sent."}
        confirm = found["confirm"]
        assert urlparse(confirm["url"]).path == f"/events/{EVENT}/checkout"
        assert (confirm["line"], confirm["total"], confirm["button"], confirm["amount"]) == (
            "2 × VIP at KES 2,500", "KES 5,000", "Pay KES 5,000", "5000")
        # Chromium's own post, checked as a cross-site one would be (issue 19, item 7): it carries the form token
        # and comes from our page, by its own headers
        posted = found["posted"]
        assert {"idempotencyKey", "formToken", "expectedAmount"} <= set(posted["fields"])
        assert (posted["sec_fetch_site"], posted["origin"]) == ("same-origin", found["url"].split("/orders/")[0])
    wide = dict(zip(SIZES, facts(seen, "checkout-nojs"), strict=True))["1280x800"]["confirm"]
    assert wide["pay_bottom"] <= wide["viewport_height"], wide  # Pay without scrolling at 1280x800


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
    assert [found["reloaded"] for found in facts(seen, "payment-nojs")] == [True, False]  # the reload, at one size
    for found in facts(seen, "payment-nojs"):
        assert (found["title"], found["refresh"], found["url"]) == ("Approve on your phone · eventi", "5", found["order_url"])
        assert found["pending_visible"] and not found["live_note_visible"]
        assert "This page reloads every 5 seconds until M-Pesa answers." in found["text"]
        assert "This page changes by itself" not in found["text"]


# --- Issue 21: the amount seen is the amount pushed, sold-out paths, home page, limits, M-Pesa on one line -------


def test_without_javascript_every_ticket_type_and_quantity_of_the_demo_event_is_confirmed_at_its_total(
        seen, simulator) -> None:
    assert [found["every"] for found in facts(seen, "checkout-nojs-every-total")] == [True, False]
    for found in facts(seen, "checkout-nojs-every-total"):
        assert found["quantities"] == [str(n) for n in range(1, 11)]
        expected = {f"{t} {n}": (price, name) for t, (price, most, name) in views.DEMO_PRICES.items()
                    for n in (range(1, most + 1) if found["every"] else [3])}
        assert set(found["seen"]) == set(expected) and len(expected) == (14 if found["every"] else 2)
        for choice, (price, name) in expected.items():
            quantity = int(choice.split()[1])
            total = f"KES {price * quantity:,}"
            assert found["seen"][choice] == {"line": f"{quantity} × {name} at KES {price:,}", "total": total,
                                             "button": f"Pay {total}", "amount": str(price * quantity)}, choice
        refused = {f"vip {n}": "At most 4 tickets of this type per order." for n in (5, 10)} if found["every"] else {}
        assert found["refused"] == refused
        assert (found["order_line"], found["order_total"]) == ("2 × VIP at KES 4,000", "KES 8,000")
        assert [push["amount"] for push in simulator.pushes(found["order_id"])] == [8000]  # the amount shown is pushed


def test_with_the_script_missing_the_form_goes_through_the_confirm_step(seen) -> None:
    for found in facts(seen, "checkout-script-failed"):
        assert found["form"] == {"live_total": False, "button": "Continue"}
        assert urlparse(found["url"]).path == f"/events/{EVENT}/checkout"
        assert found["confirm"] == {"line": "3 × VIP at KES 2,500", "total": "KES 7,500", "button": "Pay KES 7,500",
                                    "amount": "7500"}


def test_sold_out_says_what_is_left_and_buy_more_offers_only_that(seen) -> None:
    for found in facts(seen, "sold-out-paths"):
        stale = found["stale"]  # 409 sold_out: the count, and the choices refreshed
        assert stale["error"] == "Only 1 VIP ticket is left."
        assert (stale["ticketType"], stale["tickets"], stale["quantities"]) == ("vip", "1", ["1"])
        assert stale["vip"] == "VIP · KES 2,500 (only 1 left)" and not stale["vip_disabled"]
        assert (stale["total"], stale["button"], stale["pay_enabled"]) == ("2,500", "Pay KES 2,500", True)
        assert found["bought"] == "1 × VIP at KES 2,500"
        more = found["buy_more"]  # the last VIP bought: never VIP selected with no number, "0 × VIP", KES 0
        assert (more["ticketType"], more["tickets"], more["vip"], more["vip_disabled"]) == (
            "regular", "1", "VIP · KES 2,500 (sold out)", True)
        assert (more["line"], more["total"], more["button"], more["pay_enabled"]) == (
            "1 × Regular at KES 1,500", "1,500", "Pay KES 1,500", True)
        assert more["quantities"] == [str(n) for n in range(1, 11)] and found["focused"] == "ticket-type"


def test_the_home_page_lists_the_events_and_a_sold_out_event_leads_back(seen) -> None:
    for found in facts(seen, "events-sold-out"):
        assert (found["status"], found["title"], urlparse(found["url"]).path) == (200, "Events on sale · eventi", "/")
        assert found["item"].endswith("Sold out")
        assert "Sold out: no tickets are left for this event." in found["event_page"] and found["form"] == 0
        assert found["links"] == ["/events"]


def test_the_push_limit_is_said_before_another_try_with_no_try_again(seen) -> None:
    for found in facts(seen, "payment-push-limit"):
        assert found["views"] == ["failure"] and found["note_visible"] and not found["retry_visible"]
        assert found["fourth"]["status"] == 429 and found["fourth"]["error"] == "too_many_pushes"
        assert abs(int(found["fourth"]["retry_after"]) - found["retry_after"]) <= 5  # the same clock as Retry-After
        assert found["note"].startswith("M-Pesa prompts to this phone are paused: we send at most 3 in 10 minutes. "
                                        "You can try again after ")
        assert "Try again" not in found["text"].replace("try again after", "")
        checkout = found["checkout"]  # the checkout with that phone: when, in words, and no Pay that would be refused
        assert re.fullmatch(r"Too many M-Pesa requests to this phone number; try again in (10|9) minutes "
                            r"\(after [0-2][0-9]:[0-5][0-9]\)\.", checkout["error"]), checkout
        assert not checkout["pay_enabled"] and checkout["pay_enabled_for_another_phone"]


def test_m_pesa_never_breaks_at_its_hyphen(seen) -> None:
    shown = 0
    for name, view in VIEWS.items():
        if not view.javascript:
            continue
        for found in facts(seen, name):
            assert found["_mpesa"]["breakable"] == [], name
            shown += found["_mpesa"]["shown"]
    assert shown >= 40  # the check saw the word on many pages
