"""The OpenAPI document lists every answer the API gave during this test run (tests/support/answers.py).

Runs last (marker `last`): the other tests' own requests are the evidence, not a hand-kept list.
"""
import os

import pytest
from werkzeug.exceptions import HTTPException

from eventi.web import openapi
from tests.support.answers import ANSWERS

pytestmark = pytest.mark.last


def documented_errors(response):
    """The error codes a documented response shows in its examples."""
    content = response.get("content", {})
    examples = (content.get("application/problem+json") or content.get("application/json") or {}).get("examples", {})
    return {example["value"].get("error") for example in examples.values() if isinstance(example["value"], dict)}


def route_of(app, method, route):
    """(rule, method) for a recorded answer; None when no route matched its path."""
    if not route.startswith("path:"):
        return route, method
    try:
        rule, _ = app.url_map.bind("test").match(route[5:], method=method, return_rule=True)
    except HTTPException:
        return None
    return rule.rule, method


def undocumented(app, document, answers):
    missing = set()
    routes = {rule.rule for rule in app.url_map.iter_rules()}
    for method, route, status, error in answers:
        method = "GET" if method == "HEAD" else method
        found = route_of(app, method, route)
        if method == "OPTIONS" or found is None or found[0] not in routes or not found[0].startswith(openapi.API_PREFIX):
            continue  # no route matched, one a test added to its own app, or not the API (pages, ops)
        path = openapi.openapi_path(found[0])
        operation = document["paths"].get(path, {}).get(method.lower())
        if operation is None:
            missing.add(f"{method} {path}: no operation")
            continue
        response = operation["responses"].get(str(status))
        if response is None:
            missing.add(f"{method} {path}: {status}" + (f" {error}" if error else ""))
        elif error and status >= 400 and error not in documented_errors(response):
            missing.add(f"{method} {path}: {status} {error}")
    return missing


def test_every_answer_the_tests_saw_is_in_the_document(app):
    if len(ANSWERS) < 20:
        pytest.skip("too few API answers recorded: run this with the API tests")
    document = app.test_client().get("/api/openapi.json").json
    missing = undocumented(app, document, ANSWERS)
    if os.environ.get("EVENTI_DUMP_ANSWERS"):
        print("\n".join(sorted(map(str, ANSWERS))))
    assert not missing, "add these answers to their route's @declare (eventi/web/declare.py): " + "; ".join(sorted(missing))


def test_the_check_finds_an_answer_missing_from_the_document(app):
    document = app.test_client().get("/api/openapi.json").json
    assert undocumented(app, document, {("POST", "/api/orders", 418, "teapot")}) == {"POST /api/orders: 418 teapot"}
    assert undocumented(app, document, {("POST", "/api/orders", 400, "no_such_code")}) == {"POST /api/orders: 400 no_such_code"}
    assert undocumented(app, document, {("GET", "path:/api/orders/6751a3f2c9e77b0012ab34cd", 200, None)}) == set()
    assert undocumented(app, document, {("GET", "/a-route-a-test-added", 200, None)}) == set()
