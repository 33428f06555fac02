"""eventi: the instant an M-Pesa payment settles, the shopper's browser knows."""
from flask import Flask

from . import cli, config, extensions, logs


def create_app(overrides=None):
    """Build the Flask app: settings, per-worker parts, blueprints, JSON errors. No I/O here."""
    settings = config.load(overrides)
    logs.configure(settings["LOG_FORMAT"], settings["LOG_LEVEL"])
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings["SECRET_KEY"],
        MAX_CONTENT_LENGTH=settings["MAX_CONTENT_LENGTH"],
        JSON_SORT_KEYS=False,
    )
    app.json.sort_keys = False
    app.extensions["eventi"] = extensions.build(settings)

    from .web import errors, health, orders, payhero

    errors.init_app(app)
    cli.init_app(app)
    app.register_blueprint(orders.bp)
    app.register_blueprint(payhero.bp)
    app.register_blueprint(health.bp)
    return app
