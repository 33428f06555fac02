"""Issue 12 in-process: events, server-side prices, ticket capacity and its release, idempotent creation, CORS."""
import uuid
from datetime import timedelta

import gevent
import pytest
from bson import ObjectId

from eventi import create_app
from eventi.config import ConfigError, cors_origins
from eventi.domain.models import utcnow
from eventi.errors import ChangeInProgress
from eventi.runtime import current_runtime
from tests.support.api import order_body, phone_ending, post_callback
from tests.support.events import event_spec, save_events

ALLOWED = "https://shop.example.com"


def post_order(client, key=None, **fields):
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post("/api/orders", json=order_body(**fields), headers=headers)


def callback(client, runtime, order_id, kind, amount):
    response = post_callback(client, runtime, order_id, kind, amount)
    assert response.status_code == 200, response.json
    return response.json


def left(client, event_id, ticket_type="regular"):
    event = client.get(f"/api/events/{event_id}").json
    return {t["id"]: t["left"] for t in event["ticketTypes"]}[ticket_type]


def orders_for(runtime, event_id):
    return runtime.store.orders.count_documents({"eventId": event_id})


def holds_for(runtime, event_id):
    return runtime.tickets.holds.count_documents({"event": event_id})


# --- prices ---------------------------------------------------------------------------------------


def test_the_server_prices_the_order_from_the_stored_event(client, runtime, new_event):
    event_id = new_event()
    response = post_order(client, event_id=event_id, ticket_type="vip", quantity=3)
    assert response.status_code == 201, response.json
    assert (response.json["amount"], response.json["currency"]) == (7500, "KES")
    order = runtime.store.get_order(response.json["orderId"])
    priced = ("eventId", "ticketTypeId", "ticketTypeName", "quantity", "unitPrice", "amount", "currency")
    assert {k: order[k] for k in priced} == {
        "eventId": event_id, "ticketTypeId": "vip", "ticketTypeName": "VIP", "quantity": 3, "unitPrice": 2500,
        "amount": 7500, "currency": "KES"}
    assert len(order["ticketSlots"]) == 3


def test_the_callback_amount_is_checked_against_the_stored_amount(client, runtime, new_event, settings):
    event_id = new_event()
    cheap = post_order(client, event_id=event_id, quantity=2).json["orderId"]
    paid = post_order(client, event_id=event_id, quantity=2).json["orderId"]
    # A price change after the order was made does not change what the order must be paid.
    save_events(settings["MONGO_URI"], {**event_spec(event_id), "ticketTypes": [
        {"id": "regular", "name": "Regular", "price": 10, "capacity": 1_000_000, "maxPerOrder": 10}]})
    callback(client, runtime, cheap, "success", amount=20)
    callback(client, runtime, paid, "success", amount=3000)
    cheap_order = runtime.store.get_order(cheap)
    assert (cheap_order["status"], cheap_order["failureReason"]) == ("failed", "amount_mismatch")
    assert runtime.store.get_order(paid)["status"] == "completed"


def test_an_amount_in_the_body_is_an_unknown_field_and_nothing_is_stored(client, runtime, new_event):
    event_id = new_event()
    response = client.post("/api/orders", json={**order_body(event_id=event_id), "amount": 1})
    assert response.status_code == 400
    assert response.json["details"] == {"amount": ["Unknown field."]}
    assert (orders_for(runtime, event_id), holds_for(runtime, event_id)) == (0, 0)


@pytest.mark.parametrize("fields, field, message", [
    ({"ticket_type": "balcony"}, "ticketTypeId", "This event has no such ticket type."),
    ({"ticket_type": "vip", "quantity": 5}, "quantity", "At most 4 tickets of this type per order."),
    ({"quantity": 11}, "quantity", "At most 10 tickets of this type per order."),
])
def test_ticket_type_and_quantity_are_checked_against_the_event(client, runtime, new_event, fields, field, message):
    event_id = new_event()
    response = post_order(client, event_id=event_id, **fields)
    assert response.status_code == 400
    assert response.json["details"] == {field: [message]}
    assert (orders_for(runtime, event_id), holds_for(runtime, event_id)) == (0, 0)


def test_a_total_past_the_m_pesa_limit_is_refused(client, runtime, settings):
    event_id = "ev-" + uuid.uuid4().hex[:12]
    save_events(settings["MONGO_URI"], {**event_spec(event_id), "ticketTypes": [
        {"id": "regular", "name": "Table", "price": 100_000, "capacity": 10, "maxPerOrder": 5}]})
    response = post_order(client, event_id=event_id, quantity=3)
    assert response.status_code == 400 and "250,000" in response.json["details"]["quantity"][0]
    assert post_order(client, event_id=event_id, quantity=2).json["amount"] == 200_000


# --- unknown and past events ----------------------------------------------------------------------


@pytest.mark.parametrize("which", ["unknown", "past"])
def test_unknown_and_past_events_are_404_on_the_api_and_the_page(client, runtime, new_event, which):
    event_id = new_event(starts_in=-timedelta(hours=1)) if which == "past" else "no-such-event"
    created = post_order(client, event_id=event_id)
    assert created.status_code == 404
    assert {k: created.json[k] for k in ("error", "message")} == {
        "error": "event_not_found", "message": "No such event, or its ticket sales have closed."}
    assert orders_for(runtime, event_id) == 0
    assert client.get(f"/api/events/{event_id}").json["error"] == "event_not_found"
    page = client.get(f"/events/{event_id}/checkout")
    html = page.get_data(as_text=True)
    assert page.status_code == 404 and page.mimetype == "text/html"
    assert "ticket sales have closed" in html and 'href="/events"' in html
    listing = client.get("/events").get_data(as_text=True)
    assert f"/events/{event_id}/checkout" not in listing


def test_the_events_page_lists_what_is_on_sale(client, new_event):
    event_id = new_event()
    html = client.get("/events").get_data(as_text=True)
    assert f'<a href="/events/{event_id}/checkout">Test event {event_id}</a>' in html


# --- the event and its tickets left ---------------------------------------------------------------


def test_the_event_answers_with_tickets_left_per_type(client, new_event):
    event_id = new_event(capacity=5, vip_capacity=2)
    before = client.get(f"/api/events/{event_id}")
    assert before.status_code == 200
    body = before.json
    assert set(body) == {"id", "name", "startsAt", "venue", "currency", "soldOut", "ticketTypes"}
    assert body["startsAt"].endswith("Z") and body["soldOut"] is False
    assert body["ticketTypes"] == [
        {"id": "regular", "name": "Regular", "price": 1500, "maxPerOrder": 10, "left": 5, "soldOut": False},
        {"id": "vip", "name": "VIP", "price": 2500, "maxPerOrder": 4, "left": 2, "soldOut": False}]
    post_order(client, event_id=event_id, quantity=3)
    post_order(client, event_id=event_id, ticket_type="vip", quantity=2)
    assert (left(client, event_id), left(client, event_id, "vip")) == (2, 0)


def test_the_event_list_counts_each_events_tickets_left_as_its_own_view_does(client, new_event):
    """The listing counts every event's holds in one query; each event's figures are still its own."""
    soon = new_event(capacity=5, vip_capacity=2, starts_in=timedelta(minutes=30))
    later = new_event(capacity=4, vip_capacity=3, starts_in=timedelta(minutes=31))
    post_order(client, event_id=soon, quantity=3)
    post_order(client, event_id=soon, ticket_type="vip", quantity=2)
    post_order(client, event_id=later, ticket_type="vip", quantity=1)
    listed = {event["id"]: event for event in client.get("/api/events").json["events"]}
    assert {t["id"]: (t["left"], t["soldOut"]) for t in listed[soon]["ticketTypes"]} == {
        "regular": (2, False), "vip": (0, True)}
    assert {t["id"]: (t["left"], t["soldOut"]) for t in listed[later]["ticketTypes"]} == {
        "regular": (4, False), "vip": (2, False)}
    for event_id in (soon, later):
        assert listed[event_id] == client.get(f"/api/events/{event_id}").json


def test_sold_out_is_409_with_nothing_stored(client, runtime, new_event):
    event_id = new_event(capacity=3)
    assert post_order(client, event_id=event_id, quantity=2).status_code == 201
    refused = post_order(client, event_id=event_id, quantity=2)
    assert refused.status_code == 409
    assert {k: refused.json[k] for k in ("error", "message", "left")} == {
        "error": "sold_out", "message": "Only 1 Regular ticket is left.", "left": 1}
    assert (orders_for(runtime, event_id), holds_for(runtime, event_id)) == (1, 2)
    assert post_order(client, event_id=event_id, quantity=1).status_code == 201
    assert left(client, event_id) == 0
    gone = post_order(client, event_id=event_id, quantity=1)
    assert {k: gone.json[k] for k in ("error", "message", "left")} == {
        "error": "sold_out", "message": "Regular is sold out: no tickets of this type are left.", "left": 0}
    page = client.get(f"/events/{event_id}/checkout").get_data(as_text=True)
    assert "Regular · KES 1,500 (sold out)" in page


def test_the_holds_of_a_sold_out_attempt_are_given_back(runtime, new_event):
    """An order that got some slots but not all holds none afterwards."""
    from eventi.errors import SoldOut

    event_id = new_event(capacity=3)
    runtime.tickets.hold(ObjectId(), event_id, "regular", 3, 2)
    with pytest.raises(SoldOut):
        runtime.tickets.hold(ObjectId(), event_id, "regular", 3, 2)
    assert holds_for(runtime, event_id) == 2


# --- release ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, amount, status", [
    ("insufficient-funds", 1500, "failed"),
    ("cancelled", 1500, "cancelled"),
    ("success", 1, "failed"),  # amount_mismatch
])
def test_a_failed_or_cancelled_order_gives_its_tickets_back(client, runtime, new_event, kind, amount, status):
    event_id = new_event(capacity=1)
    order_id = post_order(client, event_id=event_id).json["orderId"]
    assert post_order(client, event_id=event_id).status_code == 409
    callback(client, runtime, order_id, kind, amount)
    assert runtime.store.get_order(order_id)["status"] == status
    assert left(client, event_id) == 1
    assert post_order(client, event_id=event_id).status_code == 201


def test_a_completed_order_keeps_its_tickets(client, runtime, new_event):
    event_id = new_event(capacity=1)
    order_id = post_order(client, event_id=event_id).json["orderId"]
    callback(client, runtime, order_id, "success", 1500)
    assert left(client, event_id) == 0 and post_order(client, event_id=event_id).status_code == 409


def test_no_callback_from_reconcile_gives_the_tickets_back(client, runtime, new_event):
    event_id = new_event(capacity=1)
    order_id = post_order(client, event_id=event_id).json["orderId"]
    runtime.store.set_fields(order_id, {"pushedAt": utcnow() - timedelta(hours=1)})
    runtime.reconciler().run_once()
    assert runtime.store.get_order(order_id)["failureReason"] == "no_callback"
    assert left(client, event_id) == 1


def test_a_refused_push_gives_the_tickets_back(push_settings, new_event):
    app = create_app(push_settings)
    try:
        client = app.test_client()
        event_id = new_event(capacity=1)
        response = post_order(client, event_id=event_id, phone=phone_ending(7))
        assert response.status_code == 502
        order = current_runtime(app).store.get_order(response.json["orderId"])
        assert order["failureReason"] == "stk_push_failed"
        assert left(client, event_id) == 1
    finally:
        current_runtime(app).close()


def test_tickets_are_released_once_however_often_the_end_is_reported(client, runtime, new_event):
    """Once A's slot went back and B took it, A's later deliveries and reconcile must not free B's slot."""
    from bson import ObjectId as Oid

    event_id = new_event(capacity=1)
    first = post_order(client, event_id=event_id).json["orderId"]
    callback(client, runtime, first, "cancelled", 1500)
    second = post_order(client, event_id=event_id).json["orderId"]
    assert left(client, event_id) == 0
    assert callback(client, runtime, first, "cancelled", 1500)["duplicate"] is True
    assert callback(client, runtime, first, "insufficient-funds", 1500)["duplicate"] is True
    # The path that finishes an interrupted status change applies A's claim again; so may a direct release:
    runtime.store.claims.update_one({"_id": Oid(first)}, {"$set": {"claimedAt": utcnow() - timedelta(minutes=5)}})
    runtime.store.finalize(first, _cancelled())
    assert runtime.tickets.release(Oid(first)) is False
    runtime.reconciler().run_once()
    assert left(client, event_id) == 0 and post_order(client, event_id=event_id).status_code == 409
    assert runtime.store.get_order(second)["status"] == "pending"


def test_racing_releases_of_one_order_have_one_releaser(client, runtime, new_event):
    """Only the writer whose release marker went in deletes: two deleters could free a slot resold between them."""
    event_id = new_event(capacity=3)
    order_id = ObjectId(post_order(client, event_id=event_id, quantity=3).json["orderId"])
    releasers = [gevent.spawn(runtime.tickets.release, order_id) for _ in range(20)]
    gevent.joinall(releasers, timeout=30)
    outcomes = [g.value if g.successful() else type(g.exception) for g in releasers]
    assert outcomes.count(True) == 1
    # The others found the release started: done (False), or still running (ChangeInProgress: not final yet)
    assert set(outcomes) - {True} <= {False, ChangeInProgress}
    assert left(client, event_id) == 3


def _cancelled():
    from eventi.domain.models import OrderStatus, Outcome

    return Outcome(OrderStatus.CANCELLED, failure_reason="late")


def _interrupted_release(runtime, order_id, started_ago):
    """The release marker went in but the store failed before the slots were deleted."""
    slots = runtime.store.get_order(order_id)["ticketSlots"]
    runtime.tickets.releases.insert_one({"_id": order_id, "slots": slots, "startedAt": utcnow() - started_ago,
                                         "done": False})


def test_an_interrupted_release_is_finished_by_the_next_delivery(client, runtime, new_event):
    """Its writer is surely gone (the marker is older than INTERRUPTED_AFTER): the delivery finishes the release
    before the order shows failed, so a final order never counts as sold."""
    event_id = new_event(capacity=1)
    order_id = post_order(client, event_id=event_id).json["orderId"]
    _interrupted_release(runtime, order_id, timedelta(minutes=5))
    callback(client, runtime, order_id, "cancelled", 1500)
    assert runtime.store.get_order(order_id)["status"] == "cancelled" and left(client, event_id) == 1
    assert runtime.reconciler().run_once().releases_finished == 0


def test_a_release_still_running_keeps_the_order_from_showing_final_until_it_is_done(client, runtime, new_event):
    """A marker seconds old may belong to a writer still deleting: the delivery answers 503 and the order stays
    pending (not failed while holding slots); once the marker is old, reconcile finishes it."""
    event_id = new_event(capacity=1)
    order_id = post_order(client, event_id=event_id).json["orderId"]
    _interrupted_release(runtime, order_id, timedelta(seconds=1))
    response = post_callback(client, runtime, order_id, "cancelled", 1500)
    assert (response.status_code, response.json["error"]) == (503, "store_unavailable")
    assert runtime.store.get_order(order_id)["status"] == "pending" and left(client, event_id) == 0
    runtime.tickets.releases.update_one({"_id": order_id}, {"$set": {"startedAt": utcnow() - timedelta(minutes=5)}})
    assert runtime.reconciler().run_once().releases_finished == 1
    assert left(client, event_id) == 1
    assert callback(client, runtime, order_id, "cancelled", 1500)["duplicate"] is True  # PayHero's redelivery
    assert runtime.store.get_order(order_id)["status"] == "cancelled"


def test_holds_of_an_order_never_stored_are_freed_by_reconcile(client, runtime, new_event):
    """The store failed between the hold and the order insert: the sweep frees those holds, not others'."""
    event_id = new_event(capacity=2)
    kept = post_order(client, event_id=event_id).json["orderId"]
    lost = ObjectId()
    runtime.tickets.hold(lost, event_id, "regular", 2, 1)
    runtime.tickets.holds.update_many({"event": event_id}, {"$set": {"heldAt": utcnow() - timedelta(minutes=5)}})
    assert left(client, event_id) == 0
    assert runtime.reconciler().run_once().releases_finished == 1
    assert left(client, event_id) == 1
    assert runtime.tickets.holds.count_documents({"orderId": kept}) == 1


# --- idempotency -------------------------------------------------------------------------------------


def test_the_same_key_and_body_replay_the_first_answer_and_push_once(push_settings, payhero_simulator, new_event):
    app = create_app({**push_settings, "PUSH_LIMIT": 3})
    try:
        client, runtime = app.test_client(), current_runtime(app)
        event_id, phone, key = new_event(), phone_ending(5), uuid.uuid4().hex
        first = post_order(client, key=key, event_id=event_id, phone=phone, quantity=2)
        assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
        again = [post_order(client, key=key, event_id=event_id, phone=phone, quantity=2) for _ in range(3)]
        assert [r.status_code for r in again] == [201] * 3
        assert all(r.json == first.json and r.headers["Idempotent-Replayed"] == "true" for r in again)
        assert (orders_for(runtime, event_id), holds_for(runtime, event_id)) == (1, 2)
        assert len(payhero_simulator.pushes(first.json["orderId"])) == 1
        assert runtime.redis.get(f"stk:pushes:254{phone[1:]}") == b"1"  # one push counted against the limit
    finally:
        current_runtime(app).close()


def test_the_same_key_with_another_body_is_422(client, runtime, new_event):
    event_id, key = new_event(), uuid.uuid4().hex
    assert post_order(client, key=key, event_id=event_id, quantity=1).status_code == 201
    reused = post_order(client, key=key, event_id=event_id, quantity=2)
    assert reused.status_code == 422
    assert reused.json["error"] == "idempotency_key_reused"
    assert orders_for(runtime, event_id) == 1


def test_a_refused_push_is_replayed_as_the_same_502(push_settings, payhero_simulator, new_event):
    app = create_app(push_settings)
    try:
        client, runtime = app.test_client(), current_runtime(app)
        event_id, phone, key = new_event(), phone_ending(7), uuid.uuid4().hex
        first = post_order(client, key=key, event_id=event_id, phone=phone)
        again = post_order(client, key=key, event_id=event_id, phone=phone)
        assert (first.status_code, again.status_code) == (502, 502) and again.json == first.json
        assert again.mimetype == first.mimetype == "application/problem+json" and again.headers["Idempotent-Replayed"] == "true"
        assert [e["source"] for e in runtime.store.events_for(first.json["orderId"])] == ["stk_push"]  # one attempt
        assert orders_for(runtime, event_id) == 1
    finally:
        current_runtime(app).close()


def test_a_key_whose_request_created_nothing_can_be_sent_again(client, runtime, new_event):
    event_id, key = new_event(capacity=1), uuid.uuid4().hex
    taken = post_order(client, event_id=event_id).json["orderId"]
    assert post_order(client, key=key, event_id=event_id).status_code == 409  # sold out: the key is free again
    callback(client, runtime, taken, "cancelled", 1500)
    assert post_order(client, key=key, event_id=event_id).status_code == 201


def test_a_key_still_being_answered_is_409_in_use(client, runtime, new_event):
    event_id, key = new_event(), uuid.uuid4().hex
    from eventi.services.idempotent_checkout import digest

    # The first request holds the key but has no answer yet:
    runtime.keys.claim(key, digest(_loaded(order_body(event_id=event_id))), ObjectId())
    response = post_order(client, key=key, event_id=event_id)
    assert response.status_code == 409 and response.json["error"] == "idempotency_key_in_use"
    assert response.headers["Retry-After"] == "1"
    assert orders_for(runtime, event_id) == 0


def _stopped_request(runtime, key, event_id, minutes_ago=2):
    """A request that claimed the key, reserved an orderId and stopped without answering (store failure, crash)."""
    from eventi.services.idempotent_checkout import digest

    reserved = ObjectId()
    runtime.keys.claim(key, digest(_loaded(order_body(event_id=event_id))), reserved)
    runtime.keys.keys.update_one({"_id": key}, {"$set": {"createdAt": utcnow() - timedelta(minutes=minutes_ago)}})
    return reserved


def test_a_retry_after_a_request_that_stored_nothing_creates_the_order_under_the_reserved_id(client, runtime, new_event):
    event_id, key = new_event(), uuid.uuid4().hex
    reserved = _stopped_request(runtime, key, event_id)
    response = post_order(client, key=key, event_id=event_id)
    assert response.status_code == 201 and response.json["orderId"] == str(reserved)
    assert post_order(client, key=key, event_id=event_id).json == response.json  # and that answer is kept
    assert orders_for(runtime, event_id) == 1


def test_a_retry_after_a_request_that_stored_its_order_answers_that_order(client, runtime, new_event):
    event_id, key = new_event(), uuid.uuid4().hex
    reserved = _stopped_request(runtime, key, event_id)
    runtime.orders.create(_loaded(order_body(event_id=event_id)), reserved)  # it landed, the answer did not
    response = post_order(client, key=key, event_id=event_id)
    assert response.status_code == 201 and response.json["orderId"] == str(reserved)
    assert response.headers["Idempotent-Replayed"] == "true"
    assert (orders_for(runtime, event_id), holds_for(runtime, event_id)) == (1, 1)


def test_a_second_order_under_a_reserved_id_is_refused_and_holds_nothing(runtime, new_event):
    from eventi.errors import IdempotencyKeyInUse

    event_id, reserved = new_event(), ObjectId()
    fields = _loaded(order_body(event_id=event_id))
    runtime.orders.create(fields, reserved)
    with pytest.raises(IdempotencyKeyInUse):
        runtime.orders.create(fields, reserved)
    assert (orders_for(runtime, event_id), holds_for(runtime, event_id)) == (1, 1)


def test_holds_an_order_does_not_list_are_freed_by_reconcile(client, runtime, new_event):
    """The late insert of a stalled request lost to a retry under the same orderId: its holds are orphans."""
    event_id = new_event(capacity=2)
    order_id = post_order(client, event_id=event_id).json["orderId"]
    runtime.tickets.hold(ObjectId(order_id), event_id, "regular", 2, 1)  # the loser's hold, same orderId
    runtime.tickets.holds.update_many({"event": event_id}, {"$set": {"heldAt": utcnow() - timedelta(minutes=5)}})
    assert runtime.reconciler().run_once().releases_finished == 1
    assert left(client, event_id) == 1
    assert runtime.tickets.holds.count_documents({"orderId": order_id}) == 1


def test_an_expired_key_is_free_again(client, runtime, new_event):
    event_id, key = new_event(), uuid.uuid4().hex
    first = post_order(client, key=key, event_id=event_id).json
    runtime.keys.keys.update_one({"_id": key}, {"$set": {"createdAt": utcnow() - timedelta(hours=25)}})
    second = post_order(client, key=key, event_id=event_id)
    assert second.status_code == 201 and second.json["orderId"] != first["orderId"]


@pytest.mark.parametrize("key", ["", "x" * 65, "has space", "ключ", "a/b"])
def test_a_malformed_key_is_400_and_nothing_is_stored(client, runtime, new_event, key):
    event_id = new_event()
    response = post_order(client, key=key, event_id=event_id)
    assert response.status_code == 400 and "Idempotency-Key" in response.json["details"]
    assert orders_for(runtime, event_id) == 0


def _loaded(body):
    from eventi.schemas import OrderCreateSchema

    return OrderCreateSchema().load(body)


# --- CORS ---------------------------------------------------------------------------------------------


@pytest.fixture
def cors_client(settings):
    app = create_app({**settings, "CORS_ORIGINS": f"{ALLOWED}, http://localhost:5173"})
    yield app.test_client()
    current_runtime(app).close()


def preflight(client, origin, path="/api/orders"):
    return client.options(path, headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                                         "Access-Control-Request-Headers": "content-type, idempotency-key"})


def test_a_preflight_from_an_allowed_origin_allows_the_idempotency_key(cors_client):
    response = preflight(cors_client, ALLOWED)
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    allowed = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert allowed >= {"content-type", "idempotency-key"}
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_a_preflight_from_another_origin_gets_no_cors_headers(cors_client):
    response = preflight(cors_client, "https://evil.example.com")
    assert not [h for h in response.headers.keys() if h.startswith("Access-Control-")]


def test_actual_requests_carry_cors_headers_for_allowed_origins_only(cors_client, new_event):
    event_id = new_event()
    allowed = cors_client.post("/api/orders", json=order_body(event_id=event_id), headers={"Origin": ALLOWED})
    assert allowed.status_code == 201 and allowed.headers["Access-Control-Allow-Origin"] == ALLOWED
    exposed = {h.strip() for h in allowed.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"X-Request-ID", "Retry-After", "Location", "Allow"} <= exposed
    assert cors_client.get(f"/api/events/{event_id}", headers={"Origin": "http://localhost:5173"}).headers[
        "Access-Control-Allow-Origin"] == "http://localhost:5173"
    refused = cors_client.post("/api/orders", json=order_body(event_id=event_id), headers={"Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in refused.headers
    error = cors_client.post("/api/orders", json={"eventId": event_id}, headers={"Origin": ALLOWED})
    assert error.status_code == 400 and error.headers["Access-Control-Allow-Origin"] == ALLOWED  # errors are readable too


def test_cors_is_for_the_api_routes_only(cors_client):
    for path in ("/api/payhero/callback", "/healthz", "/metrics", "/events"):
        response = cors_client.get(path, headers={"Origin": ALLOWED})
        assert "Access-Control-Allow-Origin" not in response.headers, path


def test_without_the_setting_no_route_answers_cors(client):
    assert "Access-Control-Allow-Origin" not in preflight(client, ALLOWED).headers
    assert "Access-Control-Allow-Origin" not in client.get("/healthz", headers={"Origin": ALLOWED}).headers


@pytest.mark.parametrize("value", ["*", "https://shop.example.com/", "shop.example.com", "https://a.example.com/path"])
def test_cors_origins_must_be_exact_origins(value):
    with pytest.raises(ConfigError, match="EVENTI_CORS_ORIGINS"):
        cors_origins(value)


def test_cors_origins_are_parsed_from_a_comma_separated_list():
    assert cors_origins(" https://a.example.com ,http://localhost:5173,") == ("https://a.example.com", "http://localhost:5173")
    assert cors_origins("") == ()


# --- concurrency in one process -------------------------------------------------------------------------


def test_racing_orders_for_the_last_tickets_never_oversell(client, runtime, new_event):
    event_id = new_event(capacity=5)
    answers = [g.get(timeout=60) for g in [gevent.spawn(post_order, client, event_id=event_id) for _ in range(30)]]
    assert sorted(r.status_code for r in answers) == [201] * 5 + [409] * 25
    assert (orders_for(runtime, event_id), holds_for(runtime, event_id)) == (5, 5)


def test_a_capacity_lowered_below_what_is_held_is_a_ceiling(client, runtime, settings, new_event):
    """Capacity 4 with 3 held, lowered to 2: no new hold until the holds fall below 2 (before issue 19 the slots
    0-1 looked free, so new orders were created past the new capacity)."""
    event_id = new_event(capacity=4)
    orders = [post_order(client, event_id=event_id).json["orderId"] for _ in range(3)]
    save_events(settings["MONGO_URI"], event_spec(event_id, capacity=2))
    assert runtime.events.get(event_id)["ticketTypes"][0]["slots"] == 4  # the highest capacity it had
    assert left(client, event_id) == 0
    assert [post_order(client, event_id=event_id).status_code for _ in range(5)] == [409] * 5
    assert holds_for(runtime, event_id) == 3
    for order_id in orders[:2]:
        callback(client, runtime, order_id, "cancelled", 1500)
    assert left(client, event_id) == 1
    assert post_order(client, event_id=event_id).status_code == 201
    assert post_order(client, event_id=event_id).status_code == 409
    assert holds_for(runtime, event_id) == 2 and left(client, event_id) == 0


def test_a_capacity_raised_again_counts_nothing_extra(client, runtime, settings, new_event):
    event_id = new_event(capacity=2)
    save_events(settings["MONGO_URI"], event_spec(event_id, capacity=1))
    save_events(settings["MONGO_URI"], event_spec(event_id, capacity=3))
    assert runtime.events.get(event_id)["ticketTypes"][0]["slots"] == 3
    assert [post_order(client, event_id=event_id).status_code for _ in range(4)] == [201, 201, 201, 409]
