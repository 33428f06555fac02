"""Prometheus metrics. Under gunicorn, PROMETHEUS_MULTIPROC_DIR makes them sum over workers."""
import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client import CONTENT_TYPE_LATEST  # noqa: F401  (re-exported for the /metrics view)

WAITS_HELD = Gauge("eventi_waits_held", "Long-poll waits held right now", multiprocess_mode="livesum")
WAITS_STARTED = Counter("eventi_waits_started_total", "Long-poll waits started")
WAITS_ANSWERED = Counter("eventi_waits_answered_total", "Long-poll waits answered, by outcome", ["outcome"])
CALLBACK_TO_ANSWER = Histogram(
    "eventi_callback_to_answer_seconds",
    "From the status change being published to a waiting request being answered",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
CALLBACKS = Counter("eventi_callbacks_total", "PayHero callbacks, by outcome", ["outcome"])
REDIS_RECONNECTS = Counter("eventi_redis_reconnects_total", "Notifier hub reconnections to Redis")
REDIS_ERRORS = Counter("eventi_redis_errors_total", "Redis commands that failed")
STORE_ERRORS = Counter("eventi_store_errors_total", "MongoDB operations that failed")
STORE_READS = Counter("eventi_store_reads_total", "MongoDB order reads")
STK_PUSHES = Counter("eventi_stk_pushes_total", "STK pushes sent to PayHero, by outcome", ["outcome"])


def render():
    """The exposition text for every worker (multiprocess) or this process."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest()
