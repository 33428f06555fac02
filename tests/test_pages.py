"""The shopper's pages, server side: checkout form, status page, static assets; and the e2e script."""
import subprocess

import pytest

from devstack.payhero_simulator import PayHeroSimulator
from devstack.processes import ROOT
from tests.support.api import create_order, post_callback


def test_checkout_page_shows_the_event_and_its_stored_prices(client, unique_event):
    page = client.get(f"/events/{unique_event}/checkout")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert page.headers["Cache-Control"] == "no-store"
    for field in ("ticket-type", "tickets", "name", "email", "phone"):
        assert f'<label for="{field}">' in html and f'id="{field}-error"' in html
    assert f"<h1>Test event {unique_event}</h1>" in html and "Test Hall, Nairobi" in html and " EAT</time>" in html
    assert 'data-price="1500" data-name="Regular" data-most="10"' in html
    assert 'data-price="2500" data-name="VIP" data-most="4"' in html
    assert f'data-event-id="{unique_event}"' in html and 'data-currency="KES"' in html
    assert '<option value="10">' in html and '<option value="11">' not in html  # Regular's per-order maximum
    assert "1 × Regular at KES 1,500" in html
    assert "/static/js/checkout.js" in html and "http" not in html.split("<body>")[1].split("<form")[0]


def test_checkout_offers_no_more_tickets_than_are_left(client, settings):
    from tests.support.events import event_spec, save_events

    save_events(settings["MONGO_URI"], event_spec("ev-almost-gone", capacity=3, vip_capacity=1))
    html = client.get("/events/ev-almost-gone/checkout").get_data(as_text=True)
    assert 'data-price="1500" data-name="Regular" data-most="3"' in html and '<option value="4">' not in html


@pytest.mark.parametrize("event_id", ["x" * 65, "bad id", "a.b"])
def test_checkout_for_a_malformed_event_is_a_404_page(client, event_id):
    page = client.get(f"/events/{event_id}/checkout")
    assert page.status_code == 404 and "Page not found" in page.get_data(as_text=True)
    assert 'href="/events"' in page.get_data(as_text=True)


def test_status_page_shows_what_was_bought_and_the_server_total(client, unique_event):
    order_id, token = create_order(client, event_id=unique_event, ticket_type="vip", quantity=3)
    html = client.get(f"/orders/{order_id}/status?token={token}").get_data(as_text=True)
    assert f'<dd id="event-name">Test event {unique_event}</dd>' in html and "Test Hall, Nairobi" in html
    assert '<dd id="order-line">3 × VIP at KES 2,500</dd>' in html and '<dd id="order-total">KES 7,500</dd>' in html
    assert '<strong id="prompt-amount" class="nowrap">KES 7,500</strong>' in html


def test_status_page_for_a_pending_order_asks_to_check_the_phone(client, unique_event):
    order_id, token = create_order(client, event_id=unique_event)
    page = client.get(f"/orders/{order_id}/status?token={token}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Approve the payment on your phone" in html
    assert f'data-wait-url="/api/orders/{order_id}/wait?token={token}"' in html and 'data-status="pending"' in html
    assert 'aria-live="polite"' in html and "/static/js/status.js" in html
    assert page.headers["Referrer-Policy"] == "no-referrer"


def test_status_page_of_a_final_order_shows_the_result_without_polling(client, runtime, unique_event):
    paid_id, paid_token = create_order(client, event_id=unique_event)
    failed_id, failed_token = create_order(client, event_id=unique_event)
    for order_id, kind in ((paid_id, "success"), (failed_id, "insufficient-funds")):
        assert post_callback(client, runtime, order_id, kind).status_code == 200
    paid = client.get(f"/orders/{paid_id}/status?token={paid_token}").get_data(as_text=True)
    assert 'data-status="completed"' in paid and "SAE3YULR0Y" in paid
    assert '<div id="view-success" class="view success">' in paid and '<div id="view-pending" class="view" hidden>' in paid
    failed = client.get(f"/orders/{failed_id}/status?token={failed_token}").get_data(as_text=True)
    assert '<div id="view-failure" class="view failure">' in failed
    # the plain reason, as the script shows it ("M-Pesa" kept on one line)
    assert 'Not enough <span class="nowrap">M-Pesa</span> balance: top up or use another number.' in failed
    assert "The balance is insufficient for the transaction." not in failed  # not M-Pesa's raw text
    assert f'href="/events/{unique_event}/checkout?retry={failed_id}&amp;token={failed_token}"' in failed


def test_status_page_with_a_wrong_or_missing_token_is_a_404_page(client, runtime, unique_event):
    order_id, token = create_order(client, event_id=unique_event)
    wrong = f"{token[:-1]}{'1' if token.endswith('0') else '0'}"
    for url in (f"/orders/{order_id}/status", f"/orders/{order_id}/status?token={wrong}",
                f"/orders/{order_id}/status?token={runtime.tokens.callback_token(order_id)}",
                f"/orders/nope/status?token={token}"):
        page = client.get(url)
        assert page.status_code == 404 and "Page not found" in page.get_data(as_text=True), url
        assert order_id not in page.get_data(as_text=True)


def test_static_assets_are_served(client):
    for path, mimetype in (("js/long-poll.js", "text/javascript"), ("js/status.js", "text/javascript"),
                           ("css/eventi.css", "text/css"), ("favicon.svg", "image/svg+xml")):
        response = client.get(f"/static/{path}")
        assert (response.status_code, response.mimetype) == (200, mimetype), path
    assert "export async function waitForPayment" in client.get("/static/js/long-poll.js").get_data(as_text=True)


def test_e2e_script_reports_one_line_and_exit_0(start_gunicorn):
    with PayHeroSimulator(delay=1) as simulator:
        server = start_gunicorn(workers=1, **simulator.settings)
        done = subprocess.run([str(ROOT / "scripts" / "run-payment-test.sh"), "--url", server.base_url,
                               "--simulator", simulator.base_url], capture_output=True, text=True, timeout=120)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(lines) == 1 and lines[0].startswith("e2e: ok ")
    assert "requests=2 " in lines[0] and "final=completed" in lines[0], lines[0]


def test_e2e_script_fails_when_nothing_answers():
    done = subprocess.run([str(ROOT / "scripts" / "run-payment-test.sh"), "--url", "http://127.0.0.1:9"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stdout.startswith("e2e: FAILED")
