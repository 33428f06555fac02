"""100 identical callbacks for one order, in parallel, across 2 workers.

One delivery decides the status; every delivery announces the same final body (a duplicate
re-announces, so a lost publish heals on the next delivery)."""
import json
import time

import redis
from gevent.pool import Pool
from pymongo import MongoClient

from eventi.notify import channel_for
from eventi.storage.order_store import OrderStore
from tests.conftest import TEST_SECRET
from tests.support.api import Api

SENTINEL = "sentinel"


def test_100_parallel_identical_callbacks_change_the_order_once_and_announce_one_body(start_gunicorn, settings):
    server = start_gunicorn(workers=2)
    api = Api(server.base_url, TEST_SECRET)
    order_id, token = api.create_order()
    listener = redis.Redis.from_url(settings["REDIS_URL"]).pubsub(ignore_subscribe_messages=True)
    listener.subscribe(channel_for(order_id))

    responses = Pool(100).map(lambda _: api.callback(order_id), range(100))

    assert [r.status_code for r in responses] == [200] * 100
    assert sum(1 for r in responses if r.json() == {"received": True}) == 1
    assert sum(1 for r in responses if r.json() == {"received": True, "duplicate": True}) == 99
    # Every publish happened before its POST was answered; a sentinel marks the end of them.
    redis.Redis.from_url(settings["REDIS_URL"]).publish(channel_for(order_id), SENTINEL)
    published = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        message = listener.get_message(timeout=1)  # None also after a subscribe confirmation
        if message is None:
            continue
        if message["data"] == SENTINEL.encode():
            break
        published.append(json.loads(message["data"]))
    assert published, "no status change was published"
    assert {json.dumps(m["body"], sort_keys=True) for m in published} == {json.dumps(api.status(order_id, token).json(),
                                                                                     sort_keys=True)}
    assert published[0]["body"]["paymentStatus"] == "completed"
    db = MongoClient(settings["MONGO_URI"], tz_aware=True).get_default_database()
    assert db.payment_events.count_documents({"orderId": order_id}) == 99  # the losers, each on its own
    assert len(OrderStore(db).events_for(order_id)) == 100  # and the winner's, in its status claim
