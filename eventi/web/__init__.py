"""The HTTP layer: blueprints, their declarations (declare.py) and what every request passes through."""
from flask import Flask


def register_routes(app: Flask) -> None:
    """The URL converters, then every blueprint (whose rules use the converters)."""
    from . import apidocs, c2b, converters, events, health, orders, pages, payhero_callback

    converters.init_app(app)
    for blueprint in (orders.bp, events.bp, payhero_callback.bp, c2b.bp, health.bp, pages.bp, apidocs.bp):
        app.register_blueprint(blueprint)
