"""A push whose fate PayHero did not tell (timeout, 5xx) keeps the order pending: its status decides, not a guess.

A refused push (4xx, or PayHero never reached) still fails the order at once (tests/test_payments.py).
"""
import threading
from datetime import datetime, timedelta

import pytest
from bson import ObjectId

from devstack.payhero_simulator import PayHeroSimulator
from eventi.domain.models import short_reference, utcnow
from eventi.payhero.client import PayHeroRejected
from eventi.runtime import current_runtime
from tests.support.api import callback_body, order_body, phone_ending
from tests.support.stand_in import JsonHandler, http_server
from tests.test_payments import client_for, push


@pytest.fixture(scope="module")
def slow_simulator():
    """Answers a push to a number ending in 9 after 5 s; it never calls back (the tests do)."""
    server = PayHeroSimulator(delay=3600, slow_seconds=5).start()
    yield server
    server.stop()


class _Answers500(JsonHandler):
    def do_POST(self):  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_json(500, {"error_message": "Internal Server Error"})


@pytest.fixture(scope="module")
def payhero_500():
    """A PayHero that takes the push and then fails: 500 (it may have reached M-Pesa first)."""
    server, url = http_server(_Answers500)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield url
    server.shutdown()
    server.server_close()


@pytest.fixture
def make_client(make_app):
    """An app of these settings: its test client and its runtime."""
    def make(**overrides):
        app = make_app(**overrides)
        return app.test_client(), current_runtime(app)

    return make


def holds_of(runtime, order_id):
    return runtime.tickets.holds.count_documents({"orderId": order_id})


def timed_out_order(make_client, slow_simulator, unique_event, **overrides):
    client, runtime = make_client(**slow_simulator.settings, PUSH_TIMEOUT=0.5, PROMPT_SECONDS=60, **overrides)
    response = client.post("/api/orders", json=order_body(event_id=unique_event, quantity=2, phone=phone_ending(9)))
    return client, runtime, response


def test_a_5xx_is_uncertain_and_a_4xx_a_refusal(payhero_simulator, payhero_500):
    with pytest.raises(PayHeroRejected, match="HTTP 500") as server_error:
        push(client_for(None, base_url=payhero_500))
    with pytest.raises(PayHeroRejected, match="HTTP 400") as refused:
        push(client_for(payhero_simulator), digit=7)
    assert (server_error.value.uncertain, refused.value.uncertain) == (True, False)


def test_a_timed_out_push_keeps_the_order_pending_and_a_paid_callback_completes_it(make_client, slow_simulator,
                                                                                    unique_event):
    client, runtime, response = timed_out_order(make_client, slow_simulator, unique_event)
    assert response.status_code == 201, response.json
    assert (response.json["paymentStatus"], response.json["pushState"]) == ("pending", "uncertain")
    order_id, token = response.json["orderId"], response.json["statusToken"]
    order = runtime.store.get_order(order_id)
    assert (order["status"], order["pushState"]) == ("pending", "uncertain")
    assert order["promptExpiresAt"] - order["pushedAt"] == timedelta(seconds=60)
    [audit] = runtime.store.events_for(order_id)
    assert (audit["source"], audit["summary"]["pushState"]) == ("stk_push", "uncertain")
    status = client.get(f"/api/orders/{order_id}?token={token}").json
    assert (status["paymentStatus"], status["pushState"], status["reference"]) == (
        "pending", "uncertain", short_reference(order_id))
    assert datetime.fromisoformat(status["promptExpiresAt"].replace("Z", "+00:00")) > datetime.fromisoformat(
        status["updatedAt"].replace("Z", "+00:00"))
    assert holds_of(runtime, order_id) == 2

    paid = client.post(f"/api/payhero/callback?token={runtime.tokens.callback_token(order_id)}",
                       json=callback_body(order_id, "success", amount=3000))
    assert paid.status_code == 200 and "duplicate" not in paid.json
    waited = client.get(f"/api/orders/{order_id}/wait?token={token}&timeout=5").json
    assert (waited["paymentStatus"], waited["final"]) == ("completed", True)
    assert "pushState" not in waited and "promptExpiresAt" not in waited  # a final body says only what happened
    assert holds_of(runtime, order_id) == 2  # the paid order keeps its tickets


def test_a_timed_out_push_without_callback_is_failed_by_reconcile_and_its_tickets_released(make_client, slow_simulator,
                                                                                          unique_event):
    client, runtime, response = timed_out_order(make_client, slow_simulator, unique_event,
                                              RECONCILE_AFTER_SECONDS=600, RECONCILE_GIVE_UP_SECONDS=600)
    assert response.status_code == 201 and response.json["pushState"] == "uncertain"
    order_id, token = response.json["orderId"], response.json["statusToken"]
    assert holds_of(runtime, order_id) == 2
    runtime.reconciler().run_once()
    assert runtime.store.get_order(order_id)["status"] == "pending"  # younger than the give-up age: left alone
    # as if nothing came for an hour (the first run put the order aside until its give-up age)
    runtime.store.orders.update_one({"_id": ObjectId(order_id)}, {"$set": {"pushedAt": utcnow() - timedelta(hours=1)},
                                                                  "$unset": {"reconcileAfter": ""}})
    runtime.reconciler().run_once()
    waited = client.get(f"/api/orders/{order_id}/wait?token={token}&timeout=5").json
    assert (waited["paymentStatus"], waited["failureReason"], waited["reason"]) == ("failed", "no_callback", "no_callback")
    assert holds_of(runtime, order_id) == 0


def test_a_5xx_push_keeps_the_order_pending(make_client, payhero_500, payhero_simulator, unique_event):
    client, runtime = make_client(**{**payhero_simulator.settings, "PAYHERO_BASE_URL": payhero_500})
    response = client.post("/api/orders", json=order_body(event_id=unique_event, phone=phone_ending(0)))
    assert (response.status_code, response.json["pushState"]) == (201, "uncertain")
    order = runtime.store.get_order(response.json["orderId"])
    assert (order["status"], order["pushState"]) == ("pending", "uncertain") and order["pushedAt"]


def test_a_queued_push_carries_when_its_prompt_expires_but_no_push_state(make_client, payhero_simulator, unique_event):
    client, runtime = make_client(**payhero_simulator.settings, PROMPT_SECONDS=90)
    response = client.post("/api/orders", json=order_body(event_id=unique_event, phone=phone_ending(0)))
    assert response.status_code == 201 and "pushState" not in response.json
    order = runtime.store.get_order(response.json["orderId"])
    assert order["promptExpiresAt"] - order["pushedAt"] == timedelta(seconds=90)
    status = client.get(f"/api/orders/{order['_id']}?token={response.json['statusToken']}").json
    assert "pushState" not in status and status["promptExpiresAt"]
