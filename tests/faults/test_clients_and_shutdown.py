"""Clients that leave, limits on waits, and workers that stop while waits are held."""
import json
import os
import signal
import socket

import gevent
import pytest
import requests

from devstack.wait import eventually
from tests.conftest import TEST_SECRET
from tests.support import raw_http
from tests.support.api import Api, order_body


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def raw_wait(port, order_id, token, timeout=120):
    """Send a wait request on a raw socket and leave it open (an abandoned browser tab)."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(f"GET /api/orders/{order_id}/wait?token={token}&timeout={timeout} HTTP/1.1\r\n"
                 f"Host: test\r\n\r\n".encode())
    return sock


def test_abandoned_waits_are_released_without_waiting_for_their_timeout(start_gunicorn):
    server = start_gunicorn(workers=2)
    api = Api(server.base_url, TEST_SECRET)
    order_ids = [api.create_order() for _ in range(50)]
    pids = server.worker_pids()
    baseline = {pid: open_fds(pid) for pid in pids}
    sockets = [raw_wait(server.port, *order_ids[i % 50]) for i in range(1000)]
    api.await_waits_held(1000, timeout=60)
    for sock in sockets:
        sock.close()
    # 120 s holds, released long before: each worker noticed its closed sockets.
    eventually(lambda: api.metric("eventi_waits_held") == 0, 30, "abandoned waits to be released")
    assert api.metric('eventi_waits_answered_total{outcome="client_gone"}') == 1000
    eventually(lambda: all(open_fds(pid) <= baseline[pid] + 5 for pid in pids), 30, "sockets to be closed")


def test_more_than_20_waits_on_one_order_get_429_with_retry_after(start_gunicorn):
    server = start_gunicorn(workers=1)
    api = Api(server.base_url, TEST_SECRET)
    order_id, token = api.create_order()
    held = [raw_wait(server.port, order_id, token) for _ in range(20)]
    api.await_waits_held(20)
    response = api.wait(order_id, token, timeout=5)
    assert response.status_code == 429
    assert response.json()["error"] == "too_many_waits"
    assert int(response.headers["Retry-After"]) > 0
    for sock in held:
        sock.close()


def test_worker_cap_answers_429_not_collapse(start_gunicorn):
    server = start_gunicorn(workers=1, EVENTI_MAX_WAITS_PER_WORKER=5)
    api = Api(server.base_url, TEST_SECRET)
    orders = [api.create_order() for _ in range(6)]
    held = [raw_wait(server.port, *order) for order in orders[:5]]
    api.await_waits_held(5)
    response = api.wait(*orders[5], timeout=5)
    assert (response.status_code, response.json()["error"]) == (429, "too_many_waits")
    assert api.status(*orders[5]).status_code == 200  # the worker still serves everything else
    for sock in held:
        sock.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_held_waits_are_answered_when_workers_stop(start_gunicorn, signum):
    server = start_gunicorn(workers=2)
    api = Api(server.base_url, TEST_SECRET)
    orders = [api.create_order() for _ in range(40)]
    waits = [gevent.spawn(api.wait, order_id, token, 120) for order_id, token in orders]
    api.await_waits_held(40)
    server.process.signal(signum)
    for (order_id, _), wait in zip(orders, waits, strict=True):
        response = wait.get(timeout=60)  # a reset or a 502 would raise or fail here
        assert response.status_code == 200
        assert (response.json()["orderId"], response.json()["final"]) == (order_id, False)
        assert response.json()["waitedMs"] < 100_000  # answered at shutdown, not at the 120 s timeout
    if signum == signal.SIGHUP:  # new workers took over and serve waits
        server.process.wait_for(r"eventi worker ready", count=2, timeout=60)
        order_id, token = api.create_order()
        assert api.callback(order_id).status_code == 200
        assert api.wait(order_id, token, timeout=5).json()["paymentStatus"] == "completed"
    else:
        assert server.process.proc.wait(timeout=60) == 0


def probe(url):
    """(status, body) of a GET on a new connection, or None when the instance refuses it (its listener closed)."""
    try:
        response = requests.get(url, timeout=30)
    except requests.ConnectionError:
        return None
    return response.status_code, response.json()


def test_a_draining_instance_is_not_ready_and_still_answers_its_held_waits(start_gunicorn):
    server = start_gunicorn(workers=1)
    api = Api(server.base_url, TEST_SECRET)
    assert probe(server.base_url + "/readyz") == (200, {"status": "ready"})
    orders = [api.create_order() for _ in range(5)]
    waits = [gevent.spawn(api.wait, order_id, token, 120) for order_id, token in orders]
    api.await_waits_held(5)

    server.process.signal(signal.SIGTERM)
    server.process.wait_for(r"eventi worker draining", timeout=30)

    # From here on no probe may see it ready: 503 while its listener still accepts, refused after.
    draining = (503, {"error": "draining", "message": "This instance is shutting down; send requests to another.",
                      "down": []})
    assert probe(server.base_url + "/readyz") in (draining, None)
    for (order_id, _), wait in zip(orders, waits, strict=True):
        response = wait.get(timeout=60)
        assert (response.status_code, response.json()["orderId"], response.json()["final"]) == (200, order_id, False)
        assert response.headers["Retry-After"] == "0"  # the page asks again at once, reaching another instance
    assert server.process.proc.wait(timeout=60) == 0


def wait_path(order_id, token, timeout=120):
    return f"/api/orders/{order_id}/wait?token={token}&timeout={timeout}"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_stopping_closes_kept_alive_connections_quietly(start_gunicorn, signum):
    server = start_gunicorn(workers=1)
    api = Api(server.base_url, TEST_SECRET)
    (paid, paid_token), (pending, pending_token) = api.create_order(), api.create_order()
    # A wait answered before the stop, its connection kept alive (the page's tab still open).
    answered = raw_http.connect(server.port)
    answered_reader = raw_http.Reader(answered)
    answered.sendall(raw_http.get(wait_path(paid, paid_token)))
    api.await_waits_held(1)
    assert api.callback(paid).status_code == 200
    assert json.loads(answered_reader.response().body)["final"] is True
    # An idle keep-alive connection (a pooled client), and a held wait with its page's re-wait
    # already on the way (pipelined: it reaches the worker after the first answer, whatever the timing).
    idle = raw_http.connect(server.port)
    idle_reader = raw_http.Reader(idle)
    idle.sendall(raw_http.get("/healthz"))
    assert idle_reader.response().status == 200
    held = raw_http.connect(server.port)
    held_reader = raw_http.Reader(held)
    held.sendall(raw_http.get(wait_path(pending, pending_token)) * 2)
    api.await_waits_held(1)

    server.process.signal(signum)

    # The held wait: one answer the page can tell apart from a hold that ran out, then the end.
    response = held_reader.response()
    body = json.loads(response.body)
    assert (response.status, body["orderId"], body["final"]) == (200, pending, False)
    assert response.headers["retry-after"] == "0" and response.headers["connection"] == "close"
    assert held_reader.rest() == b""  # no second answer to the re-wait: it goes to another worker
    # Answered and idle connections: not a byte more (no unsolicited 500), just EOF.
    assert answered_reader.rest() == b""
    assert idle_reader.rest() == b""
    if signum == signal.SIGTERM:
        server.process.wait_for(r"Shutting down: Master", timeout=60)  # the last line: the whole log is in
        assert server.process.proc.wait(timeout=60) == 0
    else:
        server.process.wait_for(r"Worker exiting|eventi worker ready", count=2, timeout=60)  # old out, new in
    log = "".join(server.process.log)
    assert "Traceback" not in log and "[ERROR]" not in log, log


def test_a_wait_that_reaches_a_stopping_worker_is_answered_at_once_with_retry_after(client, runtime):
    created = client.post("/api/orders", json=order_body())
    order_id, token = created.json["orderId"], created.json["statusToken"]
    runtime.drain()
    response = client.get(wait_path(order_id, token))
    assert response.status_code == 200
    assert (response.json["final"], response.headers["Retry-After"]) == (False, "0")
    assert response.json["waitedMs"] < 60_000  # answered, not held for its 120 s
