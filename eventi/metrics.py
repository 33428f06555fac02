"""Prometheus metrics. Under gunicorn, PROMETHEUS_MULTIPROC_DIR makes them sum over workers."""
import os
from collections.abc import Iterable

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE_LATEST  # re-exported for the /metrics view
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.metrics import MetricWrapperBase

WAITS_HELD = Gauge("eventi_waits_held", "Long-poll waits held right now", multiprocess_mode="livesum")
WAITS_STARTED = Counter("eventi_waits_started_total", "Long-poll waits started")
WAITS_ANSWERED = Counter("eventi_waits_answered_total", "Long-poll waits answered, by outcome", ["outcome"])
CALLBACK_TO_ANSWER = Histogram(
    "eventi_callback_to_answer_seconds",
    "From the status change being published to a waiting request being answered",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
CALLBACKS = Counter("eventi_callbacks_total", "PayHero callbacks, by outcome (late: a payment for an order already "
                    "failed or cancelled, see eventi_late_payments_total)", ["outcome"])
HUB_CONNECTED = Gauge("eventi_hub_connected", "1 while every live worker's notifier hub is subscribed to Redis, 0 while "
                      "one is not (waiters then re-check MongoDB); 1 in per-request mode", multiprocess_mode="livemin")
WAITS_CAPACITY = Gauge("eventi_waits_capacity", "Waits the live workers may hold in all (EVENTI_MAX_WAITS_PER_WORKER "
                       "per worker); compare with eventi_waits_held", multiprocess_mode="livesum")
REDIS_RECONNECTS = Counter("eventi_redis_reconnects_total", "Notifier hub reconnections to Redis")
REDIS_ERRORS = Counter("eventi_redis_errors_total", "Redis commands that failed")
STORE_ERRORS = Counter("eventi_store_errors_total", "MongoDB operations that failed")
STORE_READS = Counter("eventi_store_reads_total", "MongoDB order reads")
LATE_PAYMENTS = Counter("eventi_late_payments_total", "Payments that arrived after their order had failed or been "
                        "cancelled, by what the order became: completed (tickets held again) or refund_needed "
                        "(someone must refund the shopper: `eventi order refunds`)", ["outcome"])
MANUAL_PAYMENTS = Counter("eventi_manual_payments_total", "Manual (Paybill) payment confirmations by what they did: "
                          "completed or refund_needed (the order's, through the callback path), or unknown_account, "
                          "amount_mismatch, already_paid (no order completed: `eventi order refunds`)", ["outcome"])
SECOND_PAYMENTS = Counter("eventi_second_payments_total", "Paid callbacks for an order paid already by another "
                          "M-Pesa receipt (the shopper paid twice): kept on the order for a refund "
                          "(`eventi order refunds`)")
RECONCILE_OVERDUE = Counter("eventi_reconcile_overdue_total", "Reconcile sweeps that found an order past the give-up "
                            "age and still could not settle it (PayHero errors, timeouts or QUEUED, 5 tries or more)")
PAYMENTS_UNCONFIRMED = Counter("eventi_payments_unconfirmed_total", "Paid callbacks strict mode could not confirm "
                               "because the order has no PayHero reference to ask about: a person must check them")
CALLBACKS_UNAUTHORIZED = Counter("eventi_callbacks_unauthorized_total", "PayHero callbacks refused with 401: no "
                                 "callback token, or not the token of the order the body names (also counted as "
                                 "eventi_callbacks_total{outcome=\"rejected\"})")
STK_PUSHES = Counter("eventi_stk_pushes_total", "STK push attempts by outcome: queued, rejected, unreachable and "
                     "uncertain (timed out or 5xx: the order stays pending) were sent to PayHero; limited were refused "
                     "by the per-phone push limit and never sent", ["outcome"])


def render() -> bytes:
    """The exposition text for every worker (multiprocess) or this process."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest()


# --- Per-route requests and PayHero calls ---------------------------------------------------------
HTTP_REQUESTS = Histogram(
    "eventi_http_request_duration_seconds",
    "Requests answered by the app, by route template, method and status class; a held wait counts its hold",
    ["route", "method", "status"],
    buckets=(0.005, 0.025, 0.1, 0.5, 1, 5, 30, 120),  # few: /metrics is read in every worker's files per scrape
)
PAYHERO_CALLS = Histogram(
    "eventi_payhero_request_duration_seconds",
    "Calls to PayHero's API by call (stk_push, transaction_status) and outcome (ok, rejected: an answer that is "
    "not a success, unreachable: no answer in time or no connection)",
    ["call", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16),
)

KNOWN_LABELS: dict[MetricWrapperBase, list[tuple[str, ...]]] = {
    WAITS_ANSWERED: [("final",), ("timeout",), ("client_gone",), ("shutdown",)],
    CALLBACKS: [("completed",), ("failed",), ("cancelled",), ("late",), ("duplicate",), ("rejected",), ("unverified",)],
    LATE_PAYMENTS: [("completed",), ("refund_needed",)],
    MANUAL_PAYMENTS: [("completed",), ("refund_needed",), ("unknown_account",), ("amount_mismatch",), ("already_paid",)],
    STK_PUSHES: [("queued",), ("rejected",), ("unreachable",), ("uncertain",), ("limited",)],
    PAYHERO_CALLS: [(call, outcome) for call in ("stk_push", "transaction_status")
                    for outcome in ("ok", "rejected", "unreachable")],
}
"""Every label value the code uses, so that each series exists (at 0) from the start: rate() and
absent-series alerts see a fresh deploy, not nothing."""

STATUS_CLASSES = ("2xx", "4xx", "5xx")


def create_series(routes: Iterable[tuple[str, str]]) -> None:
    """Create every known labelled series at 0; routes are the (route template, method) pairs of the API
    (the rest, pages and docs, get theirs when first requested)."""
    for metric, label_sets in KNOWN_LABELS.items():
        for labels in label_sets:
            metric.labels(*labels)
    for route, method in routes:
        for status in STATUS_CLASSES:
            HTTP_REQUESTS.labels(route, method, status)


def status_class(status: int) -> str:
    return f"{status // 100}xx"
