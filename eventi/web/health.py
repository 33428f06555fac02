"""Blueprint for ops: liveness, readiness and metrics."""
from flask import Blueprint, Response, jsonify
from redis.exceptions import RedisError

from .. import metrics
from ..errors import StoreUnavailable
from .common import parts

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """200 while the process runs."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """200 when MongoDB and Redis both answer, else 503 naming what is down."""
    p = parts()
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
def prometheus():
    """Prometheus exposition, summed over all gunicorn workers."""
    return Response(metrics.render(), mimetype=metrics.CONTENT_TYPE_LATEST)
