"""The checkout without JavaScript, "Try again" filled from the order, the HTML 404 pages, titles, module
preloads and the stylesheet's contrast: server side, in process (the Chromium views are in tests/browser/)."""
import dataclasses
import json
import re
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from devstack.payhero_payloads import callback_body
from devstack.processes import ROOT
from devstack.wait import eventually
from eventi import create_app
from eventi.errors import StoreUnavailable
from eventi.runtime import current_runtime
from eventi.services.idempotent_checkout import digest
from eventi.web import form_token, pages
from tests.conftest import TEST_SECRET
from tests.support.api import order_body, phone_ending
from tests.support.events import event_spec, save_events

STATIC = ROOT / "eventi" / "static"


PRICES = {"regular": 1500, "vip": 2500}
"""tests/support/events.py's prices."""


def form(event_id: str, **overrides: str) -> dict[str, str]:
    """What the confirm step of event_id's checkout posts to /checkout/pay: the form's fields as the browser sends
    them, strings only, the total it showed (`expectedAmount`), the hidden key and the form token."""
    sent = {"ticketTypeId": "vip", "quantity": "3", "name": "Wanjiru Kamau", "email": f"w{uuid.uuid4().hex[:8]}@example.com",
            "phone": "0712-345-675", "idempotencyKey": uuid.uuid4().hex, **overrides}
    quantity = int(sent["quantity"]) if sent["quantity"].isdigit() else 0
    sent.setdefault("expectedAmount", str(PRICES.get(sent["ticketTypeId"], 0) * quantity))
    return {"formToken": form_token.issue(TEST_SECRET, event_id, sent["idempotencyKey"]), **sent}


def orders_of(runtime, email: str) -> list[dict]:
    return list(runtime.store.orders.find({"email": email}))


def hidden_key(html: str) -> str:
    return re.search(r'<input type="hidden" name="idempotencyKey" value="([0-9a-f]{32})">', html).group(1)


def hidden_token(html: str) -> str:
    return re.search(r'<input type="hidden" name="formToken" value="([0-9]+\.[0-9a-f]{64})">', html).group(1)


def unwrapped(html: str) -> str:
    """The page's HTML without the nowrap spans that keep "M-Pesa" on one line (eventi/web/nobreak.py)."""
    return html.replace('<span class="nowrap">M-Pesa</span>', "M-Pesa")


def title(html: str) -> str:
    return re.search(r"<title>(.*?)</title>", html).group(1)


# --- The checkout form without JavaScript -------------------------------------------------------


def test_the_form_posts_to_the_server_with_a_one_time_key(client, unique_event) -> None:
    html = client.get(f"/events/{unique_event}/checkout").get_data(as_text=True)
    assert f'<form id="checkout" method="post" action="/events/{unique_event}/checkout" novalidate' in html
    for name in ("ticketTypeId", "quantity", "name", "email", "phone"):  # named as POST /api/orders names them
        assert f'name="{name}"' in html
    assert hidden_key(html) != hidden_key(client.get(f"/events/{unique_event}/checkout").get_data(as_text=True))
    assert form_token.is_valid(TEST_SECRET, unique_event, hidden_key(html), hidden_token(html))  # issued with its key
    # posted with our origin in `Origin` (no-referrer would make it "null"); as Referer only the origin, never the
    # ?retry= token
    assert client.get(f"/events/{unique_event}/checkout").headers["Referrer-Policy"] == "strict-origin"


def test_a_posted_form_makes_the_order_and_moves_to_the_payment_page(client, runtime, unique_event) -> None:
    sent = form(unique_event)
    answer = client.post(f"/events/{unique_event}/checkout/pay", data=sent)
    assert answer.status_code == 303
    location = urlparse(answer.headers["Location"])
    order_id = location.path.split("/")[2]
    assert location.path == f"/orders/{order_id}/status"
    assert parse_qs(location.query) == {"token": [runtime.tokens.status_token(order_id)]}  # nothing personal
    [order] = orders_of(runtime, sent["email"])
    assert str(order["_id"]) == order_id
    assert (order["ticketTypeId"], order["quantity"], order["amount"]) == ("vip", 3, 7500)
    assert (order["phone"], order["name"]) == ("254712345675", "Wanjiru Kamau")
    page = client.get(answer.headers["Location"])
    assert page.status_code == 200 and '<dd id="order-total">KES 7,500</dd>' in page.get_data(as_text=True)


def test_a_reload_of_the_post_makes_no_second_order(client, runtime, unique_event) -> None:
    sent = form(unique_event)
    first = client.post(f"/events/{unique_event}/checkout/pay", data=sent)
    again = client.post(f"/events/{unique_event}/checkout/pay", data=sent)
    assert first.status_code == again.status_code == 303
    assert first.headers["Location"] == again.headers["Location"]
    assert len(orders_of(runtime, sent["email"])) == 1


def test_the_same_key_with_changed_details_is_a_new_order(client, runtime, unique_event) -> None:
    """Back to a form the browser restored (its hidden key too), another quantity, Pay: a second order, as asked."""
    sent = form(unique_event)
    first = client.post(f"/events/{unique_event}/checkout/pay", data=sent)
    changed = client.post(f"/events/{unique_event}/checkout/pay", data={**sent, "quantity": "1", "expectedAmount": "2500"})
    assert first.status_code == changed.status_code == 303 and first.headers["Location"] != changed.headers["Location"]
    assert sorted(o["quantity"] for o in orders_of(runtime, sent["email"])) == [1, 3]


def test_a_double_submit_waits_for_the_first_answer(push_settings, unique_event) -> None:
    """The second request of a double submit arrives while the first is still pushing: it answers what the
    first answers (here a push that timed out, so the order stays pending: both go to its payment page),
    never "still being created"."""
    app = create_app({**push_settings, "PUSH_TIMEOUT": 1.5})
    try:
        client, runtime = app.test_client(), current_runtime(app)
        sent = form(unique_event, phone=phone_ending(9))  # the simulator holds this push past the timeout
        first = {}
        thread = threading.Thread(target=lambda: first.update(
            answer=client.post(f"/events/{unique_event}/checkout/pay", data=sent)))
        thread.start()
        eventually(lambda: runtime.store.orders.count_documents({"email": sent["email"]}) == 1, what="the first order stored")
        second = client.post(f"/events/{unique_event}/checkout/pay", data=sent)
        thread.join()
        assert (first["answer"].status_code, second.status_code) == (303, 303), second.get_data(as_text=True)
        assert first["answer"].headers["Location"] == second.headers["Location"]  # the same payment page
        [order] = orders_of(runtime, sent["email"])
        assert (order["status"], order["pushState"]) == ("pending", "uncertain")
    finally:
        current_runtime(app).close()


def test_a_submission_still_being_created_says_so_after_the_wait(client, runtime, unique_event, monkeypatch) -> None:
    from eventi.web import pages

    sent = form(unique_event)
    fields = {"eventId": unique_event, "ticketTypeId": "vip", "quantity": 3, "phone": "254712345675",
              "email": sent["email"], "name": "Wanjiru Kamau", "expectedAmount": 7500}
    from bson import ObjectId

    assert runtime.keys.claim(sent["idempotencyKey"], digest(fields), ObjectId()) is None  # a request in flight
    # no wait: the deadline has passed
    monkeypatch.setattr(runtime, "settings", dataclasses.replace(runtime.settings, push_timeout=-2))
    answer = client.post(f"/events/{unique_event}/checkout/pay", data=sent)
    html = unwrapped(answer.get_data(as_text=True))
    assert answer.status_code == 409 and pages.STILL_SENDING in html and "Idempotency" not in html


# --- The confirm step: the amount a shopper sees is the amount pushed (issue 21, item 1) --------------------


def hidden(html: str) -> dict[str, str]:
    """The confirm step's hidden fields: what its Pay button posts."""
    form_html = html.split('<form id="confirm"', 1)[1].split("</form>", 1)[0]
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form_html))


def confirm(client, event_id: str, **overrides: str):
    """Step 1 as the form posts it (no expectedAmount: the form has no total to confirm)."""
    sent = {k: v for k, v in form(event_id, **overrides).items() if k != "expectedAmount"}
    return sent, client.post(f"/events/{event_id}/checkout", data=sent)


def test_the_form_posts_to_a_confirm_step_showing_the_exact_total_and_pushes_nothing(client, runtime, unique_event) -> None:
    for ticket_type, quantity, line, total in (("vip", "2", "2 × VIP at KES 2,500", "KES 5,000"),
                                               ("regular", "10", "10 × Regular at KES 1,500", "KES 15,000")):
        sent, answer = confirm(client, unique_event, ticketTypeId=ticket_type, quantity=quantity)
        html = answer.get_data(as_text=True)
        assert answer.status_code == 200 and title(html) == f"Confirm {total}: Test event {unique_event} · eventi"
        assert f'<dd id="confirm-line">{line}</dd>' in html and f'<dd id="confirm-total">{total}</dd>' in html
        assert f'<button type="submit" id="pay" name="action" value="pay">Pay {total}</button>' in html
        assert '<dd id="confirm-phone" class="nowrap">0712 345 675</dd>' in html
        carried = hidden(html)  # Pay carries the confirmed amount, the same key and a form token for it
        assert carried["expectedAmount"] == total[4:].replace(",", "") and carried["idempotencyKey"] == sent["idempotencyKey"]
        assert form_token.is_valid(TEST_SECRET, unique_event, carried["idempotencyKey"], carried["formToken"])
        assert {name: carried[name] for name in ("ticketTypeId", "quantity", "name", "email", "phone")} == {
            name: sent[name] for name in ("ticketTypeId", "quantity", "name", "email", "phone")}
        assert f'action="/events/{unique_event}/checkout/pay"' in html
        assert orders_of(runtime, sent["email"]) == []  # nothing stored, held or pushed before Pay
    assert runtime.tickets.left(runtime.events.get(unique_event)) == {"regular": 1_000_000, "vip": 1_000_000}


def test_pay_from_the_confirm_step_makes_the_order_at_the_confirmed_amount(client, runtime, unique_event) -> None:
    _, answer = confirm(client, unique_event, ticketTypeId="vip", quantity="2")
    carried = hidden(answer.get_data(as_text=True))
    paid = client.post(f"/events/{unique_event}/checkout/pay", data={**carried, "action": "pay"})
    assert paid.status_code == 303 and urlparse(paid.headers["Location"]).path.startswith("/orders/")
    [order] = orders_of(runtime, carried["email"])
    assert (order["ticketTypeId"], order["quantity"], order["amount"]) == ("vip", 2, 5000)


def test_pay_is_refused_when_the_confirmed_total_is_not_the_price_now(client, runtime) -> None:
    """The price changed between the confirm step and Pay: nothing held, stored or pushed; the confirm step again
    with the new total, whose Pay then goes through at that total."""
    event_id = "ev-" + uuid.uuid4().hex[:12]
    save_events(runtime.settings.mongo_uri, event_spec(event_id))
    _, answer = confirm(client, event_id, ticketTypeId="vip", quantity="2")
    carried = hidden(answer.get_data(as_text=True))
    assert carried["expectedAmount"] == "5000"
    raised = event_spec(event_id)
    raised["ticketTypes"][1]["price"] = 4000
    save_events(runtime.settings.mongo_uri, raised)
    refused = client.post(f"/events/{event_id}/checkout/pay", data={**carried, "action": "pay"})
    html = unwrapped(refused.get_data(as_text=True))
    assert refused.status_code == 409 and orders_of(runtime, carried["email"]) == []
    assert runtime.tickets.left(runtime.events.get(event_id))["vip"] == 1_000_000
    assert pages.PRICE_CHANGED.format(total="KES 8,000") in html
    assert '<dd id="confirm-total">KES 8,000</dd>' in html and ">Pay KES 8,000</button>" in html
    again = hidden(html)
    assert again["expectedAmount"] == "8000"
    paid = client.post(f"/events/{event_id}/checkout/pay", data={**again, "action": "pay"})
    assert paid.status_code == 303
    [order] = orders_of(runtime, carried["email"])
    assert (order["quantity"], order["amount"]) == (2, 8000)


@pytest.mark.parametrize("expected", [None, "", "5,000", "-1"])
def test_pay_without_a_confirmed_total_shows_the_confirm_step(client, runtime, unique_event, expected) -> None:
    sent = {k: v for k, v in form(unique_event, ticketTypeId="vip", quantity="2").items() if k != "expectedAmount"}
    if expected is not None:
        sent["expectedAmount"] = expected
    answer = client.post(f"/events/{unique_event}/checkout/pay", data=sent)
    assert answer.status_code == 200 and hidden(answer.get_data(as_text=True))["expectedAmount"] == "5000"
    assert orders_of(runtime, sent["email"]) == []


def test_change_the_order_goes_back_to_the_form_with_the_values(client, runtime, unique_event) -> None:
    _, answer = confirm(client, unique_event, ticketTypeId="vip", quantity="3")
    carried = hidden(answer.get_data(as_text=True))
    back = client.post(f"/events/{unique_event}/checkout/pay", data={**carried, "action": "change"})
    html = back.get_data(as_text=True)
    assert back.status_code == 200 and '<form id="checkout"' in html
    assert re.search(r'<option value="vip"[^>]*selected', html) and '<option value="3" selected>' in html
    assert 'value="Wanjiru Kamau"' in html and orders_of(runtime, carried["email"]) == []


def test_the_api_refuses_an_expected_amount_that_is_not_the_price(client, runtime, unique_event) -> None:
    body = order_body(event_id=unique_event, ticket_type="vip", quantity=2, email=f"p{uuid.uuid4().hex[:8]}@example.com")
    refused = client.post("/api/orders", json={**body, "expectedAmount": 4000})
    assert refused.status_code == 409
    assert {k: refused.json[k] for k in ("error", "message", "amount", "currency")} == {
        "error": "price_changed", "message": "The total changed since you saw it: check the new total.",
        "amount": 5000, "currency": "KES"}
    assert orders_of(runtime, body["email"]) == []
    made = client.post("/api/orders", json={**body, "expectedAmount": 5000})
    assert made.status_code == 201 and made.json["amount"] == 5000


def test_the_form_states_its_limits_and_refuses_a_name_too_long(client, runtime, unique_event) -> None:
    html = client.get(f"/events/{unique_event}/checkout").get_data(as_text=True)
    assert '<label for="name">Full name <span class="hint">(optional, at most 100 characters)</span></label>' in html
    assert 'maxlength' not in html  # the browser would cut a pasted name without a word
    assert "At most 10 Regular or 4 VIP tickets per order." in html
    assert len(re.findall(r'<option value="[0-9]+"', html)) == 10  # every quantity of any type; the server checks
    sent, answer = confirm(client, unique_event, name="N" * 150)
    refused = answer.get_data(as_text=True)
    assert answer.status_code == 400 and '<p class="error" id="name-error">Use at most 100 characters.</p>' in refused
    assert 'value="' + "N" * 150 + '"' in refused  # kept whole, for the shopper to shorten
    _, vip_too_many = confirm(client, unique_event, ticketTypeId="vip", quantity="7")
    assert vip_too_many.status_code == 400
    too_many = vip_too_many.get_data(as_text=True)
    assert '<p class="error" id="tickets-error">At most 4 tickets of this type per order.</p>' in too_many


def test_the_home_page_lists_the_events_and_marks_sold_out_ones(client, runtime) -> None:
    gone, half = "ev-" + uuid.uuid4().hex[:12], "ev-" + uuid.uuid4().hex[:12]
    save_events(runtime.settings.mongo_uri, event_spec(gone, capacity=1, vip_capacity=1), event_spec(half, vip_capacity=1))
    for event_id, ticket_types in ((gone, ("regular", "vip")), (half, ("vip",))):
        for ticket_type in ticket_types:
            assert client.post("/api/orders", json=order_body(event_id=event_id, ticket_type=ticket_type)).status_code == 201
    home = client.get("/")
    html = home.get_data(as_text=True)
    assert home.status_code == 200 and title(html) == "Events on sale · eventi"
    assert html == client.get("/events").get_data(as_text=True)
    assert re.search(rf'<li class="sold-out"><a href="/events/{gone}/checkout">[^<]*</a>\s*<span[^>]*>.*?</span>\s*'
                     r'<strong class="badge">Sold out</strong></li>', html, re.S)
    assert re.search(rf'<li><a href="/events/{half}/checkout">.*?<span class="badge-note">Sold out: VIP</span></li>', html, re.S)
    page = client.get(f"/events/{gone}/checkout").get_data(as_text=True)  # a way back from a sold-out event
    assert '<p class="alert" id="sold-out">' in page and '<a class="button" id="back-to-events" href="/events">' in page


def test_the_payment_page_says_when_the_push_limit_lets_the_next_try_go(push_settings, unique_event) -> None:
    """The phone's last allowed push: its payment page offers no "Try again" (it would be refused), and says when."""
    app = create_app({**push_settings, "PUSH_LIMIT": 2, "PUSH_LIMIT_WINDOW": 600})
    try:
        client = app.test_client()
        phone = phone_ending(5)
        first = client.post("/api/orders", json=order_body(event_id=unique_event, phone=phone)).json
        page_of_first = client.get(f"/orders/{first['orderId']}/status?token={first['statusToken']}").get_data(as_text=True)
        assert 'id="push-limit"' not in page_of_first  # one more try may go
        made = client.post("/api/orders", json=order_body(event_id=unique_event, phone=phone)).json
        html = unwrapped(client.get(f"/orders/{made['orderId']}/status?token={made['statusToken']}").get_data(as_text=True))
        note = re.search(r'<p class="notice" id="push-limit" data-retry-after="([0-9]+)">(.*?)</p>', html, re.S)
        assert note and 590 <= int(note.group(1)) <= 600
        assert re.fullmatch(r"M-Pesa prompts to this phone are paused:\s+we send at most 2 in 10 minutes\. You can try "
                            r'again after <strong class="nowrap">[0-2][0-9]:[0-5][0-9]</strong>\.', note.group(2))
        assert re.search(r'<a class="button" id="retry" href="[^"]+" hidden>Try again</a>', html)
        assert re.search(r'<a class="button" id="retry" href="[^"]+">Try again</a>', page_of_first)
    finally:
        current_runtime(app).close()


def test_invalid_fields_come_back_under_each_field_with_the_values_kept(client, runtime, unique_event) -> None:
    sent = form(unique_event, email="not-an-email", phone="0712/345/678", quantity="2")
    answer = client.post(f"/events/{unique_event}/checkout/pay", data=sent)
    html = answer.get_data(as_text=True)
    assert answer.status_code == 400 and answer.mimetype == "text/html"
    assert '<p class="error" id="email-error">Enter an email address, like name@example.com.</p>' in html
    assert '<p class="error" id="phone-error">Enter a Kenyan mobile number, like 0712 345 678.</p>' in html
    assert 'value="not-an-email" aria-describedby="email-error" aria-invalid="true" autofocus>' in html  # first invalid
    assert 'value="0712/345/678"' in html and 'value="Wanjiru Kamau"' in html
    assert 'aria-invalid="true" autofocus' not in html.split('id="phone"')[1]  # one autofocus, on the first
    assert '<option value="vip"' in html and re.search(r'<option value="vip"[^>]*selected', html)
    assert '<option value="2" selected>' in html and "2 × VIP at KES 2,500" in html and ">5,000</output>" in html
    assert title(html).startswith("Check the form: Tickets for Test event")
    assert orders_of(runtime, "not-an-email") == []


def test_missing_fields_are_asked_for_in_plain_words(client, unique_event) -> None:
    answer = client.post(f"/events/{unique_event}/checkout/pay", data=form(unique_event, email="", phone=""))
    html = unwrapped(answer.get_data(as_text=True))
    assert '<p class="error" id="email-error">Enter your email address.</p>' in html
    assert '<p class="error" id="phone-error">Enter the M-Pesa phone number to charge.</p>' in html


def test_sold_out_is_a_message_on_the_form(client, runtime) -> None:
    event_id = "ev-" + uuid.uuid4().hex[:12]
    save_events(runtime.settings.mongo_uri, event_spec(event_id, capacity=1))
    for step in ("checkout", "checkout/pay"):  # the confirm step says so before Pay, and Pay from a stale one too
        answer = client.post(f"/events/{event_id}/{step}", data=form(event_id, ticketTypeId="regular", quantity="2"))
        html = answer.get_data(as_text=True)
        assert answer.status_code == 409, step
        assert re.search(r'<div class="alert" id="form-error" role="alert" tabindex="-1">'
                         r'Only 1 Regular ticket is left.</div>', html), step
        # the form shows what is left: Regular, 1 at most, preselected
        assert re.search(r'<option value="regular"[^>]*data-most="1" selected>Regular · KES 1,500 \(only 1 left\)', html)
        assert '<option value="1" selected>1</option>' in html
    assert orders_of(runtime, "nobody") == [] and runtime.tickets.left(runtime.events.get(event_id))["regular"] == 1


def test_too_many_pushes_and_a_refused_push_are_messages_on_the_form(push_settings, unique_event) -> None:
    app = create_app({**push_settings, "PUSH_LIMIT": 1, "PUSH_LIMIT_WINDOW": 600})
    try:
        client = app.test_client()
        phone = phone_ending(8)
        assert client.post(f"/events/{unique_event}/checkout/pay", data=form(unique_event, phone=phone)).status_code == 303
        limited = client.post(f"/events/{unique_event}/checkout/pay", data=form(unique_event, phone=phone))
        assert limited.status_code == 429
        said = re.search(r'id="form-error" role="alert" tabindex="-1">([^<]*)</div>', unwrapped(limited.get_data(as_text=True)))
        assert re.fullmatch(r"Too many M-Pesa requests to this phone number; try again in (10|9) minutes "
                            r"\(after [0-2][0-9]:[0-5][0-9]\)\.", said.group(1)), said.group(1)
        refused = client.post(f"/events/{unique_event}/checkout/pay", data=form(unique_event, phone=phone_ending(7)))
        assert refused.status_code == 502
        assert 'id="form-error" role="alert" tabindex="-1">The payment provider' in refused.get_data(as_text=True)
    finally:
        current_runtime(app).close()


def test_an_unknown_event_is_the_not_found_page(client) -> None:
    answer = client.post("/events/no-such-event/checkout/pay", data=form("no-such-event"))
    assert answer.status_code == 404 and 'href="/events"' in answer.get_data(as_text=True)


# --- Only our own pages may post the form (issue 19, item 7) ----------------------------------------


def rendered_form(client, event_id: str, **overrides: str) -> dict[str, str]:
    """The form as a rendering of the checkout page fills it: its own hidden key and form token."""
    html = client.get(f"/events/{event_id}/checkout").get_data(as_text=True)
    return {**form(event_id), "idempotencyKey": hidden_key(html), "formToken": hidden_token(html), **overrides}


def claimed(runtime, key: str) -> bool:
    return runtime.keys.keys.find_one({"_id": key}) is not None


@pytest.mark.parametrize("headers", [
    {},  # an older browser: the token alone
    {"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"},  # the host the request was sent to
    {"Sec-Fetch-Site": "same-origin", "Origin": "http://127.0.0.1:8000"},  # PUBLIC_BASE_URL's origin
    {"Sec-Fetch-Site": "none"},  # the shopper's own action (a reload of the POST)
    {"Sec-Fetch-Site": "same-origin", "Origin": "null"},  # a browser that keeps the origin to itself
])
def test_a_post_from_our_own_form_is_taken(client, runtime, unique_event, headers) -> None:
    assert runtime.settings.public_base_url == "http://127.0.0.1:8000"
    sent = rendered_form(client, unique_event)
    answer = client.post(f"/events/{unique_event}/checkout/pay", data=sent, headers=headers)
    assert answer.status_code == 303 and urlparse(answer.headers["Location"]).path.startswith("/orders/")
    assert len(orders_of(runtime, sent["email"])) == 1


def stale_token(event_id: str, key: str) -> str:
    return form_token.issue(TEST_SECRET, event_id, key, now=time.time() - form_token.MAX_AGE_SECONDS - 60)


REFUSED = {
    "no token": lambda event_id, sent: ({**sent, "formToken": ""}, {}),
    "no token field": lambda event_id, sent: ({k: v for k, v in sent.items() if k != "formToken"}, {}),
    "another event's token": lambda event_id, sent: (
        {**sent, "formToken": form_token.issue(TEST_SECRET, "ev-test", sent["idempotencyKey"])}, {}),
    "another key's token": lambda event_id, sent: ({**sent, "idempotencyKey": uuid.uuid4().hex}, {}),
    "a token older than its max age": lambda event_id, sent: (
        {**sent, "formToken": stale_token(event_id, sent["idempotencyKey"])}, {}),
    "a token under another secret": lambda event_id, sent: (
        {**sent, "formToken": form_token.issue("not-our-secret", event_id, sent["idempotencyKey"])}, {}),
    "Sec-Fetch-Site cross-site": lambda event_id, sent: (sent, {"Sec-Fetch-Site": "cross-site"}),
    "Sec-Fetch-Site same-site": lambda event_id, sent: (sent, {"Sec-Fetch-Site": "same-site"}),
    "a foreign Origin": lambda event_id, sent: (sent, {"Origin": "https://evil.example"}),
    "a foreign Origin, same-origin claimed": lambda event_id, sent: (
        sent, {"Origin": "http://localhost.evil.example", "Sec-Fetch-Site": "same-origin"}),
    "Origin null": lambda event_id, sent: (sent, {"Origin": "null"}),
    "Origin null from another site": lambda event_id, sent: (sent, {"Origin": "null", "Sec-Fetch-Site": "cross-site"}),
    "our host on another port": lambda event_id, sent: (sent, {"Origin": "http://localhost:8080"}),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_post_not_from_our_own_form_is_refused_and_changes_nothing(client, runtime, unique_event, case) -> None:
    data, headers = REFUSED[case](unique_event, rendered_form(client, unique_event))
    answer = client.post(f"/events/{unique_event}/checkout/pay", data=data, headers=headers)
    html = unwrapped(answer.get_data(as_text=True))
    assert answer.status_code == 403 and answer.mimetype == "text/html", case
    assert title(html) == "Checkout not sent · eventi" and "no M-Pesa prompt was sent" in html
    assert f'<a class="button" id="checkout-link" href="/events/{unique_event}/checkout">' in html  # back to the form
    assert answer.headers["Cache-Control"] == "no-store"
    assert orders_of(runtime, data["email"]) == []  # nothing stored
    assert not claimed(runtime, data.get("idempotencyKey", "")), "a refused post claimed its key"


def test_refused_posts_push_nothing_and_the_real_form_still_works(push_settings, payhero_simulator, unique_event) -> None:
    """With real STK pushes and a push limit of 1 for the phone: no refused post reached PayHero (the limit
    would refuse the real one), and the shopper's own form then makes one order with one push."""
    app = create_app({**push_settings, "PUSH_LIMIT": 1, "PUSH_LIMIT_WINDOW": 600})
    try:
        client, runtime = app.test_client(), current_runtime(app)
        phone = phone_ending(8)
        for case, make in REFUSED.items():
            data, headers = make(unique_event, rendered_form(client, unique_event, phone=phone))
            assert client.post(f"/events/{unique_event}/checkout/pay", data=data, headers=headers).status_code == 403, case
        sent = rendered_form(client, unique_event, phone=phone)
        answer = client.post(f"/events/{unique_event}/checkout/pay", data=sent,
                             headers={"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"})
        assert answer.status_code == 303, answer.get_data(as_text=True)
        [order] = orders_of(runtime, sent["email"])
        assert runtime.store.orders.count_documents({"phone": order["phone"]}) == 1
        assert len(payhero_simulator.pushes(str(order["_id"]))) == 1
    finally:
        current_runtime(app).close()


def test_a_refused_post_for_an_unknown_event_links_to_the_events(client) -> None:
    answer = client.post("/events/no-such-event/checkout/pay", data={"email": "x@example.com"})
    html = answer.get_data(as_text=True)
    assert answer.status_code == 403 and 'id="back" href="/events"' in html


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "multipart/form-data", "text/plain"])
def test_the_json_api_refuses_what_a_plain_form_can_post(client, runtime, unique_event, content_type) -> None:
    """A form on another site can post these three types only, and never with an Idempotency-Key: POST
    /api/orders takes application/json (a CORS preflight, which only EVENTI_CORS_ORIGINS pass), so 415."""
    body = order_body(event_id=unique_event, email=f"w{uuid.uuid4().hex[:8]}@example.com")
    data = json.dumps(body) if content_type == "text/plain" else {k: str(v) for k, v in body.items()}
    answer = client.post("/api/orders", data=data, content_type=content_type,
                         headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
    assert (answer.status_code, answer.json["error"]) == (415, "unsupported_media_type")
    assert "Access-Control-Allow-Origin" not in answer.headers
    assert orders_of(runtime, body["email"]) == [] and runtime.store.orders.count_documents({"eventId": unique_event}) == 0


# --- Pay again after a 5xx is the same submission (issue 19, item 3) -----------------------------------


def test_pay_again_after_a_503_replays_the_same_submission(client, runtime, unique_event, monkeypatch) -> None:
    """The store fails while the order is inserted (503): the form comes back with the same key and a token
    for it, so Pay again is the same submission: one order, under the orderId reserved for the key."""
    sent = rendered_form(client, unique_event)

    def store_fails(*args, **kwargs):
        raise StoreUnavailable()

    monkeypatch.setattr(runtime.store, "create_order", store_fails)
    failed = client.post(f"/events/{unique_event}/checkout/pay", data=sent)
    html = failed.get_data(as_text=True)
    assert failed.status_code == 503 and 'id="form-error" role="alert" tabindex="-1">' + StoreUnavailable.message in html
    assert hidden_key(html) == sent["idempotencyKey"]  # the same submission
    assert form_token.is_valid(TEST_SECRET, unique_event, sent["idempotencyKey"], hidden_token(html))
    assert 'value="Wanjiru Kamau"' in html and orders_of(runtime, sent["email"]) == []
    reserved = runtime.keys.keys.find_one({"_id": sent["idempotencyKey"]})["orderId"]
    monkeypatch.undo()  # the store answers again; a minute has passed, so the stopped request is settled now:
    monkeypatch.setattr(runtime.creations, "_unanswered_after", timedelta(0))
    again = client.post(f"/events/{unique_event}/checkout/pay", data={**sent, "formToken": hidden_token(html)})
    assert again.status_code == 303, again.get_data(as_text=True)
    [order] = orders_of(runtime, sent["email"])
    assert order["_id"] == reserved and urlparse(again.headers["Location"]).path == f"/orders/{reserved}/status"


def test_a_503_while_the_first_request_may_still_land_keeps_the_key_on_the_409_too(client, runtime, unique_event,
                                                                                   monkeypatch) -> None:
    sent = rendered_form(client, unique_event)
    fields = {"eventId": unique_event, "ticketTypeId": "vip", "quantity": 3, "phone": "254712345675",
              "email": sent["email"], "name": "Wanjiru Kamau", "expectedAmount": 7500}
    from bson import ObjectId

    assert runtime.keys.claim(sent["idempotencyKey"], digest(fields), ObjectId()) is None  # a request in flight
    monkeypatch.setattr(runtime, "settings", dataclasses.replace(runtime.settings, push_timeout=-2))
    answer = client.post(f"/events/{unique_event}/checkout/pay", data=sent)
    assert answer.status_code == 409 and hidden_key(answer.get_data(as_text=True)) == sent["idempotencyKey"]


def test_a_push_payhero_refused_gives_the_form_a_new_key(push_settings, unique_event) -> None:
    """A refused push (502) is a settled answer: the order is stored failed, nothing reached the phone, and the
    same key would only replay that 502. Pay again is a new submission."""
    app = create_app(push_settings)
    try:
        client = app.test_client()
        sent = rendered_form(client, unique_event, phone=phone_ending(7))
        refused = client.post(f"/events/{unique_event}/checkout/pay", data=sent)
        html = refused.get_data(as_text=True)
        assert refused.status_code == 502 and hidden_key(html) != sent["idempotencyKey"]
        assert form_token.is_valid(TEST_SECRET, unique_event, hidden_key(html), hidden_token(html))
    finally:
        current_runtime(app).close()


def test_the_form_token_holds_its_event_key_and_age() -> None:
    now = 1_800_000_000
    token = form_token.issue(TEST_SECRET, "ev-a", "k1", now=now)
    assert form_token.is_valid(TEST_SECRET, "ev-a", "k1", token, now=now + form_token.MAX_AGE_SECONDS)
    assert not form_token.is_valid(TEST_SECRET, "ev-a", "k1", token, now=now + form_token.MAX_AGE_SECONDS + 1)
    assert not form_token.is_valid(TEST_SECRET, "ev-a", "k1", token, now=now - form_token.CLOCK_SKEW_SECONDS - 1)
    assert not form_token.is_valid(TEST_SECRET, "ev-b", "k1", token, now=now)
    assert not form_token.is_valid(TEST_SECRET, "ev-a", "k2", token, now=now)
    assert not form_token.is_valid(TEST_SECRET, "ev-a", "k1\n", token, now=now)
    issued, mac = token.split(".")
    assert not form_token.is_valid(TEST_SECRET, "ev-a", "k1", f"{int(issued) + 1}.{mac}", now=now)  # the time is signed
    for junk in ("", "x", token + "0", token.upper(), f"-1.{mac}", f"{issued}.{mac[:-1]}"):
        assert not form_token.is_valid(TEST_SECRET, "ev-a", "k1", junk, now=now), junk


def test_origins_compare_as_browsers_send_them() -> None:
    ours = {form_token.origin_of("https://tickets.example.com/"), form_token.origin_of("http://127.0.0.1:8000")}
    assert ours == {"https://tickets.example.com", "http://127.0.0.1:8000"}
    assert form_token.origin_of("https://Tickets.Example.com:443/path") == "https://tickets.example.com"
    for origin in ("https://tickets.example.com", "http://127.0.0.1:8000", None):
        assert form_token.from_our_pages("same-origin", origin, ours), origin
    assert form_token.from_our_pages("same-origin", "null", ours)  # Sec-Fetch-Site vouches for it
    assert not form_token.from_our_pages(None, "null", ours) and not form_token.from_our_pages("none", "null", ours)
    for origin in ("", "http://tickets.example.com", "https://tickets.example.com.evil.example",
                   "https://tickets.example.com:8443", "http://127.0.0.1"):
        assert not form_token.from_our_pages("same-origin", origin, ours), origin
    assert form_token.from_our_pages(None, None, ours) and form_token.from_our_pages("none", None, ours)
    assert not form_token.from_our_pages("cross-site", None, ours) and not form_token.from_our_pages("same-site", None, ours)


# --- "Try again" fills the form from the order ------------------------------------------------------


def failed_order(client, runtime, event_id: str, **fields: object) -> tuple[str, str]:
    made = client.post("/api/orders", json=order_body(event_id=event_id, **fields)).json
    url = f"/api/payhero/callback?token={runtime.tokens.callback_token(made['orderId'])}"
    assert client.post(url, json=callback_body(made["orderId"], "insufficient-funds", amount=made["amount"])).status_code == 200
    return made["orderId"], made["statusToken"]


def test_try_again_fills_the_form_from_the_failed_order(client, runtime, unique_event) -> None:
    order_id, token = failed_order(client, runtime, unique_event, ticket_type="vip", quantity=3, phone="+254 712 345 675",
                                   email="retry@example.com", name="Achieng Otieno")
    status = client.get(f"/orders/{order_id}/status?token={token}").get_data(as_text=True)
    retry = re.search(r'<a class="button" id="retry" href="([^"]+)">', status).group(1).replace("&amp;", "&")
    assert urlparse(retry).path == f"/events/{unique_event}/checkout"
    assert parse_qs(urlparse(retry).query) == {"retry": [order_id], "token": [token]}  # ids and the token: nothing personal
    html = client.get(retry).get_data(as_text=True)
    assert re.search(r'<option value="vip"[^>]*selected', html) and '<option value="3" selected>' in html
    assert 'value="Achieng Otieno"' in html and 'value="retry@example.com"' in html and 'value="0712 345 675"' in html
    assert "3 × VIP at KES 2,500" in html and ">7,500</output>" in html


def test_try_again_with_a_wrong_token_or_another_event_is_an_empty_form(client, runtime, unique_event) -> None:
    order_id, token = failed_order(client, runtime, unique_event, email="retry@example.com")
    wrong = token[:-1] + ("1" if token.endswith("0") else "0")
    for url in (f"/events/{unique_event}/checkout?retry={order_id}&token={wrong}",
                f"/events/ev-test/checkout?retry={order_id}&token={token}",
                f"/events/{unique_event}/checkout?retry=nope&token={token}"):
        page = client.get(url)
        assert page.status_code == 200 and "retry@example.com" not in page.get_data(as_text=True), url


# --- Not found -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/nope", "/events/", "/orders", "/orders/x", "/events/demo/tickets/more", "/favicon.ico"])
def test_unknown_page_paths_are_an_html_page_with_a_link_to_the_events(client, path) -> None:
    page = client.get(path)
    html = page.get_data(as_text=True)
    assert page.status_code == 404 and page.mimetype == "text/html", path
    assert title(html) == "Page not found · eventi" and '<a class="button' in html and 'href="/events"' in html
    assert page.headers["Cache-Control"] == "no-store"


def test_an_unknown_path_under_an_event_links_to_that_event(client, unique_event) -> None:
    html = client.get(f"/events/{unique_event}/pay").get_data(as_text=True)
    link = f'<a class="button" id="event-link" href="/events/{unique_event}/checkout">Tickets for Test event {unique_event}</a>'
    assert link in html
    assert 'id="event-link"' not in client.get("/events/no-such-event/pay").get_data(as_text=True)


@pytest.mark.parametrize("path", ["/api/nope", "/api/orders/x/y/z", "/api"])
def test_api_paths_keep_the_json_404(client, path) -> None:
    answer = client.get(path)
    assert answer.status_code == 404 and answer.is_json and answer.json["error"] == "not_found", path


def test_static_paths_are_not_pages() -> None:
    """(A request for a missing static file is not made here: tests/test_openapi_answers.py would hold the
    static route to the API document.)"""
    from eventi.web.pages import is_page_path

    assert not any(map(is_page_path, ["/static/nope.js", "/static", "/api/x", "/api"]))
    assert all(map(is_page_path, ["/", "/events/x", "/staticky", "/apis"]))


def test_a_missing_order_page_has_a_real_link(client) -> None:
    html = client.get("/orders/6751a3f2c9e77b0012ab34cd/status?token=x").get_data(as_text=True)
    assert 'href="/events"' in html and "start again from the event page" not in html


# --- Titles, module preloads, contrast -------------------------------------------------------------


def test_tab_titles_say_what_the_page_is(client, unique_event) -> None:
    assert title(client.get("/events").get_data(as_text=True)) == "Events on sale · eventi"
    checkout_page = client.get(f"/events/{unique_event}/checkout").get_data(as_text=True)
    assert title(checkout_page) == f"Tickets for Test event {unique_event} · eventi"


def imported_modules(script: str) -> list[str]:
    """script and every module it imports, transitively (static `import … from "./x.js"` only)."""
    found, todo = [], [script]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.append(name)
        source = (STATIC / name).read_text()
        todo += [str(Path(name).parent / m) for m in re.findall(r'^\s*import\b[^;]*?from\s+"\./([^"]+)"', source, re.M)]
    return found


def test_each_page_preloads_its_script_and_every_module_it_imports(client, unique_event) -> None:
    made = client.post("/api/orders", json=order_body(event_id=unique_event)).json
    for url in (f"/events/{unique_event}/checkout", f"/orders/{made['orderId']}/status?token={made['statusToken']}"):
        html = client.get(url).get_data(as_text=True)
        [script, shared] = re.findall(r'<script type="module" src="/static/([^"]+)">', html)
        assert shared == "js/nobreak.js" and imported_modules(shared) == [shared]  # every page's, imports nothing
        preloaded = re.findall(r'<link rel="modulepreload" href="/static/([^"]+)">', html)
        assert sorted(preloaded) == sorted(imported_modules(script)), url
        assert html.index("modulepreload") < html.index("<body>")
    assert "js/long-poll.js" in imported_modules("js/status.js")


def luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def css_rule(css: str, selector: str) -> str:
    """The declarations of the rule whose selector list starts with selector, variables resolved."""
    variables = dict(re.findall(r"--([a-z]+):\s*(#[0-9a-f]{6})", css))
    body = re.search(re.escape(selector) + r"[^{]*\{([^}]*)\}", css).group(1)
    return re.sub(r"var\(--([a-z]+)\)", lambda m: variables[m.group(1)], body)


def colour(declarations: str, prop: str) -> str:
    return re.search(rf"(?:^|;|\s){prop}:[^;]*?(#[0-9a-f]{{6}})", declarations).group(1)


def test_controls_and_text_meet_wcag_aa_contrast() -> None:
    """What axe cannot see (focus rings, borders, a disabled button): 3:1 for controls, 4.5:1 for text."""
    css = (STATIC / "css" / "eventi.css").read_text()
    white, page_bg = "#ffffff", dict(re.findall(r"--([a-z]+):\s*(#[0-9a-f]{6})", css))["bg"]
    focus = colour(css_rule(css, "a:focus-visible"), "outline")
    border = colour(css_rule(css, "input, select"), "border")
    busy = css_rule(css, "button:disabled")
    assert contrast(focus, white) >= 3 and contrast(focus, page_bg) >= 3
    assert contrast(border, white) >= 3
    assert contrast(colour(busy, "color"), colour(busy, "background")) >= 4.5 and "opacity" not in busy
    muted = colour(css_rule(css, ".muted, .hint"), "color")
    assert contrast(muted, white) >= 4.5 and contrast(muted, page_bg) >= 4.5


def test_m_pesa_is_kept_whole_in_text_but_not_in_tags_or_where_already_kept() -> None:
    from eventi.web.nobreak import keep_whole

    kept = '<span class="nowrap">M-Pesa</span>'
    assert keep_whole('<p title="M-Pesa">Pay with M-Pesa, M-Pesa only</p>') == (
        f'<p title="M-Pesa">Pay with {kept}, {kept} only</p>')
    assert keep_whole(f"<h1>From {kept}</h1>") == f"<h1>From {kept}</h1>"  # not wrapped twice
    assert keep_whole("<p>M&#45;Pesa &lt;M-Pesa&gt;</p>") == f"<p>M&#45;Pesa &lt;{kept}&gt;</p>"
