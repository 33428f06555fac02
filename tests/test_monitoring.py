"""docker/alerts.yml and docker/grafana-dashboard.json: valid PromQL (promtool, Debian's `prometheus` package), alerts
that fire as tests/monitoring/alerts.test.yml says, and only metrics that a live eventi exports."""
import json
import re
import shutil
import subprocess

import pytest
import requests
import yaml

from devstack.processes import ROOT

ALERTS = ROOT / "docker" / "alerts.yml"
DASHBOARD = ROOT / "docker" / "grafana-dashboard.json"


def promtool(*args, cwd=ROOT):
    tool = shutil.which("promtool")
    assert tool, "promtool is missing: `make deps` installs Debian's prometheus package"
    return subprocess.run([tool, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def dashboard_queries():
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return {f"{panel['title']} {target['refId']}": target["expr"] for panel in panels for target in panel["targets"]}


def alert_queries():
    return {rule["alert"]: rule["expr"] for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]}


def test_alert_rules_pass_promtool_check():
    checked = promtool("check", "rules", str(ALERTS))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert set(alert_queries()) == {"EventiNoCallbacksWhileOrdersAreCreated", "EventiCallbackErrorRatio",
                                    "EventiStoreUnavailable", "EventiWaitsNearWorkerCap", "EventiHubDisconnected",
                                    "EventiPaymentNeedsRefund", "EventiPaymentUnconfirmed", "EventiReconcileOverdue",
                                    "EventiCheckout5xxRatio", "EventiCheckoutBadGateway", "EventiStkPushFailures",
                                    "EventiCallbackUnauthorizedBurst", "EventiManualPaymentUnmatched",
                                    "EventiSecondPayment"}


def heading_anchors(markdown):
    """The anchors GitHub gives a Markdown file's headings: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", re.sub(r"^```.*?^```", "", markdown, flags=re.M | re.S), re.M)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


def test_every_alert_links_a_runbook_section_that_exists():
    anchors = heading_anchors((ROOT / "docs" / "operations.md").read_text())
    assert {"readiness-and-liveness", "nginxs-own-errors", "eventicheckout5xxratio"} <= anchors  # the slug rule holds
    rules = [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]
    for rule in rules:
        path, _, anchor = rule["annotations"].get("runbook_url", "").partition("#")
        assert (path, anchor in anchors) == ("docs/operations.md", True), (rule["alert"], rule["annotations"])


def test_alerts_fire_as_their_unit_tests_say():
    tested = promtool("test", "rules", "alerts.test.yml", cwd=ROOT / "tests" / "monitoring")
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_dashboard_query_is_valid_promql(tmp_path):
    """promtool parses each query as the expression of a recording rule."""
    queries = dashboard_queries()
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{n}", "expr": expr} for n, expr in enumerate(queries.values())]}]}
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules))
    checked = promtool("check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert len(queries) >= 10


def metric_names(expr):
    """The metric names a query reads (histogram series named by their family)."""
    return {re.sub(r"_(bucket|count|sum)$", "", name) for name in re.findall(r"\beventi_[a-z_]+", expr)}


def test_every_metric_in_the_dashboard_and_alerts_is_exported(start_gunicorn):
    server = start_gunicorn(workers=1)
    exposition = requests.get(f"{server.base_url}/metrics", timeout=10).text
    exported = set(re.findall(r"^# TYPE (\w+) ", exposition, re.M))
    used = {name for expr in [*dashboard_queries().values(), *alert_queries().values()] for name in metric_names(expr)}
    assert used - exported == set(), f"not exported by eventi: {sorted(used - exported)}"
    assert {"eventi_callbacks_total", "eventi_hub_connected", "eventi_http_request_duration_seconds"} <= used
    linted = subprocess.run([shutil.which("promtool"), "check", "metrics"], input=exposition, capture_output=True,
                            text=True, timeout=60)
    assert linted.returncode == 0, linted.stdout + linted.stderr


@pytest.mark.parametrize("expr, names", [
    ("histogram_quantile(0.99, sum by (le) (rate(eventi_callback_to_answer_seconds_bucket[5m])))",
     {"eventi_callback_to_answer_seconds"}),
    ('sum by (instance) (eventi_waits_held) / sum by (instance) (eventi_waits_capacity)',
     {"eventi_waits_held", "eventi_waits_capacity"}),
])
def test_metric_names_are_found_in_queries(expr, names):
    assert metric_names(expr) == names
