"""Redis and the store really stopped and started while waits are held and callbacks arrive."""
import signal

import gevent
import redis
import requests

from devstack.processes import Gunicorn
from devstack.wait import eventually
from eventi.storage.status_cache import cache_key
from tests.conftest import TEST_SECRET, gunicorn_env, stop_quickly
from tests.support.api import Api, order_body


def start(settings, redis_url=None, mongo_uri=None, workers=2):
    overrides = dict(settings)
    if redis_url:
        overrides["REDIS_URL"] = redis_url
    if mongo_uri:
        overrides["MONGO_URI"] = mongo_uri
    return Gunicorn(gunicorn_env(overrides), workers=workers).start()


def readyz(api):
    response = requests.get(api.base_url + "/readyz", timeout=30)
    return response.status_code, response.json()


def healthz(api):
    return requests.get(api.base_url + "/healthz", timeout=30).status_code


def test_waits_survive_a_redis_restart_whenever_the_change_lands(settings, own_redis):
    server = start(settings, redis_url=own_redis.url)
    try:
        api = Api(server.base_url, TEST_SECRET)
        before, during, after = (api.create_order() for _ in range(3))
        waits = {name: gevent.spawn(api.wait, *order, 120)
                 for name, order in {"before": before, "during": during, "after": after}.items()}
        api.await_waits_held(3)

        own_redis.stop()
        server.process.wait_for(r"Redis hub disconnected", timeout=30)
        # Still ready: one Redis for every instance must not take them all out of the load balancer.
        status, body = readyz(api)
        assert (status, body["status"], body["degraded"]) == (200, "ready", ["redis"]) and "MongoDB" in body["message"]
        # A callback while Redis is down: the store write stands and PayHero gets its 200.
        assert api.callback(during[0]).status_code == 200
        body = waits["during"].get(timeout=30).json()  # learnt through the bounded store re-check
        assert (body["paymentStatus"], body["final"]) == ("completed", True)

        own_redis.start()
        server.process.wait_for(r"Redis hub reconnected", count=2, timeout=60)
        assert readyz(api) == (200, {"status": "ready"})
        assert api.callback(after[0], "cancelled").status_code == 200
        assert api.callback(before[0], "wrong-pin").status_code == 200
        assert waits["after"].get(timeout=30).json()["paymentStatus"] == "cancelled"
        assert waits["before"].get(timeout=30).json()["paymentStatus"] == "failed"
        assert api.metric("eventi_redis_reconnects_total") >= 2
    finally:
        stop_quickly(server)


def test_a_hung_redis_leaves_the_instance_ready_within_a_probes_timeout(settings, own_redis):
    """redis-py alone would wait 5 s per try, and try 4 times, on a Redis that accepts and never answers."""
    server = start(settings, redis_url=own_redis.url, workers=1)
    try:
        assert readyz(Api(server.base_url, TEST_SECRET)) == (200, {"status": "ready"})
        own_redis.process.signal(signal.SIGSTOP)
        try:
            # A probe gives up after its timeout (3 s in docs/operations.md's Kubernetes example): the check of
            # Redis must end well before, or one hung Redis takes every instance out of rotation.
            response = requests.get(server.base_url + "/readyz", timeout=10)
            assert (response.status_code, response.json()["degraded"]) == (200, ["redis"])
        finally:
            own_redis.process.signal(signal.SIGCONT)
    finally:
        stop_quickly(server)


def test_a_change_while_the_hub_is_away_reaches_waiters_after_reconnect(settings, own_redis):
    """Waiters re-read the store after a reconnect: messages sent while disconnected are gone."""
    server = start(settings | {"RECHECK_SECONDS": 60.0}, redis_url=own_redis.url, workers=1)
    try:
        api = Api(server.base_url, TEST_SECRET)
        order_id, token = api.create_order()
        wait = gevent.spawn(api.wait, order_id, token, 120)
        api.await_waits_held(1)
        own_redis.stop()
        server.process.wait_for(r"Redis hub disconnected", timeout=30)
        assert api.callback(order_id).status_code == 200  # publish fails; re-check period is 60 s
        own_redis.start()
        body = wait.get(timeout=45).json()
        assert (body["paymentStatus"], body["final"]) == ("completed", True)
        assert body["waitedMs"] < 60_000  # woken by the reconnect re-read, not the periodic re-check
    finally:
        stop_quickly(server)


def test_store_outage_answers_503_writes_nothing_and_recovers(settings, own_mongo):
    server = start(settings, mongo_uri=own_mongo.uri, workers=1)
    try:
        api = Api(server.base_url, TEST_SECRET)
        cached_id, cached_token = api.create_order()  # its pending status is in the Redis cache
        paid_id, _ = api.create_order()
        redis.Redis.from_url(settings["REDIS_URL"]).delete(cache_key(paid_id))

        own_mongo.stop()
        callback = api.callback(paid_id)
        assert (callback.status_code, callback.json()["error"]) == (503, "store_unavailable")
        create = requests.post(api.base_url + "/api/orders", json=order_body(), timeout=30)
        assert (create.status_code, create.json()["error"]) == (503, "store_unavailable")
        assert api.status(cached_id, cached_token).json()["paymentStatus"] == "pending"  # from the cache
        assert api.status(paid_id, api.tokens.status_token(paid_id)).status_code == 503  # not cached
        assert readyz(api) == (503, {"error": "not_ready", "message": "Down: mongodb", "down": ["mongodb"]})
        assert healthz(api) == 200  # alive: restarting it would not bring the store back

        own_mongo.start()
        eventually(lambda: readyz(api)[0] == 200, 60, "the app to see the store again")
        order = api.status(paid_id, api.tokens.status_token(paid_id)).json()
        assert order["paymentStatus"] == "pending"  # nothing was half-written during the outage
        assert api.callback(paid_id).json() == {"received": True}  # PayHero's redelivery applies
        assert api.status(paid_id, api.tokens.status_token(paid_id)).json()["paymentStatus"] == "completed"
        assert api.create_order()
    finally:
        stop_quickly(server)
