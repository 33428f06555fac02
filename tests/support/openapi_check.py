"""Checking a real answer against the OpenAPI document: its status, media type and headers are documented, and its
body fits the documented schema (the subset of JSON Schema the document uses: $ref, type, nullable, enum,
required, properties, additionalProperties, items, format date-time)."""
from datetime import datetime
from typing import Any

_TYPES: dict[str, type | tuple[type, ...]] = {"string": str, "integer": int, "number": (int, float), "boolean": bool,
                                              "array": list, "object": dict}


def resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """A node of the document, or the one its $ref names."""
    while "$ref" in node:
        found: Any = document
        for key in node["$ref"].removeprefix("#/").split("/"):
            found = found[key]
        node = found
    return node


def misfits(document: dict[str, Any], schema: dict[str, Any], value: Any, where: str = "$") -> list[str]:
    """Where value does not fit schema (an empty list when it does)."""
    schema = resolve(document, schema)
    if value is None:
        return [] if schema.get("nullable") else [f"{where}: null"]
    kind = schema.get("type")
    if kind and (not isinstance(value, _TYPES[kind]) or (kind in ("integer", "number") and isinstance(value, bool))):
        return [f"{where}: {value!r} is not {kind}"]
    found = []
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{where}: {value!r} not in {schema['enum']}")
    if schema.get("format") == "date-time":
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            found.append(f"{where}: {value!r} is not a date-time")
    if isinstance(value, dict):
        found += [f"{where}.{name}: missing" for name in schema.get("required", []) if name not in value]
        properties = schema.get("properties", {})
        for name, item in value.items():
            if name in properties:
                found += misfits(document, properties[name], item, f"{where}.{name}")
            elif schema.get("additionalProperties") is False:
                found.append(f"{where}.{name}: not allowed")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            found += misfits(document, schema["items"], item, f"{where}[{index}]")
    return found


def check_answer(document: dict[str, Any], path: str, method: str, status: int, content_type: str,
                 headers: Any, body: Any) -> None:
    """AssertionError unless the answer is one the document describes for that operation."""
    operation = document["paths"][path][method.lower()]
    where = f"{method} {path} {status}"
    assert str(status) in operation["responses"], f"{where}: status not documented"
    response = resolve(document, operation["responses"][str(status)])
    media_type = content_type.split(";")[0].strip()
    assert media_type in response.get("content", {}), f"{where}: {media_type} not documented"
    sometimes = {"Idempotent-Replayed"} | ({"Retry-After"} if status not in (429, 503) else set())  # replays, cut-short waits
    for name in set(response.get("headers", {})) - sometimes:
        assert name in headers, f"{where}: header {name} documented, not sent"
    assert not (problems := misfits(document, response["content"][media_type]["schema"], body)), f"{where}: {problems}"
