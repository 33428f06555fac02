"""The HTTP API in-process (Flask test client) against real Redis and FerretDB.

The cases marked on_every_topology run against one Redis server, a Redis Cluster and a Sentinel group
(EVENTI_REDIS_URL): the ones whose answer goes through Redis (the status cache read and written by
status reads, callbacks and waits; a held wait answered by the publish; a re-announcement; readiness
pinging Redis). The
validation, token and store-only cases never reach Redis and run once.
"""
import logging

import gevent
import pytest
from prometheus_client import REGISTRY

from devstack.wait import eventually
from eventi.logs import RequestIdFilter
from eventi.storage.status_cache import cache_key
from tests.conftest import on_every_topology
from tests.support.api import create_order, order_body, post_callback

UNKNOWN_ID = "6751a3f2c9e77b0012ab34cd"


@pytest.fixture
def make_order(client):
    return lambda **fields: create_order(client, **fields)


def stored(runtime, order_id):
    return runtime.store.get_order(order_id)


def test_create_order_answers_201_and_stores_normalised_order(client, runtime, unique_event):
    response = client.post("/api/orders", json=order_body(event_id=unique_event, phone="+254712345675"))
    assert response.status_code == 201
    data = response.json
    assert set(data) == {"orderId", "paymentStatus", "statusToken", "amount", "currency", "waitUrl", "statusUrl"}
    assert (data["paymentStatus"], data["amount"], data["currency"]) == ("pending", 1500, "KES")
    assert data["statusToken"] == runtime.tokens.status_token(data["orderId"])
    base = runtime.settings.public_base_url
    assert data["waitUrl"] == f"{base}/api/orders/{data['orderId']}/wait?token={data['statusToken']}"
    assert data["statusUrl"] == f"{base}/api/orders/{data['orderId']}?token={data['statusToken']}"
    order = stored(runtime, data["orderId"])
    assert (order["eventId"], order["phone"], order["amount"], order["status"]) == (unique_event, "254712345675", 1500, "pending")


@pytest.mark.parametrize("bad", [{"quantity": {"$ne": None}}, {"eventId": {"$gt": ""}}, {"extra": 1}, {"phone": "123"},
                                 {"amount": 1}])
def test_invalid_order_is_400_with_details_and_nothing_stored(client, runtime, unique_event, bad):
    response = client.post("/api/orders", json={**order_body(event_id=unique_event), **bad})
    assert response.status_code == 400
    assert response.json["error"] == "validation_error"
    assert set(response.json["details"]) == set(bad)
    assert runtime.store.orders.count_documents({"eventId": unique_event}) == 0


@on_every_topology
def test_status_shows_public_fields_only(client, make_order):
    order_id, token = make_order()
    response = client.get(f"/api/orders/{order_id}?token={token}")
    assert response.status_code == 200
    assert set(response.json) == {"orderId", "reference", "paymentStatus", "amount", "eventId", "eventName", "ticketTypeId",
                                  "ticketTypeName", "quantity", "currency", "updatedAt"}  # no push: no prompt
    assert response.json["updatedAt"].endswith("Z")
    assert response.json["reference"] == order_id[-8:].upper()


def test_unknown_malformed_missing_and_wrong_token_all_look_the_same(client, make_order, runtime):
    order_id, token = make_order()
    other_id, _ = make_order()
    urls = [
        f"/api/orders/{UNKNOWN_ID}?token={runtime.tokens.status_token(UNKNOWN_ID)}",
        f"/api/orders/not-an-id?token={token}",
        f"/api/orders/{order_id}",
        f"/api/orders/{order_id}?token={token[:-1]}{'1' if token.endswith('0') else '0'}",
        f"/api/orders/{order_id}?token={runtime.tokens.status_token(other_id)}",
        f"/api/orders/{order_id}?token={runtime.tokens.callback_token(order_id)}",
    ]
    bodies = []
    for url in urls:
        response = client.get(url)
        assert response.status_code == 404, url
        bodies.append(response.json)
    assert all(body == bodies[0] for body in bodies) and bodies[0]["error"] == "not_found"


@on_every_topology
def test_completed_status_has_receipt_and_failed_has_reason(client, runtime, make_order):
    paid_id, paid_token = make_order()
    failed_id, failed_token = make_order()
    post_callback(client, runtime, paid_id, "success")
    post_callback(client, runtime, failed_id, "insufficient-funds")
    paid = client.get(f"/api/orders/{paid_id}?token={paid_token}").json
    failed = client.get(f"/api/orders/{failed_id}?token={failed_token}").json
    assert (paid["paymentStatus"], paid["mpesaReceipt"]) == ("completed", "SAE3YULR0Y")
    assert "failureReason" not in paid
    assert (failed["paymentStatus"], failed["failureReason"]) == ("failed", "The balance is insufficient for the transaction.")
    assert "mpesaReceipt" not in failed


@on_every_topology
def test_wrong_pin_gives_a_plain_reason_on_status_and_every_wait(client, runtime, make_order):
    order_id, token = make_order()
    post_callback(client, runtime, order_id, "wrong-pin")
    sentence = "Wrong M-Pesa PIN: try again with the right PIN."
    status = client.get(f"/api/orders/{order_id}?token={token}").json
    assert (status["paymentStatus"], status["reason"], status["reasonText"]) == ("failed", "wrong_pin", sentence)
    assert status["failureReason"] == "The initiator information is invalid."  # the raw text stays, for support
    assert runtime.store.get_order(order_id)["resultCode"] == 2001
    cached = client.get(f"/api/orders/{order_id}/wait?token={token}").json
    runtime.redis.delete(cache_key(order_id))  # a fresh wait after the cache lost it: the store's order decides
    fresh = client.get(f"/api/orders/{order_id}/wait?token={token}").json
    for body in (cached, fresh):
        assert (body["final"], body["reason"], body["reasonText"], body["failureReason"]) == (
            True, "wrong_pin", sentence, "The initiator information is invalid.")


@on_every_topology
def test_wait_on_a_final_order_answers_at_once(client, runtime, make_order):
    order_id, token = make_order()
    post_callback(client, runtime, order_id, "cancelled")
    response = client.get(f"/api/orders/{order_id}/wait?token={token}&timeout=120")
    assert response.status_code == 200
    assert (response.json["paymentStatus"], response.json["final"]) == ("cancelled", True)
    assert response.json["failureReason"] == "Request cancelled by user"
    assert (response.json["reason"], response.json["reasonText"]) == (
        "cancelled_by_user", "You cancelled the request: try again when you are ready.")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Accel-Buffering"] == "no"


@on_every_topology
def test_wait_times_out_with_pending(client, make_order):
    order_id, token = make_order()
    response = client.get(f"/api/orders/{order_id}/wait?token={token}&timeout=1")
    assert response.status_code == 200
    assert (response.json["paymentStatus"], response.json["final"]) == ("pending", False)
    assert 900 <= response.json["waitedMs"] < 10_000  # generous: timings belong to the benchmark


@on_every_topology
def test_wait_answers_when_the_callback_lands(client, runtime, make_order):
    order_id, token = make_order()
    waiting = gevent.spawn(client.get, f"/api/orders/{order_id}/wait?token={token}&timeout=60")
    assert post_callback(client, runtime, order_id, "success").json == {"received": True}
    response = waiting.get(timeout=30)
    body = response.json
    assert (body["paymentStatus"], body["final"], body["mpesaReceipt"]) == ("completed", True, "SAE3YULR0Y")


def test_a_held_wait_answered_after_flask_let_go_keeps_its_request_id_headers_and_metric(client, runtime, make_order):
    """The wait is answered after Flask popped its contexts (eventi/web/deferred.py): the hooks' headers, the
    request id on the hold's log lines and the request's metric (counted once answered, not when parked) stay."""
    order_id, token = make_order()
    key = {"route": "/api/orders/<order_id>/wait", "method": "GET", "status": "2xx"}
    counted = lambda: REGISTRY.get_sample_value("eventi_http_request_duration_seconds_count", key) or 0.0  # noqa: E731
    before = counted()
    lines = []
    handler = logging.Handler(logging.INFO)
    handler.addFilter(RequestIdFilter())
    handler.emit = lambda record: lines.append((record.getMessage(), record.request_id))  # type: ignore[method-assign]
    logger = logging.getLogger("eventi.services.waiting")
    level, logger.level = logger.level, logging.INFO
    logger.addHandler(handler)
    try:
        waiting = gevent.spawn(client.get, f"/api/orders/{order_id}/wait?token={token}&timeout=60",
                               headers={"X-Request-ID": "held-1"})
        eventually(lambda: runtime.waits.held >= 1, 30, "the wait held")
        assert counted() == before  # parked: not answered yet
        post_callback(client, runtime, order_id, "success")
        response = waiting.get(timeout=30)
    finally:
        logger.removeHandler(handler)
        logger.level = level
    assert (response.status_code, response.json["paymentStatus"]) == (200, "completed")
    assert response.headers["X-Request-ID"] == "held-1"
    assert (response.headers["Cache-Control"], response.headers["X-Accel-Buffering"]) == ("no-store", "no")
    assert response.headers["Content-Type"] == "application/json"
    assert counted() == before + 1
    assert [rid for message, rid in lines if message.startswith("Payment status changed via Redis")] == ["held-1"]


@pytest.mark.parametrize("query", ["timeout=0", "timeout=121", "timeout=abc", "timeout=-5", "timeout=1.5"])
def test_wait_rejects_bad_timeouts(client, make_order, query):
    order_id, token = make_order()
    response = client.get(f"/api/orders/{order_id}/wait?token={token}&{query}")
    assert response.status_code == 400
    assert response.json["error"] == "validation_error"


def test_wait_with_wrong_token_is_404(client, make_order):
    order_id, _ = make_order()
    assert client.get(f"/api/orders/{order_id}/wait?token=nope&timeout=1").status_code == 404


def test_callback_without_or_with_wrong_token_is_401_and_writes_nothing(client, runtime, make_order):
    order_id, token = make_order()
    for bad in ["", token, "0" * 64, runtime.tokens.callback_token(UNKNOWN_ID)]:
        response = post_callback(client, runtime, order_id, token=bad)
        assert response.status_code == 401
        assert response.json["error"] == "unauthorized"
    assert stored(runtime, order_id)["status"] == "pending"
    assert runtime.store.events_for(order_id) == []


@pytest.mark.parametrize("body", [{"response": {"ExternalReference": "x"}}, {"status": "maybe"}, []])
def test_malformed_callback_is_400_and_writes_nothing(client, runtime, make_order, body):
    order_id, _ = make_order()
    response = post_callback(client, runtime, order_id, body=body)
    assert response.status_code == 400
    assert stored(runtime, order_id)["status"] == "pending"
    assert runtime.store.events_for(order_id) == []


def test_callback_that_is_not_json_is_rejected(client, runtime, make_order):
    order_id, _ = make_order()
    url = f"/api/payhero/callback?token={runtime.tokens.callback_token(order_id)}"
    assert client.post(url, data="{not json", content_type="application/json").status_code == 400
    assert client.post(url, data="a=b", content_type="application/x-www-form-urlencoded").status_code == 415
    assert runtime.store.events_for(order_id) == []


def test_amount_mismatch_fails_the_order(client, runtime, make_order):
    order_id, _ = make_order()
    assert post_callback(client, runtime, order_id, "success", amount=15).status_code == 200
    order = stored(runtime, order_id)
    assert (order["status"], order["failureReason"]) == ("failed", "amount_mismatch")
    assert "mpesaReceipt" not in order


def test_duplicate_callback_changes_nothing_and_is_recorded(client, runtime, make_order):
    order_id, _ = make_order()
    first = post_callback(client, runtime, order_id, "success")
    stamp = stored(runtime, order_id)["updatedAt"]
    second = post_callback(client, runtime, order_id, "success")
    assert first.json == {"received": True}
    assert second.json == {"received": True, "duplicate": True}
    assert stored(runtime, order_id)["updatedAt"] == stamp
    events = runtime.store.events_for(order_id)
    assert len(events) == 2
    assert stored(runtime, order_id)["statusEventId"] == events[0]["_id"]


def test_cancel_after_completed_leaves_it_completed_and_is_recorded(client, runtime, make_order):
    order_id, _ = make_order()
    post_callback(client, runtime, order_id, "success")
    response = post_callback(client, runtime, order_id, "cancelled")
    assert response.json == {"received": True, "duplicate": True}
    order = stored(runtime, order_id)
    assert (order["status"], order["mpesaReceipt"]) == ("completed", "SAE3YULR0Y")
    assert [e["summary"]["resultCode"] for e in runtime.store.events_for(order_id)] == [0, 1032]


def test_flat_format_callbacks_are_applied(client, runtime, make_order):
    paid_id, _ = make_order()
    cancelled_id, _ = make_order()
    post_callback(client, runtime, paid_id, "flat-success")
    post_callback(client, runtime, cancelled_id, "flat-cancelled")
    assert (stored(runtime, paid_id)["status"], stored(runtime, paid_id)["mpesaReceipt"]) == ("completed", "UFU51A2XO2")
    assert stored(runtime, cancelled_id)["status"] == "cancelled"


def test_audit_keeps_the_body_verbatim(client, runtime, make_order):
    order_id, _ = make_order()
    url = f"/api/payhero/callback?token={runtime.tokens.callback_token(order_id)}"
    raw = ('{"response": {"Amount": 1500, "ExternalReference": "' + order_id
           + '", "ResultCode": 1037, "ResultDesc": "DS timeout", "$odd": {"a.b": 1}}}')
    assert client.post(url, data=raw, content_type="application/json").status_code == 200
    assert runtime.store.events_for(order_id)[0]["raw"] == raw


def test_errors_are_json_never_html(client):
    for response in [client.get("/api/nope"), client.delete("/api/orders"),
                     client.post("/api/orders", data="x", content_type="text/plain")]:
        assert response.is_json
        assert set(response.json) >= {"error", "message"}
    assert client.post("/api/orders", data="x" * 70_000, content_type="application/json").status_code == 413


@on_every_topology
def test_health_and_readiness(client):
    assert client.get("/healthz").json == {"status": "ok"}
    assert client.get("/readyz").json == {"status": "ready"}


@on_every_topology
@pytest.mark.parametrize("claim_age_seconds", [0, 300])
def test_a_claim_whose_order_is_pending_is_applied_and_announced_by_the_next_delivery(
        client, runtime, settings, make_order, claim_age_seconds):
    """The claim was written but the order did not follow (the writer timed out or died): the next
    delivery applies that first decision at once, however fresh the claim, and announces it."""
    from datetime import timedelta

    from bson import ObjectId

    from eventi.domain.models import utcnow
    from tests.support.listen import ChannelListener

    order_id, token = make_order()
    claimed_at = (utcnow() - timedelta(seconds=claim_age_seconds)).replace(microsecond=0)
    runtime.store.claims.insert_one({"_id": ObjectId(order_id), "status": "completed", "mpesaReceipt": "EARLIER1",
                                   "failureReason": None, "eventId": None, "claimedAt": claimed_at})
    with ChannelListener(settings["REDIS_URL"], order_id) as listener:
        assert post_callback(client, runtime, order_id, "cancelled").json == {"received": True, "duplicate": True}
        order = stored(runtime, order_id)
        assert (order["status"], order["mpesaReceipt"]) == ("completed", "EARLIER1")  # the first decision stands
        published = listener.next_body()
    assert (published["paymentStatus"], published["mpesaReceipt"]) == ("completed", "EARLIER1")
    assert runtime.cache.get(order_id) == published
    assert client.get(f"/api/orders/{order_id}?token={token}").json == published


@on_every_topology
def test_a_duplicate_of_a_final_order_re_announces_it(client, runtime, settings, make_order):
    """A publish lost on the first delivery heals on the next: the duplicate caches and publishes again."""
    from tests.support.listen import ChannelListener

    order_id, token = make_order()
    first = post_callback(client, runtime, order_id, "success")
    assert first.json == {"received": True}
    final = client.get(f"/api/orders/{order_id}?token={token}").json
    runtime.redis.delete(cache_key(order_id))  # as if the first announcement never reached Redis
    with ChannelListener(settings["REDIS_URL"], order_id) as listener:
        assert post_callback(client, runtime, order_id, "success").json == {"received": True, "duplicate": True}
        published = listener.next_body()
    assert published == final
    assert runtime.cache.get(order_id) == final


def test_a_claim_applied_twice_changes_the_status_once(runtime, make_order):
    """Two deliveries finishing the same interrupted change: one status change, the same document after both."""
    from bson import ObjectId

    from eventi.domain.models import OrderStatus, Outcome, utcnow

    order_id, _ = make_order()
    runtime.store.claims.insert_one({"_id": ObjectId(order_id), "status": "completed", "mpesaReceipt": "EARLIER1",
                                   "failureReason": None, "eventId": None, "claimedAt": utcnow()})
    late = Outcome(OrderStatus.CANCELLED, failure_reason="cancelled")
    first = runtime.store.finalize(order_id, late)
    after_first = stored(runtime, order_id)
    assert (first.decided, first.order["status"], first.order["mpesaReceipt"]) == (False, "completed", "EARLIER1")
    second = runtime.store.finalize(order_id, late)
    assert (second.decided, second.order["status"]) == (False, "completed")
    assert stored(runtime, order_id) == after_first
