"""Debian's nginx with docker/nginx.conf (rendered for test ports) in front of a real gunicorn."""
import http.client
import json
import os
import re
import socket
from pathlib import Path

import gevent
import pytest
import requests
from gevent.pool import Pool

from devstack.nginx import NGINX, render
from devstack.payhero_payloads import callback_body
from devstack.processes import ROOT, Process, free_port
from devstack.wait import eventually
from tests.conftest import TEST_SECRET
from tests.support.api import Api

pytestmark = pytest.mark.skipif(not os.access(NGINX, os.X_OK), reason=f"{NGINX} missing: make deps installs it")


ALLOWED, FOREIGN = "https://shop.example.com", "https://elsewhere.example"  # EVENTI_CORS_ORIGINS lists ALLOWED


class Nginx:
    def __init__(self, upstream_port, tmp, edit=lambda config: config):
        """docker/nginx.conf for test ports, ALLOWED as its CORS origin; `edit` changes the rendered text."""
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        tmp = Path(tmp)
        config = tmp / "nginx.conf"
        config.write_text(edit(render((ROOT / "docker" / "nginx.conf").read_text(), self.port, f"127.0.0.1:{upstream_port}",
                                      tmp, cors_origins=[ALLOWED])))
        self.process = Process("nginx", [NGINX, "-e", "stderr", "-p", f"{tmp}/", "-c", str(config), "-g", "daemon off;"])

    def start(self):
        self.process.start()
        eventually(self._answers, 30, f"nginx on {self.port}:\n{self.process.output()}")
        return self

    def _answers(self):
        if self.process.proc.poll() is not None:
            raise RuntimeError(f"nginx exited:\n{self.process.output()}")
        try:
            return requests.get(f"{self.base_url}/metrics", timeout=2).status_code == 404  # nginx's own answer
        except requests.ConnectionError:
            return False

    def stop(self):
        self.process.stop()


@pytest.fixture
def behind_nginx(start_gunicorn, tmp_path):
    server = start_gunicorn(workers=2, EVENTI_PROXY_COUNT=1, EVENTI_CORS_ORIGINS=ALLOWED)
    nginx = Nginx(server.port, tmp_path).start()
    yield server, nginx, Api(nginx.base_url, TEST_SECRET, metrics_url=server.base_url)
    nginx.stop()


SHORTER = {"client_body_timeout 15s;": "client_body_timeout 2s;", "send_timeout 30s;": "send_timeout 2s;",
           "proxy_read_timeout 30s;": "proxy_read_timeout 5s;", "proxy_send_timeout 30s;": "proxy_send_timeout 5s;"}
"""The server's timeouts a held wait must outlast, cut to a few seconds (the wait location's 150 s ones kept): a
6 s hold then proves what a hold of over 30 s would with the shipped values. 5 s leaves the other requests (an
order, a callback) room on a loaded machine."""


def shorter_timeouts(config):
    for shipped, short in SHORTER.items():
        config, found = re.subn(rf"\b{shipped}", short, config)  # \b: send_timeout is not proxy_send_timeout
        assert found == 1, shipped
    return config


def test_a_wait_held_past_the_servers_shorter_timeouts_returns_as_soon_as_its_callback_lands(start_gunicorn, tmp_path):
    server = start_gunicorn(workers=2, EVENTI_PROXY_COUNT=1)
    nginx = Nginx(server.port, tmp_path, edit=shorter_timeouts).start()
    try:
        api = Api(nginx.base_url, TEST_SECRET, metrics_url=server.base_url)
        order_id, token = api.create_order()
        wait = gevent.spawn(api.wait, order_id, token, 60)
        api.await_waits_held(1)
        gevent.sleep(6)  # the scenario itself: a hold through nginx past those timeouts, not a synchronisation
        assert not wait.ready()
        assert api.callback(order_id).status_code == 200
        response = wait.get(timeout=30)
    finally:
        nginx.stop()
    assert response.status_code == 200
    body = response.json()
    assert (body["paymentStatus"], body["final"]) == ("completed", True)
    assert 5_000 <= body["waitedMs"] < 45_000  # held ~6 s, answered long before its 60 s timeout
    assert response.headers["Cache-Control"] == "no-store" and response.headers["X-Request-ID"]


def test_heartbeats_of_a_held_wait_pass_through_nginx_unbuffered(behind_nginx):
    server, nginx, api = behind_nginx
    order_id, token = api.create_order()
    conn = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=60)  # the timeout only stops a broken test
    conn.request("GET", f"/api/orders/{order_id}/wait?token={token}&timeout=60&heartbeat=1")
    response = conn.getresponse()
    assert response.status == 200
    assert response.read(2) == b"  "  # the start and a heartbeat, through nginx, while the order is pending
    assert api.callback(order_id).status_code == 200
    body = json.loads(response.read())
    assert (body["paymentStatus"], body["final"]) == ("completed", True)
    conn.close()


def test_200_concurrent_waits_pass_through_nginx(behind_nginx):
    server, nginx, api = behind_nginx
    direct = Api(server.base_url, TEST_SECRET)  # 200 checkouts from one address would meet nginx's limit_req
    orders = Pool(20).map(lambda _: direct.create_order(), range(200))
    waits = [gevent.spawn(api.wait, order_id, token, 60) for order_id, token in orders]
    api.await_waits_held(200, timeout=60)
    kinds = ["success", "cancelled"]
    callbacks = Pool(4).map(lambda i: api.callback(orders[i][0], kinds[i % 2]), range(200))
    assert {r.status_code for r in callbacks} == {200}
    for i, wait in enumerate(waits):
        response = wait.get(timeout=60)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["orderId"] == orders[i][0]
        assert (body["paymentStatus"], body["final"]) == (["completed", "cancelled"][i % 2], True)


def test_client_ip_and_request_id_pass_through_and_spoofed_forwarding_is_ignored(behind_nginx):
    server, nginx, api = behind_nginx
    order_id = "6751a3f2c9e77b0012ab34cd"
    connection = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=10, source_address=("127.0.0.2", 0))
    connection.request("POST", f"/api/payhero/callback?token={'0' * 64}", body=json.dumps(callback_body(order_id)),
                       headers={"Content-Type": "application/json", "X-Forwarded-For": "6.6.6.6", "X-Request-ID": "via-nginx-1"})
    response = connection.getresponse()
    assert response.status == 401 and response.getheader("X-Request-ID") == "via-nginx-1"
    # nginx saw 127.0.0.2 and appended it; the app trusts that one hop only (EVENTI_PROXY_COUNT=1), not 6.6.6.6.
    server.process.wait_for(rf"PayHero callback rejected \(wrong token\) orderId={order_id} ip=127\.0\.0\.2 "
                            r"requestId=via-nginx-1", timeout=10)
    # nginx's own access log shows the path without the token
    nginx.process.wait_for(r'127\.0\.0\.2 .*"POST /api/payhero/callback HTTP/1\.1" 401 .* rid=via-nginx-1', timeout=10)
    assert "0" * 64 not in nginx.process.output()


def test_rendered_config_passes_nginx_t(tmp_path):
    config = tmp_path / "nginx.conf"
    config.write_text(render((ROOT / "docker" / "nginx.conf").read_text(), free_port(), "127.0.0.1:9", tmp_path))
    process = Process("nginx -t", [NGINX, "-e", "stderr", "-p", f"{tmp_path}/", "-c", str(config), "-t"]).start()
    process.wait_for(r"test is successful", timeout=30)
    assert process.proc.wait(timeout=30) == 0


def test_wait_location_is_tuned_for_long_polls():
    config = (ROOT / "docker" / "nginx.conf").read_text()
    wait = config.split("location ~ ^/api/orders/[^/]+/wait$ {", 1)[1].split("}", 1)[0]
    read_timeout = int(re.search(r"proxy_read_timeout (\d+)s;", wait).group(1))
    assert read_timeout > 120  # above EVENTI_WAIT_MAX_SECONDS' ceiling
    assert "proxy_buffering off;" in wait and "proxy_next_upstream off;" in wait
    assert re.search(r"keepalive \d+;", config) and 'proxy_set_header Connection "";' in config
    assert "proxy_http_version 1.1;" in config and "client_max_body_size 64k;" in config


def test_order_creation_is_rate_limited_per_client_address(behind_nginx):
    server, nginx, api = behind_nginx

    def request_from(address, method="POST", path="/api/orders", origin=ALLOWED):
        connection = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=10, source_address=(address, 0))
        connection.request(method, path, body="{}" if method == "POST" else None,
                           headers={"Content-Type": "application/json", "Origin": origin})
        return connection.getresponse()

    answers = [request_from("127.0.0.3") for _ in range(100)]  # {}: the app answers 400 without storing anything
    refused = [answer for answer in answers if answer.status == 429]
    assert refused and {answer.status for answer in answers} == {400, 429}
    assert_problem(refused[0], 429, "too_many_requests", ALLOWED)
    assert int(refused[0].getheader("Retry-After")) > 0
    assert_problem(request_from("127.0.0.3", origin=FOREIGN), 429, "too_many_requests", FOREIGN)
    assert request_from("127.0.0.4").status == 400  # another address has its own budget
    order_id, token = Api(server.base_url, TEST_SECRET).create_order()
    for _ in range(30):  # GETs from the limited address are not limited
        assert request_from("127.0.0.3", "GET", f"/api/orders/{order_id}?token={token}").status == 200


PROBLEM = {  # status: (error, title) of nginx's own answers; the codes are the app's for the same status
    413: ("request_entity_too_large", "Request Entity Too Large"),
    429: ("too_many_requests", "Too Many Requests"),
    502: ("bad_gateway", "Bad Gateway"),
    503: ("service_unavailable", "Service Unavailable"),
    504: ("gateway_timeout", "Gateway Timeout"),
}


def assert_problem(response, status, error, origin):
    """An RFC 9457 problem with eventi's error and message; CORS headers for ALLOWED only."""
    if isinstance(response, requests.Response):
        status_code, headers, body = response.status_code, response.headers, response.content
    else:  # http.client
        status_code, headers, body = response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    headers = requests.structures.CaseInsensitiveDict(headers)
    problem = json.loads(body)
    assert status_code == status and headers["Content-Type"] == "application/problem+json", (status_code, body)
    assert problem == {"type": f"/api/docs#problem-{error}", "title": PROBLEM[status][1], "status": status,
                       "detail": problem["detail"], "error": error, "message": problem["detail"]} and problem["detail"]
    assert headers["Cache-Control"] == "no-store" and headers["X-Request-ID"]
    assert headers.get("Access-Control-Allow-Origin") == (origin if origin == ALLOWED else None)
    assert ("Access-Control-Expose-Headers" in headers) == (origin == ALLOWED) and "Origin" in headers["Vary"]


@pytest.fixture
def stalled_upstream():
    """A listening socket that never accepts: the kernel completes connections, nothing ever answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", free_port()))
    listener.listen(16)
    yield listener
    listener.close()


def test_nginx_answers_its_own_errors_as_problem_json_with_cors_for_allowed_origins(stalled_upstream, tmp_path):
    def edit(config):
        assert "proxy_read_timeout 30s;" in config and "location / {" in config
        config = config.replace("proxy_read_timeout 30s;", "proxy_read_timeout 1s;")  # 504 in a second, not 30
        # nginx's own 503 (a limit_conn, a maintenance `return 503` an operator adds): the harness adds one
        return config.replace("location / {", "location = /api/orders/test-unavailable { return 503; }\n        location / {")

    nginx = Nginx(stalled_upstream.getsockname()[1], tmp_path, edit).start()
    try:
        def get(path, origin):
            return requests.get(nginx.base_url + path, headers={"Origin": origin}, timeout=30)

        for origin in (ALLOWED, FOREIGN):
            too_big = requests.post(f"{nginx.base_url}/api/orders", data=b"{" + b" " * 70_000 + b"}", timeout=10,
                                    headers={"Content-Type": "application/json", "Origin": origin})
            assert_problem(too_big, 413, "request_entity_too_large", origin)
            unavailable = get("/api/orders/test-unavailable", origin)
            assert_problem(unavailable, 503, "service_unavailable", origin)
            assert int(unavailable.headers["Retry-After"]) > 0
            assert_problem(get("/api/orders/6751a3f2c9e77b0012ab34cd", origin), 504, "gateway_timeout", origin)
        stalled_upstream.close()  # now nothing listens there: connections are refused
        for origin in (ALLOWED, FOREIGN):
            assert_problem(get("/api/events", origin), 502, "bad_gateway", origin)
        # CORS only where the app answers it: never on the PayHero callback (a server calls it)
        refused = requests.post(f"{nginx.base_url}/api/payhero/callback", json={}, headers={"Origin": ALLOWED}, timeout=10)
        assert refused.status_code == 502 and refused.json()["error"] == "bad_gateway"
        assert "Access-Control-Allow-Origin" not in refused.headers
    finally:
        nginx.stop()


def test_metrics_are_not_served_through_nginx(behind_nginx):
    server, nginx, api = behind_nginx
    response = requests.get(f"{nginx.base_url}/metrics", timeout=10)
    assert response.status_code == 404 and response.json()["error"] == "not_found"
    assert requests.get(f"{server.base_url}/metrics", timeout=10).status_code == 200  # the app itself still has them
