"""The benchmark's machinery at N = 200, for correctness only: no timing is asserted."""
import pytest

from bench import paid_probe
from bench.report import rows
from bench.run import Config, run_design

PAID_ORDER = "server CPU per paid order (creation + callback + its wait's answer): all four (gunicorn / FerretDB / " \
             "PostgreSQL / Redis)"


@pytest.mark.parametrize("design", ["hub"])
def test_bench_smoke_every_wait_gets_its_own_answer(design, tmp_path):
    cfg = Config(n=200, rate=200, burst=50, steady_seconds=0.25, idle_seconds=0.5, loadgens=2, create_clients=4,
                 settle_seconds=0.5, fanout=100, designs=[design], workdir=str(tmp_path), verbose=False,
                 profile_dir=str(tmp_path / "profile"))
    res = run_design(design, cfg)
    created = res["create"]
    assert (created["orders"], created["errors"], created["error_samples"]) == (200, 0, [])
    assert (created["first"]["orders"], created["last"]["orders"]) == (200, 200)
    assert res["all_held"]
    assert (res["errors"], res["error_samples"]) == (0, [])
    assert res["unanswered"] == 0, "every wait must be answered with a final status"
    assert res["wrong_order"] == 0, "every wait must be answered with its own order"
    assert res["requests_per_payment_max"] == 1
    assert all(phase["answered"] == phase["orders"] for phase in res["phases"].values())
    assert res["phases"]["callback_steady"]["orders"] == 50 and res["phases"]["callback_burst"]["orders"] == 50
    assert res["callbacks_sent"] == 100
    assert all(res["callback_cpu"][server] > 0 for server in ("gunicorn", "ferretdb", "postgres")), res["callback_cpu"]
    assert len(res["redis_clients_per_worker"]) == 2
    assert max(res["redis_clients_per_worker"]) <= 3, res["redis_clients_per_worker"]
    assert res["profile"]["samples"] > 0
    assert any("callback" in name for name in res["profile"]["eventi_functions"]), res["profile"]["eventi_functions"]
    [(_, [paid], [total])] = [row for row in rows([res]) if row[0] == PAID_ORDER]
    assert paid.endswith(")") and total > 0, paid


def test_paid_probe_pays_every_order_and_reports_each_servers_cpu():
    res = paid_probe.run(orders=40, clients=4, concurrency=4, workers=2)
    assert (res["orders"], res["create_errors"], res["callback_errors"], res["wrong_answers"]) == (40, 0, 0, 0)
    paid = res["paid_order_ms"]
    assert paid["servers"] == pytest.approx(sum(paid[k] for k in paid_probe.SERVERS))
    assert all(paid[k] > 0 for k in ("gunicorn", "ferretdb", "postgres")), paid


def test_bench_two_instances_behind_nginx_half_the_callbacks_cross(tmp_path):
    """The topology knob: 2 instances behind docker/nginx.conf; no timing is asserted."""
    cfg = Config(n=100, rate=200, burst=0, steady_seconds=0.2, idle_seconds=0.2, loadgens=1, seed=True,
                 settle_seconds=0.3, fanout=50, instances=2, nginx=True, publish_phases=False, designs=["hub"],
                 workdir=str(tmp_path), verbose=False)
    res = run_design("hub", cfg)
    assert res["all_held"] and res["nginx"]
    assert (res["errors"], res["error_samples"], res["unanswered"], res["wrong_order"]) == (0, [], 0, 0)
    assert sum(res["waits_per_instance"]) == 100 and min(res["waits_per_instance"]) > 0, res["waits_per_instance"]
    assert res["callbacks_sent"] == 25 and res["callbacks_holder_known"] == 25
    assert res["callbacks_elsewhere"] == 12  # the odd-numbered ones
    assert res["phases"]["callback_steady"]["answered"] == 25
    assert res["fanout"]["workers"] == 4 and res["notifier_effective"] == "hub"
