"""Count and time every request by route template, method and status class (low cardinality)."""
import functools
import re
import time
from collections.abc import Iterator

from flask import Flask, Response, g, request
from werkzeug.routing import Rule

from .. import metrics

METHODS = ("GET", "POST", "HEAD", "OPTIONS")
UNMATCHED = "unmatched"
"""The route label of a request no route matched (404, 405): never the raw path, which callers choose."""


def init_app(app: Flask) -> None:
    """Register the timer first, so it runs before any hook that may answer early; create the series."""
    app.before_request_funcs.setdefault(None, []).insert(0, _start)

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.pop("eventi_started", None)
        if started is not None:
            rule = request.url_rule
            method = request.method if request.method in METHODS else "other"
            metrics.HTTP_REQUESTS.labels(template(rule) if rule else UNMATCHED, method,
                                         metrics.status_class(response.status_code)).observe(time.perf_counter() - started)
        return response

    metrics.create_series(_routes(app))


def _start() -> None:
    g.eventi_started = time.perf_counter()


API_ROUTES = ("orders.", "payhero.")
"""Blueprints whose series exist from the start: the ones dashboards and alerts rate()."""


def _routes(app: Flask) -> Iterator[tuple[str, str]]:
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith(API_ROUTES):
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                yield template(rule), method


_CONVERTER = re.compile(r"<[^:<>]+:([^<>]+)>")


def template(rule: Rule) -> str:
    """The route label: the rule without its converters (/api/orders/<order_id>/wait), as dashboards and alerts name it."""
    return _label(rule.rule)


@functools.cache
def _label(rule_text: str) -> str:
    """Worked out once per route, not on every request."""
    return _CONVERTER.sub(r"<\1>", rule_text)
