"""A payment that arrives after its order failed is never swallowed: tickets again, or refund_needed that support sees.

Before issue 19 such a callback answered `{"received": true, "duplicate": true}` and changed nothing: the shopper
paid and the order stayed failed, its tickets released (and resold). tests/faults/test_money_edges.py races it
against reconcile through gunicorn; these tests pin each rule through the app.
"""
import logging
from datetime import timedelta

import gevent
from bson import ObjectId

from eventi import metrics
from eventi.domain.models import PaymentResult, utcnow
from eventi.runtime import current_runtime
from eventi.services.reconcile import NO_CALLBACK
from tests.support.api import order_body, post_callback


def order(client, event_id, quantity=1):
    created = client.post("/api/orders", json=order_body(event_id=event_id, quantity=quantity))
    assert created.status_code == 201, created.json
    return created.json["orderId"], created.json["statusToken"]


def given_up(runtime, order_id):
    """What reconcile does to an order nothing came for: fail it with no_callback, through the callback path."""
    result = PaymentResult(order_id=order_id, paid=False, description=NO_CALLBACK)
    assert runtime.callbacks.apply(result, raw="", source="reconcile").body["paymentStatus"] == "failed"


def paid(client, runtime, order_id, amount=1500):
    response = post_callback(client, runtime, order_id, "success", amount)
    assert response.status_code == 200, response.json
    return response.json


def status(client, order_id, token):
    return client.get(f"/api/orders/{order_id}?token={token}").json


def left(client, event_id):
    return client.get(f"/api/events/{event_id}").json["ticketTypes"][0]["left"]


def holds(runtime, holder):
    return runtime.tickets.holds.count_documents({"orderId": holder})


def late_count(outcome):
    return metrics.LATE_PAYMENTS.labels(outcome)._value.get()


def test_a_payment_after_no_callback_holds_the_tickets_again_and_completes_the_order(client, runtime, new_event):
    event_id = new_event(capacity=2)
    order_id, token = order(client, event_id, quantity=2)
    given_up(runtime, order_id)
    assert left(client, event_id) == 2 and holds(runtime, order_id) == 0
    before = late_count("completed")
    assert paid(client, runtime, order_id, 3000) == {"received": True}  # not a duplicate: it changed the order
    body = status(client, order_id, token)
    assert (body["paymentStatus"], body["mpesaReceipt"]) == ("completed", "SAE3YULR0Y")
    assert runtime.waits.wait(order_id, 1).body["paymentStatus"] == "completed"  # a fresh wait: cache and store
    assert left(client, event_id) == 0 and holds(runtime, order_id + ".late") == 2
    late_slots = {h["_id"] for h in runtime.tickets.holds.find({"orderId": order_id + ".late"})}
    assert set(runtime.store.get_order(order_id)["ticketSlots"]) == late_slots  # the order lists its new slots
    assert late_count("completed") == before + 1
    assert paid(client, runtime, order_id, 3000) == {"received": True, "duplicate": True}  # PayHero's redelivery
    assert holds(runtime, order_id + ".late") == 2 and left(client, event_id) == 0


def test_a_payment_after_the_tickets_were_resold_is_refund_needed_and_listed_for_support(app, client, runtime,
                                                                                         new_event, caplog):
    event_id = new_event(capacity=1)
    first, token = order(client, event_id)
    given_up(runtime, first)
    second, _ = order(client, event_id)  # the released ticket is sold again
    before = late_count("refund_needed")
    with caplog.at_level(logging.ERROR, logger="eventi"):
        assert paid(client, runtime, first) == {"received": True}
    body = status(client, first, token)
    assert (body["paymentStatus"], body["reason"], body["mpesaReceipt"]) == (
        "refund_needed", "sold_out_after_payment", "SAE3YULR0Y")
    assert "refund" in body["reasonText"]
    assert late_count("refund_needed") == before + 1
    assert any(first in r.getMessage() and "refund_needed" in r.getMessage() for r in caplog.records)
    assert left(client, event_id) == 0 and holds(runtime, first + ".late") == 0
    assert runtime.store.get_order(second)["status"] == "pending"  # the other shopper keeps the ticket
    listed = app.test_cli_runner().invoke(args=["order", "refunds"])
    assert listed.exit_code == 0 and first in listed.output and "sold_out" in listed.output


def test_under_the_refund_policy_a_late_payment_is_refund_needed_even_with_tickets_left(make_app, new_event):
    app = make_app(LATE_PAYMENTS="refund")
    client, runtime = app.test_client(), current_runtime(app)
    event_id = new_event(capacity=5)
    order_id, token = order(client, event_id)
    given_up(runtime, order_id)
    paid(client, runtime, order_id)
    body = status(client, order_id, token)
    assert (body["paymentStatus"], body["reason"]) == ("refund_needed", "paid_after_expiry")
    assert left(client, event_id) == 5


def test_a_late_payment_of_another_amount_is_refund_needed_for_the_mismatch(client, runtime, new_event):
    event_id = new_event(capacity=5)
    order_id, token = order(client, event_id)
    given_up(runtime, order_id)
    paid(client, runtime, order_id, amount=1)
    body = status(client, order_id, token)
    assert (body["paymentStatus"], body["reason"]) == ("refund_needed", "amount_mismatch")
    assert left(client, event_id) == 5


def test_a_late_payment_after_a_cancel_callback_completes_too(client, runtime, new_event):
    """M-Pesa's cancel and its payment can both reach us (a retried prompt): the payment wins."""
    event_id = new_event(capacity=3)
    order_id, token = order(client, event_id)
    assert post_callback(client, runtime, order_id, "cancelled", 1500).status_code == 200
    paid(client, runtime, order_id)
    assert status(client, order_id, token)["paymentStatus"] == "completed"
    assert post_callback(client, runtime, order_id, "cancelled", 1500).json["duplicate"] is True
    assert status(client, order_id, token)["paymentStatus"] == "completed"  # the cache keeps the payment
    assert left(client, event_id) == 2


def test_racing_deliveries_of_one_late_payment_decide_once(app, runtime, new_event):
    """Twenty deliveries of one late payment at once: one decides; the others follow it or are told to retry
    (503), never a second hold, never a spurious refund while tickets are left."""
    event_id = new_event(capacity=3)
    client = app.test_client()
    order_id, token = order(client, event_id, quantity=2)
    given_up(runtime, order_id)
    answers = [g.get(timeout=30) for g in [
        gevent.spawn(post_callback, app.test_client(), runtime, order_id, "success", 3000) for _ in range(20)]]
    assert {a.status_code for a in answers} <= {200, 503}
    assert [a.json for a in answers].count({"received": True}) == 1
    assert all(paid(client, runtime, order_id, 3000)["duplicate"] for _ in range(2))  # redeliveries of the 503s
    assert status(client, order_id, token)["paymentStatus"] == "completed"
    assert holds(runtime, order_id + ".late") == 2 and left(client, event_id) == 1


def test_a_status_claim_applied_again_after_a_late_payment_keeps_it(client, runtime, new_event):
    """The Settler and stale redeliveries apply the first (failed) claim again: the order must stay paid."""
    event_id = new_event(capacity=2)
    order_id, token = order(client, event_id)
    given_up(runtime, order_id)
    paid(client, runtime, order_id)
    assert runtime.store.settle(order_id)["status"] == "completed"
    assert runtime.store.get_order(order_id)["status"] == "completed"
    assert holds(runtime, order_id + ".late") == 1


def test_the_sweep_decides_a_late_payment_whose_decider_died(client, runtime, new_event):
    """The claim went in, then the process died: the reconcile sweep decides it from the audited delivery."""
    event_id = new_event(capacity=2)
    order_id, token = order(client, event_id)
    given_up(runtime, order_id)
    delivery = runtime.store.record_event(order_id, "callback", "{}", {"paid": True, "amount": 1500,
                                                                      "receipt": "SAE3YULR0Y"})
    runtime.store.late.insert_one({"_id": ObjectId(order_id), "eventId": delivery, "mpesaReceipt": "SAE3YULR0Y",
                                   "status": None, "slots": [], "claimedAt": utcnow() - timedelta(minutes=5),
                                   "followed": False})
    assert status(client, order_id, token)["paymentStatus"] == "failed"
    assert runtime.reconciler().run_once().late_followed >= 1
    assert status(client, order_id, token)["paymentStatus"] == "completed"  # announced: the cache says so too
    assert holds(runtime, order_id + ".late") == 1


def test_a_young_undecided_claim_asks_for_a_redelivery(client, runtime, new_event):
    event_id = new_event(capacity=2)
    order_id, _ = order(client, event_id)
    given_up(runtime, order_id)
    runtime.store.late.insert_one({"_id": ObjectId(order_id), "eventId": ObjectId(), "mpesaReceipt": "X",
                                   "status": None, "slots": [], "claimedAt": utcnow(), "followed": False})
    response = post_callback(client, runtime, order_id, "success", 1500)
    assert (response.status_code, response.json["error"]) == (503, "store_unavailable")
    assert runtime.store.get_order(order_id)["status"] == "failed" and holds(runtime, order_id + ".late") == 0


def test_an_undecided_claim_is_taken_over_after_the_release_interrupted_age_set(make_app, new_event):
    """EVENTI_RELEASE_INTERRUPTED_AFTER_SECONDS is also how long a late payment's decider may go quiet."""
    app = make_app(RELEASE_INTERRUPTED_AFTER_SECONDS="5")
    client, runtime = app.test_client(), current_runtime(app)
    event_id = new_event(capacity=2)
    order_id, token = order(client, event_id)
    given_up(runtime, order_id)
    runtime.store.late.insert_one({"_id": ObjectId(order_id), "eventId": ObjectId(), "mpesaReceipt": "X",
                                   "status": None, "slots": [], "claimedAt": utcnow() - timedelta(seconds=10),
                                   "followed": False})
    response = post_callback(client, runtime, order_id, "success", 1500)
    assert response.status_code == 200
    assert status(client, order_id, token)["paymentStatus"] == "completed"
    assert holds(runtime, order_id + ".late") == 1


def test_strict_mode_marks_a_late_payment_it_cannot_confirm_for_a_person(make_app, payhero_simulator, new_event):
    """The simulator's record of the push says QUEUED: the late payment is not confirmed, so it is not applied, but
    it is not swallowed either: the order is marked and `order refunds` lists it."""
    app = make_app(**payhero_simulator.settings, PAYHERO_VERIFY_CALLBACKS="1")
    client, runtime = app.test_client(), current_runtime(app)
    event_id = new_event(capacity=2)
    order_id, token = order(client, event_id)
    given_up(runtime, order_id)
    response = post_callback(client, runtime, order_id, "success", 1500)
    assert response.json == {"received": True, "verified": False}
    stored = runtime.store.get_order(order_id)
    assert stored["status"] == "failed" and stored["unconfirmedPayment"]["at"]
    listed = app.test_cli_runner().invoke(args=["order", "refunds"])
    assert order_id in listed.output and "unconfirmed payment" in listed.output


def test_a_failed_body_never_replaces_a_paid_one_in_the_status_cache(runtime):
    order_id = str(ObjectId())
    base = {"orderId": order_id, "reference": order_id[-8:].upper(), "amount": 1500, "updatedAt": "2030-01-01T00:00:00.000Z"}
    runtime.cache.put({**base, "paymentStatus": "completed", "mpesaReceipt": "R"})
    runtime.cache.put({**base, "paymentStatus": "failed", "failureReason": "no_callback"})
    assert runtime.cache.get(order_id)["paymentStatus"] == "completed"
    other = str(ObjectId())
    runtime.cache.put({**base, "orderId": other, "paymentStatus": "failed"})
    runtime.cache.put({**base, "orderId": other, "paymentStatus": "refund_needed"})
    assert runtime.cache.get(other)["paymentStatus"] == "refund_needed"


def test_a_payment_landing_between_a_failure_claim_and_its_order_is_a_late_payment(client, runtime, new_event):
    """Reconcile racing the paid callback: its no_callback claim went in, the order still reads pending (its writer
    is midway). The payment must not be a duplicate of that failure (before issue 19 it was, 24 of 24 times)."""
    event_id = new_event(capacity=2)
    order_id, token = order(client, event_id)
    assert status(client, order_id, token)["paymentStatus"] == "pending"  # cached pending, as the callback reads it
    runtime.store.claims.insert_one({"_id": ObjectId(order_id), "status": "failed", "failureReason": NO_CALLBACK,
                                     "mpesaReceipt": None, "resultCode": None, "eventId": ObjectId(),
                                     "claimedAt": utcnow()})
    assert paid(client, runtime, order_id) == {"received": True}
    assert status(client, order_id, token)["paymentStatus"] == "completed"
    assert holds(runtime, order_id) == 0 and holds(runtime, order_id + ".late") == 1 and left(client, event_id) == 1
