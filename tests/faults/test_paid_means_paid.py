"""Paid means paid: whatever fails, every order reads the same in MongoDB, the Redis cache,
GET /api/orders/<id>, a held wait and a fresh wait (issue 11; the design is in eventi/storage/status_cache.py).

Real processes throughout: gunicorn with 2 gevent workers, and a redis-server or FerretDB of the
test's own that it stalls, stops, kills and restarts on the same port.
"""
import json
import signal

import gevent
import pytest
import redis
from bson import ObjectId
from gevent.event import Event
from gevent.pool import Pool
from pymongo import MongoClient

from devstack.processes import Gunicorn
from devstack.wait import eventually
from eventi.domain.models import OrderStatus
from eventi.services.broadcast import StatusBroadcaster
from eventi.storage.status_cache import StatusCache, cache_key
from tests.conftest import TEST_SECRET, gunicorn_env, stop_quickly
from tests.support.api import Api
from tests.support.listen import ChannelListener

FAST = {"RECHECK_SECONDS": 0.5}
STALLED_STORE_OPTIONS = "socketTimeoutMS=5000&heartbeatFrequencyMS=1000"
"""For a gunicorn whose FerretDB the test SIGSTOPs: a request the stall holds gives up after 5 s, not eventi's 10 s,
and pymongo's monitor finds the store unresponsive within about a second, not 10 s, and fails the requests queued
for a connection (they waited for it for 13 s). The stall tests meet the give-up, not its timing. (A 3 s socket
timeout was tried: on a loaded machine, writes before the stall timed out.)"""


def stalled_store_uri(uri):
    """The store's URI with STALLED_STORE_OPTIONS (the URI's options win over eventi's)."""
    return f"{uri}?{STALLED_STORE_OPTIONS}"


def start(settings, workers=2, **overrides):
    return Gunicorn(gunicorn_env({**settings, **FAST, **overrides}), workers=workers).start()


def disagreements(api, db, redis_client, orders):
    """Every place an order's status reads differently from MongoDB's order document (or its claim).
    The cache is read as the app reads it (a pending entry another Redis process stored is a miss)."""
    cache = StatusCache(redis_client, 300)

    def check(order):
        order_id, token = order
        stored = db.orders.find_one({"_id": ObjectId(order_id)})["status"]
        claim = db.status_claims.find_one({"_id": ObjectId(order_id)})
        cached = cache.get(order_id)
        seen = {
            "claim": claim["status"] if claim else stored,
            "cache": cached["paymentStatus"] if cached else stored,
            "status": _status_of(api.status(order_id, token)),
            "wait": _status_of(api.wait(order_id, token, 1)),
        }
        return [f"{order_id}: mongodb={stored} {where}={status}" for where, status in seen.items() if status != stored]

    return [line for lines in Pool(20).imap(check, orders) for line in lines]


def _status_of(response):
    return response.json()["paymentStatus"] if response.status_code == 200 else f"http {response.status_code}"


def agree(api, db, cache, orders, timeout=45, what="every order to read as MongoDB holds it"):
    last = []

    def check():
        last[:] = disagreements(api, db, cache, orders)
        return not last

    try:
        eventually(check, timeout, what)
    except AssertionError:
        raise AssertionError(f"timed out waiting for {what}:\n" + "\n".join(last)) from None


def pending_orders(api: Api, count: int) -> list[tuple[str, str]]:
    """count new orders (id, statusToken), each read once as pending: Redis caches them pending."""
    orders = [api.create_order() for _ in range(count)]
    for order_id, token in orders:
        assert api.status(order_id, token).json()["paymentStatus"] == "pending"
    return orders


def hold_waits(api, orders, timeout=60):
    waits = {order_id: gevent.spawn(api.wait, order_id, token, timeout) for order_id, token in orders}
    api.await_waits_held(len(orders))
    return waits


def assert_waits_answer(waits, db, timeout=30):
    for order_id, wait in waits.items():
        body = wait.get(timeout=timeout).json()
        stored = db.orders.find_one({"_id": ObjectId(order_id)})["status"]
        assert (body["paymentStatus"], body["final"]) == (stored, True), order_id


# --- (a) the store stalls or is killed in the middle of paid callbacks -----------------------
@pytest.mark.parametrize("fault", ["stall", "kill"])
def test_store_failing_mid_callbacks_leaves_no_paid_order_pending(settings, own_mongo, fault):
    """FerretDB stalled (SIGSTOP: writes held, applied after the driver gave up) or killed and restarted while 60 paid
    callbacks, status reads and held waits run. A callback answered 503 whose write landed anyway must
    become visible and announced without help; then PayHero's redelivery of every 503 completes the rest.
    On the code before issue 11 the stall left status claims whose orders stayed pending and completed
    orders that the cache, the status route and the waits called pending."""
    server = start(settings, MONGO_URI=stalled_store_uri(own_mongo.uri) if fault == "stall" else own_mongo.uri)
    db = MongoClient(own_mongo.uri).get_default_database()
    cache = redis.Redis.from_url(settings["REDIS_URL"])
    stop_reading, readers = Event(), []
    try:
        api = Api(server.base_url, TEST_SECRET)
        orders = [api.create_order() for _ in range(60)]
        waits = hold_waits(api, orders)
        readers += [gevent.spawn(_read_until, api, orders[i::4], stop_reading) for i in range(4)]
        answers = {}

        def deliver(order_id):
            answers[order_id] = api.callback(order_id)

        # A burst, as after a PayHero backlog: the fault lands while the first wave is still being answered,
        # and the second wave is sent into it (so the fault always meets callbacks, however fast the machine).
        first_wave, second_wave = orders[:20], orders[20:]
        [gevent.spawn(deliver, order_id) for order_id, _ in first_wave]
        eventually(lambda: len(answers) >= 10, 60, "the first callbacks to be answered")
        if fault == "stall":
            own_mongo.process.signal(signal.SIGSTOP)
        else:
            own_mongo.process.proc.kill()
        [gevent.spawn(deliver, order_id) for order_id, _ in second_wave]
        try:
            eventually(lambda: len(answers) == len(orders), 60, "every callback to be answered")
        finally:
            if fault == "stall":
                own_mongo.process.signal(signal.SIGCONT)
            else:
                own_mongo.process.proc.wait()
                own_mongo.start()
        refused = [order_id for order_id, response in answers.items() if response.status_code != 200]
        assert refused, "the fault answered no callback with 503: the test did not test anything"
        assert {answers[o].status_code for o in refused} == {503}

        # Without PayHero's help: what the store applied is visible and announced, the rest unchanged.
        agree(api, db, cache, orders)
        stop_reading.set()

        for order_id in refused:  # PayHero redelivers what was not answered 200
            eventually(lambda order_id=order_id: api.callback(order_id).status_code == 200, 60,
                       f"a redelivery for {order_id} to be taken")
        stored = db.orders.find({"_id": {"$in": [ObjectId(i) for i, _ in orders]}})
        assert all(o["status"] == OrderStatus.COMPLETED.value for o in stored)
        agree(api, db, cache, orders)
        assert_waits_answer(waits, db)
    finally:
        stop_reading.set()
        gevent.joinall(readers, timeout=30)
        stop_quickly(server)


def _read_until(api, orders, stop):
    while not stop.is_set():
        for order_id, token in orders:
            api.status(order_id, token)  # 503 while the store is away and the order is not cached


# --- (b) a cache miss racing a paid callback ------------------------------------------------
def test_readers_missing_the_cache_during_a_paid_callback_never_leave_pending_behind(start_gunicorn, settings):
    server = start_gunicorn(workers=2, EVENTI_RECHECK_SECONDS=0.5)
    api = Api(server.base_url, TEST_SECRET)
    cache = redis.Redis.from_url(settings["REDIS_URL"])
    stale = []
    for _ in range(40):
        order_id, token = api.create_order()
        cache.delete(cache_key(order_id))  # expired, evicted, or Redis restarted empty
        callback = gevent.spawn(api.callback, order_id)
        readers = [gevent.spawn(_read_while, api, order_id, token, callback) for _ in range(6)]
        assert callback.get(timeout=60).status_code == 200
        gevent.joinall(readers, timeout=60, raise_error=True)
        cached = StatusCache(cache, 300).get(order_id)
        after = api.status(order_id, token).json()["paymentStatus"]
        if cached is None or cached["paymentStatus"] != "completed" or after != "completed":
            stale.append((order_id, cached, after))
    assert stale == []


def _read_while(api, order_id, token, callback):
    """Read the order's status again and again until the callback is answered, then once more."""
    while not callback.ready():
        api.status(order_id, token)
    api.status(order_id, token)


# --- (c) Redis stopped while callbacks arrive, then restarted ---------------------------------
@pytest.mark.parametrize("restart", ["empty", "old-rdb"])
def test_callbacks_while_redis_is_down_end_cached_and_announced_after_it_returns(settings, own_redis, restart):
    """The publish never gives up: after Redis comes back (empty, or from an RDB file saved while the
    orders were pending) every order is cached final, reads agree and the held waits are answered."""
    server = start(settings, REDIS_URL=own_redis.url)
    db = MongoClient(settings["MONGO_URI"]).get_default_database()
    try:
        api = Api(server.base_url, TEST_SECRET)
        orders = pending_orders(api, 10)
        cache = redis.Redis.from_url(own_redis.url)
        if restart == "old-rdb":
            cache.save()  # the file Redis restarts from holds what it had cached for the pending orders
        else:
            cache.flushall()
        waits = hold_waits(api, orders)
        own_redis.stop()
        server.process.wait_for(r"Redis hub disconnected", count=2, timeout=30)
        for order_id, _ in orders:
            assert api.callback(order_id).status_code == 200  # stored; the announcement waits for Redis
        own_redis.start()

        def cached_final():
            return all((body := StatusCache(cache, 300).get(order_id)) and body["paymentStatus"] == "completed"
                       for order_id, _ in orders)

        eventually(cached_final, 30, "every order to be cached as completed again")
        agree(api, db, cache, orders)
        assert_waits_answer(waits, db)
    finally:
        stop_quickly(server)


def test_redis_restarted_from_an_old_rdb_does_not_bring_pending_back(settings, own_redis):
    """Redis killed after the payments were announced, restarted from a file saved while they were pending."""
    server = start(settings, REDIS_URL=own_redis.url)
    db = MongoClient(settings["MONGO_URI"]).get_default_database()
    try:
        api = Api(server.base_url, TEST_SECRET)
        orders = pending_orders(api, 40)
        cache = redis.Redis.from_url(own_redis.url)
        cache.save()
        for order_id, _ in orders:
            assert api.callback(order_id).json() == {"received": True}
        own_redis.process.proc.kill()
        own_redis.process.proc.wait()
        own_redis.start()
        agree(api, db, cache, orders, timeout=30)
    finally:
        stop_quickly(server)


def test_cache_rules_pending_never_over_final_and_never_from_another_redis_process(own_redis):
    client = redis.Redis.from_url(own_redis.url)
    cache = StatusCache(client, 300)
    paid, waiting = "6751a3f2c9e77b0012ab34c1", "6751a3f2c9e77b0012ab34c2"
    pending = {"orderId": paid, "paymentStatus": "pending", "amount": 1500, "updatedAt": "2026-01-01T00:00:00.000Z"}
    final = {**pending, "paymentStatus": "completed", "mpesaReceipt": "RCPT123"}
    cache.put(pending)
    assert cache.get(paid) == pending
    cache.put(final)
    cache.put(pending)  # a reader that read MongoDB before the payment, caching late
    assert cache.get(paid) == final
    cache.put({**pending, "orderId": waiting})
    client.save()
    own_redis.stop()
    own_redis.start()  # from the file: both entries are back
    client = redis.Redis.from_url(own_redis.url)
    cache = StatusCache(client, 300)
    assert client.exists(cache_key(waiting)) and cache.get(waiting) is None  # stored by another Redis process
    assert cache.get(paid) == final  # a final entry is true wherever it comes from
    cache.put({**pending, "orderId": waiting})
    assert cache.get(waiting) == {**pending, "orderId": waiting}
    client.set(cache_key(waiting), json.dumps(pending | {"orderId": waiting}))  # as stored before run_ids
    assert cache.get(waiting) is None
    cache.put(final | {"orderId": waiting})
    assert cache.get(waiting) == final | {"orderId": waiting}
    client.close()


# --- the broadcaster's retry has no end -------------------------------------------------------
class GatedBackoff:
    """No wait between retries, except that the test can hold the next retry at a gate."""

    def __init__(self):
        self.open = Event()
        self.open.set()

    def compute(self, failures):
        self.open.wait()
        return 0.005


def test_the_broadcaster_keeps_retrying_until_redis_takes_the_status(own_redis, caplog):
    client = redis.Redis.from_url(own_redis.url, socket_connect_timeout=1, socket_timeout=1)
    backoff = GatedBackoff()
    broadcaster = StatusBroadcaster(client, StatusCache(client, 300), backoff=backoff, alarm_after=0.2)
    body = {"orderId": "6751a3f2c9e77b0012ab34cd", "paymentStatus": "completed", "amount": 1500,
            "updatedAt": "2026-01-01T00:00:00.000Z", "mpesaReceipt": "RCPT123"}
    try:
        own_redis.stop()
        broadcaster.announce(body)
        eventually(lambda: broadcaster.attempts >= 100, 30, "100 failed retries")  # far past any fixed budget
        assert broadcaster.backlog == {body["orderId"]}
        assert any("still retrying" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)
        backoff.open.clear()
        own_redis.start()
        listener = ChannelListener(own_redis.url, body["orderId"])
        backoff.open.set()
        published = listener.next_body(timeout=15)
        listener.close()
        assert published == body
        assert StatusCache(client, 300).get(body["orderId"]) == body
        eventually(lambda: broadcaster.backlog == set(), 10, "the backlog to drain")
    finally:
        broadcaster.close()
        client.close()
