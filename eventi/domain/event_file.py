"""Event files: one event, or a list of them, as JSON or YAML, checked by a marshmallow schema.

`flask --app wsgi events load FILE` reads them (eventi/cli/app_commands.py); a file is either loaded whole or
not at all, and each problem is named by its place in the file ("ticketTypes.1.price: ...").

A file is refused before its events are checked when it is larger than MAX_FILE_BYTES, nests deeper
than MAX_DEPTH, holds more than MAX_VALUES keys and values, repeats a key in one mapping, or (YAML) uses
anchors, aliases or merge keys: each once ended in a traceback, a MemoryError or a silently
dropped value.
"""
import datetime
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from .. import strict_json
from ..schemas import SLUG, StrictInteger, no_control_chars
from .models import utcnow

SLUG_ERROR = "1-64 lowercase letters, digits or inner hyphens (a slug such as nairobi-jazz-2026)."
MAX_PAYMENT = 250_000
"""The most one M-Pesa payment may carry (KES)."""
MAX_FILE_BYTES = 4 * 1024 * 1024
"""The largest file read (4 MiB, thousands of events); no more than one byte past it is read."""
MAX_DEPTH = strict_json.MAX_DEPTH
"""Deepest nesting of lists and mappings (32, as for request bodies); an event file needs 4."""
MAX_VALUES = 200_000
"""Most keys and values (scalars, lists, mappings) in a file, some 5,000 events of 3 ticket types: what a
document may expand to, and what bounds the YAML parser's time (about 6 s for a file at the limit)."""
MAX_PROBLEMS = 50
"""Most problems listed; the rest are counted."""


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
    """The file cannot be loaded; str() lists every problem, one per line, each after its source."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source, self.problems = source, problems
        super().__init__("\n".join(f"{source}: {problem}" for problem in problems))


def read(path: str | Path) -> list[dict[str, Any]]:
    """The event documents a JSON or YAML file describes; raises EventFileError naming each problem."""
    path = Path(path)
    data = _read_bytes(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EventFileError(str(path), [f"cannot read it ({exc})"]) from None
    try:
        tree = _load_json(data, text) if path.suffix.lower() == ".json" else _load_yaml(text)
    except _Unparsed as exc:
        raise EventFileError(str(path), [str(exc)]) from None
    problem = _tree_problem(tree)
    if problem is not None:
        raise EventFileError(str(path), [problem])
    return parse(_dates_as_text(tree), str(path))


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, reading no more than one byte past MAX_FILE_BYTES."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise EventFileError(str(path), [f"cannot read it ({exc})"]) from None
    if len(data) > MAX_FILE_BYTES:
        raise EventFileError(str(path), [f"larger than {MAX_FILE_BYTES:,} bytes (4 MiB), the most an event file may be"])
    return data


class _Unparsed(ValueError):
    """The file could not be parsed, or was refused while parsing; str() is the sentence saying why."""


def _load_json(data: bytes, text: str) -> object:
    """The parsed JSON; raises _Unparsed (depth is counted before parsing, as for request bodies)."""
    depth = strict_json.nesting_depth(data)
    if depth is None:
        raise _Unparsed("not valid JSON (its brackets and braces do not balance)")
    if depth > MAX_DEPTH:
        raise _Unparsed(f"nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(text, object_pairs_hook=_KeyedOnce.from_pairs)
    except ValueError as exc:
        raise _Unparsed(f"not valid JSON ({exc})") from None


class _KeyedOnce(dict[str, Any]):
    """A JSON object; twice names the keys it held more than once (json keeps the last value silently)."""

    twice: list[str]

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, Any]]) -> "_KeyedOnce":
        """object_pairs_hook: the object, remembering repeated keys."""
        mapping = cls(pairs)
        keys = [key for key, _ in pairs]
        mapping.twice = sorted({key for key in keys if keys.count(key) > 1}) if len(mapping) < len(keys) else []
        return mapping


def _tree_problem(tree: object) -> str | None:
    """Whether a parsed file holds more than MAX_VALUES keys and values, or a repeated key (with its place)."""
    stack: list[tuple[object, tuple[str | int, ...]]] = [(tree, ())]
    values = 0
    while stack:
        value, path = stack.pop()
        values += 1 + (len(value) if isinstance(value, dict) else 0)
        if values > MAX_VALUES:
            return f"more than {MAX_VALUES:,} keys and values"
        if isinstance(value, _KeyedOnce) and value.twice:
            return f"{_place(path)}: the key {value.twice[0]!r} appears twice"
        if isinstance(value, dict):
            stack.extend((item, (*path, key)) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((item, (*path, index)) for index, item in enumerate(value))
    return None


def _place(path: tuple[str | int, ...]) -> str:
    """A place as the schema's messages name it: "[1] ticketTypes.0" in a list of events, "ticketTypes.0" in one."""
    if not path:
        return "(top level)"
    head, rest = (f"[{path[0]}] ", path[1:]) if isinstance(path[0], int) else ("", path)
    return (head + ".".join(str(part) for part in rest)).strip() or head.strip()


def _load_yaml(text: str) -> object:
    """The parsed YAML; raises _Unparsed saying why not, with its line and column."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader that refuses more
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = " ".join(str(exc.problem or exc.context).split())
        raise _Unparsed(f"{where}{problem}" if isinstance(exc, _Refused) else f"not valid YAML ({where}{problem})") from None
    except (ValueError, yaml.YAMLError) as exc:  # ValueError: an integer of 5,000 digits, month 13
        raise _Unparsed(f"not valid YAML ({' '.join(str(exc).split())})") from None


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, also refusing anchors and aliases (a 1 KB alias bomb took 1.5 GB), merge
    keys, nesting past MAX_DEPTH (the composer recurses), more than MAX_VALUES nodes (keys and values) and
    repeated keys."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0
        self.nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Refused("anchors and aliases (& and *) are not allowed in an event file", event.start_mark)
        self.nodes += 1
        if self.nodes > MAX_VALUES:
            raise _Refused(f"more than {MAX_VALUES:,} keys and values", event.start_mark)
        opens = isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent))
        self.depth += opens
        try:
            if self.depth > MAX_DEPTH:
                raise _Refused(f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self.depth -= opens

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        """Refuse merge keys (<<): they copy another mapping's keys, which is what aliases are for."""
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise _Refused("merge keys (<<) are not allowed in an event file", key_node.start_mark)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """The mapping, refusing a key it holds twice (safe_load keeps the last value silently)."""
        self.flatten_mapping(node)
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                repeated = key in seen
                seen.add(key)
            except TypeError:  # unhashable: the constructor below says so
                continue
            if repeated:
                raise _Refused(f"the key {key!r} appears twice", key_node.start_mark)
        return super().construct_mapping(node, deep)


class _Refused(yaml.MarkedYAMLError):
    """A YAML file refused for what it holds, not for its syntax."""

    def __init__(self, problem: str, mark: yaml.Mark) -> None:
        super().__init__(problem=problem, problem_mark=mark)


def parse(data: object, source: str = "event file") -> list[dict[str, Any]]:
    """Validate one event (a mapping) or several (a list, or {"events": [...]}); the stored documents."""
    if isinstance(data, dict) and set(data) == {"events"}:
        data = data["events"]
    many = isinstance(data, list)
    items: list[object] = data if isinstance(data, list) else [data]
    problems: list[str] = []
    documents: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        where = f"[{index}] " if many else ""
        if not isinstance(item, dict):
            problems.append(f"{where}expected an event (a mapping of id, name, startsAt, venue, ticketTypes)")
            continue
        try:
            documents.append(document(EventFileSchema().load(item)))
        except ValidationError as exc:
            problems.extend(f"{where}{place}: {message}" for place, message in _flatten(exc.messages))
    ids = [doc["_id"] for doc in documents]
    if len(ids) != len(set(ids)):
        problems.append("an event id appears twice")
    if len(problems) > MAX_PROBLEMS:
        problems[MAX_PROBLEMS:] = [f"... and {len(problems) - MAX_PROBLEMS:,} more problems"]
    if problems:
        raise EventFileError(source, problems)
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
