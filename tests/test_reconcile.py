"""Reconciliation against a real PayHero simulator process, and strict callback verification."""
import logging
import subprocess
import threading
import uuid
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

import gevent
import pytest
from bson import ObjectId

from devstack.payhero_payloads import payhero_fixture
from devstack.payhero_simulator import PayHeroSimulator
from devstack.processes import ROOT
from devstack.wait import eventually
from eventi import metrics
from eventi.domain.models import utcnow
from eventi.runtime import current_runtime
from eventi.services.reconcile import result_from_status
from tests.support.api import order_fields, post_callback
from tests.support.events import seed_test_events
from tests.support.stand_in import JsonHandler, http_server

NO_CALLBACK_PHONE = "254712345675"  # the simulator settles it (paid) but never calls back


@pytest.fixture
def settings(settings):
    """The session's store server, a database of this test's own: each sweep checks up to 500 stale pending
    orders, and the shared database holds thousands that other tests left pending."""
    uri = urlsplit(settings["MONGO_URI"])
    own = urlunsplit(uri._replace(path="/reconcile_" + uuid.uuid4().hex[:12]))
    seed_test_events(own)
    return {**settings, "MONGO_URI": own}


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



# --- give up only on an answer (issue 19) ------------------------------------------------------------------


class _StatusAnswers(JsonHandler):
    """A PayHero transaction-status that answers what the test says: a status code and a body."""

    answer: tuple[int, dict] = (500, {"error_message": "Internal Server Error"})

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_json(*type(self).answer)


@pytest.fixture
def payhero_status():
    """(set_answer, settings): a stand-in PayHero whose transaction-status answer the test sets."""
    handler = type("Answers", (_StatusAnswers,), {})
    server, url = http_server(handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings = {"PAYHERO_BASE_URL": url, "PAYHERO_AUTH_TOKEN": "t", "PAYHERO_CHANNEL_ID": "1"}
    yield (lambda status, body: setattr(handler, "answer", (status, body))), settings
    server.shutdown()
    server.server_close()


def overdue_order(runtime, event_id=None):
    """A pending order with a PayHero reference whose push was an hour ago (past every give-up age here)."""
    order_id = str(runtime.orders.create(order_fields(**({"event_id": event_id} if event_id else {})))["_id"])
    runtime.store.set_fields(order_id, {"payheroReference": "REF-" + order_id[-6:], "pushedAt": utcnow() - timedelta(hours=1)})
    return order_id


def retry_now(runtime, order_id):
    """As if the postponement had passed."""
    runtime.store.orders.update_one({"_id": ObjectId(order_id)}, {"$set": {"reconcileAfter": utcnow() - timedelta(seconds=1)}})


def test_reconcile_keeps_an_order_pending_while_payhero_cannot_answer_and_completes_it_once_it_can(
        make_runtime, payhero_status, caplog):
    """Before issue 19 a 500 at the give-up point failed the order (no_callback) and a later SUCCESS was ignored."""
    set_answer, payhero = payhero_status
    runtime = make_runtime(**payhero, RECONCILE_AFTER_SECONDS=0, RECONCILE_GIVE_UP_SECONDS=600)
    order_id = overdue_order(runtime)
    overdue_before = metrics.RECONCILE_OVERDUE._value.get()
    logging.getLogger("eventi.services.reconcile").addHandler(caplog.handler)  # the app's log setup stops propagation
    for answer in [(500, {}), (200, {"status": "QUEUED"}), (502, {}), (200, {"status": "QUEUED"}), (500, {})]:
        set_answer(*answer)
        retry_now(runtime, order_id)
        runtime.reconciler().run_once()
        order = runtime.store.get_order(order_id)
        assert order["status"] == "pending" and order["reconcileAfter"] > utcnow()
    assert order["reconcileTries"] == 5
    assert metrics.RECONCILE_OVERDUE._value.get() > overdue_before  # the alarm, after the fifth try
    assert any(order_id in r.getMessage() and "cannot settle" in r.getMessage() for r in caplog.records)
    logging.getLogger("eventi.services.reconcile").removeHandler(caplog.handler)
    runtime.reconciler().run_once()
    assert runtime.store.get_order(order_id)["reconcileTries"] == 5  # postponed: not asked again before its time
    set_answer(200, {"status": "SUCCESS", "provider_reference": "SAE3YULR0Y", "reference": "REF"})
    retry_now(runtime, order_id)
    runtime.reconciler().run_once()
    order = runtime.store.get_order(order_id)
    assert (order["status"], order["mpesaReceipt"]) == ("completed", "SAE3YULR0Y")


def test_reconcile_gives_up_when_payhero_knows_no_such_push_or_says_failed(make_runtime, payhero_status):
    set_answer, payhero = payhero_status
    runtime = make_runtime(**payhero, RECONCILE_AFTER_SECONDS=0, RECONCILE_GIVE_UP_SECONDS=600)
    unknown = overdue_order(runtime)
    set_answer(404, {"error_message": "Transaction not found"})
    runtime.reconciler().run_once()
    failed = overdue_order(runtime)
    set_answer(200, {"status": "FAILED"})
    runtime.reconciler().run_once()
    assert runtime.store.get_order(unknown)["failureReason"] == "no_callback"
    assert runtime.store.get_order(failed)["failureReason"] == "transaction_status_failed"


def test_reconcile_settles_a_pending_order_whose_push_was_never_recorded(make_runtime):
    """The store failed after the push went out: no pushedAt, no reference. Reconcile (which used to look only at
    orders with pushedAt) puts it aside until its give-up age, then fails it and frees its tickets; a payment that
    comes after that is a late payment (tests/test_late_payments.py)."""
    runtime = make_runtime(RECONCILE_AFTER_SECONDS=0, RECONCILE_GIVE_UP_SECONDS=600)
    order_id = str(runtime.orders.create(order_fields())["_id"])
    runtime.reconciler().run_once()
    order = runtime.store.get_order(order_id)
    assert order["status"] == "pending" and order["reconcileAfter"] > utcnow() + timedelta(seconds=500)
    runtime.store.orders.update_one({"_id": ObjectId(order_id)}, {"$set": {"createdAt": utcnow() - timedelta(hours=1),
                                                                          "reconcileAfter": utcnow()}})
    runtime.reconciler().run_once()
    order = runtime.store.get_order(order_id)
    assert (order["status"], order["failureReason"]) == ("failed", "no_callback")
    assert runtime.tickets.holds.count_documents({"orderId": order_id}) == 0


def test_reconcile_keeps_asking_about_an_order_it_gave_up_on_and_a_later_success_is_a_late_payment(
        make_runtime, payhero_status):
    """PayHero may drop a callback we answered 503, or the payment settles after the give-up: for a day the sweep
    asks again about orders it failed with no_callback, and a SUCCESS completes the order as a late payment."""
    set_answer, payhero = payhero_status
    runtime = make_runtime(**payhero, RECONCILE_AFTER_SECONDS=0, RECONCILE_GIVE_UP_SECONDS=600)
    order_id = overdue_order(runtime)
    set_answer(404, {"error_message": "Transaction not found"})
    runtime.reconciler().run_once()
    assert runtime.store.get_order(order_id)["failureReason"] == "no_callback"
    runtime.reconciler().run_once()  # still unknown: asked again later, with backoff
    assert runtime.store.get_order(order_id)["reconcileAfter"] > utcnow()
    set_answer(200, {"status": "SUCCESS", "provider_reference": "SAE3YULR0Y", "reference": "REF"})
    retry_now(runtime, order_id)
    assert runtime.reconciler().run_once().applied.get("completed", 0) >= 1
    order = runtime.store.get_order(order_id)
    assert (order["status"], order["latePayment"], order["mpesaReceipt"]) == ("completed", True, "SAE3YULR0Y")
    assert runtime.tickets.holds.count_documents({"orderId": order_id + ".late"}) == 1
