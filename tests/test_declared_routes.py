"""Routes declare what they read and answer once (eventi/web/declare.py): the declaration parses the request and
is what the OpenAPI document shows. Order ids pass through one URL converter (eventi/web/converters.py)."""
import re

import pytest
from flask import Blueprint, jsonify
from marshmallow import Schema, fields
from prometheus_client import REGISTRY

from eventi.schemas import TokenQuerySchema
from eventi.web import openapi
from eventi.web.converters import OrderIdConverter
from eventi.web.declare import Header, declare, declared
from tests.support.api import order_body

UNKNOWN_ID = "6751a3f2c9e77b0012ab34cd"
MALFORMED_IDS = ["x", "6751a3f2c9e77b0012ab34cz", "6751a3f2c9e77b0012ab34cd0", "%24ne", "null", "🎟" * 24]


def order_routes(app):
    return [rule for rule in app.url_map.iter_rules() if "order_id" in rule.arguments]


def documented_errors(response):
    examples = response.get("content", {}).get("application/problem+json", {}).get("examples", {})
    return {example["value"].get("error") for example in examples.values()}


def test_every_route_taking_an_order_id_uses_the_converter(app):
    rules = order_routes(app)
    assert {rule.endpoint for rule in rules} >= {"orders.get_status", "orders.wait_for_status", "pages.status"}
    for rule in rules:
        assert "<order_id:order_id>" in rule.rule, rule.rule


def test_the_converter_keeps_the_id_as_written_and_makes_a_malformed_one_none(app):
    converter = OrderIdConverter(app.url_map)
    assert converter.to_python(UNKNOWN_ID) == UNKNOWN_ID
    assert converter.to_python(UNKNOWN_ID.upper()) == UNKNOWN_ID.upper()  # tokens sign the id as written
    for malformed in ("x", "6751a3f2c9e77b0012ab34cz", UNKNOWN_ID + "0", "6751a3f2c9e77b0012ab34 d"):
        assert converter.to_python(malformed) is None, malformed


@pytest.mark.parametrize("order_id", MALFORMED_IDS)
def test_a_malformed_id_answers_what_an_unknown_one_does_on_every_order_route(app, client, order_id):
    for rule in order_routes(app):
        path = rule.rule.replace("<order_id:order_id>", "{}") + "?token=abc&timeout=1"
        unknown, malformed = client.get(path.format(UNKNOWN_ID)), client.get(path.format(order_id))
        assert malformed.status_code == unknown.status_code == 404, rule.rule
        assert malformed.headers["Content-Type"] == unknown.headers["Content-Type"], rule.rule
        assert malformed.data == unknown.data, rule.rule  # the API's JSON not_found, the pages' 404 page


def test_a_malformed_id_still_reaches_its_route(app, client):
    """Not refused by routing: the query string is checked first (400), and another method is 405, not 404."""
    for rule in order_routes(app):
        path = rule.rule.replace("<order_id:order_id>", "x")
        assert client.post(path).status_code == 405, rule.rule
        if rule.endpoint.startswith("orders."):
            response = client.get(path, query_string={"token": "a" * 129})
            assert (response.status_code, response.json["error"]) == (400, "validation_error"), rule.rule
            assert "token" in response.json["details"]


def test_every_route_is_documented_with_what_it_declares(app, client):
    document = client.get("/api/openapi.json").json
    checked = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        operation = declared(app.view_functions[rule.endpoint])
        assert operation is not None, f"{rule.rule} ({rule.endpoint}) has no @declare"
        if not rule.rule.startswith("/api/"):
            continue  # declared, but not the API: not in the document
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            documented = document["paths"][openapi.openapi_path(rule)][method.lower()]
            assert documented["summary"] == operation.summary
            for status in operation.responses:
                assert str(status) in documented["responses"], (rule.rule, status)
            for code in operation.errors:
                status = openapi.status_of(code)
                assert code in documented_errors(documented["responses"][str(status)]), (rule.rule, code)
                checked += 1
    assert checked >= 25


class ProbeBody(Schema):
    n = fields.Integer(required=True)


PROBE_HEADER = Header("X-Probe", "probe", re.compile(r"^[a-z]{1,8}$"), error="1-8 of a-z.", description="A probe.",
                      example="abc")


@pytest.fixture
def probe_app(app):
    """The app plus one route declared here: it exists only in its declaration."""
    bp = Blueprint("probe", __name__)

    @bp.post("/api/probe/<order_id:order_id>")
    @declare("A probe", tags=["test"], headers=[PROBE_HEADER], query=TokenQuerySchema, query_examples={"token": "t"},
             body=ProbeBody, body_examples={"one": {"n": 1}}, errors=["validation_error", "unsupported_media_type"])
    def probe(order_id, probe, query, body):
        return jsonify(orderId=order_id, probe=probe, token=query["token"], n=body["n"])

    app.register_blueprint(bp)
    return app


def test_a_declared_route_gets_its_inputs_parsed_in_order(probe_app):
    client = probe_app.test_client()
    path = f"/api/probe/{UNKNOWN_ID}"
    ok = client.post(path + "?token=t", json={"n": 2}, headers={"X-Probe": "abc"})
    assert ok.json == {"orderId": UNKNOWN_ID, "probe": "abc", "token": "t", "n": 2}
    assert client.post("/api/probe/x", json={"n": 2}).json == {"orderId": None, "probe": None, "token": None, "n": 2}
    # headers, then the query string, then the body: the first that is wrong is the answer
    long_token = "?token=" + "a" * 129
    assert client.post(path + long_token, json={}, headers={"X-Probe": "ABC"}).json["details"] == {"X-Probe": ["1-8 of a-z."]}
    assert set(client.post(path + long_token, json={}).json["details"]) == {"token"}
    assert client.post(path, data="{}", content_type="text/plain").status_code == 415
    assert client.post(path, json={"n": "x"}).json["details"] == {"n": ["Not a valid integer."]}


def test_a_declared_route_is_in_the_document_as_declared(probe_app):
    document = probe_app.test_client().get("/api/openapi.json").json
    operation = document["paths"]["/api/probe/{order_id}"]["post"]
    parameters = [(p["in"], p["name"]) for p in operation["parameters"]]
    assert parameters == [("path", "order_id"), ("header", "X-Probe"), ("query", "token")]
    assert operation["parameters"][1]["schema"] == {"type": "string", "pattern": "^[a-z]{1,8}$"}
    assert operation["requestBody"]["content"]["application/json"]["examples"] == {"one": {"value": {"n": 1}}}
    assert documented_errors(operation["responses"]["400"]) == {"validation_error", "invalid_url_encoding"}
    assert documented_errors(operation["responses"]["415"]) == {"unsupported_media_type"}
    assert "404" not in operation["responses"]  # nothing declared it
    assert openapi.operations(probe_app)["probe.probe"]["post"].summary == "A probe"


def test_the_payment_page_reads_the_store_once_and_not_at_all_for_a_wrong_token(client, unique_event):
    created = client.post("/api/orders", json=order_body(event_id=unique_event)).json
    reads = REGISTRY.get_sample_value("eventi_store_reads_total")
    assert client.get(f"/orders/{created['orderId']}/status?token=nope").status_code == 404
    assert REGISTRY.get_sample_value("eventi_store_reads_total") == reads
    assert client.get(f"/orders/{created['orderId']}/status?token={created['statusToken']}").status_code == 200
    assert REGISTRY.get_sample_value("eventi_store_reads_total") == reads + 1
