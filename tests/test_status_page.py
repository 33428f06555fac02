"""The payment page rendered on the server at each state: what it says, its title, its data for status.js."""
import re
from datetime import timedelta

import pytest

from eventi import create_app
from eventi.config import DEV_SUPPORT_CONTACT
from eventi.domain.models import utcnow
from eventi.domain.reasons import REFUND_NEEDED_REASON
from eventi.runtime import current_runtime
from eventi.web.payment_page import REFUND, countdown_text, listen_left, mask_phone, payment_view
from tests.support.api import callback_body, order_body

SUPPORT = "call 0700 000 000 or write to help@example.com"
PHONE = "0712345010"


@pytest.fixture
def page_app(settings):
    app = create_app({**settings, "SUPPORT_CONTACT": SUPPORT, "PROMPT_HELP_SECONDS": 30})
    yield app.test_client(), current_runtime(app)
    current_runtime(app).close()


def new_order(client, event_id, **fields):
    response = client.post("/api/orders", json=order_body(event_id=event_id, quantity=2, phone=PHONE, **fields))
    assert response.status_code == 201, response.json
    return response.json["orderId"], response.json["statusToken"]


def pushed(runtime, order_id, ago, life=60, **extra):
    """As if the STK push went out `ago` seconds ago and its prompt lives `life` seconds."""
    at = utcnow() - timedelta(seconds=ago)
    runtime.store.set_fields(order_id, {"pushedAt": at, "promptExpiresAt": at + timedelta(seconds=life), **extra})
    return at + timedelta(seconds=life)


def page(client, order_id, token):
    response = client.get(f"/orders/{order_id}/status?token={token}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def title(html):
    return re.search(r"<title>(.*?)</title>", html).group(1)


def refresh(html):
    found = re.search(r'<noscript><meta http-equiv="refresh" content="(\d+)"></noscript>', html.split("</head>")[0])
    return int(found.group(1)) if found else None


def view_of(html, name):
    """The markup of one view (#view-<name>) and whether it is shown."""
    found = re.search(rf'<div id="view-{name}" class="[^"]*"( hidden)?>(.*?)\n    </div>\n', html, re.S)
    return (found.group(2), not found.group(1)) if found else (None, False)


def summary(html):
    return html.split('<dl class="receipt summary" id="order-summary">')[1].split("</dl>")[0]


def assert_summary(html, event_id, order_id):
    part = summary(html)
    assert f'<dd id="event-name">Test event {event_id}</dd>' in part and ' EAT</time>' in part
    assert '<dd id="order-line">2 × Regular at KES 1,500</dd>' in part and '<dd id="order-total">KES 3,000</dd>' in part
    assert '<dd id="order-email" class="email">shopper@example.com</dd>' in part
    assert f'<dd id="order-reference" class="reference">{order_id[-8:].upper()}</dd>' in part
    assert order_id not in re.sub(r"<[^>]*>", "", html)  # only in URLs: the short reference is what the shopper reads


def test_phones_are_masked_and_countdowns_read_as_clocks():
    assert mask_phone("254712345010") == "07•• ••• 010" and mask_phone("254112345678") == "01•• ••• 678"
    assert mask_phone("") == "your phone"
    assert (countdown_text(60), countdown_text(9), countdown_text(0)) == ("1:00", "0:09", "0:00")


def test_waiting_shows_the_masked_phone_the_amount_a_countdown_and_reloads_without_js(page_app, unique_event):
    client, runtime = page_app
    order_id, token = new_order(client, unique_event)
    expires = pushed(runtime, order_id, ago=10)
    html = page(client, order_id, token)
    assert title(html) == "Approve on your phone · eventi"
    body, shown = view_of(html, "pending")
    assert shown and "Prompt sent to" in body
    assert '<strong id="prompt-phone" class="nowrap">07•• ••• 010</strong>' in body
    assert '<strong id="prompt-amount" class="nowrap">KES 3,000</strong>' in body
    assert "712345010" not in html and "254712345010" not in html  # the whole number is never on the page
    countdown = re.search(r'<p id="countdown" data-expires-at="([^"]+)" data-seconds-left="(\d+)">', html)
    assert countdown.group(1) == expires.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert 45 <= int(countdown.group(2)) <= 50 and f'data-prompt-left="{countdown.group(2)}"' in html
    assert 'id="countdown-left" class="countdown">0:' in html
    assert re.search(r'data-help-after="(\d+)"', html).group(1) in {"19", "20"}  # 30 s after the push
    assert '<div id="prompt-help" class="help" hidden>' in html
    assert refresh(html) == 5 and "This page reloads every 5 seconds" in html
    assert '<p id="live-note" class="muted" hidden>' in html  # "changes by itself" only once status.js runs
    assert "updates by itself" not in html
    assert_summary(html, unique_event, order_id)


def test_help_shows_once_the_prompt_is_old_and_offers_to_change_the_number(page_app, unique_event):
    client, runtime = page_app
    order_id, token = new_order(client, unique_event)
    pushed(runtime, order_id, ago=40)
    html = page(client, order_id, token)
    assert '<div id="prompt-help" class="help">' in html and 'data-help-after="0"' in html
    retry = f"/events/{unique_event}/checkout?retry={order_id}&amp;token={token}"
    assert "Didn't get a prompt?" in html and f'<a id="change-number" href="{retry}">' in html
    assert "on, unlocked and has signal" in html


def test_an_expired_prompt_says_we_have_not_heard_and_never_asks_for_the_pin(page_app, unique_event):
    client, runtime = page_app
    order_id, token = new_order(client, unique_event)
    pushed(runtime, order_id, ago=61)
    html = page(client, order_id, token)
    assert title(html) == "Waiting for M-Pesa · eventi"
    body, shown = view_of(html, "unknown")
    assert shown and "do not pay again" in body
    assert 'We have not heard from <span class="nowrap">M-Pesa</span> yet' in body  # no break after "M-" on a phone
    assert f'<strong class="reference">{order_id[-8:].upper()}</strong>: {SUPPORT}.' in body
    assert 'id="view-pending"' not in html and "PIN" not in html
    assert 'data-prompt-left="0"' in html and refresh(html) == 15
    assert_summary(html, unique_event, order_id)


def test_an_uncertain_push_warns_not_to_pay_twice(page_app, unique_event):
    client, runtime = page_app
    order_id, token = new_order(client, unique_event)
    pushed(runtime, order_id, ago=2, pushState="uncertain")
    html = page(client, order_id, token)
    body, shown = view_of(html, "pending")
    assert shown and 'data-push-state="uncertain"' in html
    assert "If a prompt appears, approve it: don't pay twice." in body and 'id="push-uncertain"' in body
    assert "Prompt sent to" not in body  # we do not know that it was
    assert title(html) == "Approve on your phone · eventi" and refresh(html) == 5


def test_without_a_push_there_is_no_countdown(page_app, unique_event):
    client, _ = page_app
    order_id, token = new_order(client, unique_event)
    html = page(client, order_id, token)
    assert 'id="countdown"' not in html and 'data-prompt-left=""' in html and refresh(html) == 5


def settle(client, runtime, order_id, kind):
    url = f"/api/payhero/callback?token={runtime.tokens.callback_token(order_id)}"
    assert client.post(url, json=callback_body(order_id, kind, amount=3000)).status_code == 200


def test_success_names_the_event_the_tickets_and_the_email_and_stops_reloading(page_app, unique_event):
    client, runtime = page_app
    order_id, token = new_order(client, unique_event)
    pushed(runtime, order_id, ago=5)
    settle(client, runtime, order_id, "success")
    html = page(client, order_id, token)
    assert title(html) == "Paid · eventi" and refresh(html) is None and "reloads every" not in html
    body, shown = view_of(html, "success")
    assert shown and f"KES 3,000 paid for 2 × Regular, Test event {unique_event}." in body
    assert '<strong id="success-email" class="email">shopper@example.com</strong>' in body
    assert '<dd id="receipt">SAE3YULR0Y</dd>' in body
    assert 'data-prompt-left=""' in html and 'id="countdown"' not in html
    assert_summary(html, unique_event, order_id)


@pytest.mark.parametrize("kind, heading, reason", [
    ("wrong-pin", "Payment not completed", 'Wrong <span class="nowrap">M-Pesa</span> PIN: try again with the right PIN.'),
    ("cancelled", "Payment cancelled", "You cancelled the request: try again when you are ready."),
])
def test_failure_gives_the_plain_reason_the_reference_and_the_support_contact(page_app, unique_event, kind, heading,
                                                                              reason):
    client, runtime = page_app
    order_id, token = new_order(client, unique_event)
    pushed(runtime, order_id, ago=5)
    settle(client, runtime, order_id, kind)
    html = page(client, order_id, token)
    assert title(html) == f"{heading} · eventi" and refresh(html) is None
    body, shown = view_of(html, "failure")
    assert shown and f'<h1 tabindex="-1">{heading}</h1>' in body and f'<p id="failure-reason">{reason}</p>' in body
    assert f'<strong class="reference">{order_id[-8:].upper()}</strong>: {SUPPORT}.' in body
    retry = f"/events/{unique_event}/checkout?retry={order_id}&amp;token={token}"
    assert f'<a class="button" id="retry" href="{retry}">Try again</a>' in body
    assert_summary(html, unique_event, order_id)


def test_the_default_support_contact_is_shown_when_none_is_set(client, unique_event):
    response = client.post("/api/orders", json=order_body(event_id=unique_event))
    order_id, token = response.json["orderId"], response.json["statusToken"]
    assert DEV_SUPPORT_CONTACT in client.get(f"/orders/{order_id}/status?token={token}").get_data(as_text=True)


def test_a_refund_needed_order_is_a_final_refund_view_without_a_countdown():
    now = utcnow()
    order = {"status": "refund_needed", "phone": "254712345010", "pushedAt": now - timedelta(minutes=20),
             "promptExpiresAt": now - timedelta(minutes=19)}
    view = payment_view(order, now, help_seconds=30)
    assert (view.state, view.title, view.refresh_seconds, view.prompt_left) == (REFUND, "Refund due", None, None)


def refund_needed(runtime, order_id, receipt="SAE3YULR0Y"):
    """As the late-payment backend leaves it: paid after the order had failed, its tickets sold out since."""
    runtime.store.set_fields(order_id, {"status": "refund_needed", "mpesaReceipt": receipt, "updatedAt": utcnow()})


def test_refund_needed_says_we_got_the_payment_and_will_refund_it_and_offers_no_second_payment(page_app, unique_event):
    client, runtime = page_app
    order_id, token = new_order(client, unique_event)
    pushed(runtime, order_id, ago=900)
    refund_needed(runtime, order_id)
    html = page(client, order_id, token)
    assert title(html) == "Refund due · eventi" and refresh(html) is None and "reloads every" not in html
    assert 'data-status="refund_needed"' in html and 'data-state="refund"' in html and 'data-prompt-left=""' in html
    body, shown = view_of(html, "refund")
    assert shown and '<h1 tabindex="-1">We received your payment: a refund is due</h1>' in body
    kept_whole = REFUND_NEEDED_REASON.text.replace("M-Pesa", '<span class="nowrap">M-Pesa</span>')  # no break at "M-"
    assert f'<p id="refund-reason">{kept_whole}</p>' in body and "we will refund you" in body
    assert '<dd id="refund-receipt">SAE3YULR0Y</dd>' in body
    assert f'<strong class="reference">{order_id[-8:].upper()}</strong>: {SUPPORT}.' in body
    assert '<a class="button secondary" id="refund-events" href="/events">' in body
    assert "Try again" not in body and "retry=" not in body and "PIN" not in body  # nothing to pay again
    for other in ("pending", "unknown", "success", "failure"):
        assert not view_of(html, other)[1], other
    assert_summary(html, unique_event, order_id)


def test_the_page_is_told_how_long_the_order_can_still_change(page_app, unique_event):
    client, runtime = page_app  # reconcile gives up 900 s after the push; swept from a cron (interval 0)
    order_id, token = new_order(client, unique_event)
    pushed(runtime, order_id, ago=100)
    left = int(re.search(r'data-listen-left="(\d+)"', page(client, order_id, token)).group(1))
    assert 900 + 300 - 100 - 5 <= left <= 900 + 300 - 100  # the give-up age, then one cron sweep
    runtime.store.set_fields(order_id, {"status": "completed"})
    assert 'data-listen-left=""' in page(client, order_id, token)  # final: nothing more to listen for


def test_the_listening_window_covers_a_long_prompt_and_the_sweep_interval():
    now = utcnow()
    order = {"status": "pending", "createdAt": now, "pushedAt": now, "promptExpiresAt": now + timedelta(seconds=600)}
    assert listen_left(order, now, give_up_seconds=120, sweep_seconds=60) == 660
    assert listen_left(order, now, give_up_seconds=900, sweep_seconds=60) == 960
    assert listen_left({**order, "pushedAt": None, "promptExpiresAt": None}, now + timedelta(hours=2), 900, 0) == 0
