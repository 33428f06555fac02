"""Through real gunicorn processes with gevent workers, Redis and FerretDB."""
import json
import re

import gevent
import pytest
import redis
from gevent.pool import Pool

from tests.conftest import TEST_SECRET, with_own_database
from tests.support import raw_http
from tests.support.api import Api


@pytest.fixture
def settings(settings):
    """The session's store server, a database of this test's own: the concurrent-waits tests make 1,000 orders
    (tests/conftest.py with_own_database)."""
    return with_own_database(settings, "gunicorn")


def hold_waits(api, orders, timeout=120):
    """Start one wait per order in its own greenlet; return the greenlets."""
    return [gevent.spawn(api.wait, order_id, token, timeout) for order_id, token in orders]


def create_orders(api, count):
    return Pool(20).map(lambda _: api.create_order(), range(count))


def test_a_callback_on_one_instance_wakes_a_wait_on_another(start_gunicorn):
    first, second = start_gunicorn(workers=2), start_gunicorn(workers=2)
    api_first, api_second = Api(first.base_url, TEST_SECRET), Api(second.base_url, TEST_SECRET)
    orders = create_orders(api_first, 20)
    waits = hold_waits(api_first, orders)
    api_first.await_waits_held(20)
    assert {api_second.callback(order_id).status_code for order_id, _ in orders} == {200}
    for wait in waits:
        body = wait.get(timeout=60).json()
        assert (body["paymentStatus"], body["final"]) == ("completed", True)


def test_wait_times_out_with_pending_through_gunicorn(start_gunicorn):
    server = start_gunicorn(workers=1)
    api = Api(server.base_url, TEST_SECRET)
    order_id, token = api.create_order()
    body = api.wait(order_id, token, timeout=2).json()
    assert (body["paymentStatus"], body["final"]) == ("pending", False)
    assert 1500 <= body["waitedMs"] <= 20_000
    server.process.wait_for("Long poll timed out orderId=" + order_id, timeout=10)


def redis_clients_by_worker(redis_url, pids):
    names = [c.get("name", "") for c in redis.Redis.from_url(redis_url).client_list()]
    return {pid: sum(1 for name in names if name.startswith(f"eventi:{pid}:")) for pid in pids}


KINDS = {"success": "completed", "cancelled": "cancelled", "insufficient-funds": "failed", "wrong-pin": "failed"}


WAITS = 500
"""Waits held per mode: enough that the hub's few Redis connections per worker stand apart from per-request's one
per wait, and that callbacks land on the worker that does not hold their wait; each wait's own answer is checked."""


@pytest.mark.parametrize("mode", ["hub", "per-request"])
def test_concurrent_waits_each_get_their_own_final_status_over_few_redis_connections(start_gunicorn, settings, mode):
    """500 waits held (issue 2) on 2 workers, a callback of one of four kinds for each: every wait answers its own order's
    final status, some callbacks wake a wait the other worker holds, and the hub holds at most 3 Redis
    connections per worker where per-request mode holds one per wait."""
    server = start_gunicorn(workers=2, EVENTI_NOTIFIER=mode)
    api = Api(server.base_url, TEST_SECRET)
    orders = create_orders(api, WAITS)
    waits = hold_waits(api, orders)
    api.await_waits_held(WAITS, timeout=60)
    per_worker = redis_clients_by_worker(settings["REDIS_URL"], server.worker_pids())
    kinds = list(KINDS)
    callbacks = Pool(4).map(lambda i: api.callback(orders[i][0], kinds[i % 4]), range(WAITS))  # FerretDB writes best
    assert {r.status_code for r in callbacks} == {200}                                          # with few writers
    for i, wait in enumerate(waits):
        body = wait.get(timeout=60).json()
        assert body["orderId"] == orders[i][0]
        assert (body["paymentStatus"], body["final"]) == (KINDS[kinds[i % 4]], True)
    if mode == "hub":
        assert max(per_worker.values()) <= 3, per_worker
    else:
        assert sum(per_worker.values()) >= WAITS, per_worker
    # The callbacks were spread over both workers, so some woke waits held by the other one.
    log = "".join(server.process.log)
    started = r"\[(\d+)\] INFO eventi.services.waiting: Long polling started orderId=(\w+)"
    stored = r"\[(\d+)\] INFO eventi.services.callbacks: Payment status stored orderId=(\w+)"
    wait_pid = {order: pid for pid, order in re.findall(started, log)}
    store_pid = {order: pid for pid, order in re.findall(stored, log)}
    crossed = [order for order, _ in orders if wait_pid[order] != store_pid[order]]
    assert crossed, "expected some callbacks to land on the other worker"


BELOW_FLASK = {  # what gunicorn's parser refuses before the app sees a request, and the status it answers
    "a 5,000-character URI": (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: test\r\n\r\n", 414),
    "a 10 KB header": (b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * 10240 + b"\r\n\r\n", 431),
    "120 headers": (b"GET /healthz HTTP/1.1\r\nHost: test\r\n"
                    + b"".join(b"X-H%d: v\r\n" % i for i in range(120)) + b"\r\n", 431),
    "a garbage request line": (b"HELLO\r\n\r\n", 400),
    "a TLS hello on the HTTP port": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
    "Content-Length with chunked": (b"POST /api/orders HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n"
                                    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "a space in a header name": (b"GET /healthz HTTP/1.1\r\nHost: test\r\nX Bad: 1\r\n\r\n", 400),
    "an unknown transfer coding": (b"POST /api/orders HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
}


CODES = {400: "bad_request", 414: "request_uri_too_long", 431: "request_header_fields_too_large"}


def test_errors_found_below_flask_answer_problem_details(start_gunicorn):
    server = start_gunicorn(workers=1)
    for case, (request, status) in BELOW_FLASK.items():
        sock = raw_http.connect(server.port)
        sock.sendall(request)
        reader = raw_http.Reader(sock)
        response = reader.response()
        assert response.status == status, case
        assert response.headers["content-type"] == "application/problem+json", case
        body = json.loads(response.body)
        assert body["error"] == CODES[status] and body["message"].endswith("."), (case, body)
        assert set(body) == {"type", "title", "status", "detail", "error", "message"}, (case, body)
        assert (body["type"], body["status"], body["detail"]) == ("/api/docs#problem-" + CODES[status], status,
                                                                   body["message"]), (case, body)
        assert response.headers["connection"] == "close" and response.headers["x-request-id"], case
        assert reader.rest() == b"", case  # and the connection ends there
        sock.close()
    server.process.wait_for("WARNING] Invalid request from ip=127.0.0.1", count=len(BELOW_FLASK), timeout=30)
    log = "".join(server.process.log)
    assert "Traceback" not in log and "[ERROR]" not in log


def test_a_client_that_does_not_finish_its_headers_is_disconnected(start_gunicorn):
    server = start_gunicorn(workers=1, EVENTI_HEADER_TIMEOUT_SECONDS=1)  # keepalive stays 75 s
    half = raw_http.connect(server.port)  # half a request, then nothing
    half.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Slow: ")
    silent = raw_http.connect(server.port)  # connected, nothing sent
    # The server closes both without an answer (the client's 30 s socket timeout would raise instead).
    assert raw_http.Reader(half).rest() == b""
    assert raw_http.Reader(silent).rest() == b""
    log = "".join(server.process.log)
    assert "Traceback" not in log and "[ERROR]" not in log


def test_an_idle_kept_alive_connection_outlives_the_header_timeout(start_gunicorn):
    server = start_gunicorn(workers=1, EVENTI_HEADER_TIMEOUT_SECONDS=1)
    sock = raw_http.connect(server.port)
    reader = raw_http.Reader(sock)
    sock.sendall(raw_http.get("/healthz"))
    assert reader.response().status == 200
    gevent.sleep(2.5)  # not a synchronisation: the idle time under test (between requests, keepalive's 75 s apply)
    sock.sendall(raw_http.get("/healthz"))
    assert reader.response().status == 200


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_a_header_timeout_that_is_not_a_positive_number_is_refused(tmp_path, value):
    from eventi import config

    with pytest.raises(config.ConfigError, match="EVENTI_HEADER_TIMEOUT_SECONDS"):
        config.load({"VAR_DIR": str(tmp_path)}, environ={"EVENTI_HEADER_TIMEOUT_SECONDS": value})


def test_a_broken_chunked_body_answers_400_and_closes_the_connection(start_gunicorn):
    server = start_gunicorn(workers=1)
    for path in ("/api/orders", "/api/payhero/callback?token=x"):
        sock = raw_http.connect(server.port)
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                     "Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n".encode())
        reader = raw_http.Reader(sock)
        response = reader.response()
        assert response.status == 400, path
        assert json.loads(response.body)["error"] == "malformed_body", path
        assert response.headers["content-type"] == "application/problem+json", path
        assert reader.rest() == b"", path  # one answer, then the server closes
        sock.close()
    log = "".join(server.process.log)
    assert "Traceback" not in log and "[ERROR]" not in log and "Unhandled error" not in log
