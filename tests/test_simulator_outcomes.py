"""Each outcome of the PayHero simulator, end to end: gunicorn pushes, the simulator calls back."""
import pytest
import requests

from devstack.payhero_simulator import PayHeroSimulator
from devstack.wait import eventually
from tests.conftest import TEST_SECRET
from tests.support.api import Api, order_body, phone_ending


@pytest.fixture(scope="module")
def fast_simulator():
    """Settles pushes 0.3 s after them and takes 2 s over a push to a number ending in 9 (the push timeout is 1 s)."""
    with PayHeroSimulator(delay=0.3, slow_seconds=2) as server:
        yield server


@pytest.fixture
def stack(start_gunicorn, fast_simulator):
    server = start_gunicorn(workers=1, EVENTI_PUSH_TIMEOUT=1, **fast_simulator.settings)
    return Api(server.base_url, TEST_SECRET), server


def order(api, digit):
    answer = requests.post(f"{api.base_url}/api/orders", json=order_body(phone=phone_ending(digit)), timeout=30)
    return answer


EXPECTED = {
    0: ("completed", None),
    1: ("cancelled", "Request cancelled by user"),
    2: ("failed", "The balance is insufficient for the transaction."),
    3: ("failed", "DS timeout user cannot be reached"),
    4: ("failed", "The initiator information is invalid."),
    8: ("completed", None),
}
REASONS = {1: "cancelled_by_user", 2: "insufficient_funds", 3: "unreachable", 4: "wrong_pin"}
"""The stable reason code each failing outcome gives (eventi/domain/reasons.py)."""


def test_each_outcome_reaches_the_waiting_shopper(stack, fast_simulator):
    api, _ = stack
    for digit, (status, reason) in EXPECTED.items():
        answer = order(api, digit)
        assert answer.status_code == 201, answer.text
        body = api.wait(answer.json()["orderId"], answer.json()["statusToken"], timeout=30).json()
        assert (digit, body["paymentStatus"], body["final"]) == (digit, status, True)
        if status == "completed":
            [record] = fast_simulator.pushes(body["orderId"])
            assert body["mpesaReceipt"] == record["receipt"]
        else:
            assert (body["failureReason"], body["reason"]) == (reason, REASONS[digit])


def test_no_callback_leaves_the_order_pending_while_payhero_knows_it_paid(stack, fast_simulator):
    api, _ = stack
    answer = order(api, 5).json()
    eventually(lambda: fast_simulator.pushes(answer["orderId"])[0]["status"] == "SUCCESS", 30, "the simulated payment")
    body = api.wait(answer["orderId"], answer["statusToken"], timeout=1).json()
    assert (body["paymentStatus"], body["final"]) == ("pending", False)
    assert fast_simulator.pushes(answer["orderId"])[0]["deliveries"] == []


def test_duplicate_delivery_changes_the_order_once(stack, fast_simulator):
    api, server = stack
    answer = order(api, 6).json()
    body = api.wait(answer["orderId"], answer["statusToken"], timeout=30).json()
    assert body["paymentStatus"] == "completed"
    eventually(lambda: [d["answer"] for d in fast_simulator.pushes(answer["orderId"])[0]["deliveries"]] == [200, 200],
               30, "two deliveries answered 200")
    server.process.wait_for(f"Payment result ignored, order already final orderId={answer['orderId']}", timeout=10)


def test_a_refused_push_answers_502_and_fails_the_order(stack):
    api, _ = stack
    answer = order(api, 7)
    assert answer.status_code == 502
    assert answer.json()["error"] == "payment_provider_error"
    order_id = answer.json()["orderId"]
    body = api.status(order_id, api.tokens.status_token(order_id)).json()
    assert (body["paymentStatus"], body["failureReason"], body["reason"]) == ("failed", "stk_push_failed", "push_failed")


def test_a_push_that_timed_out_stays_pending_and_its_late_callback_completes_it(stack, fast_simulator):
    """PayHero answers the push only after EVENTI_PUSH_TIMEOUT, then prompts the phone and the shopper pays."""
    api, _ = stack
    answer = order(api, 9)
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert (created["paymentStatus"], created["pushState"]) == ("pending", "uncertain")
    body = api.wait(created["orderId"], created["statusToken"], timeout=30).json()
    assert (body["paymentStatus"], body["final"]) == ("completed", True)
    [record] = fast_simulator.pushes(created["orderId"])
    assert body["mpesaReceipt"] == record["receipt"]
