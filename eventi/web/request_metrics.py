"""Count and time every request by route template, method and status class (low cardinality)."""
import functools
import re
import time
from collections.abc import Iterator

from flask import Flask, Response, g, request
from werkzeug.routing import Rule

from .. import metrics
from .deferred import DeferredResponse

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
            observe = functools.partial(_observe_one, template(rule) if rule else UNMATCHED,
                                        request.method if request.method in METHODS else "other", started)
            if isinstance(response, DeferredResponse):
                response.when_answered(observe)  # a held wait: its status and time once answered
            else:
                observe(response.status_code)
        return response

    metrics.create_series(_routes(app))


def _observe_one(route: str, method: str, started: float, status: int) -> None:
    metrics.HTTP_REQUESTS.labels(route, method, metrics.status_class(status)).observe(time.perf_counter() - started)


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
