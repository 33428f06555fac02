"""Blueprint for ops: liveness, readiness and metrics."""
from flask import Blueprint, Flask, Response, jsonify, request
from redis.exceptions import RedisError

from .. import metrics
from ..errors import NotFound, StoreUnavailable
from ..schemas import HealthSchema, NotReadySchema
from .common import current_runtime
from .declare import declare, ok, text

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@declare("Liveness: 200 while the process runs", tags=["ops"], responses={200: ok(HealthSchema, {"ok": {"status": "ok"}})})
def healthz() -> Response:
    """200 while the process runs."""
    return jsonify(status="ok")


@bp.get("/readyz")
@declare("Readiness: 200 when MongoDB and Redis answer", tags=["ops"], responses={
    200: ok(HealthSchema, {"ready": {"status": "ready"}}),
    503: ok(NotReadySchema, {"redis down": {"error": "not_ready", "message": "Down: redis", "down": ["redis"]}},
            "A dependency is down; take this instance out of rotation"),
})
def readyz() -> Response | tuple[Response, int]:
    """200 when MongoDB and Redis both answer, else 503 naming what is down."""
    p = current_runtime()
    down = []
    try:
        p.store.ping()
    except StoreUnavailable:
        down.append("mongodb")
    try:
        p.redis.ping()
    except RedisError:
        down.append("redis")
    if down:
        return jsonify(error="not_ready", message="Down: " + ", ".join(down), down=down), 503
    return jsonify(status="ready")


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
