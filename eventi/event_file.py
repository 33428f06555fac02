"""Event files: one event, or a list of them, as JSON or YAML, checked by a marshmallow schema.

`flask --app wsgi events load FILE` reads them (eventi/cli.py); a file is either loaded whole or
not at all, and each problem is named by its place in the file ("ticketTypes.1.price: ...").
"""
import datetime
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from .models import utcnow
from .schemas import SLUG, StrictInteger, no_control_chars

SLUG_ERROR = "1-64 lowercase letters, digits or inner hyphens (a slug such as nairobi-jazz-2026)."
MAX_PAYMENT = 250_000
"""The most one M-Pesa payment may carry (KES)."""


class TicketTypeFileSchema(Schema):
    id = fields.String(required=True, validate=validate.Regexp(SLUG, error=SLUG_ERROR))
    name = fields.String(required=True, validate=[validate.Length(min=1, max=100), no_control_chars])
    price = StrictInteger(required=True, validate=validate.Range(min=1, max=MAX_PAYMENT),
                          metadata={"description": "Whole shillings."})
    capacity = StrictInteger(required=True, validate=validate.Range(min=1, max=1_000_000))
    maxPerOrder = StrictInteger(load_default=10, validate=validate.Range(min=1, max=100))


class EventFileSchema(Schema):
    id = fields.String(required=True, validate=validate.Regexp(SLUG, error=SLUG_ERROR))
    name = fields.String(required=True, validate=[validate.Length(min=1, max=200), no_control_chars])
    startsAt = fields.AwareDateTime(required=True, format="iso",
                                    error_messages={"invalid": "Not an ISO 8601 date and time.",
                                                    "invalid_awareness": "Give the time zone, e.g. 2026-12-12T19:00:00+03:00."})
    venue = fields.String(required=True, validate=[validate.Length(min=1, max=200), no_control_chars])
    currency = fields.String(load_default="KES", validate=validate.OneOf(["KES"]))
    ticketTypes = fields.List(fields.Nested(TicketTypeFileSchema), required=True, validate=validate.Length(min=1, max=20))

    @validates_schema
    def _ticket_type_ids_are_unique(self, data: dict[str, Any], **kwargs: Any) -> None:
        ids = [ticket["id"] for ticket in data.get("ticketTypes", [])]
        if len(ids) != len(set(ids)):
            raise ValidationError("Ticket type ids must be unique within the event.", "ticketTypes")


class EventFileError(ValueError):
    """The file cannot be loaded; str() lists every problem, one per line."""


def read(path: str | Path) -> list[dict[str, Any]]:
    """The event documents a JSON or YAML file describes; raises EventFileError naming each problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EventFileError(f"{path}: cannot read it ({exc})") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise EventFileError(f"{path}: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'} ({exc})") from None
    return parse(_dates_as_text(data), str(path))


def parse(data: object, source: str = "event file") -> list[dict[str, Any]]:
    """Validate one event (a mapping) or several (a list, or {"events": [...]}); the stored documents."""
    if isinstance(data, dict) and set(data) == {"events"}:
        data = data["events"]
    many = isinstance(data, list)
    items: list[object] = data if isinstance(data, list) else [data]
    problems: list[str] = []
    documents: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        where = f"{source}: [{index}] " if many else f"{source}: "
        if not isinstance(item, dict):
            problems.append(f"{where}expected an event (a mapping of id, name, startsAt, venue, ticketTypes)")
            continue
        try:
            documents.append(document(EventFileSchema().load(item)))
        except ValidationError as exc:
            problems.extend(f"{where}{place}: {message}" for place, message in _flatten(exc.messages))
    ids = [doc["_id"] for doc in documents]
    if len(ids) != len(set(ids)):
        problems.append(f"{source}: an event id appears twice")
    if problems:
        raise EventFileError("\n".join(problems))
    return documents


def document(event: dict[str, Any]) -> dict[str, Any]:
    """The stored form of a validated event: its id as _id, the start time in UTC."""
    return {"_id": event["id"], "name": event["name"], "startsAt": event["startsAt"].astimezone(datetime.UTC),
            "venue": event["venue"], "currency": event["currency"], "ticketTypes": event["ticketTypes"],
            "updatedAt": utcnow()}


def _flatten(messages: object, prefix: str = "") -> Iterator[tuple[str, object]]:
    if isinstance(messages, dict):
        for key, value in messages.items():
            place = "(event)" if key == "_schema" and not prefix else f"{prefix}{key}" if key != "_schema" else prefix.rstrip(".")
            yield from _flatten(value, f"{place}." if not isinstance(value, list) else place)
    elif isinstance(messages, list):
        for message in messages:
            if isinstance(message, (dict, list)):
                yield from _flatten(message, prefix)
            else:
                yield prefix.rstrip(".") or "(event)", message


def _dates_as_text(data: object) -> object:
    """YAML reads 2026-12-12T19:00:00+03:00 as a datetime: give the schema the text it checks."""
    if isinstance(data, dict):
        return {key: _dates_as_text(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_dates_as_text(value) for value in data]
    if isinstance(data, (datetime.datetime, datetime.date)):
        return data.isoformat()
    return data
