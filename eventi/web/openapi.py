"""The OpenAPI 3 document, built by apispec from the routes' declarations and the marshmallow schemas.

Paths come from the app's url_map; each route's summary, inputs, answers and examples from its @declare
(eventi/web/declare.py), its path parameters from their converters; the error codes' statuses, sentences and
examples from ERROR_ANSWERS below. tests/test_openapi.py fails when a route is undeclared or an example stops
validating; tests/test_openapi_answers.py when an answer the tests saw is not in the document.
"""
import re
from http import HTTPStatus
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask
from werkzeug.exceptions import default_exceptions
from werkzeug.routing import Rule

from .. import problems, schemas
from ..config import Settings
from ..domain import phones
from ..runtime import current_runtime
from .declare import Operation, declared
from .error_handlers import titles
from .examples import ORDER_ID

ERROR_ANSWERS: dict[str, tuple[int, str, dict[str, Any]]] = {
    "validation_error": (400, "A field or query parameter is invalid; `details` names each.",
                         {"error": "validation_error", "message": "The request is not valid.",
                          "details": {"phone": [phones.MESSAGE]}}),
    "invalid_json": (400, "The body is not strict JSON (UTF-8, no NaN, no lone surrogates, at most 32 levels).",
                     {"error": "invalid_json", "message": "The body is not valid JSON."}),
    "malformed_body": (400, "The body's chunked framing is broken; the connection is closed.",
                       {"error": "malformed_body", "message": "The request body's framing is broken or incomplete."}),
    "invalid_url_encoding": (400, "The path or query string is not UTF-8 once percent-decoded (any route).",
                             {"error": "invalid_url_encoding", "message": "The URL's path or query string is not valid UTF-8."}),
    "unauthorized": (401, "Missing or wrong callback token.",
                     {"error": "unauthorized", "message": "Missing or wrong callback token."}),
    "event_not_found": (404, "No such event, or it has started: its tickets are no longer sold. Nothing was stored.",
                        {"error": "event_not_found", "message": "No such event, or its ticket sales have closed."}),
    "sold_out": (409, "Fewer tickets of the type are left than asked for: nothing stored, no push, the push limit "
                      "not counted. `left` says how many are (`GET /api/events/<eventId>` tells every type's).",
                 {"error": "sold_out", "message": "Only 2 VIP tickets are left.", "left": 2}),
    "price_changed": (409, "`expectedAmount` (the total the shopper was shown) is not what the order costs now: "
                           "nothing stored, no push. `amount` is the total now: show it, then send that.",
                      {"error": "price_changed", "message": "The total changed since you saw it: check the new total.",
                       "amount": 8000, "currency": "KES"}),
    "idempotency_key_in_use": (409, "The first request with this Idempotency-Key is still being answered; retry "
                                    "after `Retry-After` seconds with the same key and body.",
                               {"error": "idempotency_key_in_use",
                                "message": "An order with this Idempotency-Key is still being created; retry shortly."}),
    "idempotency_key_reused": (422, "This Idempotency-Key came before with another body; nothing was done.",
                               {"error": "idempotency_key_reused",
                                "message": "This Idempotency-Key was used with a different order; use a new key."}),
    "not_found": (404, "Unknown or malformed order id, or a token that does not match it: all look the same.",
                  {"error": "not_found", "message": "No such order, or the token does not match it."}),
    "request_entity_too_large": (413, "Body larger than EVENTI_MAX_CONTENT_LENGTH (with Content-Length or chunked).",
                                 {"error": "request_entity_too_large",
                                  "message": "The data value transmitted exceeds the capacity limit."}),
    "unsupported_media_type": (415, "The body is not sent as application/json.",
                               {"error": "unsupported_media_type", "message": "Send the body as application/json."}),
    "too_many_waits": (429, "Too many waits on this order or this worker; retry after `Retry-After` seconds.",
                       {"error": "too_many_waits", "message": "Too many requests are waiting; retry shortly."}),
    "too_many_pushes": (429, "The push limit of this phone number (EVENTI_PUSH_LIMIT per EVENTI_PUSH_LIMIT_WINDOW) is "
                             "reached; retry after `Retry-After` seconds. Nothing was stored.",
                        {"error": "too_many_pushes",
                         "message": "Too many M-Pesa requests to this phone number; try again in 7 minutes."}),
    "internal_error": (500, "A bug on our side; the log line carries the request's X-Request-ID.",
                       {"error": "internal_error", "message": "Something went wrong on our side."}),
    "payment_provider_error": (502, "PayHero surely did not queue the push: it could not be connected to, or it "
                                    "refused the push (4xx, or an answer that queued nothing). The order was stored and "
                                    "is now `failed` (`stk_push_failed`); `orderId` names it. (A timeout or a 5xx is a "
                                    "`201` with `pushState: \"uncertain\"` instead.)",
                               {"error": "payment_provider_error", "orderId": ORDER_ID,
                                "message": "The payment provider did not accept the M-Pesa request; try again shortly."}),
    "store_unavailable": (503, "MongoDB did not answer; retry.",
                          {"error": "store_unavailable", "message": "The order store is not reachable; try again."}),
}
"""Every error code the API answers: (status, when, example body)."""

EVERY_OPERATION = ["invalid_url_encoding", "internal_error"]
"""Error codes any route can answer."""

API_PREFIX = "/api/"
"""Only routes under it are in the document: the pages, /healthz, /readyz and /metrics are not the API
(docs/operations.md tells of the last three)."""

HEADERS = {
    "X-Request-ID": {"description": "The request's id (the one it sent, when safe: 1-64 of `A-Za-z0-9._:-`); "
                                    "log lines carry it.", "schema": {"type": "string"}},
    "Cache-Control": {"description": "`no-store` on every answer about an order: it holds the order's token or "
                                     "its status of this moment.", "schema": {"type": "string", "enum": ["no-store"]}},
    "Retry-After": {"description": "Seconds to wait before trying again (every 429 and 503, and a 409 "
                                   "`idempotency_key_in_use`).", "schema": {"type": "integer", "minimum": 0}},
    "Location": {"description": "The created order's status URL (the body's `statusUrl`, token included).",
                 "schema": {"type": "string", "format": "uri"}},
    "Idempotent-Replayed": {"description": "`true` when the answer is the first answer to this Idempotency-Key, "
                                           "sent again.", "schema": {"type": "string", "enum": ["true"]}},
    "Allow": {"description": "The methods the path answers.", "schema": {"type": "string"}},
}
"""The response headers the document names (components.headers)."""

BELOW_THE_APP = {
    "BadRequest": (400, "A malformed request line or header, Content-Length with chunked, an unknown transfer coding."),
    "UriTooLong": (414, "A request line over 4094 bytes."),
    "HeadersTooLarge": (431, "A header over 8190 bytes, or more than 100 headers."),
}
"""Answers gunicorn gives on any route before the app sees the request (eventi/server/gunicorn_worker.py)."""

IN_FRONT = {
    429: "nginx in front (docker/nginx.conf): too many checkouts from one address; retry after `Retry-After` seconds.",
    502: "nginx in front: no instance of the app answered.",
    503: "nginx in front: no instance of the app can take the request now; retry after `Retry-After` seconds.",
    504: "nginx in front: the app did not answer in time.",
}
"""Errors a proxy in front answers in the same shape, named as werkzeug names the status: listed in x-problem-types
(the /api/docs page's list), not in the operations (they depend on the deployment)."""


_ARGUMENT = re.compile(r"<(?:([^:<>]+):)?([^<>]+)>")
"""A rule's <converter:name> or <name>."""


def openapi_path(rule: Rule | str) -> str:
    """/api/orders/<order_id:order_id>/wait -> /api/orders/{order_id}/wait"""
    return _ARGUMENT.sub(r"{\2}", rule.rule if isinstance(rule, Rule) else rule)


def _phone_and_amount(self: Any, field: Any, **kwargs: Any) -> dict[str, str]:
    """Say in the document what the custom fields accept."""
    if isinstance(field, schemas.KenyanPhone):
        return {"example": "0712 345 678", "description": "A Kenyan mobile number: 07…, 01…, 2547…, 2541…, optionally with +, "
                                                          "with or without spaces, dashes or dots between digits; stored as 254…"}
    if isinstance(field, schemas.WholeNumber):
        return {"description": "A whole JSON number: 1500 and 1500.0 are accepted; a string such as \"1500\" is refused."}
    return {}


SECURITY_SCHEMES = {
    "statusToken": {"type": "apiKey", "in": "query", "name": "token",
                    "description": "The order's `statusToken` from POST /api/orders: hex HMAC-SHA256 of "
                                   "`\"status:\" + orderId` under EVENTI_SECRET_KEY. A wrong one answers 404."},
    "callbackToken": {"type": "apiKey", "in": "query", "name": "token",
                      "description": "The order's callback token, carried in the callback_url of its STK push: hex "
                                     "HMAC-SHA256 of `\"callback:\" + orderId`. Missing or wrong: 401."},
    "c2bToken": {"type": "apiKey", "in": "query", "name": "token",
                 "description": "EVENTI_C2B_TOKEN, carried in the C2B confirmation URL registered for the Paybill. "
                                "Missing or wrong: 401."},
}


def build(app: Flask) -> dict[str, Any]:
    """The OpenAPI document (a dict) for every declared route of app."""
    settings = current_runtime(app).settings
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title="eventi", version="1", openapi_version="3.0.3", plugins=[plugin],
        servers=[{"url": settings.public_base_url or "/", "description": "this instance (PUBLIC_BASE_URL)"}],
        info={"description": "Instant M-Pesa payment status: the payment page holds one long poll, "
                             "answered when PayHero's callback lands. Every error is RFC 9457 problem details "
                             "(`application/problem+json`: `type`, `title`, `status`, `detail`) that also carries "
                             "`error` (the stable code) and `message` (= `detail`); `type` is `/api/docs#problem-<error>`. "
                             "A method a path does not answer is `405 method_not_allowed` with `Allow`. Every response "
                             "carries `X-Request-ID`. What may change without a new version (added response fields, "
                             "added optional request fields, added error codes, added headers): docs/api.md; "
                             "clients must ignore fields and error codes they do not know."},
    )
    assert plugin.converter is not None  # APISpec(plugins=[plugin]) set it up
    plugin.converter.add_attribute_function(_phone_and_amount)
    spec.components.schema("Problem", schema=schemas.ProblemSchema)
    for name, header in HEADERS.items():
        spec.components.header(name, header)
    for name, scheme in SECURITY_SCHEMES.items():
        spec.components.security_scheme(name, scheme)
    for name, (status, description) in BELOW_THE_APP.items():
        spec.components.response(name, _error_response(description + " Answered by gunicorn before the app, on any "
                                                        "route, with `Connection: close`.", [_werkzeug_error(status)]))
    spec.components.response("MethodNotAllowed", {**_error_response(
        "The path does not answer this method (on any path); `Allow` names those it does.",
        [_werkzeug_error(405)]), "headers": _headers("Allow")})
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        op = declared(app.view_functions[rule.endpoint])
        if op is None or not rule.rule.startswith(API_PREFIX):
            continue
        path_parameters = _path_parameters(app, rule)
        spec.path(path=openapi_path(rule), operations={
            method: _operation(rule.endpoint, op, path_parameters, settings) for method in _methods(rule)})
    document = spec.to_dict()
    document["x-problem-types"] = problem_types()
    for operations in document["paths"].values():
        for operation in operations.values():
            examples = operation.pop("x-query-example", {})
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query" and parameter["name"] in examples:
                    parameter["example"] = examples[parameter["name"]]
                if parameter["in"] == "query" and parameter["name"] == "token" and operation.get("security"):
                    parameter["required"] = True  # loaded as optional only so that a missing one answers 404/401
    return document


def problem_types() -> dict[str, dict[str, Any]]:
    """Error code -> its status, title and when it is answered: every code of the document (x-problem-types,
    the /api/docs page's list that each `type` URI points into)."""
    title = titles()
    found = {code: {"status": status, "title": title.get(code, HTTPStatus(status).phrase), "description": when}
             for code, (status, when, _) in ERROR_ANSWERS.items()}
    below = [*BELOW_THE_APP.values(), (405, "The path does not answer this method; `Allow` names those it does."),
             *IN_FRONT.items()]
    for status, when in below:
        body = _werkzeug_error(status)
        found[body["error"]] = {"status": status, "title": body["title"], "description": when}
    return dict(sorted(found.items()))


def _werkzeug_error(status: int) -> dict[str, Any]:
    """The body gunicorn_worker.py answers for status, named as werkzeug (and the app's handler) names it."""
    error = default_exceptions[status]()
    return problems.problem(status, error.name.lower().replace(" ", "_"), error.name, str(error.description))


def _as_problem(status: int, body: dict[str, Any]) -> dict[str, Any]:
    """An example body of ERROR_ANSWERS ({"error", "message", …}) as the app answers it."""
    rest = {name: value for name, value in body.items() if name not in ("error", "message")}
    return problems.problem(status, body["error"], titles().get(body["error"], body["message"]), body["message"], **rest)


def _headers(*names: str) -> dict[str, Any]:
    return {name: {"$ref": f"#/components/headers/{name}"} for name in names}


def _error_response(description: str, bodies: list[dict[str, Any]]) -> dict[str, Any]:
    return {"description": description, "headers": _headers("X-Request-ID"), "content": {problems.MEDIA_TYPE: {
        "schema": {"$ref": "#/components/schemas/Problem"},
        "examples": {body["error"]: {"value": body} for body in bodies},
    }}}


def _error_codes(op: Operation) -> dict[int, list[str]]:
    """Status -> the error codes an operation answers with it: its own, plus those of EVERY_OPERATION unless
    the operation documents that status with a body of its own (an HTML page)."""
    errors: dict[int, list[str]] = {}
    for code in op.errors:
        errors.setdefault(ERROR_ANSWERS[code][0], []).append(code)
    for code in EVERY_OPERATION:
        status = ERROR_ANSWERS[code][0]
        if status not in op.responses:
            errors.setdefault(status, []).append(code)
    return errors


def _errors(status: int, codes: list[str]) -> dict[str, Any]:
    """One documented response for the error codes of one status."""
    answers = [ERROR_ANSWERS[code] for code in codes]
    description = " ".join(f"`{code}`: {when}" for code, (_, when, _) in zip(codes, answers, strict=True))
    response = _error_response(description or HTTPStatus(status).phrase,
                               [_as_problem(status, body) for _, _, body in answers])
    if status in (429, 503) or "idempotency_key_in_use" in codes:
        response["headers"].update(_headers("Retry-After"))
    return response


def _operation(endpoint: str, op: Operation, path_parameters: list[dict[str, Any]],
               settings: Settings) -> dict[str, Any]:
    out: dict[str, Any] = {"tags": op.tags, "summary": op.summary}
    if op.description:
        out["description"] = op.description
    parameters = [*path_parameters, *(header.parameter() for header in op.headers), *op.params]
    if op.query is not None:
        parameters.append({"in": "query", "schema": schemas.schema_for(op.query, settings.wait_max_seconds)})
    if parameters:
        out["parameters"] = parameters
    if op.body is not None:
        out["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": op.body,
            "examples": {name: {"value": value} for name, value in (op.body_examples or {}).items()},
        }}}
    if op.form is not None:
        out["requestBody"] = {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": op.form}}}
    if op.security:
        out["security"] = [{op.security: []}]
    out["responses"] = {}
    errors = _error_codes(op)
    for status in sorted({*op.responses, *errors}):
        if status in errors:
            response = _errors(status, errors[status])
        elif "schema" in (response := op.responses[status]):
            response = {"description": response["description"], "headers": _headers("X-Request-ID", *response["headers"]),
                        "content": {"application/json": {
                            "schema": response["schema"],
                            "examples": {name: {"value": value} for name, value in response["examples"].items()},
                        }}}
        if "$ref" not in response and endpoint.startswith("orders."):
            response.setdefault("headers", {}).update(_headers("Cache-Control"))
        out["responses"][str(status)] = response
    for name, (status, _) in BELOW_THE_APP.items():
        out["responses"].setdefault(str(status), {"$ref": f"#/components/responses/{name}"})
    out["operationId"] = endpoint.replace(".", "_")
    out["x-query-example"] = op.query_examples or {}
    return out


def _methods(rule: Rule) -> list[str]:
    """The rule's methods as the document names them; HEAD and OPTIONS are Flask's own."""
    return sorted(method.lower() for method in rule.methods or () if method not in ("HEAD", "OPTIONS"))


def _path_parameters(app: Flask, rule: Rule) -> list[dict[str, Any]]:
    """The path parameters whose converter documents itself (eventi/web/converters.py)."""
    found = []
    for converter, _ in _ARGUMENT.findall(rule.rule):
        parameter = getattr(app.url_map.converters[converter or "default"], "openapi", None)
        if parameter is not None:
            found.append(parameter)
    return found


def operations(app: Flask) -> dict[str, dict[str, Operation]]:
    """Endpoint -> method -> the Operation its view declares, for every declared route of app."""
    found: dict[str, dict[str, Operation]] = {}
    for rule in app.url_map.iter_rules():
        op = declared(app.view_functions[rule.endpoint])
        if op is not None:
            for method in _methods(rule):
                found.setdefault(rule.endpoint, {})[method] = op
    return found
