"""The benchmark's machinery at N = 200, for correctness only: no timing is asserted."""
import pytest

from bench.run import Config, run_design


@pytest.mark.parametrize("design", ["hub"])
def test_bench_smoke_every_wait_gets_its_own_answer(design, tmp_path):
    cfg = Config(n=200, rate=200, burst=50, steady_seconds=0.25, idle_seconds=0.5, loadgens=2,
                 settle_seconds=0.5, fanout=100, designs=[design], workdir=str(tmp_path), verbose=False)
    res = run_design(design, cfg)
    assert res["all_held"]
    assert (res["errors"], res["error_samples"]) == (0, [])
    assert res["unanswered"] == 0, "every wait must be answered with a final status"
    assert res["wrong_order"] == 0, "every wait must be answered with its own order"
    assert res["requests_per_payment_max"] == 1
    assert all(phase["answered"] == phase["orders"] for phase in res["phases"].values())
    assert len(res["redis_clients_per_worker"]) == 2
    assert max(res["redis_clients_per_worker"]) <= 3, res["redis_clients_per_worker"]
