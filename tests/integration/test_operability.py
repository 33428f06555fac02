"""What ops see of a real gunicorn with 2 gevent workers: summed metrics, JSON logs with request ids, start-up errors."""
import json
import re
from collections import Counter

import gevent
import pytest
import requests

from devstack.payhero_payloads import SAMPLE_ORDER_ID, callback_body
from devstack.processes import Gunicorn, free_port
from devstack.wait import eventually
from tests.conftest import TEST_SECRET, gunicorn_env, stop_quickly
from tests.support.api import Api, order_body

ISSUE_METRICS = [  # issue 5's list
    "eventi_waits_held",  # waits held now
    "eventi_waits_answered_total",  # by outcome
    "eventi_callback_to_answer_seconds",  # histogram
    "eventi_callbacks_total",  # by outcome
    "eventi_redis_reconnects_total",
    "eventi_store_errors_total",
    "eventi_stk_pushes_total",  # by outcome, once a push was tried
]


def families(metrics_text):
    return {m.group(1) for m in re.finditer(r"^# TYPE (\w+) ", metrics_text, re.M)}


def test_counters_are_summed_over_both_workers(start_gunicorn):
    server = start_gunicorn(workers=2)
    api = Api(server.base_url, TEST_SECRET)
    wrong = callback_body(SAMPLE_ORDER_ID)
    sent = 0

    def rejected_by_worker():
        rejected = r"\[(\d+)\] WARNING eventi\.web\.payhero_callback: PayHero callback rejected"
        return Counter(re.findall(rejected, "".join(server.process.log)))

    def both_workers_rejected_some():
        nonlocal sent
        for _ in range(10):  # a new connection each: the two workers compete to accept them
            assert api.callback(SAMPLE_ORDER_ID, token="0" * 64, body=wrong).status_code == 401
            sent += 1
        return len(rejected_by_worker()) == 2

    eventually(both_workers_rejected_some, 60, "rejected callbacks on both workers")
    eventually(lambda: sum(rejected_by_worker().values()) == sent, 10, "every rejection logged")
    per_worker = rejected_by_worker()
    assert min(per_worker.values()) > 0 and sum(per_worker.values()) == sent
    text = requests.get(f"{server.base_url}/metrics", timeout=10).text
    assert text, ("/metrics is empty: was prometheus_client imported in gunicorn's master before on_starting "
                  "set PROMETHEUS_MULTIPROC_DIR (e.g. a worker_class inside the eventi package)?")
    assert f'eventi_callbacks_total{{outcome="rejected"}} {float(sent)}' in text, text

    # One wait answered by a callback fills the labelled families and the histogram.
    order_id, token = api.create_order()
    wait = gevent.spawn(api.wait, order_id, token, 30)
    api.await_waits_held(1)
    assert api.callback(order_id).status_code == 200
    assert wait.get(timeout=30).json()["final"] is True
    text = requests.get(f"{server.base_url}/metrics", timeout=10).text
    missing = set(ISSUE_METRICS) - families(text) - {"eventi_stk_pushes_total"}  # no PayHero configured here
    assert not missing, missing
    assert 'eventi_waits_answered_total{outcome="final"} 1.0' in text
    assert 'eventi_callback_to_answer_seconds_count 1.0' in text
    assert "eventi_waits_held 0.0" in text


def test_json_logs_carry_each_requests_id_and_no_secrets(start_gunicorn):
    server = start_gunicorn(workers=2, EVENTI_LOG_FORMAT="json", EVENTI_ACCESS_LOG="-")
    api = Api(server.base_url, TEST_SECRET)
    created = requests.post(f"{server.base_url}/api/orders", json=order_body(), headers={"X-Request-ID": "rid-create"},
                            timeout=10)
    assert created.headers["X-Request-ID"] == "rid-create"
    order_id, token = created.json()["orderId"], created.json()["statusToken"]
    callback_token = api.tokens.callback_token(order_id)

    wait = gevent.spawn(requests.get, f"{server.base_url}/api/orders/{order_id}/wait",
                        params={"token": token, "timeout": 30}, headers={"X-Request-ID": "rid-wait"}, timeout=60)
    api.await_waits_held(1)
    answered = requests.post(f"{server.base_url}/api/payhero/callback", params={"token": callback_token},
                             json=callback_body(order_id), headers={"X-Request-ID": "rid-callback"}, timeout=10)
    assert answered.status_code == 200 and answered.headers["X-Request-ID"] == "rid-callback"
    response = wait.get(timeout=60)
    assert response.json()["final"] is True and response.headers["X-Request-ID"] == "rid-wait"
    output = lambda: "".join(server.process.log)  # noqa: E731
    access_ids = lambda: set(re.findall(r'"event": "http_access".*"requestId": "(rid-\w+)"', output()))  # noqa: E731
    eventually(lambda: access_ids() == {"rid-create", "rid-wait", "rid-callback"}, 10, "the three access lines")

    lines = [line for line in output().splitlines() if line.strip()]
    events = [json.loads(line) for line in lines]  # every line is one JSON object: gunicorn's, access, eventi's
    assert {"gunicorn.error", "gunicorn.access", "eventi.services.waiting"} <= {e["logger"] for e in events}
    assert any(e["event"] == "listening_at" for e in events)
    about_order = {e["event"]: e.get("requestId") for e in events
                   if e.get("orderId") == order_id and e["logger"].startswith("eventi")}
    assert about_order["long_polling_started"] == "rid-wait"
    # The held gauge rises before the wait's first read: on a loaded machine the callback can land
    # before that read, and the wait then answers from it without a Redis message. Either way, its id.
    assert about_order.get("payment_status_changed_via_redis", "rid-wait") == "rid-wait"
    assert about_order["payment_status_stored"] == "rid-callback"
    access = {e["requestId"]: e for e in events if e["event"] == "http_access"}
    assert (access["rid-wait"]["method"], access["rid-wait"]["status"], access["rid-wait"]["orderId"]) == ("GET", 200, order_id)
    assert access["rid-wait"]["path"] == f"/api/orders/{order_id}/wait"
    assert access["rid-callback"]["path"] == "/api/payhero/callback" and access["rid-create"]["status"] == 201
    for secret in (token, callback_token, "254712345678", "0712345678", "shopper@example.com"):
        assert secret not in output()


def test_text_logs_stay_human_lines(start_gunicorn):
    server = start_gunicorn(workers=1, EVENTI_ACCESS_LOG="-")
    requests.get(f"{server.base_url}/api/orders/{SAMPLE_ORDER_ID}", params={"token": "x"},
                 headers={"X-Request-ID": "rid-text"}, timeout=10)
    server.process.wait_for(rf'"GET /api/orders/{SAMPLE_ORDER_ID} HTTP/1.1" 404 .* rid=rid-text', timeout=10)
    assert not any(line.startswith("{") for line in server.process.log)
    assert re.search(r"\[INFO\] Listening at: http://127\.0\.0\.1:\d+", "".join(server.process.log))


def test_an_invalid_setting_in_json_mode_is_one_json_line(settings):
    server = Gunicorn({**gunicorn_env(settings), "EVENTI_LOG_FORMAT": "json", "EVENTI_LOG_LEVEL": "loud"}, workers=1)
    server.process.start()
    assert server.process.proc.wait(timeout=60) == 4
    eventually(lambda: any("invalid_setting" in line for line in server.process.log), 10, "the invalid setting line")
    lines = [json.loads(line) for line in server.process.log if line.strip()]  # every line JSON, gunicorn's too
    [line] = [line for line in lines if line["event"] == "invalid_setting"]
    assert (line["setting"], line["level"]) == ("EVENTI_LOG_LEVEL", "CRITICAL")


@pytest.mark.parametrize("name, value, line", [
    ("EVENTI_NOTIFIER", "bogus", "EVENTI_NOTIFIER must be one of hub, per-request"),
    ("EVENTI_LOG_LEVEL", "verbose",
     "EVENTI_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL (any case), got 'verbose'"),
    ("EVENTI_MONGO_URI", "mongodb://127.0.0.1:27017", "EVENTI_MONGO_URI must name the database in its path, e.g. mongodb://host:27017/eventi"),
    ("EVENTI_WAIT_MAX_SECONDS", "300", "EVENTI_WAIT_MAX_SECONDS must be 1 to 120: .*"),
    ("EVENTI_WAIT_MAX_SECONDS", "two minutes", "EVENTI_WAIT_MAX_SECONDS must be a whole number, got 'two minutes'"),
    ("EVENTI_WAIT_DEFAULT_SECONDS", "0", "EVENTI_WAIT_DEFAULT_SECONDS must be between 1 and EVENTI_WAIT_MAX_SECONDS"),
    ("EVENTI_METRICS_BIND", "9100", "EVENTI_METRICS_BIND must be host:port, e.g. 0.0.0.0:9100, got '9100'"),
])
def test_an_invalid_setting_stops_gunicorn_with_one_line_naming_it(settings, name, value, line):
    server = Gunicorn({**gunicorn_env(settings), name: value}, workers=2)
    server.process.start()
    server.process.wait_for("^eventi: invalid setting: " + re.escape(line).replace(r"\.\*", ".*") + "$", timeout=60)
    assert server.process.proc.wait(timeout=60) == 4  # as gunicorn's "App failed to load"
    with pytest.raises(RuntimeError):  # the output ends (the process exited) without another line of interest
        server.process.wait_for(r"Traceback|Listening at|Booting worker|invalid setting", timeout=30)
    assert server.process.output().count("invalid setting") == 1


def test_an_invalid_worker_count_stops_gunicorn_before_it_binds(settings):
    server = Gunicorn(gunicorn_env(settings), workers=2)
    server.process.env = {**server.env, "EVENTI_WORKERS": "two"}
    server.process.start()
    server.process.wait_for(r"^eventi: invalid setting: EVENTI_WORKERS must be a positive integer, got 'two'$", timeout=60)
    assert server.process.proc.wait(timeout=60) == 4
    assert "Traceback" not in server.process.output() and "Listening" not in server.process.output()


def test_gunicorns_own_lines_are_masked_even_with_a_query_in_the_access_log(settings):
    """Someone sets access_log_format to %(r)s (with the query): the status token still does not show."""
    token = "ab12" + "c" * 60
    server = Gunicorn(gunicorn_env(settings, EVENTI_ACCESS_LOG="-"), workers=1,
                      extra_args=("--access-logformat", '"%(r)s" %(s)s')).start()
    try:
        requests.get(f"{server.base_url}/api/orders/{SAMPLE_ORDER_ID}", params={"token": token, "phone": "0712345678"},
                     timeout=10)
        server.process.wait_for(rf'"GET /api/orders/{SAMPLE_ORDER_ID}\?token=\*\*\*&phone=\*\*\*678 HTTP/1.1" 404', timeout=10)
        assert token not in server.process.output()
    finally:
        stop_quickly(server)


def test_metrics_on_their_own_port_with_every_series_from_the_start(settings):
    metrics_port = free_port()
    server = Gunicorn(gunicorn_env(settings, EVENTI_METRICS_BIND=f"127.0.0.1:{metrics_port}"), workers=2).start()
    try:
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        fresh = requests.get(metrics_url, timeout=10)
        assert fresh.status_code == 200
        for series in ('eventi_callbacks_total{outcome="completed"} 0.0', 'eventi_callbacks_total{outcome="rejected"} 0.0',
                       'eventi_waits_answered_total{outcome="timeout"} 0.0', 'eventi_stk_pushes_total{outcome="limited"} 0.0',
                       'eventi_payhero_request_duration_seconds_count{call="stk_push",outcome="unreachable"} 0.0',
                       'eventi_http_request_duration_seconds_count{method="POST",route="/api/payhero/callback",'
                       'status="5xx"} 0.0'):
            assert series in fresh.text, series
        public = requests.get(f"{server.base_url}/metrics", timeout=10)
        assert public.status_code == 404 and public.json()["error"] == "not_found"
        assert requests.get(f"http://127.0.0.1:{metrics_port}/healthz", timeout=10).status_code == 404
        assert requests.get(f"{server.base_url}/healthz", timeout=10).status_code == 200
        counted = requests.get(metrics_url, timeout=10).text
        assert 'eventi_http_request_duration_seconds_count{method="GET",route="/healthz",status="2xx"} 1.0' in counted
        assert 'eventi_http_request_duration_seconds_count{method="GET",route="/metrics",status="4xx"} 1.0' in counted
    finally:
        stop_quickly(server)
