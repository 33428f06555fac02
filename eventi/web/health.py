"""Blueprint for ops: liveness, readiness and metrics."""
from flask import Blueprint, Flask, Response, jsonify, request
from flask.typing import ResponseReturnValue
from redis.exceptions import RedisError

from .. import metrics
from ..errors import NotFound, StoreUnavailable
from .common import current_runtime

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """200 while the process runs."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
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
