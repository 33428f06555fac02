"""The OpenAPI 3 document, built by apispec from the routes' declarations and the marshmallow schemas.

Paths come from the app's url_map; each route's summary, inputs, answers and examples from its @declare
(eventi/web/declare.py), its path parameters from their converters; each error code's status and message
from its error class, and when it is answered (ERROR_ANSWERS) and its example's extras (EXAMPLE_EXTRAS) from
below. tests/test_openapi.py fails when a route is undeclared or an example stops validating;
tests/test_openapi_answers.py when an answer the tests saw is not in the document.
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
from .error_handlers import error_kinds, titles
from .examples import ORDER_ID

ERROR_ANSWERS: dict[str, str] = {
    "validation_error": "A field or query parameter is invalid; `details` names each.",
    "invalid_json": "The body is not strict JSON (UTF-8, no NaN, no lone surrogates, at most 32 levels).",
    "malformed_body": "The body's chunked framing is broken; the connection is closed.",
    "invalid_url_encoding": "The path or query string is not UTF-8 once percent-decoded (any route).",
    "unauthorized": "Missing or wrong callback token.",
    "event_not_found": "No such event, or it has started: its tickets are no longer sold. Nothing was stored.",
    "sold_out": "Fewer tickets of the type are left than asked for: nothing stored, no push, the push limit "
                "not counted. `left` says how many are (`GET /api/events/<eventId>` tells every type's).",
    "price_changed": "`expectedAmount` (the total the shopper was shown) is not what the order costs now: "
                     "nothing stored, no push. `amount` is the total now: show it, then send that.",
    "idempotency_key_in_use": "The first request with this Idempotency-Key is still being answered; retry "
                              "after `Retry-After` seconds with the same key and body.",
    "idempotency_key_reused": "This Idempotency-Key came before with another body; nothing was done.",
    "not_found": "Unknown or malformed order id, or a token that does not match it: all look the same.",
    "request_entity_too_large": "Body larger than EVENTI_MAX_CONTENT_LENGTH (with Content-Length or chunked).",
    "unsupported_media_type": "The body is not sent as application/json.",
    "too_many_waits": "Too many waits on this order or this worker; retry after `Retry-After` seconds.",
    "too_many_pushes": "The push limit of this phone number (EVENTI_PUSH_LIMIT per EVENTI_PUSH_LIMIT_WINDOW) is "
                       "reached; retry after `Retry-After` seconds. Nothing was stored.",
    "internal_error": "A bug on our side; the log line carries the request's X-Request-ID.",
    "payment_provider_error": "PayHero surely did not queue the push: it could not be connected to, or it "
                              "refused the push (4xx, or an answer that queued nothing). The order was stored and "
                              "is now `failed` (`stk_push_failed`); `orderId` names it. (A timeout or a 5xx is a "
                              "`201` with `pushState: \"uncertain\"` instead.)",
    "store_unavailable": "MongoDB did not answer; retry.",
}
"""Error code -> when the API answers it (each code's status and message are its error class's: eventi/errors.py,
or werkzeug's for an HTTP error; the table of eventi/web/error_handlers.py finds them)."""
EXAMPLE_EXTRAS: dict[str, dict[str, Any]] = {
    "validation_error": {"details": {"phone": [phones.MESSAGE]}},
    "sold_out": {"message": "Only 2 VIP tickets are left.", "left": 2},
    "price_changed": {"amount": 8000, "currency": "KES"},
    "too_many_pushes": {"message": "Too many M-Pesa requests to this phone number; try again in 7 minutes."},
    "payment_provider_error": {"orderId": ORDER_ID},
}
"""What a code's example body holds beyond its code and its class's message: the message of one case, and
the members of its own (`details`, `left`, `orderId`, ...)."""
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
    found = {code: {"status": status_of(code), "title": title.get(code, HTTPStatus(status_of(code)).phrase),
                    "description": when} for code, when in ERROR_ANSWERS.items()}
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


def status_of(code: str) -> int:
    """The HTTP status an error code is answered with (its class's)."""
    return error_kinds()[code].status


def _example(code: str) -> dict[str, Any]:
    """The example body of an error code as the app answers it: its class's status and message, with
    EXAMPLE_EXTRAS."""
    status, _, message = error_kinds()[code]
    extras = dict(EXAMPLE_EXTRAS.get(code, {}))
    message = extras.pop("message", message)
    return problems.problem(status, code, titles().get(code, message), message, **extras)


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
        errors.setdefault(status_of(code), []).append(code)
    for code in EVERY_OPERATION:
        status = status_of(code)
        if status not in op.responses:
            errors.setdefault(status, []).append(code)
    return errors


def _errors(status: int, codes: list[str]) -> dict[str, Any]:
    """One documented response for the error codes of one status."""
    description = " ".join(f"`{code}`: {ERROR_ANSWERS[code]}" for code in codes)
    response = _error_response(description or HTTPStatus(status).phrase, [_example(code) for code in codes])
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
