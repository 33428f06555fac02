"""Reconciliation against a real PayHero simulator process, and strict callback verification."""
import subprocess
from datetime import timedelta

import gevent
import pytest

from devstack.payhero import payhero_fixture
from devstack.processes import ROOT
from devstack.simulator import PayHeroSimulator
from devstack.wait import eventually
from eventi.models import utcnow
from eventi.services.reconcile import result_from_status
from eventi.web.common import current_runtime
from tests.support.api import order_fields, post_callback

NO_CALLBACK_PHONE = "254712345675"  # the simulator settles it (paid) but never calls back


@pytest.fixture
def quick_simulator():
    """A simulator of this test's own: reconcile asks it about every pending order, and it knows only
    this test's."""
    with PayHeroSimulator(delay=0.1) as simulator:
        yield simulator


@pytest.fixture
def make_runtime(make_app):
    return lambda **overrides: current_runtime(make_app(**overrides))


def create(runtime, phone=NO_CALLBACK_PHONE):
    return str(runtime.orders.create(order_fields(phone=phone))["_id"])


def test_reconcile_completes_a_paid_order_whose_callback_never_came(make_runtime, quick_simulator):
    runtime = make_runtime(**quick_simulator.settings, RECONCILE_AFTER_SECONDS=0)
    order_id = create(runtime)
    eventually(lambda: quick_simulator.pushes(order_id)[0]["status"] == "SUCCESS", 30, "the simulator to settle")
    waiting = gevent.spawn(runtime.waits.wait, order_id, 60)
    report = runtime.reconciler().run_once()
    assert report.applied.get("completed") == 1
    result = waiting.get(timeout=30)
    assert (result.body["paymentStatus"], result.final) == ("completed", True)
    reference = runtime.store.get_order(order_id)["payheroReference"]
    assert result.body["mpesaReceipt"] == runtime.payhero.transaction_status(reference)["provider_reference"]
    assert [e["source"] for e in runtime.store.events_for(order_id)] == ["reconcile"]
    again = runtime.reconciler().run_once()
    assert order_id not in str(again.applied) and runtime.store.get_order(order_id)["status"] == "completed"


def test_reconcile_fails_orders_unanswered_past_the_give_up_age(make_runtime, quick_simulator):
    runtime = make_runtime(**quick_simulator.settings, RECONCILE_AFTER_SECONDS=0, RECONCILE_GIVE_UP_SECONDS=600)
    order_id = create(runtime)
    runtime.store.set_fields(order_id, {"payheroReference": "NOT-AT-PAYHERO", "pushedAt": utcnow() - timedelta(hours=1)})
    runtime.reconciler().run_once()
    order = runtime.store.get_order(order_id)
    assert (order["status"], order["failureReason"]) == ("failed", "no_callback")


def test_reconcile_leaves_recent_unanswered_orders_pending(make_runtime, quick_simulator):
    runtime = make_runtime(**quick_simulator.settings, RECONCILE_AFTER_SECONDS=0, RECONCILE_GIVE_UP_SECONDS=600)
    order_id = create(runtime)
    runtime.store.set_fields(order_id, {"payheroReference": "NOT-AT-PAYHERO"})
    runtime.reconciler().run_once()
    assert runtime.store.get_order(order_id)["status"] == "pending"


def test_transaction_status_answers_map_to_results():
    order = {"_id": "6751a3f2c9e77b0012ab34cd", "amount": 1500}
    paid = result_from_status(order, payhero_fixture("transaction-status-success"))
    assert (paid.paid, paid.amount, paid.receipt) == (True, 1500, "SAE3YULR0Y")
    assert result_from_status(order, payhero_fixture("transaction-status-queued")) is None
    assert result_from_status(order, {"status": "FAILED"}).paid is False


def test_strict_mode_completes_only_what_transaction_status_confirms(make_app, payhero_simulator):
    app = make_app(**payhero_simulator.settings, PAYHERO_VERIFY_CALLBACKS="1")  # its record stays QUEUED (an hour)
    runtime = current_runtime(app)
    order_id = create(runtime)
    response = post_callback(app.test_client(), runtime, order_id)
    assert response.json == {"received": True, "verified": False}
    assert runtime.store.get_order(order_id)["status"] == "pending"
    assert len(runtime.store.events_for(order_id)) == 1  # the claim is still audited


def test_strict_mode_accepts_a_confirmed_payment(make_app, quick_simulator):
    app = make_app(**quick_simulator.settings, PAYHERO_VERIFY_CALLBACKS="1")
    runtime = current_runtime(app)
    order_id = create(runtime)
    eventually(lambda: quick_simulator.pushes(order_id)[0]["status"] == "SUCCESS", 30, "the simulator to settle")
    response = post_callback(app.test_client(), runtime, order_id)
    assert response.json == {"received": True}
    assert runtime.store.get_order(order_id)["status"] == "completed"


def test_reconcile_command_has_help_and_runs(settings, quick_simulator):
    env = {f"EVENTI_{k}": str(v) for k, v in settings.items() if not k.startswith("PAYHERO")}
    env.update({k: str(v) for k, v in quick_simulator.settings.items()}, PATH="/usr/bin:/bin")
    flask = str(ROOT / ".venv" / "bin" / "flask")
    help_text = subprocess.run([flask, "--app", "wsgi", "reconcile", "--help"], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=60)
    assert help_text.returncode == 0 and "no_callback" in help_text.stdout
    run = subprocess.run([flask, "--app", "wsgi", "reconcile"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.startswith("checked="), run.stderr[-2000:]

