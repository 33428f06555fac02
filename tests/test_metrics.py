"""Metrics in one process: requests per route template, PayHero calls, HELP texts that say what is counted."""
import pytest
from prometheus_client import REGISTRY

from devstack.payhero_payloads import SAMPLE_ORDER_ID
from devstack.processes import free_port
from eventi import metrics
from eventi.payhero.client import PayHeroRejected, PayHeroUnavailable
from tests.support.api import create_order, post_callback
from tests.test_payments import client_for, push


def sample(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


def requests_counted(route, method, status):
    return sample("eventi_http_request_duration_seconds_count", route=route, method=method, status=status)


def test_requests_are_counted_by_route_template_method_and_status_class(client):
    before = {key: requests_counted(*key) for key in [
        ("/healthz", "GET", "2xx"), ("/api/orders/<order_id>", "GET", "4xx"), ("unmatched", "GET", "4xx"),
        ("/api/orders", "POST", "4xx")]}
    client.get("/healthz")
    client.get(f"/api/orders/{SAMPLE_ORDER_ID}?token=wrong")
    client.get("/no/such/path/a1b2c3")
    client.post("/api/orders", data="x", content_type="text/plain")
    after = {key: requests_counted(*key) for key in before}
    assert {key: after[key] - before[key] for key in before} == {key: 1.0 for key in before}
    exposition = metrics.render().decode()
    assert "a1b2c3" not in exposition and SAMPLE_ORDER_ID not in exposition  # templates, never raw paths


def test_every_known_series_exists_before_it_is_used(app):
    text = metrics.render().decode()
    for metric, label_sets in metrics.KNOWN_LABELS.items():
        for labels in label_sets:
            rendered = ",".join(f'{name}="{value}"' for name, value in zip(metric._labelnames, labels, strict=True))
            suffix = "_count" if isinstance(metric, metrics.Histogram) else "_total"  # counters keep their name without it
            assert f"{metric._name}{suffix}{{{rendered}}}" in text, (metric._name, labels)
    for status in metrics.STATUS_CLASSES:
        assert f'eventi_http_request_duration_seconds_count{{method="POST",route="/api/orders",status="{status}"}}' in text


def test_stk_push_help_says_limited_pushes_were_never_sent():
    help_line = next(line for line in metrics.render().decode().splitlines() if line.startswith("# HELP eventi_stk_pushes_total"))
    assert "never sent" in help_line and "limited" in help_line


@pytest.mark.parametrize("digit, outcome", [(0, "ok"), (7, "rejected")])
def test_payhero_calls_are_timed_by_call_and_outcome(payhero_simulator, digit, outcome):
    before = sample("eventi_payhero_request_duration_seconds_count", call="stk_push", outcome=outcome)
    if outcome == "ok":
        push(client_for(payhero_simulator), digit=digit)
    else:
        with pytest.raises(PayHeroRejected):
            push(client_for(payhero_simulator), digit=digit)
    assert sample("eventi_payhero_request_duration_seconds_count", call="stk_push", outcome=outcome) == before + 1


def test_an_unreachable_payhero_is_timed_as_unreachable(payhero_simulator):
    before = sample("eventi_payhero_request_duration_seconds_count", call="transaction_status", outcome="unreachable")
    closed = client_for(payhero_simulator, base_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(PayHeroUnavailable):
        closed.transaction_status("E8UWT7CLUW")
    assert sample("eventi_payhero_request_duration_seconds_count", call="transaction_status", outcome="unreachable") == before + 1


def test_callbacks_refused_401_are_counted_apart_from_malformed_ones(client, runtime):
    order_id, _ = create_order(client)
    before = (sample("eventi_callbacks_unauthorized_total"), sample("eventi_callbacks_total", outcome="rejected"))
    assert post_callback(client, runtime, order_id, token="0" * 64).status_code == 401
    assert post_callback(client, runtime, order_id, body={"response": "not a callback"}).status_code == 400
    after = (sample("eventi_callbacks_unauthorized_total"), sample("eventi_callbacks_total", outcome="rejected"))
    assert (after[0] - before[0], after[1] - before[1]) == (1.0, 2.0)  # the alert on 401 bursts reads the first
