"""What the API answered during the test run: (method, route, status, error code) per response.

Recorded from every in-process app (Flask's request_finished signal, so every test client of every
app a test builds) and from the Api helper talking to gunicorn or nginx. tests/test_openapi_answers.py,
which runs last, fails when one of them is missing from the OpenAPI document.
"""
import flask
import requests

ANSWERS = set()
"""(method, route rule or path, status, error code or None); a route rule for in-process answers."""


def _error_code(body):
    return body.get("error") if isinstance(body, dict) and isinstance(body.get("error"), str) else None


def _on_request_finished(sender, response, **extra):
    rule = flask.request.url_rule
    if rule is None or response.is_streamed:
        return  # no route matched (404, 405): no operation to hold it to
    body = response.get_json(silent=True) if response.is_json else None
    ANSWERS.add((flask.request.method, rule.rule, response.status_code, _error_code(body)))


def start_recording():
    flask.request_finished.connect(_on_request_finished)


def record_http(response: requests.Response) -> requests.Response:
    """Record a `requests` response from a running eventi; its path is matched to a route at the end."""
    try:
        body = response.json()
    except ValueError:
        body = None
    ANSWERS.add((response.request.method, "path:" + response.request.path_url.split("?", 1)[0],
                 response.status_code, _error_code(body)))
    return response
