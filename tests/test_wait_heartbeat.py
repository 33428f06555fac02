"""The wait route's heartbeat stream (`?heartbeat=N`) through gunicorn's gevent workers: the 200 starts at once,
spaces come while held, the body is valid JSON; refusals keep their status; a store failure after the start
is a retryable answer in the body."""
import http.client
import json
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Response
from werkzeug.test import EnvironBuilder

from devstack.processes import Gunicorn
from eventi.errors import StoreUnavailable
from eventi.services.waiting import WaitResult
from eventi.web.deferred import DeferredResponse
from eventi.web.orders import heartbeats
from tests.conftest import TEST_SECRET, gunicorn_env, settings_for, stop_quickly
from tests.support import raw_http
from tests.support.api import Api


def open_wait(port: int, path: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)  # the timeout only stops a broken test
    conn.request("GET", path)
    return conn, conn.getresponse()


@pytest.fixture
def shop(start_gunicorn: Any) -> Gunicorn:
    """A gunicorn of the test's own (the test stops it)."""
    return start_gunicorn(workers=1, EVENTI_WAIT_DEFAULT_SECONDS=3)


@pytest.fixture(scope="module")
def shared_shop(redis_server: Any, mongo_server: Any, tmp_path_factory: Any) -> Iterator[Gunicorn]:
    """One gunicorn for the tests that leave it running."""
    settings = settings_for(redis_server.url, mongo_server.uri, str(tmp_path_factory.mktemp("heartbeat") / "var"))
    server = Gunicorn(gunicorn_env(settings, EVENTI_WAIT_DEFAULT_SECONDS=3), workers=1).start()
    yield server
    stop_quickly(server)


def test_the_answer_starts_before_the_callback_and_ends_with_the_final_body(shared_shop: Gunicorn) -> None:
    shop = shared_shop
    api = Api(shop.base_url, TEST_SECRET)
    order_id, token = api.create_order()
    conn, response = open_wait(shop.port, f"/api/orders/{order_id}/wait?token={token}&timeout=60&heartbeat=1")
    assert response.status == 200
    assert response.getheader("Content-Type") == "application/json"
    assert response.getheader("X-Accel-Buffering") == "no" and response.getheader("Cache-Control") == "no-store"
    assert response.read(1) == b" "  # streamed at once, while the order is still pending
    assert response.read(1) == b" "  # a heartbeat while held
    assert api.callback(order_id).status_code == 200
    rest = response.read()
    body = json.loads(b"  " + rest)  # leading whitespace: still one JSON document
    assert (body["paymentStatus"], body["final"]) == ("completed", True)
    assert "retryAfter" not in body
    conn.close()


def test_a_hold_that_runs_out_streams_heartbeats_then_the_pending_body(shared_shop: Gunicorn) -> None:
    shop = shared_shop
    api = Api(shop.base_url, TEST_SECRET)
    order_id, token = api.create_order()
    conn, response = open_wait(shop.port, f"/api/orders/{order_id}/wait?token={token}&heartbeat=1")
    raw = response.read()
    assert raw.startswith(b"  ")  # the first space and at least one heartbeat in the 3 s hold
    body = json.loads(raw)
    assert (body["paymentStatus"], body["final"]) == ("pending", False)
    conn.close()


def test_refusals_keep_their_status_with_heartbeats_asked(shared_shop: Gunicorn) -> None:
    shop = shared_shop
    api = Api(shop.base_url, TEST_SECRET)
    order_id, token = api.create_order()
    conn, response = open_wait(shop.port, f"/api/orders/{order_id}/wait?token=wrong&heartbeat=1")
    assert (response.status, json.loads(response.read())["error"]) == (404, "not_found")
    conn.close()
    conn, response = open_wait(shop.port, f"/api/orders/{order_id}/wait?token={token}&heartbeat=0")
    assert (response.status, json.loads(response.read())["error"]) == (400, "validation_error")
    conn.close()


def test_a_streamed_hold_cut_short_by_a_stopping_worker_says_retry_in_its_body_then_closes(shop: Gunicorn) -> None:
    api = Api(shop.base_url, TEST_SECRET)
    order_id, token = api.create_order()
    sock = raw_http.connect(shop.port)
    sock.sendall(raw_http.get(f"/api/orders/{order_id}/wait?token={token}&timeout=60&heartbeat=1"))
    raw = b""
    while b"\r\n\r\n" not in raw:  # the head and the first space: the 200 is out
        raw += sock.recv(65536)
    shop.process.signal(signal.SIGTERM)
    raw += raw_http.Reader(sock).rest()  # to EOF: the worker closes the connection after the answer
    head, chunked = raw.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 ") and b"chunked" in head.lower()
    body = json.loads(dechunk(chunked))
    assert (body["orderId"], body["final"], body["retryAfter"]) == (order_id, False, 0)
    shop.process.wait_for(r"Shutting down: Master", timeout=60)
    assert "Traceback" not in "".join(shop.process.log)


def dechunk(data: bytes) -> bytes:
    out = b""
    while True:
        size, data = data.split(b"\r\n", 1)
        if int(size, 16) == 0:
            return out
        out, data = out + data[:int(size, 16)], data[int(size, 16) + 2:]


class FailingHold:
    """A HeldWait whose store read fails after one heartbeat (the 200 is already out then)."""

    def steps(self, every: float | None) -> Iterator[WaitResult | None]:
        yield None
        raise StoreUnavailable()


def test_a_store_failure_after_the_start_is_a_retryable_answer_in_the_body() -> None:
    raw = b"".join(heartbeats(FailingHold(), 1))  # type: ignore[arg-type]
    body = json.loads(raw)
    assert raw.startswith(b"  ")
    assert body["error"] == "store_unavailable" and body["retryAfter"] >= 1 and body["message"]


def test_a_hold_cut_short_by_a_stopping_server_says_so_in_the_body() -> None:
    class Stopping:
        def steps(self, every: float | None) -> Iterator[WaitResult | None]:
            yield WaitResult(body={"paymentStatus": "pending"}, final=False, waited_ms=5, outcome="shutdown")

    body = json.loads(b"".join(heartbeats(Stopping(), 1)))  # type: ignore[arg-type]
    assert (body["final"], body["retryAfter"]) == (False, 0)


def test_a_store_failure_while_a_plain_wait_is_held_is_its_503_with_the_hooks_headers() -> None:
    """Without heartbeats nothing is sent until the hold ends (eventi/web/deferred.py): the failure is the
    answer's status, as Flask's handler gives it, with the headers Flask's hooks set before the hold."""
    def failing() -> Response:
        raise StoreUnavailable()

    deferred = DeferredResponse(failing, abandon=lambda: None)
    deferred.headers["Cache-Control"] = "no-store"
    started: list[tuple[str, list[tuple[str, str]]]] = []
    body = deferred(EnvironBuilder("/").get_environ(), lambda status, headers: started.append((status, headers)))
    assert started == []  # nothing decided before the hold runs
    raw = b"".join(body)
    (status, headers), = started
    assert status.startswith("503 ")
    assert dict(headers)["Cache-Control"] == "no-store" and int(dict(headers)["Retry-After"]) >= 1
    assert json.loads(raw)["error"] == "store_unavailable"
