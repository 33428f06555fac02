"""eventi: the instant an M-Pesa payment settles, the shopper's browser knows.

Importing the package imports nothing else: gunicorn's master imports eventi.server.gunicorn_worker
before forking, before gevent patches ssl and before prometheus_client may see its
multiprocess directory, so Flask, redis-py and pymongo are imported by create_app only.
"""
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask


def create_app(overrides: Mapping[str, Any] | None = None) -> "Flask":
    """Build the Flask app: settings, this worker's runtime, blueprints, JSON errors. No I/O here."""
    from flask import Flask

    from . import config, logs
    from .cli import app_commands as cli
    from .runtime import Runtime

    settings = config.load(overrides)
    logs.configure(settings.log_format, settings.log_level)
    app = Flask(__name__)
    # No SECRET_KEY for Flask: eventi has no sessions, and with a key Flask builds a
    # session serializer on every request (docs/benchmarks.md).
    app.config.update(MAX_CONTENT_LENGTH=settings.max_content_length)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # app.json is Flask's DefaultJSONProvider
    # "/api/orders//wait" must be a JSON 404, not an HTML redirect to "/api/orders/wait".
    app.url_map.merge_slashes = False
    Runtime(settings).init_app(app)
    if settings.proxy_count:
        from werkzeug.middleware.proxy_fix import ProxyFix

        # Trust X-Forwarded-For/-Proto only as far back as the proxies we run (nginx: 1).
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_count, x_proto=settings.proxy_count)  # type: ignore[method-assign]  # werkzeug's way

    from .web import (
        cors,
        health,
        register_routes,
        request_id,
        request_metrics,
        utf8_urls,
    )
    from .web import (
        error_handlers as errors,
    )
    from .web.deferred import park_after_flask

    request_id.init_app(app)
    utf8_urls.init_app(app)  # after the request id, so its 400 carries one
    errors.init_app(app)
    cors.init_app(app, settings.cors_origins)
    cli.init_app(app)
    register_routes(app)
    health.init_app(app)  # after every blueprint: /metrics on its own port, the series of every route
    request_metrics.init_app(app)
    # outermost: a held wait parks here, once Flask and ProxyFix have returned (eventi/web/deferred.py)
    app.wsgi_app = park_after_flask(app.wsgi_app)  # type: ignore[method-assign,assignment]  # werkzeug's way
    return app
