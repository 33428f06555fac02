"""The OpenAPI document: every route in it, every example valid against the schemas that validate requests."""
import copy
import json
import re

import pytest
from marshmallow import ValidationError

from eventi import schemas
from eventi.payhero.callbacks import parse_callback
from eventi.web import openapi
from tests.support.openapi import declared_operations


@pytest.fixture
def document(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    return response.json


def operations(document):
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def resolve(document, schema):
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return document["components"]["schemas"][name]
    return schema


def test_every_api_route_and_method_is_documented(app, document):
    missing = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        path = document["paths"].get(openapi.openapi_path(rule), {})
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            operation = path.get(method.lower())
            if not operation or not operation.get("summary") or not operation.get("responses"):
                missing.append(f"{method} {rule.rule} ({rule.endpoint})")
    assert not missing, "declare these routes with @declare (eventi/web/declare.py): " + ", ".join(missing)


def test_only_the_api_is_documented(document):
    """The pages, /healthz, /readyz and /metrics are not the API a client is generated from."""
    assert document["paths"] and all(path.startswith("/api/") for path in document["paths"])
    assert "/api/events" in document["paths"] and "/api/openapi.json" in document["paths"]


def test_answers_are_open_to_added_fields(document):
    """A strict generated client must not refuse a field added under the compatibility rule (docs/api.md)."""
    schemas = document["components"]["schemas"]
    answers = {content["schema"]["$ref"]
               for _, _, operation in operations(document) for response in operation["responses"].values()
               for content in response.get("content", {}).values() if "$ref" in content.get("schema", {})}
    assert {"#/components/schemas/Problem", "#/components/schemas/OrderStatus", "#/components/schemas/EventList"} <= answers
    closed = [name for name, schema in schemas.items() if schema.get("additionalProperties") is False
              and f"#/components/schemas/{name}" in answers]
    assert closed == []
    assert schemas["OrderCreate"]["additionalProperties"] is False  # requests stay strict


def test_timestamps_are_date_times(document):
    schemas = document["components"]["schemas"]
    assert schemas["OrderStatus"]["properties"]["updatedAt"]["format"] == "date-time"
    assert schemas["OrderStatus"]["properties"]["promptExpiresAt"]["format"] == "date-time"
    assert schemas["Event"]["properties"]["startsAt"]["format"] == "date-time"


def test_response_headers_are_documented(document):
    create = document["paths"]["/api/orders"]["post"]["responses"]
    assert {"Location", "Idempotent-Replayed", "Cache-Control", "X-Request-ID"} <= set(create["201"]["headers"])
    assert "Retry-After" in create["429"]["headers"] and "Retry-After" in create["503"]["headers"]
    assert "Retry-After" in create["409"]["headers"]  # idempotency_key_in_use
    for path in ("/api/orders/{order_id}", "/api/orders/{order_id}/wait"):
        for status, response in document["paths"][path]["get"]["responses"].items():
            if "$ref" not in response:
                assert "Cache-Control" in response["headers"], (path, status)
    assert "Allow" in document["components"]["responses"]["MethodNotAllowed"]["headers"]
    assert set(document["components"]["headers"]) >= {"Location", "Allow", "Retry-After", "Cache-Control"}


def test_amounts_are_documented_as_the_schema_loads_them(document):
    """A string amount is refused (schemas.WholeNumber): the document must not say otherwise."""
    text = json.dumps(document)
    assert '\\"1500\\" are accepted' not in text and "is refused" in text
    with pytest.raises(ValidationError):
        schemas.CallbackFlatSchema().load({"status": "failed", "external_reference": "x", "amount": "1500"})


def test_every_reference_resolves(document):
    text = json.dumps(document)
    refs = {part.split('"')[0] for part in text.split('"$ref": "')[1:]}
    for ref in refs:
        node = document
        for key in ref.removeprefix("#/").split("/"):
            node = node[key]
    assert {"#/components/schemas/Problem", "#/components/responses/UriTooLong", "#/components/headers/Retry-After"} <= refs


def test_tokens_are_required_and_declared_as_security_schemes(document):
    schemes = document["components"]["securitySchemes"]
    assert {name: (s["in"], s["name"]) for name, s in schemes.items()} == {
        "statusToken": ("query", "token"), "callbackToken": ("query", "token"), "c2bToken": ("query", "token")}
    secured = {(path, method): op["security"] for path, method, op in operations(document) if "security" in op}
    assert secured == {
        ("/api/orders/{order_id}", "get"): [{"statusToken": []}],
        ("/api/orders/{order_id}/wait", "get"): [{"statusToken": []}],
        ("/api/payhero/callback", "post"): [{"callbackToken": []}],
        ("/api/c2b/confirmation", "post"): [{"c2bToken": []}],
    }
    for path, method in secured:
        token = [p for p in document["paths"][path][method]["parameters"] if p["name"] == "token"]
        assert token and token[0]["required"] is True, (path, method)
    assert document["servers"][0]["url"].startswith("http")


def test_the_errors_a_checkout_must_handle_are_documented(document):
    create = document["paths"]["/api/orders"]["post"]["responses"]
    codes = {status: set(r["content"]["application/problem+json"]["examples"]) for status, r in create.items()
             if "content" in r and int(status) >= 400}
    assert "too_many_pushes" in codes["429"] and "payment_provider_error" in codes["502"]
    assert "invalid_url_encoding" in codes["400"] and "internal_error" in codes["500"]
    assert create["414"] == {"$ref": "#/components/responses/UriTooLong"}


def test_request_examples_validate_against_the_request_schemas():
    checked = 0
    for endpoint, methods in declared_operations().items():
        for op in methods.values():
            for name, example in op.get("body_examples", {}).items():
                body = op["body"]
                if isinstance(body, dict):  # PayHero's two formats: the parser picks the schema
                    assert parse_callback(example).order_id == openapi.ORDER_ID, (endpoint, name)
                else:
                    body().load(example)
                checked += 1
            if "query" in op:
                as_query = {k: str(v) for k, v in op["query_examples"].items()}
                loaded = op["query"]().load(as_query)
                assert set(loaded) >= set(as_query), endpoint
                checked += 1
    assert checked >= 6


def test_documented_query_parameters_carry_examples(document):
    for path, method, operation in operations(document):
        for parameter in operation.get("parameters", []):
            assert "example" in parameter, f"{method} {path} {parameter['name']}"


def test_response_examples_have_the_documented_fields(document):
    checked = 0
    for path, method, operation in operations(document):
        for status, response in operation["responses"].items():
            content = response.get("content", {}).get("application/json") or response.get("content", {}).get(
                "application/problem+json")
            if not content or "examples" not in content:
                continue
            schema = resolve(document, content["schema"])
            for name, example in content["examples"].items():
                where = f"{method} {path} {status} {name}"
                assert set(schema.get("required", [])) <= set(example["value"]), where
                assert set(example["value"]) <= set(schema["properties"]), where
                checked += 1
    assert checked >= 15


def test_examples_work_against_the_running_api(client, runtime):
    """The documented create, callback and wait examples, sent for real, answer what the document says."""
    create = declared_operations()["orders.create_order"]["post"]
    created = client.post("/api/orders", json=create["body_examples"]["local"])
    assert created.status_code == 201, created.json
    assert set(created.json) == {name for name, f in schemas.OrderCreatedSchema().fields.items() if f.required}
    order_id, token = created.json["orderId"], created.json["statusToken"]

    status = client.get(f"/api/orders/{order_id}", query_string={"token": token})
    required = {name for name, f in schemas.OrderStatusSchema().fields.items() if f.required}
    assert set(status.json) == required | {"eventName"}  # no push: no prompt; eventName is kept since this release

    callback = copy.deepcopy(declared_operations()["payhero.callback"]["post"]["body_examples"]["v2 success"])
    callback["response"]["ExternalReference"] = order_id
    acked = client.post("/api/payhero/callback", query_string={"token": runtime.tokens.callback_token(order_id)}, json=callback)
    assert acked.status_code == 200 and acked.json == {"received": True}

    waited = client.get(created.json["waitUrl"] + "&timeout=5")
    assert set(waited.json) <= set(schemas.WaitResultSchema().fields)
    assert (waited.json["paymentStatus"], waited.json["final"]) == ("completed", True)


def test_docs_page_is_self_contained_html(client):
    response = client.get("/api/docs")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    # loads nothing from elsewhere
    assert "<script" not in page and not re.search(r"""(src|href|url)\s*[=(]\s*["']?https?:""", page)
    assert "https://tickets.example.co.ke/api/orders/" in page  # absolute URLs in examples are text, not loads
    assert "/api/orders/{order_id}/wait" in page and "Long-poll until the payment is final" in page


def test_every_problem_type_opens_its_entry_on_the_docs_page(client, document):
    """Each error's `type` (/api/docs#problem-<code>) points at an entry of the page: every code the document shows,
    405's, and those a proxy in front answers in the same shape."""
    shown = {example["value"]["error"] for _, _, operation in operations(document)
             for response in operation["responses"].values()
             for example in response.get("content", {}).get("application/problem+json", {}).get("examples", {}).values()}
    shown |= {example["value"]["error"] for response in document["components"]["responses"].values()
              for example in response["content"]["application/problem+json"]["examples"].values()}
    codes = shown | {"method_not_allowed", "too_many_requests", "bad_gateway", "service_unavailable", "gateway_timeout"}
    assert set(document["x-problem-types"]) >= codes and len(shown) >= 18
    page = client.get("/api/docs").get_data(as_text=True)
    for code in codes:
        assert f'id="problem-{code}"' in page, code
