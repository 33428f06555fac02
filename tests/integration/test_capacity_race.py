"""The last tickets raced through real gunicorn (2 gevent workers) against the real store, with real STK pushes."""
import itertools
import random
import uuid
from collections import Counter

import pytest
import redis
import requests
from gevent.pool import Pool
from pymongo import MongoClient

from tests.conftest import TEST_SECRET, with_own_database
from tests.support.api import Api, order_body
from tests.support.events import event_spec, save_events

ROUNDS = 3
CAPACITY, SOLD_BEFORE, RACERS = 30, 20, 200


_next_phone = itertools.count(random.randrange(0, 50_000))


@pytest.fixture
def settings(settings):
    """The session's store server, a database of this test's own (tests/conftest.py with_own_database)."""
    return with_own_database(settings, "race")


def phones(count):
    """Numbers ending in 5 (the simulator takes their push and never calls back), never the same twice in a run:
    the push limit is on in the race, so a repeated number would be refused for that reason."""
    return [f"0711{next(_next_phone):05d}5" for _ in range(count)]


def post(api, key=None, **fields):
    headers = {"Idempotency-Key": key} if key else {}
    return requests.post(f"{api.base_url}/api/orders", json=order_body(**fields), headers=headers, timeout=120)


def test_200_orders_racing_for_the_last_10_tickets(start_gunicorn, settings, payhero_simulator):
    server = start_gunicorn(workers=2, **payhero_simulator.settings, EVENTI_PUSH_LIMIT=1)
    api = Api(server.base_url, TEST_SECRET)
    db = MongoClient(settings["MONGO_URI"]).get_default_database()
    push_counters = redis.Redis.from_url(settings["REDIS_URL"])
    for _ in range(ROUNDS):
        event_id = "race-" + uuid.uuid4().hex[:10]
        save_events(settings["MONGO_URI"], event_spec(event_id, capacity=CAPACITY))
        early = Pool(10).map(lambda phone, event_id=event_id: post(api, event_id=event_id, phone=phone), phones(SOLD_BEFORE))
        assert [r.status_code for r in early] == [201] * SOLD_BEFORE
        assert _left(api, event_id) == CAPACITY - SOLD_BEFORE

        racers = phones(RACERS)
        answers = Pool(RACERS).map(lambda phone, event_id=event_id: (phone, post(api, event_id=event_id, phone=phone)), racers)

        assert Counter(r.status_code for _, r in answers) == {201: CAPACITY - SOLD_BEFORE, 409: RACERS - (CAPACITY - SOLD_BEFORE)}
        winners = [r.json()["orderId"] for _, r in answers if r.status_code == 201]
        losers = [phone for phone, r in answers if r.status_code == 409]
        assert {r.json()["error"] for _, r in answers if r.status_code == 409} == {"sold_out"}
        assert db.orders.count_documents({"eventId": event_id}) == CAPACITY
        assert db.ticket_holds.count_documents({"event": event_id}) == CAPACITY
        assert _left(api, event_id) == 0
        # Every winner got exactly one push; no loser was stored, pushed, or counted against its phone's limit.
        assert all(len(payhero_simulator.pushes(order_id)) == 1 for order_id in winners)
        stored_phones = {o["phone"] for o in db.orders.find({"eventId": event_id}, {"phone": 1})}
        assert not stored_phones & {"254" + p[1:] for p in losers}
        assert all(int(push_counters.get(f"stk:pushes:254{p[1:]}") or 0) == 0 for p in losers)


def test_racing_requests_with_one_idempotency_key_make_one_order(start_gunicorn, settings, payhero_simulator):
    server = start_gunicorn(workers=2, **payhero_simulator.settings)
    api = Api(server.base_url, TEST_SECRET)
    db = MongoClient(settings["MONGO_URI"]).get_default_database()
    for _ in range(ROUNDS):
        event_id, key = "race-" + uuid.uuid4().hex[:10], uuid.uuid4().hex
        save_events(settings["MONGO_URI"], event_spec(event_id))
        [phone] = phones(1)
        answers = Pool(20).map(lambda _, key=key, event_id=event_id, phone=phone:
                               post(api, key=key, event_id=event_id, phone=phone, quantity=2), range(20))
        created = [r.json() for r in answers if r.status_code == 201]
        assert {r.status_code for r in answers} <= {201, 409}
        assert {r.json()["error"] for r in answers if r.status_code == 409} <= {"idempotency_key_in_use"}
        assert created and all(body == created[0] for body in created)
        assert db.orders.count_documents({"eventId": event_id}) == 1
        assert db.ticket_holds.count_documents({"event": event_id}) == 2
        assert len(payhero_simulator.pushes(created[0]["orderId"])) == 1
        replay = post(api, key=key, event_id=event_id, phone=phone, quantity=2)
        assert (replay.status_code, replay.json()) == (201, created[0])


def _left(api, event_id):
    event = requests.get(f"{api.base_url}/api/events/{event_id}", timeout=30).json()
    return {t["id"]: t["left"] for t in event["ticketTypes"]}["regular"]
