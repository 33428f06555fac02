"""Manual (Paybill) payment when the prompt fails: the page's offer, and every C2B confirmation's edge.

Through the app on the real stores (FerretDB, Redis): a confirmation goes through the callback path (one
status claim, audited, announced), is matched by account number and exact amount, and what completes no
order is listed for a refund. docs/order-states.md cites these tests for the manual-payment edges.
"""
import re

import gevent
import pytest

from eventi import config, metrics
from eventi.payhero.simulator.app import c2b_body
from eventi.runtime import current_runtime
from eventi.web.c2b import CONFIRMATION_PATH
from tests.support.api import order_body, post_callback
from tests.test_late_payments import given_up, holds, left, status

PAYBILL = "600100"
TOKEN = "c2b-test-token-0123456789abcdefghijkl"
ACCOUNT = re.compile(r'id="manual-account" class="reference">([0-9]{8})<')


@pytest.fixture
def shop(make_app):
    app = make_app(MANUAL_PAYBILL=PAYBILL, C2B_TOKEN=TOKEN)
    return app, app.test_client(), current_runtime(app)


def order(client, event_id, quantity=1):
    created = client.post("/api/orders", json=order_body(event_id=event_id, quantity=quantity))
    assert created.status_code == 201, created.json
    return created.json["orderId"], created.json["statusToken"]


def account_on_page(client, order_id, token):
    """The account number the payment page offers (hidden until the prompt fails, but rendered)."""
    page = client.get(f"/orders/{order_id}/status?token={token}").get_data(as_text=True)
    assert 'id="manual-pay"' in page and f'id="manual-paybill" class="reference">{PAYBILL}<' in page
    return ACCOUNT.search(page).group(1)


def pay_bill(client, account, amount=1500, receipt="TKM1ANUAL1", token=TOKEN, paybill=PAYBILL):
    return client.post(CONFIRMATION_PATH, query_string={"token": token}, json=c2b_body(paybill, account, amount, receipt))


def outcome(response):
    assert response.status_code == 200, response.json
    assert (response.json["ResultCode"], response.json["ResultDesc"]) == (0, "Accepted")
    return response.json["outcome"], response.json["duplicate"]


def manual_count(name):
    return metrics.MANUAL_PAYMENTS.labels(name)._value.get()


def refunds(app):
    listed = app.test_cli_runner().invoke(args=["order", "refunds"])
    assert listed.exit_code == 0, listed.output
    return listed.output


def test_off_without_a_paybill_no_offer_and_no_confirmation_url(client, new_event):
    order_id, token = order(client, new_event(capacity=2))
    page = client.get(f"/orders/{order_id}/status?token={token}").get_data(as_text=True)
    assert "manual-pay" not in page and "Pay Bill" not in page
    assert client.post(CONFIRMATION_PATH, query_string={"token": TOKEN}, json={}).status_code == 404


def test_the_page_offers_one_account_number_per_order_which_names_that_order(shop, new_event):
    app, client, runtime = shop
    event_id = new_event(capacity=5)
    order_id, token = order(client, event_id, quantity=2)
    account = account_on_page(client, order_id, token)
    assert account_on_page(client, order_id, token) == account  # a reload shows the same number
    assert runtime.manual_store.order_id_for(account) == order_id
    page = client.get(f"/orders/{order_id}/status?token={token}").get_data(as_text=True)
    assert re.search(r'id="manual-pay" class="help manual" hidden>', page)  # waiting: the prompt may still come
    assert 'id="manual-amount">3000<' in page  # the exact amount, as typed on the keypad
    other, other_token = order(client, event_id)
    assert account_on_page(client, other, other_token) != account


def test_the_right_amount_completes_a_pending_order_once_through_the_callback_path(shop, new_event):
    app, client, runtime = shop
    event_id = new_event(capacity=3)
    order_id, token = order(client, event_id)
    account = account_on_page(client, order_id, token)
    before = manual_count("completed")
    assert outcome(pay_bill(client, account, receipt="TKC0MPLETE")) == ("completed", False)
    body = status(client, order_id, token)
    assert (body["paymentStatus"], body["mpesaReceipt"]) == ("completed", "TKC0MPLETE")
    assert runtime.waits.wait(order_id, 1).body["paymentStatus"] == "completed"  # announced: cache and store
    assert runtime.store.claim_for(order_id)["mpesaReceipt"] == "TKC0MPLETE"  # the one status claim
    assert [e["source"] for e in runtime.store.events_for(order_id)] == ["c2b"]  # audited
    assert manual_count("completed") == before + 1
    # M-Pesa delivers again: one effect, the first outcome.
    assert outcome(pay_bill(client, account, receipt="TKC0MPLETE")) == ("completed", True)
    assert manual_count("completed") == before + 1
    assert holds(runtime, order_id) == 1 and left(client, event_id) == 2
    page = client.get(f"/orders/{order_id}/status?token={token}").get_data(as_text=True)
    assert "manual-pay" not in page  # paid: nothing more to offer


def test_duplicate_deliveries_at_once_have_one_effect(shop, new_event):
    app, client, runtime = shop
    event_id = new_event(capacity=3)
    order_id, token = order(client, event_id)
    account = account_on_page(client, order_id, token)
    answers = [gevent.spawn(pay_bill, app.test_client(), account, receipt="TKRACE0001") for _ in range(5)]
    gevent.joinall(answers, raise_error=True)
    assert {outcome(g.value)[0] for g in answers} == {"completed"}
    assert runtime.manual_store.payments.count_documents({"_id": "TKRACE0001"}) == 1
    assert status(client, order_id, token)["mpesaReceipt"] == "TKRACE0001"
    assert holds(runtime, order_id) == 1 and left(client, event_id) == 2


def test_a_receipt_confirmed_again_with_other_values_keeps_the_first(shop, new_event):
    app, client, runtime = shop
    order_id, token = order(client, new_event(capacity=3))
    account = account_on_page(client, order_id, token)
    assert outcome(pay_bill(client, "00000001", receipt="TKF0RGED01")) == ("unknown_account", False)
    assert outcome(pay_bill(client, account, receipt="TKF0RGED01")) == ("unknown_account", True)
    assert status(client, order_id, token)["paymentStatus"] == "pending"


def test_another_amount_completes_nothing_and_is_listed_for_a_refund(shop, new_event):
    app, client, runtime = shop
    event_id = new_event(capacity=3)
    order_id, token = order(client, event_id)
    account = account_on_page(client, order_id, token)
    assert outcome(pay_bill(client, account, amount=1000, receipt="TKWR0NGAMT")) == ("amount_mismatch", False)
    assert status(client, order_id, token)["paymentStatus"] == "pending"  # the right amount may still come
    assert [e["source"] for e in runtime.store.events_for(order_id)] == ["c2b"]
    listed = refunds(app)
    assert "TKWR0NGAMT" in listed and "amount_mismatch" in listed and account in listed
    assert outcome(pay_bill(client, account, receipt="TKR1GHTAMT")) == ("completed", False)  # then the right one


def test_an_unknown_account_number_completes_nothing_and_is_listed_for_a_refund(shop):
    app, client, runtime = shop
    before = manual_count("unknown_account")
    assert outcome(pay_bill(client, "00000000", receipt="TKUNKN0WN1")) == ("unknown_account", False)
    assert outcome(pay_bill(client, "", receipt="TKN0ACC0NT")) == ("unknown_account", False)
    with app.app_context():  # a plain click command: the flask CLI gives it the app's context
        made = app.test_cli_runner().invoke(args=["create-indexes"])
    assert made.output == "indexes ready\n", repr(made.exception)  # with the refunds listing's index
    assert manual_count("unknown_account") == before + 2
    listed = refunds(app)
    assert "TKUNKN0WN1" in listed and "TKN0ACC0NT" in listed and "unknown_account" in listed


def test_a_manual_payment_for_an_order_paid_already_is_a_refund_never_a_second_ticket(shop, new_event):
    app, client, runtime = shop
    event_id = new_event(capacity=3)
    order_id, token = order(client, event_id)
    account = account_on_page(client, order_id, token)
    assert post_callback(client, runtime, order_id, "success", 1500).status_code == 200  # the prompt was paid
    assert outcome(pay_bill(client, account, receipt="TKTW1CEPAY")) == ("already_paid", False)
    body = status(client, order_id, token)
    assert (body["paymentStatus"], body["mpesaReceipt"]) == ("completed", "SAE3YULR0Y")  # the prompt's payment
    assert holds(runtime, order_id) == 1 and holds(runtime, order_id + ".late") == 0 and left(client, event_id) == 2
    listed = refunds(app)
    assert "TKTW1CEPAY" in listed and "already_paid" in listed


def test_a_prompt_paid_after_a_manual_payment_is_a_second_payment_kept_for_a_refund(shop, new_event):
    app, client, runtime = shop
    event_id = new_event(capacity=3)
    order_id, token = order(client, event_id)
    account = account_on_page(client, order_id, token)
    assert outcome(pay_bill(client, account, receipt="TKF1RSTPAY")) == ("completed", False)
    before = metrics.SECOND_PAYMENTS._value.get()
    for _ in range(2):  # PayHero delivers the prompt's payment twice
        late = post_callback(client, runtime, order_id, "success", 1500)
        assert late.status_code == 200 and late.json == {"received": True, "duplicate": True}
    assert metrics.SECOND_PAYMENTS._value.get() == before + 1
    stored = runtime.store.get_order(order_id)
    assert stored["mpesaReceipt"] == "TKF1RSTPAY"  # the order keeps the payment that completed it
    assert stored["secondPayments"] == [{"receipt": "SAE3YULR0Y", "amount": 1500, "source": "callback"}]
    assert holds(runtime, order_id) == 1 and holds(runtime, order_id + ".late") == 0 and left(client, event_id) == 2
    listed = refunds(app)
    assert "second payment 1500 KES  receipt SAE3YULR0Y  (the order holds TKF1RSTPAY)" in listed


def test_a_redelivered_paid_callback_is_no_second_payment(shop, new_event):
    app, client, runtime = shop
    order_id, token = order(client, new_event(capacity=3))
    for _ in range(2):
        assert post_callback(client, runtime, order_id, "success", 1500).status_code == 200
    assert "secondPayments" not in runtime.store.get_order(order_id)


def test_a_manual_payment_after_no_callback_is_a_late_payment_that_completes(shop, new_event):
    app, client, runtime = shop
    event_id = new_event(capacity=2)
    order_id, token = order(client, event_id)
    account = account_on_page(client, order_id, token)
    given_up(runtime, order_id)
    assert holds(runtime, order_id) == 0 and left(client, event_id) == 2
    page = client.get(f"/orders/{order_id}/status?token={token}").get_data(as_text=True)
    assert re.search(r'id="manual-pay" class="help manual">', page)  # failed: offered, shown
    assert outcome(pay_bill(client, account, receipt="TKLATE0001")) == ("completed", False)
    body = status(client, order_id, token)
    assert (body["paymentStatus"], body["mpesaReceipt"]) == ("completed", "TKLATE0001")
    assert holds(runtime, order_id + ".late") == 1 and left(client, event_id) == 1


def test_a_manual_payment_after_a_cancel_with_the_tickets_resold_is_refund_needed(shop, new_event):
    app, client, runtime = shop
    event_id = new_event(capacity=1)
    order_id, token = order(client, event_id)
    account = account_on_page(client, order_id, token)
    assert post_callback(client, runtime, order_id, "cancelled", 1500).status_code == 200
    order(client, event_id)  # the released ticket is sold again
    assert outcome(pay_bill(client, account, receipt="TKRES0LD01")) == ("refund_needed", False)
    body = status(client, order_id, token)
    assert (body["paymentStatus"], body["mpesaReceipt"]) == ("refund_needed", "TKRES0LD01")
    assert order_id in refunds(app)


def test_the_confirmation_url_needs_its_token_and_this_paybill(shop, new_event):
    app, client, runtime = shop
    order_id, token = order(client, new_event(capacity=2))
    account = account_on_page(client, order_id, token)
    assert pay_bill(client, account, token="wrong").status_code == 401
    assert client.post(CONFIRMATION_PATH, json=c2b_body(PAYBILL, account, 1500, "TKN0T0KEN1")).status_code == 401
    refused = pay_bill(client, account, paybill="123456")
    assert refused.status_code == 400 and "BusinessShortCode" in refused.json["details"]
    assert pay_bill(client, account, amount=1500, receipt="short").status_code == 400
    assert status(client, order_id, token)["paymentStatus"] == "pending"


def test_support_confirms_a_payment_from_the_statement_through_the_same_path(shop, new_event):
    app, client, runtime = shop
    order_id, token = order(client, new_event(capacity=2))
    account = account_on_page(client, order_id, token)
    runner = app.test_cli_runner()
    done = runner.invoke(args=["order", "confirm-manual", account, "tkcli00001", "1500"])
    assert done.exit_code == 0 and done.output.strip() == f"TKCLI00001: completed  order {order_id}"
    assert status(client, order_id, token)["mpesaReceipt"] == "TKCLI00001"
    again = runner.invoke(args=["order", "confirm-manual", account, "TKCLI00001", "1500"])
    assert "completed (confirmed before)" in again.output
    assert [e["source"] for e in runtime.store.events_for(order_id)] == ["manual"]
    shown = runner.invoke(args=["order", "show", account])  # support finds the order by its account number
    assert shown.exit_code == 0 and f"order {order_id}" in shown.output and f"accountNumber      {account}" in shown.output
    # The C2B delivery of the same payment, arriving after support typed it: the same one payment.
    assert outcome(pay_bill(client, account, receipt="TKCLI00001")) == ("completed", True)


def test_manual_payment_is_off_by_default_and_a_token_needs_a_paybill(tmp_path):
    def load(**env):
        return config.load({"VAR_DIR": str(tmp_path)}, environ=env)
    assert load().manual_paybill is None and load().c2b_token is None
    assert load(EVENTI_MANUAL_PAYBILL=" 600100 ").manual_paybill == "600100"
    with pytest.raises(config.ConfigError, match="EVENTI_C2B_TOKEN must come with EVENTI_MANUAL_PAYBILL"):
        load(EVENTI_C2B_TOKEN=TOKEN)
