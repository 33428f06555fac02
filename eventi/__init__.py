"""eventi: the instant an M-Pesa payment settles, the shopper's browser knows.

Importing the package imports nothing else: gunicorn's master imports eventi.gunicorn_worker
before forking, before gevent patches ssl and before prometheus_client may see its
multiprocess directory, so Flask, redis-py and pymongo are imported by create_app only.
"""


def create_app(overrides=None):
    """Build the Flask app: settings, per-worker parts, blueprints, JSON errors. No I/O here."""
    from flask import Flask

    from . import cli, config, extensions, logs

    settings = config.load(overrides)
    logs.configure(settings["LOG_FORMAT"], settings["LOG_LEVEL"])
    app = Flask(__name__)
    # No SECRET_KEY for Flask: eventi has no sessions, and with a key Flask builds a
    # session serializer on every request (11 % of a worker's CPU, docs/benchmarks.md).
    app.config.update(
        MAX_CONTENT_LENGTH=settings["MAX_CONTENT_LENGTH"],
        JSON_SORT_KEYS=False,
    )
    app.json.sort_keys = False
    # "/api/orders//wait" must be a JSON 404, not an HTML redirect to "/api/orders/wait".
    app.url_map.merge_slashes = False
    app.extensions["eventi"] = extensions.build(settings)
    if settings["PROXY_COUNT"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        # Trust X-Forwarded-For/-Proto only as far back as the proxies we run (nginx: 1).
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings["PROXY_COUNT"], x_proto=settings["PROXY_COUNT"])

    from .web import cors, errors, health, register_routes, request_id, request_metrics, utf8_urls

    request_id.init_app(app)
    utf8_urls.init_app(app)  # after the request id, so its 400 carries one
    errors.init_app(app)
    cors.init_app(app, settings["CORS_ORIGINS"])
    cli.init_app(app)
    register_routes(app)
    health.init_app(app)  # after every blueprint: /metrics on its own port, the series of every route
    request_metrics.init_app(app)
    return app
