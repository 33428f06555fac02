"""Every error path answers RFC 9457 problem details (application/problem+json) that keep `error` and `message`,
each fitting the OpenAPI document; and the API's headers: Location, Allow, Retry-After, Cache-Control.

In-process (the Flask test client) against real Redis and FerretDB; the headers once more through gunicorn.
"""
from datetime import timedelta

import gevent
import pytest
import requests

from devstack.processes import free_port
from devstack.wait import eventually
from eventi.runtime import current_runtime
from eventi.web import openapi
from tests.support.api import create_order, order_body, post_callback
from tests.support.openapi_check import check_answer, misfits

UNKNOWN_ID = "6751a3f2c9e77b0012ab34cd"
PROBLEM_KEYS = {"type", "title", "status", "detail", "error", "message"}


@pytest.fixture
def document(client):
    return client.get("/api/openapi.json").json


def assert_problem(document, response, status, code, path=None, method="GET"):
    """A problem details answer of status and code: its shape, its media type, and (for a path of the document)
    what the document says of that operation's answer."""
    body = response.get_json()
    assert response.status_code == status, body
    assert response.mimetype == "application/problem+json", response.mimetype
    assert set(body) >= PROBLEM_KEYS, body
    assert (body["status"], body["error"], body["type"]) == (status, code, "/api/docs#problem-" + code), body
    assert body["detail"] == body["message"] and body["title"], body
    assert body["title"] == document["x-problem-types"][code]["title"], body  # one title per type
    assert not misfits(document, {"$ref": "#/components/schemas/Problem"}, body)
    if path is not None:
        check_answer(document, path, method, status, response.content_type, response.headers, body)
    return body


def test_request_errors_are_problem_details(client, document, unique_event):
    orders = "/api/orders"
    invalid = assert_problem(document, client.post(orders, json={**order_body(event_id=unique_event), "phone": "123"}),
                             400, "validation_error", orders, "POST")
    assert set(invalid["details"]) == {"phone"}
    assert_problem(document, client.post(orders, data="{", content_type="application/json"), 400, "invalid_json",
                   orders, "POST")
    assert_problem(document, client.post(orders, data="x" * 70_000, content_type="application/json"), 413,
                   "request_entity_too_large", orders, "POST")
    assert_problem(document, client.post(orders, data="{}", content_type="text/plain"), 415, "unsupported_media_type",
                   orders, "POST")
    assert_problem(document, client.post(orders, json=order_body(event_id="no-such-event")), 404, "event_not_found",
                   orders, "POST")
    assert_problem(document, client.get("/api/events/%FF"), 400, "invalid_url_encoding", "/api/events/{event_id}")
    assert_problem(document, client.get("/api/events/no-such-event"), 404, "event_not_found", "/api/events/{event_id}")


def test_callback_and_idempotency_errors_are_problem_details(client, document, unique_event):
    callback = "/api/payhero/callback"
    assert_problem(document, client.post(callback, json={}), 401, "unauthorized", callback, "POST")
    key = {"Idempotency-Key": "problems-" + unique_event}
    assert client.post("/api/orders", json=order_body(event_id=unique_event), headers=key).status_code == 201
    reused = client.post("/api/orders", json=order_body(event_id=unique_event, quantity=2), headers=key)
    assert_problem(document, reused, 422, "idempotency_key_reused", "/api/orders", "POST")


def test_sold_out_keeps_its_fields(client, document, new_event):
    event_id = new_event(capacity=1)
    create_order(client, event_id=event_id)
    body = assert_problem(document, client.post("/api/orders", json=order_body(event_id=event_id)), 409, "sold_out",
                          "/api/orders", "POST")
    assert (body["message"], body["left"]) == ("Regular is sold out: no tickets of this type are left.", 0)


def test_order_errors_are_problem_details_and_never_cached(client, document):
    for path in (f"/api/orders/{UNKNOWN_ID}", f"/api/orders/{UNKNOWN_ID}/wait"):
        response = client.get(path, query_string={"token": "a" * 64, "timeout": 1})
        assert_problem(document, response, 404, "not_found", openapi.openapi_path(path.replace(UNKNOWN_ID, "<order_id>")))
        assert response.headers["Cache-Control"] == "no-store"
    assert_problem(document, client.get(f"/api/orders/{UNKNOWN_ID}", query_string={"token": "a" * 129}), 400,
                   "validation_error", "/api/orders/{order_id}")


def test_routing_errors_are_problem_details_and_405_says_allow(client, document):
    assert_problem(document, client.get("/api/no-such-thing"), 404, "not_found")
    not_allowed = assert_problem(document, client.delete("/api/orders"), 405, "method_not_allowed")
    assert not_allowed["title"] == "Method Not Allowed"
    allowed = client.put(f"/api/orders/{UNKNOWN_ID}/wait")
    assert_problem(document, allowed, 405, "method_not_allowed")
    assert {m.strip() for m in allowed.headers["Allow"].split(",")} >= {"GET", "HEAD", "OPTIONS"}
    assert "POST" in client.delete("/api/orders").headers["Allow"]
    assert "POST" in client.get("/api/payhero/callback").headers["Allow"]


def test_too_many_waits_is_429_with_retry_after(make_app, document):
    app = make_app(MAX_WAITS_PER_ORDER=1)
    client = app.test_client()
    order_id, token = create_order(client)
    held = gevent.spawn(client.get, f"/api/orders/{order_id}/wait", query_string={"token": token, "timeout": 30})
    eventually(lambda: current_runtime(app).waits.held == 1, 30, "the first wait to be held")
    refused = client.get(f"/api/orders/{order_id}/wait", query_string={"token": token, "timeout": 1})
    assert_problem(document, refused, 429, "too_many_waits", "/api/orders/{order_id}/wait")
    assert int(refused.headers["Retry-After"]) > 0 and refused.headers["Cache-Control"] == "no-store"
    assert post_callback(client, current_runtime(app), order_id).status_code == 200
    assert held.get(timeout=30).json["final"] is True


def test_store_down_is_503_with_retry_after(make_app, document):
    app = make_app(MONGO_URI=f"mongodb://127.0.0.1:{free_port()}/eventi?serverSelectionTimeoutMS=500")  # the URI's wins
    client = app.test_client()
    for response, path, method in [(client.post("/api/orders", json=order_body()), "/api/orders", "POST"),
                                   (client.get("/api/events"), "/api/events", "GET")]:
        assert_problem(document, response, 503, "store_unavailable", path, method)
        assert int(response.headers["Retry-After"]) > 0
    readiness = client.get("/readyz")  # not problem details (not the API), but every 503 says when to come back
    assert readiness.status_code == 503 and int(readiness.headers["Retry-After"]) > 0


def test_a_bug_is_a_500_problem(make_app, document):
    app = make_app()

    @app.get("/api/a-bug-a-test-added")
    def _bug():
        raise RuntimeError("a bug")

    body = assert_problem(document, app.test_client().get("/api/a-bug-a-test-added"), 500, "internal_error")
    assert "a bug" not in str(body)


def test_created_order_has_location_and_no_store(client, document, runtime, unique_event):
    response = client.post("/api/orders", json=order_body(event_id=unique_event))
    check_answer(document, "/api/orders", "POST", 201, response.content_type, response.headers, response.json)
    assert response.headers["Location"] == response.json["statusUrl"]
    assert response.headers["Cache-Control"] == "no-store"


def test_status_and_wait_carry_the_receipt_and_not_the_shopper(client, document, runtime, unique_event):
    order_id, token = create_order(client, event_id=unique_event, quantity=2)
    status = client.get(f"/api/orders/{order_id}", query_string={"token": token})
    check_answer(document, "/api/orders/{order_id}", "GET", 200, status.content_type, status.headers, status.json)
    receipt = {"eventId": unique_event, "eventName": runtime.events.get(unique_event)["name"],
               "ticketTypeId": "regular", "ticketTypeName": "Regular", "quantity": 2, "currency": "KES", "amount": 3000}
    assert {name: status.json[name] for name in receipt} == receipt
    assert not {"phone", "email", "name"} & set(status.json)
    assert status.headers["Cache-Control"] == "no-store"
    assert post_callback(client, runtime, order_id, amount=3000).status_code == 200
    waited = client.get(f"/api/orders/{order_id}/wait", query_string={"token": token, "timeout": 5})
    check_answer(document, "/api/orders/{order_id}/wait", "GET", 200, waited.content_type, waited.headers, waited.json)
    assert {name: waited.json[name] for name in receipt} == receipt and waited.json["paymentStatus"] == "completed"
    assert not {"phone", "email", "name"} & set(waited.json)


def test_events_on_sale_with_what_is_left(client, document, new_event):
    # Sooner than any other test's event: the list holds the 100 soonest, and the session's store has more.
    roomy = new_event(capacity=5, vip_capacity=2, starts_in=timedelta(minutes=20))
    full = new_event(capacity=1, vip_capacity=1, starts_in=timedelta(minutes=10))
    started = new_event(starts_in=timedelta(seconds=-60))
    create_order(client, event_id=full)
    create_order(client, event_id=full, ticket_type="vip")
    response = client.get("/api/events")
    check_answer(document, "/api/events", "GET", 200, response.content_type, response.headers, response.json)
    events = {event["id"]: event for event in response.json["events"]}
    assert roomy in events and full in events and started not in events
    def left(event_id):
        return [(t["id"], t["left"], t["soldOut"]) for t in events[event_id]["ticketTypes"]]

    assert left(roomy) == [("regular", 5, False), ("vip", 2, False)]
    assert left(full) == [("regular", 0, True), ("vip", 0, True)]
    assert (events[roomy]["soldOut"], events[full]["soldOut"]) == (False, True)
    starts = [event["startsAt"] for event in response.json["events"]]
    assert starts == sorted(starts)  # soonest first
    assert "capacity" not in str(response.json)
    one = client.get(f"/api/events/{roomy}")
    check_answer(document, "/api/events/{event_id}", "GET", 200, one.content_type, one.headers, one.json)
    assert one.json == events[roomy]


def test_the_headers_through_gunicorn(start_gunicorn):
    """What a browser on another origin reads: gunicorn passes each header as the app set it."""
    base = start_gunicorn(workers=1).base_url
    created = requests.post(base + "/api/orders", json=order_body(), timeout=30)
    assert created.status_code == 201 and created.headers["Location"] == created.json()["statusUrl"]
    assert created.headers["Cache-Control"] == "no-store"
    token = created.json()["statusToken"]
    for url in (created.json()["statusUrl"], created.json()["waitUrl"] + "&timeout=1"):
        answer = requests.get(url, timeout=30)
        assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store", url
        assert answer.json()["eventId"] == "ev-test"
    wrong = requests.get(f"{base}/api/orders/{created.json()['orderId']}", params={"token": token[::-1]}, timeout=30)
    assert wrong.status_code == 404 and wrong.headers["Content-Type"] == "application/problem+json"
    not_allowed = requests.delete(base + "/api/orders", timeout=30)
    assert not_allowed.status_code == 405 and "POST" in not_allowed.headers["Allow"]
    assert not_allowed.headers["Content-Type"] == "application/problem+json"
    assert not_allowed.json()["type"] == "/api/docs#problem-method_not_allowed"
