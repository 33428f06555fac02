"""Blueprint for ops: liveness, readiness and metrics (docs/operations.md, "Readiness and liveness")."""
import gevent
from flask import Blueprint, Flask, Response, jsonify, request
from redis.exceptions import RedisError

from .. import metrics
from ..errors import NotFound, StoreUnavailable
from ..runtime import current_runtime
from ..schemas import HealthSchema, NotReadySchema, ReadySchema
from .declare import declare, ok, text

bp = Blueprint("health", __name__)

DRAINING = "This instance is shutting down; send requests to another."
REDIS_PROBE_SECONDS = 1.0
"""How long /readyz waits for Redis: a hung Redis (or redis-py's retries) must not outlast a probe's timeout."""
REDIS_DOWN = ("Redis is down: callbacks and checkouts are still stored; held waits learn of payments from MongoDB "
              "every EVENTI_RECHECK_SECONDS.")


@bp.get("/healthz")
@declare("Liveness: 200 while the worker's event loop serves", tags=["ops"],
         description="Checks nothing else: a store or Redis outage must not get the instance restarted. A worker whose "
                     "event loop is blocked does not answer (the probe times out), and gunicorn replaces it after "
                     "`timeout` (150 s). Still 200 while the instance drains.",
         responses={200: ok(HealthSchema, {"ok": {"status": "ok"}})})
def healthz() -> Response:
    """200 while the worker's event loop serves."""
    return jsonify(status="ok")


@bp.get("/readyz")
@declare("Readiness: 200 while this instance can take callbacks and serve waits", tags=["ops"],
         description="503 while MongoDB does not answer (nothing can be stored) and from the moment the worker "
                     "is told to stop (then its listener closes: a probe is refused). Redis down is not a reason "
                     "to leave the load balancer: callbacks and checkouts are stored, waits learn of payments "
                     "from MongoDB; the answer stays 200 and names it in `degraded`.",
         responses={
             200: ok(ReadySchema, {"ready": {"status": "ready"},
                                   "redis down": {"status": "ready", "degraded": ["redis"], "message": REDIS_DOWN}}),
             503: ok(NotReadySchema, {
                 "store down": {"error": "not_ready", "message": "Down: mongodb", "down": ["mongodb"]},
                 "draining": {"error": "draining", "message": DRAINING, "down": []}},
                 "Take this instance out of rotation"),
         })
def readyz() -> Response | tuple[Response, int]:
    """200 while the store answers and the worker is not stopping; Redis down degrades, it does not remove."""
    p = current_runtime()
    if p.stopping:
        return jsonify(error="draining", message=DRAINING, down=[]), 503
    down = []
    try:
        p.store.ping()
    except StoreUnavailable:
        down.append("mongodb")
    if not _redis_answers():
        down.append("redis")
    if "mongodb" in down:
        return jsonify(error="not_ready", message="Down: " + ", ".join(down), down=down), 503
    if down:
        return jsonify(status="ready", degraded=down, message=REDIS_DOWN)
    return jsonify(status="ready")


def _redis_answers() -> bool:
    """True when Redis answers a PING within REDIS_PROBE_SECONDS (a connection cut short is closed by redis-py)."""
    answered = False
    with gevent.Timeout(REDIS_PROBE_SECONDS, False):  # type: ignore[arg-type]  # False: on expiry, leave quietly
        try:
            current_runtime().redis.ping()
            answered = True
        except RedisError:
            pass
    return answered


@bp.get("/metrics")
@declare(
    "Prometheus metrics, summed over all gunicorn workers", tags=["ops"],
    description="See docs/operations.md for each metric and example PromQL. With EVENTI_METRICS_BIND set, "
                "served on that listener only (which answers nothing else): 404 on the public port.",
    responses={200: text("text/plain", "Prometheus text exposition format",
                         'eventi_waits_held 412.0\neventi_callbacks_total{outcome="completed"} 1893.0\n'),
               404: {"description": "EVENTI_METRICS_BIND is set and this is not that listener.", "content": {
                   "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}, "examples": {
                       "not_found": {"value": {"type": "/api/docs#problem-not_found", "title": "Not Found", "status": 404,
                                               "detail": "Not here.", "error": "not_found", "message": "Not here."}}}}}}})
def prometheus() -> Response:
    """Prometheus exposition, summed over all gunicorn workers."""
    return Response(metrics.render(), mimetype=metrics.CONTENT_TYPE_LATEST)


def init_app(app: Flask) -> None:
    """With EVENTI_METRICS_BIND, /metrics answers only on that listener (gunicorn binds it too), and that
    listener answers nothing else: the public port can never show the metrics, nor the metrics port the API."""
    bind = current_runtime(app).settings.metrics_bind
    if not bind:
        return
    port = bind.rsplit(":", 1)[1]

    @app.before_request
    def _metrics_only_on_their_port() -> None:
        on_metrics_port = request.environ.get("SERVER_PORT") == port
        if on_metrics_port != (request.endpoint == "health.prometheus"):
            raise NotFound("Not here.")
