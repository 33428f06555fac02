"""Redis failovers with traffic (issue 20, item 5): a Redis Cluster master failed over by hand
(CLUSTER FAILOVER on its replica) or killed with SIGKILL, and a Sentinel master killed with SIGKILL.

A test that kills a node starts a cluster or Sentinel group of its own (CLUSTER FAILOVER runs on the
cluster the failover tests share: tests/conftest.py failover_cluster), and gunicorn with 2 gevent workers
on it; 300 shoppers each hold a wait on an order (on a cluster the orders hash to all three masters:
checked with the cluster's keyslot -> node mapping) and PayHero's callbacks arrive before, during and
after the fault. The tests look only at what users and operators see, so they hold whatever the notifier
is (the hub, SUBSCRIBE or SSUBSCRIBE per held order; EVENTI_NOTIFIER=per-request, per wait):
- every shopper's wait is answered with its order's real status (a shopper asks again at once when a
  hold ends pending, and after a short jittered pause when the request fails, as long-poll.js does),
  and on its first hold: a wait that loses its subscription re-reads the store, so no news is missed;
- no callback is lost: each is answered 200, or 503 and then PayHero's redelivery is taken;
- MongoDB, the Redis cache, GET /api/orders/<id> and a fresh wait agree shortly after the failover.
Failures name the orders and the views that disagree. How long after the failover ended (the new master
named) every wait had its answer and every view agreed is a measurement, not an assertion: each test
appends it to tests/output/redis-failover.jsonl (docs/scaling.md quotes it).
"""
import json
import random
import time

import gevent
import pytest
import requests
from bson import ObjectId
from gevent.pool import Pool
from pymongo import MongoClient

from devstack.processes import ROOT, RedisCluster, RedisSentinelGroup, redis_cli
from devstack.wait import eventually
from eventi.storage import redis_clients as redis_topology
from eventi.storage.redis_url import parse
from eventi.storage.status_cache import cache_key
from tests.conftest import TEST_SECRET, stop_quickly, with_own_database
from tests.faults.test_money_edges import redeliver_until_taken
from tests.faults.test_paid_means_paid import agree, start
from tests.support.api import Api

SHOPPERS = 300
"""Orders, each with a shopper holding a wait on it: on a cluster they hash to all three masters (checked), and a
third of their callbacks goes before, during and after the fault. Each order is checked on its own: more only
take longer."""
HOLD_SECONDS = 120
"""Each wait's hold (the longest the API allows); a hold that ends pending is asked again at once. Every
callback is sent within seconds of the waits being held, so a hold ending pending means the wait missed
its order's news: the notification was lost and nothing made the wait re-read the store."""
MEASURED = ROOT / "tests" / "output" / "redis-failover.jsonl"
STATUS_OF = {"success": "completed", "cancelled": "cancelled", "insufficient-funds": "failed"}


def outcome(i):
    """The callback order i gets: mostly paid, some cancelled or failed (so "real status" is not one value)."""
    return "cancelled" if i % 5 == 1 else "insufficient-funds" if i % 5 == 3 else "success"


@pytest.fixture
def settings(settings):
    """The session's store server, a database of this test's own for its 300 orders (tests/conftest.py
    with_own_database)."""
    return with_own_database(settings, "failover")


@pytest.fixture
def own_cluster(tmp_path):
    with RedisCluster(tmp_path / "cluster") as cluster:
        yield cluster


@pytest.fixture
def own_sentinel(tmp_path):
    with RedisSentinelGroup(tmp_path / "sentinel") as group:
        yield group


# --- the shoppers ------------------------------------------------------------------------------------
def shopper(api, order_id, token, log, give_up):
    """What the payment page does: hold a wait; ask again at once when it ends pending, after a short
    jittered pause when the request failed; stop at a final answer (its body) or at give_up."""
    while time.monotonic() < give_up:
        try:
            response = api.wait(order_id, token, HOLD_SECONDS)
        except requests.RequestException as exc:
            log.append(f"{exc.__class__.__name__}")
            gevent.sleep(random.uniform(0, 1))  # the page's full-jitter backoff, not synchronisation
            continue
        if response.status_code != 200:
            log.append(f"http {response.status_code}")
            gevent.sleep(random.uniform(0, 1))  # the same backoff: traffic as the page sends it
            continue
        body = response.json()
        if body["final"]:
            return body
        log.append("pending")
    return None


class Shop:
    """gunicorn on the topology, SHOPPERS orders each cached pending, and a shopper holding a wait on each."""

    def __init__(self, settings, new_event, redis_url):
        self.server = start(settings, REDIS_URL=redis_url)
        self.api = Api(self.server.base_url, TEST_SECRET)
        self.db = MongoClient(settings["MONGO_URI"]).get_default_database()
        self.redis = redis_topology.commands_client(redis_url, "test")
        event_id = new_event(capacity=SHOPPERS * 2)
        self.orders = list(Pool(30).imap(lambda _: self.api.create_order(event_id=event_id), range(SHOPPERS)))
        self.kinds = {order_id: outcome(i) for i, (order_id, _) in enumerate(self.orders)}
        for response in Pool(30).imap(lambda o: self.api.status(*o), self.orders):
            assert response.json()["paymentStatus"] == "pending"  # read once: cached pending
        self.logs = {order_id: [] for order_id, _ in self.orders}
        give_up = time.monotonic() + 300
        self.waits = {order_id: gevent.spawn(shopper, self.api, order_id, token, self.logs[order_id], give_up)
                      for order_id, token in self.orders}
        self.api.await_waits_held(SHOPPERS, timeout=60)
        self.answers = {}
        self.deliveries = []
        self.failover_ended = None

    def deliver(self, orders):
        """PayHero's callbacks for these orders, sent now, 30 at a time (in the background)."""
        def one(order):
            order_id, _ = order
            self.answers[order_id] = self.api.callback(order_id, self.kinds[order_id])

        self.deliveries.append(gevent.spawn(lambda: list(Pool(30).imap(one, orders))))

    def answered(self, count):
        eventually(lambda: len(self.answers) >= count, 120, f"{count} callbacks to be answered")

    def check(self, masters=None):
        """No callback lost, every wait answered with its order's real status on its first hold, every view in
        agreement. masters: each order's master before the fault, named in a failure message."""
        gevent.joinall(self.deliveries, timeout=180, raise_error=True)
        assert len(self.answers) == SHOPPERS
        odd = {o: (r.status_code, r.text[:200]) for o, r in self.answers.items() if r.status_code not in (200, 503)}
        assert odd == {}, f"callbacks answered neither 200 nor 503: {odd}\n{self.tracebacks()}"
        refused = [order_id for order_id, response in self.answers.items() if response.status_code == 503]
        for order_id in refused:  # PayHero redelivers until it gets a 200
            redeliver_until_taken(self.api, order_id, self.kinds[order_id])
        stored = {str(o["_id"]): o["status"] for o in
                  self.db.orders.find({"_id": {"$in": [ObjectId(i) for i, _ in self.orders]}}, {"status": 1})}
        lost = {o: (stored[o], kind) for o, kind in self.kinds.items() if stored[o] != STATUS_OF[kind]}
        assert lost == {}, f"orders whose callback was not applied (mongodb, callback): {lost}"

        gevent.joinall(list(self.waits.values()), timeout=240)
        wrong = {}
        for order_id, wait in self.waits.items():
            body = wait.value if wait.successful() else None
            seen = body["paymentStatus"] if body else f"no final answer ({wait.exception or 'still waiting'})"
            if seen != stored[order_id]:
                wrong[order_id] = f"mongodb={stored[order_id]} wait={seen} after {self.logs[order_id]}"
        assert wrong == {}, "waits not answered with the order's status:\n" + "\n".join(
            f"{o}: {line}" for o, line in wrong.items())
        asked_again = {o: f"{log} (master {masters[o]})" if masters else log for o, log in self.logs.items() if log}
        assert asked_again == {}, (
            f"{len(asked_again)} of {SHOPPERS} waits were not answered on their first hold (their news was lost "
            "and nothing made them re-read the store):\n" + "\n".join(f"{o}: {log}" for o, log in asked_again.items()))
        agree(self.api, self.db, self.redis, self.orders, timeout=60,
              what="MongoDB, the cache, the status route and a fresh wait to agree after the failover")
        return refused

    def failover_over(self):
        """The new master is named: from here the time until every view agrees is measured."""
        self.failover_ended = time.monotonic()

    def record(self, fault, refused):
        """Append how long after the failover every view agreed (and the 503s redelivered) to MEASURED."""
        MEASURED.parent.mkdir(parents=True, exist_ok=True)
        with MEASURED.open("a") as measured:
            measured.write(json.dumps({"fault": fault, "waits": SHOPPERS, "callbacks_503": len(refused),
                                       "agreed_after_seconds": round(time.monotonic() - self.failover_ended, 2)}) + "\n")

    def met_the_fault(self, pattern):
        """The held waits lost their subscriptions to the fault: each worker logged `pattern`."""
        self.server.process.wait_for(pattern, count=self.server.workers, timeout=60)

    def tracebacks(self, most=3):
        """The first few distinct tracebacks gunicorn logged, for a failure message."""
        lines, found = self.server.process.log, []
        for i, line in enumerate(lines):
            if line.startswith("Traceback"):
                end = next((j for j in range(i + 1, len(lines)) if not lines[j].startswith((" ", "Traceback", "\n"))
                            and not lines[j - 1].rstrip().endswith(":")), len(lines))
                text = "".join(lines[max(0, i - 1):end + 1])
                if text not in found:
                    found.append(text)
            if len(found) >= most:
                break
        return "\n".join(found)

    def close(self):
        for wait in self.waits.values():
            wait.kill(block=False)
        stop_quickly(self.server)
        self.redis.close()


@pytest.fixture
def shop(settings, new_event):
    shops = []

    def open_shop(redis_url):
        shops.append(Shop(settings, new_event, redis_url))
        return shops[-1]

    yield open_shop
    for opened in shops:
        opened.close()


def thirds(orders):
    """The orders whose callbacks go before, during and after the fault."""
    third = len(orders) // 3
    return orders[:third], orders[third:2 * third], orders[2 * third:]


# --- a cluster ----------------------------------------------------------------------------------------
def masters_by_order(cluster, orders):
    """Each order's master port, as the cluster maps its cache key's slot (CLUSTER SLOTS on a node)."""
    client = redis_topology.cluster_client(parse(cluster.url), "test")
    try:
        slots = client.cluster_slots()  # {(start, end): {"primary": (host, port), ...}}
        def owner(order_id):
            slot = client.keyslot(cache_key(order_id))
            return next(int(node["primary"][1]) for (first, last), node in slots.items() if first <= slot <= last)
        return {order_id: owner(order_id) for order_id, _ in orders}
    finally:
        client.close()


def replica_of(cluster, master_port):
    return next(port for port, role in cluster.roles().items() if role == "slave"
                and f"master_port:{master_port}\r" in redis_cli(port, "INFO", "replication").replace("\n", "\r"))


def busiest_master(cluster, shop):
    """The master owning the most orders; the orders must span all three masters."""
    owners = masters_by_order(cluster, shop.orders)
    counts = {port: list(owners.values()).count(port) for port in set(owners.values())}
    masters = {port for port, role in cluster.roles().items() if role == "master"}
    assert set(counts) == masters and len(masters) == 3, f"orders per master: {counts}, masters {masters}"
    return max(counts, key=counts.get)


@pytest.mark.parametrize("fault", ["cluster-failover", "master-sigkill"])
def test_a_cluster_master_failing_over_under_waits_and_callbacks_loses_nothing(request, shop, fault):
    """(a) CLUSTER FAILOVER on a master's replica: the replica takes the slots over at once and Redis drops
    the sharded subscriptions on them (on the cluster the failover tests share); (b) the master killed with
    SIGKILL: its slots are down until the other masters agree it failed and its replica is elected (node
    timeout 2 s; a cluster of its own)."""
    own_cluster = request.getfixturevalue("failover_cluster" if fault == "cluster-failover" else "own_cluster")
    store = shop(own_cluster.url)
    master = busiest_master(own_cluster, store)
    masters = {o: f"{port}{' (failed)' if port == master else ''}"
               for o, port in masters_by_order(own_cluster, store.orders).items()}
    replica = replica_of(own_cluster, master)
    paid_first, during, after = thirds(store.orders)
    store.deliver(paid_first)
    store.answered(len(paid_first) // 2)  # the fault lands while callbacks are being answered
    if fault == "cluster-failover":
        redis_cli(replica, "CLUSTER", "FAILOVER")
    else:
        own_cluster.node(master).process.proc.kill()
        own_cluster.node(master).process.proc.wait()
    store.deliver(during)
    eventually(lambda: own_cluster.roles(replica).get(replica) == "master", 60, "the replica to take over")
    own_cluster.wait_ok()
    store.failover_over()
    store.deliver(after)
    store.record(fault, store.check(masters))
    # Redis took the subscriptions on the moved slots away, or their connections broke.
    # (the hub logs it per node link; the per-wait baseline, EVENTI_NOTIFIER=per-request, per wait)
    store.met_the_fault(r"dropped the subscription to|Redis dropped the shard subscription" if fault == "cluster-failover"
                        else r"pub/sub link lost|Redis hub disconnected|Redis shard subscription lost")


# --- Sentinel ---------------------------------------------------------------------------------------------
def test_the_sentinel_master_killed_under_waits_and_callbacks_loses_nothing(own_sentinel, shop):
    """The master killed with SIGKILL: the sentinels agree it is down after 1 s and promote the replica;
    commands and subscriptions reconnect to the master they name."""
    store = shop(own_sentinel.url)
    old = own_sentinel.master
    paid_first, during, after = thirds(store.orders)
    store.deliver(paid_first)
    store.answered(len(paid_first) // 2)
    old.process.proc.kill()
    old.process.proc.wait()
    store.deliver(during)
    eventually(lambda: own_sentinel.master_port() not in (None, old.port), 60, "the sentinels' new master")
    store.failover_over()
    store.deliver(after)
    store.record("sentinel-master-sigkill", store.check())
    store.met_the_fault("Redis hub disconnected")
