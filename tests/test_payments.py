"""The STK push: the PayHero client against the simulator over HTTP, order creation, the push limit."""
import uuid

import pytest
import requests

from devstack.payhero_simulator import CHANNEL_ID, SIMULATOR_TOKEN
from devstack.processes import free_port
from eventi import create_app
from eventi.config import ConfigError, env_name, load
from eventi.payhero.client import PayHeroClient, PayHeroRejected, PayHeroUnavailable
from eventi.runtime import current_runtime
from tests.support.api import order_body, phone_ending


@pytest.fixture
def push_app(push_settings):
    """An in-process app whose orders are pushed to the session's simulator."""
    app = create_app(push_settings)
    yield app.test_client(), current_runtime(app)
    current_runtime(app).close()


def client_for(simulator, token=SIMULATOR_TOKEN, timeout=5.0, base_url=None):
    return PayHeroClient(base_url or simulator.base_url, token, CHANNEL_ID, timeout=timeout)


def push(client, digit=0, **overrides):
    fields = dict(amount=1500, phone="254" + phone_ending(digit)[1:], external_reference=uuid.uuid4().hex[:24],
                  customer_name="Wanjiru Kamau", callback_url="http://127.0.0.1:9/api/payhero/callback?token=t")
    fields.update(overrides)
    return client.stk_push(**fields), fields


def test_push_is_queued_with_the_documented_body(payhero_simulator):
    result, fields = push(client_for(payhero_simulator))
    assert result.reference and result.checkout_request_id.startswith("ws_CO_")
    [record] = payhero_simulator.pushes(fields["external_reference"])
    assert record["reference"] == result.reference
    assert record["phone_number"] == "0" + fields["phone"][3:]  # 2547... stored, 07... sent, as in PayHero's example
    assert (record["amount"], record["callback_url"], record["status"]) == (1500, fields["callback_url"], "QUEUED")


def test_transaction_status_answers_from_the_simulators_record(payhero_simulator):
    client = client_for(payhero_simulator)
    result, _ = push(client)
    status = client.transaction_status(result.reference)
    assert ((status["status"], status["reference"], status["CheckoutRequestID"])
            == ("QUEUED", result.reference, result.checkout_request_id))
    with pytest.raises(PayHeroRejected):
        client.transaction_status("NO-SUCH-REF")


def test_payhero_down_is_unavailable():
    with pytest.raises(PayHeroUnavailable):
        push(client_for(None, base_url=f"http://127.0.0.1:{free_port()}"))


def test_a_proxy_named_in_the_environment_carries_the_pushes_unless_no_proxy_says_otherwise(payhero_simulator,
                                                                                          monkeypatch):
    """The environment is read once, when the client is made (not per call), and still obeyed."""
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    proxied = client_for(payhero_simulator)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    direct = client_for(payhero_simulator)
    with pytest.raises(PayHeroUnavailable):
        push(proxied)
    assert push(direct)[0].reference


def test_pushes_reuse_one_connection_to_payhero(payhero_simulator):
    """Keep-alive, as PayHero's HTTPS endpoint allows: no connect and no DNS lookup per push."""
    client = client_for(payhero_simulator)
    pools = client._session.get_adapter(payhero_simulator.base_url).poolmanager.pools

    def pooled_sockets():
        return [conn.sock and conn.sock.getsockname() for key in pools.keys() for conn in pools[key].pool.queue
                if conn is not None]

    push(client)
    first = pooled_sockets()
    push(client)
    push(client)
    assert first == pooled_sockets() and len(first) == 1 and first[0] is not None


def test_wrong_token_is_rejected_4xx(payhero_simulator):
    with pytest.raises(PayHeroRejected, match="HTTP 401"):
        push(client_for(payhero_simulator, token="d3Jvbmc6dG9rZW4="))


def test_invalid_push_is_rejected_4xx(payhero_simulator):
    with pytest.raises(PayHeroRejected, match="HTTP 400"):
        push(client_for(payhero_simulator), amount=0)


def test_a_refused_push_is_rejected_4xx(payhero_simulator):
    with pytest.raises(PayHeroRejected, match="HTTP 400") as refused:
        push(client_for(payhero_simulator), digit=7)
    assert not refused.value.uncertain  # nothing reached the phone: the order may fail at once


def test_too_slow_is_unavailable(quick_simulator):
    with pytest.raises(PayHeroUnavailable, match="in time") as slow:
        push(client_for(quick_simulator, timeout=0.5), digit=9)
    assert slow.value.uncertain  # PayHero may still queue it: tests/test_uncertain_push.py



def test_order_creation_sends_one_push_and_keeps_payheros_references(push_app, payhero_simulator, unique_event):
    client, runtime = push_app
    response = client.post("/api/orders", json=order_body(event_id=unique_event))
    assert response.status_code == 201
    order_id = response.json["orderId"]
    order = runtime.store.get_order(order_id)
    [record] = payhero_simulator.pushes(order_id)
    assert (order["payheroReference"], order["checkoutRequestId"]) == (record["reference"], record["CheckoutRequestID"])
    assert order["pushedAt"] is not None and order["status"] == "pending"
    token = runtime.tokens.callback_token(order_id)
    assert record["callback_url"] == f"http://127.0.0.1:8000/api/payhero/callback?token={token}"


@pytest.mark.parametrize("how", ["down", "4xx"])
def test_failed_push_fails_the_order_and_answers_502(push_settings, unique_event, how):
    """PayHero surely did not queue the push (never connected, or refused it): the order fails at once."""
    overrides = {"PAYHERO_BASE_URL": f"http://127.0.0.1:{free_port()}"} if how == "down" else {}
    app = create_app({**push_settings, **overrides})
    try:
        client, runtime = app.test_client(), current_runtime(app)
        phone = phone_ending(7 if how == "4xx" else 8)
        response = client.post("/api/orders", json=order_body(event_id=unique_event, phone=phone))
        assert response.status_code == 502
        assert response.json["error"] == "payment_provider_error" and response.json["message"]
        order_id = response.json["orderId"]
        order = runtime.store.get_order(order_id)
        assert (order["status"], order["failureReason"]) == ("failed", "stk_push_failed")
        assert [e["source"] for e in runtime.store.events_for(order_id)] == ["stk_push"]
        token = runtime.tokens.status_token(order_id)
        waited = client.get(f"/api/orders/{order_id}/wait?token={token}&timeout=5").json
        assert (waited["paymentStatus"], waited["final"], waited["failureReason"]) == ("failed", True, "stk_push_failed")
    finally:
        current_runtime(app).close()


def test_push_limit_per_phone_is_429_before_anything_is_stored(push_settings, unique_event):
    app = create_app({**push_settings, "PUSH_LIMIT": 3, "PUSH_LIMIT_WINDOW": 600})
    try:
        client, runtime = app.test_client(), current_runtime(app)
        phone = phone_ending(8)
        answers = [client.post("/api/orders", json=order_body(event_id=unique_event, phone=phone)) for _ in range(4)]
        assert [a.status_code for a in answers] == [201, 201, 201, 429]
        assert answers[3].json["error"] == "too_many_pushes"
        assert 1 <= int(answers[3].headers["Retry-After"]) <= 600
        assert runtime.store.orders.count_documents({"eventId": unique_event}) == 3
        other = client.post("/api/orders", json=order_body(event_id=unique_event, phone=phone_ending(8)))
        assert other.status_code == 201
    finally:
        current_runtime(app).close()


def test_payhero_settings_are_checked_at_start(tmp_path):
    base = {"VAR_DIR": str(tmp_path)}
    assert env_name("PAYHERO_AUTH_TOKEN") == "PAYHERO_AUTH_TOKEN" and env_name("PUSH_LIMIT") == "EVENTI_PUSH_LIMIT"
    with pytest.raises(ConfigError, match="PAYHERO_AUTH_TOKEN"):
        load({**base, "PAYHERO_BASE_URL": "http://x"}, environ={})
    with pytest.raises(ConfigError, match="PAYHERO_CHANNEL_ID"):
        load({**base, "PAYHERO_BASE_URL": "http://x", "PAYHERO_AUTH_TOKEN": "t"}, environ={})
    with pytest.raises(ConfigError, match="PAYHERO_BASE_URL and PUBLIC_BASE_URL"):
        load({**base, "ENV": "production", "SECRET_KEY": "s" * 40}, environ={})
    loaded = load(base, environ={"PAYHERO_BASE_URL": "https://backend.payhero.co.ke/", "PAYHERO_AUTH_TOKEN": "t",
                                 "PAYHERO_CHANNEL_ID": "911", "EVENTI_BIND": "0.0.0.0:9000"})
    assert (loaded.payhero_base_url, loaded.payhero_channel_id) == ("https://backend.payhero.co.ke", 911)
    assert loaded.public_base_url == "http://0.0.0.0:9000"


def test_without_payhero_no_push_is_sent_and_the_order_stays_pending(client, runtime, unique_event):
    response = client.post("/api/orders", json=order_body(event_id=unique_event))
    assert response.status_code == 201
    order = runtime.store.get_order(response.json["orderId"])
    assert order["status"] == "pending" and "payheroReference" not in order


def test_simulator_checks_the_basic_token(payhero_simulator):
    answer = requests.post(f"{payhero_simulator.base_url}/api/v2/payments", json={}, timeout=10,
                           headers={"Authorization": "Basic nope"})
    assert answer.status_code == 401
    assert requests.get(f"{payhero_simulator.base_url}/api/v2/transaction-status", params={"reference": "x"},
                        timeout=10).status_code == 401
