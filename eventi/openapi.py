"""The OpenAPI 3 document, built by apispec from the marshmallow schemas that validate the requests.

Paths come from the app's url_map and bodies, queries and answers from eventi/schemas.py, so the
document cannot drift from the routes; OPERATIONS adds what only a person can say (summaries,
examples). tests/test_openapi.py fails when a route is missing here or an example stops validating.
"""
import re
from http import HTTPStatus

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from werkzeug.exceptions import default_exceptions
from werkzeug.routing import Rule

from . import outcomes, phones, schemas

ORDER_ID = "6751a3f2c9e77b0012ab34cd"
STATUS_TOKEN = "3f1c9a7e5b2d4f6081a3c5e7f9b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7"
UPDATED_AT = "2026-11-28T05:12:09.481Z"

ERROR_ANSWERS = {
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
                      "not counted. `GET /api/events/<eventId>` tells what is left.",
                 {"error": "sold_out", "message": "Not enough tickets of this type are left."}),
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
                                 {"error": "request_entity_too_large", "message": "The data value transmitted exceeds the capacity limit."}),
    "unsupported_media_type": (415, "The body is not sent as application/json.",
                               {"error": "unsupported_media_type", "message": "Send the body as application/json."}),
    "too_many_waits": (429, "Too many waits on this order or this worker; retry after `Retry-After` seconds.",
                       {"error": "too_many_waits", "message": "Too many requests are waiting; retry shortly."}),
    "too_many_pushes": (429, "The push limit of this phone number (EVENTI_PUSH_LIMIT per EVENTI_PUSH_LIMIT_WINDOW) is "
                             "reached; retry after `Retry-After` seconds. Nothing was stored.",
                        {"error": "too_many_pushes", "message": "Too many M-Pesa requests to this phone number; wait a few minutes."}),
    "internal_error": (500, "A bug on our side; the log line carries the request's X-Request-ID.",
                       {"error": "internal_error", "message": "Something went wrong on our side."}),
    "payment_provider_error": (502, "PayHero was unreachable, slower than EVENTI_PUSH_TIMEOUT or refused the push. "
                                    "The order was stored and is now `failed` (`stk_push_failed`); `orderId` names it.",
                               {"error": "payment_provider_error", "orderId": ORDER_ID,
                                "message": "The payment provider did not accept the M-Pesa request; try again shortly."}),
    "store_unavailable": (503, "MongoDB did not answer; retry.",
                          {"error": "store_unavailable", "message": "The order store is not reachable; try again."}),
}
"""Every error code the API answers: (status, when, example body)."""

DEFAULT_ERRORS = {400: ["validation_error"], 401: ["unauthorized"], 404: ["not_found"], 413: ["request_entity_too_large"],
                  415: ["unsupported_media_type"], 429: ["too_many_waits"], 503: ["store_unavailable"]}
"""The error codes meant by `status: None` in OPERATIONS."""

EVERY_OPERATION = ["invalid_url_encoding", "internal_error"]
"""Error codes any route can answer."""

BELOW_THE_APP = {
    "BadRequest": (400, "A malformed request line or header, Content-Length with chunked, an unknown transfer coding."),
    "UriTooLong": (414, "A request line over 4094 bytes."),
    "HeadersTooLarge": (431, "A header over 8190 bytes, or more than 100 headers."),
}
"""Answers gunicorn gives on any route before the app sees the request (eventi/gunicorn_worker.py)."""

ORDER_ID_PARAM = {
    "in": "path", "name": "order_id", "required": True, "example": ORDER_ID,
    "description": "The orderId returned by POST /api/orders.",
    "schema": {"type": "string", "pattern": "^[0-9a-f]{24}$"},
}

BASE_URL = "https://tickets.example.co.ke"
IDEMPOTENCY_KEY = "9f6c1d3e2b7a4c58a0e1f2d3c4b5a697"

EVENT_ID_PARAM = {
    "in": "path", "name": "event_id", "required": True, "example": "demo",
    "description": "The event's id (a slug), as loaded by `flask --app wsgi events load`.",
    "schema": {"type": "string", "pattern": schemas.EVENT_ID.pattern},
}

IDEMPOTENCY_KEY_PARAM = {
    "in": "header", "name": "Idempotency-Key", "required": False, "example": IDEMPOTENCY_KEY,
    "description": "Optional; one per checkout attempt (1-64 of `A-Za-z0-9._:-`). The same key with the same body "
                   "within 24 h answers the first answer again (header `Idempotent-Replayed: true`): no second order, "
                   "no second STK push. The same key with another body is `422 idempotency_key_reused`; while the "
                   "first request is still being answered, `409 idempotency_key_in_use` with `Retry-After`.",
    "schema": {"type": "string", "pattern": schemas.IDEMPOTENCY_KEY.pattern},
}


PENDING = {"orderId": ORDER_ID, "paymentStatus": "pending", "amount": 1500, "updatedAt": UPDATED_AT}
COMPLETED = {**PENDING, "paymentStatus": "completed", "mpesaReceipt": "TKS2P0X9QH"}
CANCELLED = {**PENDING, "paymentStatus": "cancelled", "failureReason": "Request cancelled by user",
             "reason": "cancelled_by_user", "reasonText": outcomes.CANCELLED.text}
FAILED = {**PENDING, "paymentStatus": "failed", "failureReason": "The initiator information is invalid.",
          "reason": "wrong_pin", "reasonText": outcomes.BY_RESULT_CODE[2001].text}


def _ok(schema, examples, description="OK"):
    return {"description": description, "schema": schema, "examples": examples}


def _text(media_type, description, example):
    return {"description": description, "content": {media_type: {"schema": {"type": "string"}, "example": example}}}


OPERATIONS = {
    "orders.create_order": {"post": {
        "tags": ["checkout"],
        "summary": "Create a pending order, priced by the server",
        "description": "Holds the tickets, stores a pending order, sends one M-Pesa STK push and returns the token "
                       "and absolute URLs the payment page waits on. The amount is the event's stored price times "
                       "`quantity`: an `amount` in the body is an unknown field. Unknown fields, wrong types and "
                       "operator objects are rejected; nothing is stored then, nor when the answer is 404, 409 or 429.",
        "params": [IDEMPOTENCY_KEY_PARAM],
        "body": schemas.OrderCreateSchema,
        "body_examples": {
            "local": {"eventId": "demo", "ticketTypeId": "regular", "quantity": 1, "phone": "0712345678",
                      "email": "wanjiru@example.com", "name": "Wanjiru Kamau"},
            "international": {"eventId": "demo", "ticketTypeId": "vip", "quantity": 2, "phone": "+254112345678",
                              "email": "otieno@example.co.ke"},
        },
        "responses": {201: _ok(schemas.OrderCreatedSchema, {"created": {
            "orderId": ORDER_ID, "paymentStatus": "pending", "statusToken": STATUS_TOKEN, "amount": 1500, "currency": "KES",
            "waitUrl": f"{BASE_URL}/api/orders/{ORDER_ID}/wait?token={STATUS_TOKEN}",
            "statusUrl": f"{BASE_URL}/api/orders/{ORDER_ID}?token={STATUS_TOKEN}"}}, "Created (or, with a replayed "
            "Idempotency-Key, the first answer again)"),
            400: ["validation_error", "invalid_json", "malformed_body"], 404: ["event_not_found"],
            409: ["sold_out", "idempotency_key_in_use"], 413: None, 415: None, 422: ["idempotency_key_reused"],
            429: ["too_many_pushes"], 502: ["payment_provider_error"], 503: None},
    }},
    "orders.get_status": {"get": {
        "tags": ["checkout"],
        "summary": "Read an order's current status",
        "params": [ORDER_ID_PARAM],
        "query": schemas.TokenQuerySchema,
        "query_examples": {"token": STATUS_TOKEN},
        "responses": {200: _ok(schemas.OrderStatusSchema, {"pending": PENDING, "completed": COMPLETED, "failed": FAILED}),
                      400: None, 404: None, 503: None},
        "security": "statusToken",
    }},
    "orders.wait_for_status": {"get": {
        "tags": ["checkout"],
        "summary": "Long-poll until the payment is final",
        "description": "Held until the status is final (answered the instant PayHero's callback is stored, on any "
                       "worker or machine) or until `timeout` seconds pass, then answered with `final: false`. "
                       "Call it again while `final` is false. Responses carry `Cache-Control: no-store` and "
                       "`X-Accel-Buffering: no`; proxies must allow more than the longest hold (120 s). "
                       "A pending answer with `Retry-After` was cut short because the server is stopping "
                       "(a deploy): not a hold; call again after that many seconds (0: at once).",
        "params": [ORDER_ID_PARAM],
        "query": schemas.WaitQuerySchema,
        "query_examples": {"token": STATUS_TOKEN, "timeout": 60},
        "responses": {200: _ok(schemas.WaitResultSchema, {
            "completed": {**COMPLETED, "final": True, "waitedMs": 8412},
            "cancelled": {**CANCELLED, "final": True, "waitedMs": 15003},
            "timed out": {**PENDING, "final": False, "waitedMs": 60001},
        }), 400: None, 404: None, 429: None, 503: None},
        "security": "statusToken",
    }},
    "payhero.callback": {"post": {
        "tags": ["PayHero"],
        "summary": "PayHero's payment result for one order",
        "description": "Called by PayHero with the per-order callback token the STK push carried. Both PayHero "
                       "formats are accepted. ResultCode 0 completes the order, 1032 cancels it, anything else fails "
                       "it; an amount different from the order's fails it with `amount_mismatch`. Repeated and late "
                       "deliveries change nothing, announce the final status again and answer `duplicate: true`. "
                       "A 503 asks for a redelivery; a write the store applied anyway is announced without one. Fields are strictly typed (`400` "
                       "otherwise): `ResultCode` a JSON integer, `Amount` a JSON number with no fraction, `status` "
                       "and `success` JSON booleans; a success needs its non-blank receipt, and flags that contradict "
                       "the result (`ResultCode` 0 with `status: false` or `Status: \"Failed\"`) are refused.",
        "query": schemas.CallbackQuerySchema,
        "query_examples": {"token": STATUS_TOKEN},
        "body": {"oneOf": [schemas.CallbackV2Schema, schemas.CallbackFlatSchema]},
        "body_examples": {
            "v2 success": {"status": True, "response": {
                "Amount": 1500, "CheckoutRequestID": "ws_CO_28112026051209481712345678",
                "ExternalReference": ORDER_ID, "MerchantRequestID": "c4d8-4f1b-9e2a-77a1b2c3d4e5",
                "MpesaReceiptNumber": "TKS2P0X9QH", "Phone": "+254712345678", "ResultCode": 0,
                "ResultDesc": "The service request is processed successfully.", "Status": "Success"}},
            "v2 cancelled": {"status": False, "response": {
                "Amount": 1500, "CheckoutRequestID": "ws_CO_28112026051209481712345678",
                "ExternalReference": ORDER_ID, "MpesaReceiptNumber": "", "ResultCode": 1032,
                "ResultDesc": "Request cancelled by user", "Status": "Cancelled"}},
            "flat success": {"status": "success", "external_reference": ORDER_ID, "amount": 1500,
                             "provider_reference": "TKS2P0X9QH", "reference": "E8UWT7CLUW",
                             "message": "Payment successful", "success": True},
        },
        "responses": {200: _ok(schemas.CallbackAckSchema, {"stored": {"received": True},
                                                           "repeated": {"received": True, "duplicate": True}}),
                      400: ["validation_error", "invalid_json", "malformed_body"], 401: None, 404: None,
                      413: None, 415: None, 503: None},
        "security": "callbackToken",
    }},
    "events.get_event": {"get": {
        "tags": ["checkout"],
        "summary": "An event on sale, with its ticket types, prices and tickets left",
        "params": [EVENT_ID_PARAM],
        "responses": {200: _ok(schemas.EventSchema, {"demo": {
            "id": "demo", "name": "Nairobi Jazz Night", "startsAt": "2030-12-12T16:00:00.000Z",
            "venue": "Kenya National Theatre, Nairobi", "currency": "KES", "ticketTypes": [
                {"id": "regular", "name": "Regular", "price": 1500, "maxPerOrder": 10, "left": 412},
                {"id": "vip", "name": "VIP", "price": 4000, "maxPerOrder": 4, "left": 0}]}}),
            404: ["event_not_found"], 503: None},
    }},
    "pages.events": {"get": {
        "tags": ["pages"], "summary": "The events on sale, soonest first (HTML)",
        "responses": {200: _text("text/html", "A list of links to each event's checkout", "<!doctype html>...")},
    }},
    "pages.checkout": {"get": {
        "tags": ["pages"], "summary": "The checkout form for one event (HTML)",
        "description": "Shows the event's name, date, venue and ticket types with their stored prices; with JavaScript "
                       "it posts to POST /api/orders with an Idempotency-Key per submission, without it the form posts "
                       "to this same path. `?retry={orderId}&token={statusToken}` (the payment page's \"Try again\") "
                       "fills the form from that order.",
        "params": [EVENT_ID_PARAM],
        "responses": {200: _text("text/html", "The form; it posts to POST /api/orders", "<!doctype html>..."),
                      404: _text("text/html", "No such event, or it has started: a page linking to the events on sale",
                                 "<!doctype html>...")},
    }},
    "pages.place_order": {"post": {
        "tags": ["pages"], "summary": "The checkout form without JavaScript: create the order, then on to the payment page",
        "description": "The form's fields, form-encoded, named as in POST /api/orders (`ticketTypeId`, `quantity`, `name`, "
                       "`email`, `phone`), plus a one-time `idempotencyKey` from a hidden field: a double submit or a "
                       "reload of the POST makes one order. Checked by the same schema and created by the same service "
                       "as POST /api/orders; nothing personal goes into a URL.",
        "params": [EVENT_ID_PARAM],
        "form": {"type": "object", "required": ["ticketTypeId", "quantity", "email", "phone"], "properties": {
            "ticketTypeId": {"type": "string"}, "quantity": {"type": "string", "pattern": "^[0-9]{1,3}$"},
            "name": {"type": "string"}, "email": {"type": "string"}, "phone": {"type": "string"},
            "idempotencyKey": {"type": "string", "pattern": schemas.IDEMPOTENCY_KEY.pattern}}},
        "responses": {
            303: {"description": "Created: `Location` is the payment page, /orders/{orderId}/status?token={statusToken}"},
            400: _text("text/html", "A field is invalid: the form again, the values kept, each error under its field",
                       "<!doctype html>..."),
            404: _text("text/html", "No such event, or it has started", "<!doctype html>..."),
            409: _text("text/html", "Sold out (or the same submission still being created after the push timeout): "
                                    "the form again with a message", "<!doctype html>..."),
            429: _text("text/html", "Too many M-Pesa requests to this phone: the form again with a message", "<!doctype html>..."),
            502: _text("text/html", "PayHero refused or did not answer the push: the form again with a message", "<!doctype html>..."),
            503: _text("text/html", "The store did not answer: the form again with a message", "<!doctype html>..."),
        },
    }},
    "pages.status": {"get": {
        "tags": ["pages"], "summary": "The payment page: the status now, then one long poll (HTML)",
        "description": "Served with `Cache-Control: no-store` and `Referrer-Policy: no-referrer`: its URL holds the token.",
        "params": [ORDER_ID_PARAM, {"in": "query", "name": "token", "required": True, "example": STATUS_TOKEN,
                                    "description": "The statusToken.", "schema": {"type": "string"}}],
        "responses": {200: _text("text/html", "The page", "<!doctype html>..."),
                      404: _text("text/html", "Unknown order or wrong token", "<!doctype html>..."), 503: None},
        "security": "statusToken",
    }},
    "health.healthz": {"get": {
        "tags": ["ops"], "summary": "Liveness: 200 while the process runs",
        "responses": {200: _ok(schemas.HealthSchema, {"ok": {"status": "ok"}})},
    }},
    "health.readyz": {"get": {
        "tags": ["ops"], "summary": "Readiness: 200 when MongoDB and Redis answer",
        "responses": {
            200: _ok(schemas.HealthSchema, {"ready": {"status": "ready"}}),
            503: _ok(schemas.NotReadySchema, {"redis down": {"error": "not_ready", "message": "Down: redis", "down": ["redis"]}},
                     "A dependency is down; take this instance out of rotation"),
        },
    }},
    "health.prometheus": {"get": {
        "tags": ["ops"], "summary": "Prometheus metrics, summed over all gunicorn workers",
        "description": "See docs/operations.md for each metric and example PromQL. With EVENTI_METRICS_BIND set, "
                       "served on that listener only (which answers nothing else): 404 on the public port.",
        "responses": {200: _text("text/plain", "Prometheus text exposition format",
                                 'eventi_waits_held 412.0\neventi_callbacks_total{outcome="completed"} 1893.0\n'),
                      404: {"description": "EVENTI_METRICS_BIND is set and this is not that listener.", "content": {
                          "application/json": {"schema": {"$ref": "#/components/schemas/Error"}, "examples": {
                              "not_found": {"value": {"error": "not_found", "message": "Not here."}}}}}}},
    }},
    "apidocs.openapi_json": {"get": {
        "tags": ["docs"], "summary": "This OpenAPI 3 document",
        "responses": {200: {"description": "OpenAPI 3.0 document", "content": {"application/json": {"schema": {"type": "object"}}}}},
    }},
    "apidocs.docs_page": {"get": {
        "tags": ["docs"], "summary": "This document as a self-contained HTML page",
        "responses": {200: _text("text/html", "HTML page", "<!doctype html>...")},
    }},
}
"""Per endpoint and method: summary, description, path params, query and body schemas with examples,
responses (None: the standard error answer for that status)."""


def openapi_path(rule: Rule | str):
    """/api/orders/<order_id>/wait -> /api/orders/{order_id}/wait"""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", getattr(rule, "rule", rule))


def _phone_and_amount(self, field, **kwargs):
    """Say in the document what the custom fields accept."""
    if isinstance(field, schemas.KenyanPhone):
        return {"example": "0712 345 678", "description": "A Kenyan mobile number: 07…, 01…, 2547…, 2541…, optionally with +, "
                                                          "with or without spaces, dashes or dots between digits; stored as 254…"}
    if isinstance(field, schemas.WholeNumber):
        return {"description": "A whole number; 1500, 1500.0 and \"1500\" are accepted."}
    return {}


SECURITY_SCHEMES = {
    "statusToken": {"type": "apiKey", "in": "query", "name": "token",
                    "description": "The order's `statusToken` from POST /api/orders: hex HMAC-SHA256 of "
                                   "`\"status:\" + orderId` under EVENTI_SECRET_KEY. A wrong one answers 404."},
    "callbackToken": {"type": "apiKey", "in": "query", "name": "token",
                      "description": "The order's callback token, carried in the callback_url of its STK push: hex "
                                     "HMAC-SHA256 of `\"callback:\" + orderId`. Missing or wrong: 401."},
}


def build(app):
    """The OpenAPI document (a dict) for every documented route of app."""
    settings = app.extensions["eventi"].settings
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title="eventi", version="1", openapi_version="3.0.3", plugins=[plugin],
        servers=[{"url": settings["PUBLIC_BASE_URL"] or "/", "description": "this instance (PUBLIC_BASE_URL)"}],
        info={"description": "Instant M-Pesa payment status: the payment page holds one long poll, "
                             "answered when PayHero's callback lands. Every error is "
                             "`{\"error\", \"message\", \"details\"?}`. Every response carries `X-Request-ID` "
                             "(the request's, when it sent a safe one of 1-64 `A-Za-z0-9._:-`)."},
    )
    plugin.converter.add_attribute_function(_phone_and_amount)
    spec.components.schema("Error", schema=schemas.ErrorSchema)
    for name, scheme in SECURITY_SCHEMES.items():
        spec.components.security_scheme(name, scheme)
    for name, (status, description) in BELOW_THE_APP.items():
        spec.components.response(name, _error_response(description + " Answered by gunicorn before the app, on any "
                                                        "route, with `Connection: close`.", [_werkzeug_error(status)]))
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        documented = OPERATIONS.get(rule.endpoint)
        if documented is None:
            continue
        operations = {method: _operation(rule.endpoint, op, settings) for method, op in documented.items()
                      if method.upper() in (rule.methods or ())}
        spec.path(path=openapi_path(rule), operations=operations)
    document = spec.to_dict()
    for operations in document["paths"].values():
        for operation in operations.values():
            examples = operation.pop("x-query-example", {})
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query" and parameter["name"] in examples:
                    parameter["example"] = examples[parameter["name"]]
                if parameter["in"] == "query" and parameter["name"] == "token" and operation.get("security"):
                    parameter["required"] = True  # loaded as optional only so that a missing one answers 404/401
    return document


def _werkzeug_error(status):
    """The body gunicorn_worker.py answers for status, named as werkzeug (and the app's handler) names it."""
    error = default_exceptions[status]()
    return {"error": error.name.lower().replace(" ", "_"), "message": error.description}


def _error_response(description, bodies):
    return {"description": description, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"},
        "examples": {body["error"]: {"value": body} for body in bodies},
    }}}


def _error_codes(responses):
    """Status -> the error codes an operation answers with it: its own list (None: DEFAULT_ERRORS), plus those
    of EVERY_OPERATION, unless the operation documents that status with a body of its own (an HTML page)."""
    errors = {status: list(DEFAULT_ERRORS.get(status, []) if codes is None else codes)
              for status, codes in responses.items() if codes is None or isinstance(codes, list)}
    for code in EVERY_OPERATION:
        status = ERROR_ANSWERS[code][0]
        if status in errors or status not in responses:
            errors.setdefault(status, []).append(code)
    return errors


def _errors(status, codes):
    """One documented response for the error codes of one status."""
    answers = [ERROR_ANSWERS[code] for code in codes]
    description = " ".join(f"`{code}`: {when}" for code, (_, when, _) in zip(codes, answers))
    return _error_response(description or HTTPStatus(status).phrase, [body for _, _, body in answers])


def _operation(endpoint, op, settings):
    out = {key: op[key] for key in ("tags", "summary", "description") if key in op}
    parameters = list(op.get("params", []))
    if "query" in op:
        query = op["query"]
        if query is schemas.WaitQuerySchema:  # its timeout's maximum is a setting
            query = schemas.WaitQuerySchema(settings["WAIT_MAX_SECONDS"])
        parameters.append({"in": "query", "schema": query})
    if parameters:
        out["parameters"] = parameters
    if "body" in op:
        out["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": op["body"],
            "examples": {name: {"value": value} for name, value in op.get("body_examples", {}).items()},
        }}}
    if "form" in op:
        out["requestBody"] = {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": op["form"]}}}
    if "security" in op:
        out["security"] = [{op["security"]: []}]
    out["responses"] = {}
    errors = _error_codes(op["responses"])
    for status in sorted({*op["responses"], *errors}):
        response = op["responses"].get(status)
        if status in errors:
            response = _errors(status, errors[status])
        elif "schema" in response:
            response = {"description": response["description"], "content": {"application/json": {
                "schema": response["schema"],
                "examples": {name: {"value": value} for name, value in response["examples"].items()},
            }}}
        out["responses"][str(status)] = response
    for name, (status, _) in BELOW_THE_APP.items():
        out["responses"].setdefault(str(status), {"$ref": f"#/components/responses/{name}"})
    out["operationId"] = endpoint.replace(".", "_")
    out["x-query-example"] = op.get("query_examples", {})
    return out
