"""Once an STK push went out, the checkout answers 201 whatever the store does afterwards (issue 19, item 3).

Before, a store failure while recording the push (PayHero's reference, pushedAt) answered 503
store_unavailable although the phone was prompted, and the shopper's "try again" made a second order and a
second prompt. The store failure here is a fault injected into one method; tests/faults/test_money_edges.py
stalls a real FerretDB under the same traffic.
"""
import pytest

from devstack.wait import eventually
from eventi.errors import StoreUnavailable
from eventi.runtime import current_runtime
from tests.support.api import order_body, phone_ending


@pytest.fixture
def push_app(make_app, payhero_simulator):
    app = make_app(**payhero_simulator.settings)
    return app.test_client(), current_runtime(app)


def failing_first(method):
    """method, except that its first call raises StoreUnavailable, as a store stalled past the driver's timeout."""
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise StoreUnavailable()
        return method(*args, **kwargs)

    return wrapper


def test_a_push_whose_record_failed_is_answered_201_and_recorded_in_the_background(push_app, payhero_simulator):
    client, runtime = push_app
    runtime.store.set_fields = failing_first(runtime.store.set_fields)
    response = client.post("/api/orders", json=order_body(phone=phone_ending(5)))
    assert response.status_code == 201, response.json
    order_id = response.json["orderId"]
    assert "pushState" not in response.json and payhero_simulator.pushes(order_id)  # queued: not uncertain
    eventually(lambda: runtime.store.get_order(order_id).get("payheroReference")
               == payhero_simulator.pushes(order_id)[0]["reference"], 30, "the push's record to land")
    assert runtime.store.get_order(order_id)["pushedAt"] and not runtime.retrier.pending


def test_an_uncertain_push_whose_audit_failed_is_still_answered_201(make_app, payhero_simulator):
    """A push to a number ending in 9 times out (uncertain); its audit record then fails: still 201, pending."""
    app = make_app(**payhero_simulator.settings, PUSH_TIMEOUT=0.5)
    client, runtime = app.test_client(), current_runtime(app)
    runtime.store.record_event = failing_first(runtime.store.record_event)
    response = client.post("/api/orders", json=order_body(phone=phone_ending(9)))
    assert (response.status_code, response.json["pushState"]) == (201, "uncertain")
    order_id = response.json["orderId"]
    eventually(lambda: [e["source"] for e in runtime.store.events_for(order_id)] == ["stk_push"], 30,
               "the uncertain push's audit record to land")
    assert runtime.store.get_order(order_id)["pushState"] == "uncertain"
