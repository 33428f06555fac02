"""MongoDB replica sets and Atlas (issue 20, item 4): the URI's options win, and what an election does to a write.

FerretDB cannot hold an election, so the store's collections are wrapped on a real FerretDB-backed runtime
to raise pymongo's own exception classes: after applying the write ("it landed, but the driver gave up":
AutoReconnect, NotPrimaryError, NetworkTimeout, and WriteConcernError / WTimeoutError, whose write the
primary did apply) or instead of it. Everything is asserted through the API, the Redis cache and channel,
and MongoDB itself.
"""
import json
import logging
import uuid
from datetime import timedelta

import pytest
from bson import ObjectId
from pymongo.errors import AutoReconnect, NetworkTimeout, NotPrimaryError, WriteConcernError, WTimeoutError

from devstack.wait import eventually
from eventi import create_app
from eventi.domain.models import utcnow
from eventi.notify import channel_for
from eventi.runtime import current_runtime
from eventi.storage.order_store import OrderStore, client_defaults, client_options, connect, uri_option_names
from tests.support.api import create_order, order_body, phone_ending, post_callback
from tests.support.listen import ChannelListener

# --- the URI's options win -------------------------------------------------------------------------------

EVENTI_SET = {"serverSelectionTimeoutMS", "connectTimeoutMS", "socketTimeoutMS", "maxPoolSize", "appname"}


def test_without_options_in_the_uri_eventi_sets_its_defaults():
    assert client_options("mongodb://127.0.0.1:27017/eventi") == {"tz_aware": True, **client_defaults()}
    assert set(client_defaults()) == EVENTI_SET


def test_options_in_the_uri_win_whatever_their_case():
    uri = ("mongodb://a.example:27017,b.example:27017/eventi?replicaSet=rs0&SERVERSELECTIONTIMEOUTMS=30000"
           "&connecttimeoutms=10000&socketTimeoutMS=0&maxpoolsize=50&appName=shop")
    assert client_options(uri) == {"tz_aware": True}
    partial = "mongodb://a.example/eventi?maxPoolSize=50&w=majority"
    assert client_options(partial) == {"tz_aware": True, **{k: v for k, v in client_defaults().items()
                                                             if k != "maxPoolSize"}}


def test_the_client_gets_the_uris_values_and_eventis_where_the_uri_is_silent():
    client = connect("mongodb://a.example:27017/eventi?serverSelectionTimeoutMS=15000&maxPoolSize=50&appName=shop",
                     connect=False)
    try:
        options = client.options
        assert options.server_selection_timeout == 15  # the URI's
        assert options.pool_options.max_pool_size == 50  # the URI's
        assert options.pool_options.metadata["application"] == {"name": "shop"}  # the URI's
        assert options.pool_options.connect_timeout == 2.0  # eventi's
        assert options.pool_options.socket_timeout == 10.0  # eventi's
        assert options.codec_options.tz_aware
        assert options.retry_writes and options.retry_reads  # pymongo's default, left on
    finally:
        client.close()


def test_an_atlas_srv_uri_is_read_without_dns():
    """mongodb+srv:// (.invalid never resolves): the options come from the query string; DNS is MongoClient's
    business when it connects."""
    uri = ("mongodb+srv://user:pw@cluster0.example.invalid/eventi?retryWrites=true&w=majority&appName=eventi-prod"
           "&serverSelectionTimeoutMS=5000")
    assert uri_option_names(uri) == {"retrywrites", "w", "appname", "serverselectiontimeoutms"}
    assert set(client_options(uri)) == {"tz_aware", "connectTimeoutMS", "socketTimeoutMS", "maxPoolSize"}
    client = connect(uri, connect=False)
    try:
        assert client.options.server_selection_timeout == 5
        assert client.options.pool_options.metadata["application"] == {"name": "eventi-prod"}
        assert client.options.retry_writes and client.options.retry_reads
    finally:
        client.close()
    assert uri_option_names("mongodb+srv://cluster0.example.invalid/eventi") == frozenset()


def test_a_uri_that_turns_retry_writes_off_is_obeyed_and_logged(caplog):
    with caplog.at_level(logging.WARNING, logger="eventi.storage.order_store"):
        client = connect("mongodb://a.example/eventi?retryWrites=false", connect=False)
    try:
        assert not client.options.retry_writes
        assert "retryWrites off" in caplog.text
    finally:
        client.close()


def test_eventis_writes_are_majority_and_journaled_whatever_the_uris_w_and_keep_its_wtimeout():
    client = connect("mongodb://a.example/eventi?w=1&wTimeoutMS=5000", connect=False)
    try:
        store = OrderStore(client.get_default_database())
        assert store.claims.write_concern.document == {"w": "majority", "j": True, "wtimeout": 5000}
        plain = OrderStore(connect("mongodb://a.example/eventi", connect=False).get_default_database())
        assert plain.orders.write_concern.document == {"w": "majority", "j": True}
        plain.db.client.close()
    finally:
        client.close()


# --- what an election does to a write ----------------------------------------------------------------------

ERRORS = {
    "AutoReconnect": lambda: AutoReconnect("connection closed"),
    "NotPrimaryError": lambda: NotPrimaryError("not primary", {"ok": 0, "code": 10107, "errmsg": "not primary"}),
    "NetworkTimeout": lambda: NetworkTimeout("timed out"),
    "WriteConcernError": lambda: WriteConcernError("operation was interrupted", 11602, {}),
    "WTimeoutError": lambda: WTimeoutError("waiting for replication timed out", 64, {"wtimeout": True}),
}
RAISE_ONLY = ["AutoReconnect", "NotPrimaryError", "NetworkTimeout"]
"""WriteConcernError means the primary applied the write: only the connection errors can come with none."""


class Flaky:
    """A real collection whose next call of one method fails with a pymongo error: after the write was
    applied (landed) or without it. Every other call goes to the collection."""

    def __init__(self, collection, method, error, landed):
        self._collection, self._method, self._error, self._landed = collection, method, error, landed
        self.failures_left = 1
        self.calls = []

    def __getattr__(self, name):
        real = getattr(self._collection, name)
        if name != self._method:
            return real

        def call(*args, **kwargs):
            self.calls.append(args)
            if self.failures_left == 0:
                return real(*args, **kwargs)
            self.failures_left -= 1
            if self._landed:
                real(*args, **kwargs)
            raise self._error

        return call


def make_flaky(target, collection, method, error, landed):
    flaky = Flaky(getattr(target, collection), method, ERRORS[error](), landed)
    setattr(target, collection, flaky)
    return flaky


def final_statuses_redis_holds_are_mongodbs(runtime, order_id):
    """Every final status Redis holds for the order, MongoDB's order holds: the cache is read first, and an
    order only moves forward, so a status applied in between cannot make this fail."""
    cached = runtime.cache.get(order_id)
    stored = runtime.store.orders.find_one({"_id": ObjectId(order_id)})
    return cached is None or cached["paymentStatus"] in ("pending", stored["status"])


def nothing_published_since(runtime, listener, order_id):
    """Publish a marker on the order's channel: it is the next message only when nothing came before it."""
    runtime.redis.publish(channel_for(order_id), json.dumps({"body": {"marker": True}, "sentAt": 0}))
    return listener.next_body() == {"marker": True}


@pytest.mark.parametrize("error", list(ERRORS))
@pytest.mark.parametrize("write", ["claim", "order"])
def test_a_status_write_that_landed_before_the_driver_gave_up_is_applied_and_announced(
        client, runtime, settings, write, error):
    """The status claim (or the order's update after it) applied, then the driver raised: 503, and the Settler
    applies the claim and announces it without PayHero's help; the redelivery is a duplicate."""
    order_id, token = create_order(client)
    with ChannelListener(settings["REDIS_URL"], order_id) as listener:
        if write == "claim":
            make_flaky(runtime.store, "claims", "insert_one", error, landed=True)
        else:
            make_flaky(runtime.store, "orders", "find_one_and_update", error, landed=True)
        response = post_callback(client, runtime, order_id, "success")
        assert response.status_code == 503 and response.json["error"] == "store_unavailable"
        assert runtime.store.claims.find_one({"_id": ObjectId(order_id)})["status"] == "completed"  # it landed
        assert final_statuses_redis_holds_are_mongodbs(runtime, order_id)

        announced = listener.next_body(timeout=20)  # the Settler's announcement
        assert announced is not None and announced["paymentStatus"] == "completed"
        assert runtime.store.orders.find_one({"_id": ObjectId(order_id)})["status"] == "completed"
        eventually(lambda: runtime.cache.get(order_id)["paymentStatus"] == "completed", 10, "the cache to say so")
        eventually(lambda: order_id not in runtime.settler.watched, 10, "the Settler to let the order go")

        redelivery = post_callback(client, runtime, order_id, "success")
        assert redelivery.status_code == 200 and redelivery.json.get("duplicate") is True
    assert len(runtime.store.events_for(order_id)) == 2  # the claim's delivery and the redelivery
    status = client.get(f"/api/orders/{order_id}?token={token}").json
    assert status["paymentStatus"] == "completed"


@pytest.mark.parametrize("error", RAISE_ONLY)
def test_a_status_write_that_did_not_land_changes_and_announces_nothing(client, runtime, settings, error):
    """The driver raised before the server applied the status claim (which carries the delivery's audit
    record): 503, nothing in MongoDB, nothing on Redis; the redelivery decides as the first would have."""
    order_id, _ = create_order(client)
    oid = ObjectId(order_id)
    with ChannelListener(settings["REDIS_URL"], order_id) as listener:
        make_flaky(runtime.store, "claims", "insert_one", error, landed=False)
        response = post_callback(client, runtime, order_id, "success")
        assert response.status_code == 503 and response.json["error"] == "store_unavailable"
        assert runtime.store.claims.find_one({"_id": oid}) is None
        assert runtime.store.events_for(order_id) == []
        assert runtime.store.orders.find_one({"_id": oid})["status"] == "pending"
        assert final_statuses_redis_holds_are_mongodbs(runtime, order_id)
        assert runtime.cache.get(order_id)["paymentStatus"] == "pending"
        assert nothing_published_since(runtime, listener, order_id)

        redelivery = post_callback(client, runtime, order_id, "success")
        assert redelivery.status_code == 200 and not redelivery.json.get("duplicate")
        assert listener.next_body(timeout=20)["paymentStatus"] == "completed"
    order = runtime.store.orders.find_one({"_id": oid})
    assert order["status"] == "completed"
    assert [e["_id"] for e in runtime.store.events_for(order_id)] == [order["statusEventId"]]  # the redelivery's


# --- what an election does to an order's creation -------------------------------------------------------------


@pytest.fixture
def push_app(push_settings):
    """An in-process app whose orders are pushed to the session's PayHero simulator."""
    app = create_app(push_settings)
    yield app.test_client(), current_runtime(app)
    current_runtime(app).close()


def post_order(client, event_id, phone, key=None):
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post("/api/orders", json=order_body(event_id=event_id, phone=phone), headers=headers)


@pytest.mark.parametrize(("landed", "error"), [(True, error) for error in ERRORS] + [(False, error) for error in RAISE_ONLY],
                         ids=[f"landed-{error}" for error in ERRORS] + [f"not-landed-{error}" for error in RAISE_ONLY])
def test_an_order_whose_insert_raised_is_503_and_never_pushed(push_app, payhero_simulator, unique_event, landed, error):
    client, runtime = push_app
    flaky = make_flaky(runtime.store, "orders", "insert_one", error, landed=landed)
    response = post_order(client, unique_event, phone_ending(5))
    assert response.status_code == 503 and response.json["error"] == "store_unavailable"
    order_id = str(flaky.calls[0][0]["_id"])
    assert payhero_simulator.pushes(order_id) == []
    stored = runtime.store.orders.find_one({"_id": ObjectId(order_id)})
    assert (stored is not None) == landed
    if landed:
        assert stored["status"] == "pending" and "pushedAt" not in stored
    assert runtime.cache.get(order_id) is None  # nothing announced for an order the shopper was told failed


@pytest.mark.parametrize("error", ["AutoReconnect", "NotPrimaryError"])
@pytest.mark.parametrize("landed", [True, False], ids=["landed", "not-landed"])
def test_a_retry_with_the_idempotency_key_gives_one_order_and_at_most_one_push(
        push_app, payhero_simulator, unique_event, landed, error):
    client, runtime = push_app
    key, phone = uuid.uuid4().hex, phone_ending(5)
    make_flaky(runtime.store, "orders", "insert_one", error, landed=landed)
    first = post_order(client, unique_event, phone, key)
    assert first.status_code == 503 and first.json["error"] == "store_unavailable"
    reserved = runtime.keys.keys.find_one({"_id": key})["orderId"]

    soon = post_order(client, unique_event, phone, key)  # the first request may still be running
    assert soon.status_code == 409 and soon.json["error"] == "idempotency_key_in_use"

    runtime.keys.keys.update_one({"_id": key}, {"$set": {"createdAt": utcnow() - timedelta(seconds=61)}})
    retry = post_order(client, unique_event, phone, key)
    assert retry.status_code == 201 and retry.json["orderId"] == str(reserved)
    assert post_order(client, unique_event, phone, key).json == retry.json  # and that answer is kept
    assert runtime.store.orders.count_documents({"eventId": unique_event}) == 1
    pushes = payhero_simulator.pushes(str(reserved))
    # Landed: the first request stopped before its push, and a replay never pushes (it cannot know that no
    # push went out). Not landed: the retry created the order, and pushed it once.
    assert len(pushes) == (0 if landed else 1)
