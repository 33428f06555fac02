"""`flask --app wsgi events load FILE`: JSON or YAML, validated whole, with each problem named by its place."""
import json
import os
import subprocess
import uuid

import pytest

from devstack.processes import ROOT
from eventi.domain import event_file


@pytest.fixture
def load(app):
    runner = app.test_cli_runner()
    return lambda path: runner.invoke(args=["events", "load", str(path)])


def an_event(event_id, price=1500, **extra):
    return {"id": event_id, "name": "Sauti Sol Live", "startsAt": "2030-06-01T20:00:00+03:00", "venue": "KICC, Nairobi",
            "ticketTypes": [{"id": "regular", "name": "Regular", "price": price, "capacity": 800, "maxPerOrder": 6}], **extra}


def test_a_json_file_creates_then_updates_an_event(load, runtime, tmp_path):
    event_id = "ev-" + uuid.uuid4().hex[:10]
    path = tmp_path / "event.json"
    path.write_text(json.dumps(an_event(event_id)))
    first = load(path)
    assert first.exit_code == 0, first.output
    assert f"event {event_id} created: Sauti Sol Live (regular KES 1,500 x 800)" in first.output
    path.write_text(json.dumps(an_event(event_id, price=2000)))
    assert f"event {event_id} updated" in load(path).output
    stored = runtime.events.get(event_id)
    assert stored["ticketTypes"] == [{"id": "regular", "name": "Regular", "price": 2000, "capacity": 800, "maxPerOrder": 6,
                                      "slots": 800}]  # slots: the highest capacity it had (eventi/storage/event_store.py)
    assert (stored["currency"], stored["startsAt"].isoformat()) == ("KES", "2030-06-01T17:00:00+00:00")


def test_a_yaml_file_with_several_events_and_a_bare_timestamp(load, runtime, tmp_path):
    first, second = ("ev-" + uuid.uuid4().hex[:10] for _ in range(2))
    path = tmp_path / "events.yaml"
    path.write_text(f"""
- id: {first}
  name: Blankets and Wine
  startsAt: 2030-03-01T14:00:00+03:00
  venue: Laureate Gardens
  ticketTypes:
    - {{id: early-bird, name: Early bird, price: 2500, capacity: 100}}
- id: {second}
  name: Koroga Festival
  startsAt: "2030-04-01T14:00:00+03:00"
  venue: Two Rivers
  ticketTypes:
    - {{id: regular, name: Regular, price: 3000, capacity: 50, maxPerOrder: 2}}
""")
    result = load(path)
    assert result.exit_code == 0, result.output
    assert runtime.events.get(first)["ticketTypes"][0]["maxPerOrder"] == 10  # the default
    assert runtime.events.get(second)["name"] == "Koroga Festival"


def test_an_invalid_file_loads_nothing_and_names_each_problem(load, runtime, tmp_path):
    good, bad = "ev-" + uuid.uuid4().hex[:10], "ev-" + uuid.uuid4().hex[:10]
    broken = an_event(bad, startsAt="2030-06-01T20:00:00", currency="USD")
    broken["ticketTypes"] = [{"id": "Regular Seat", "name": "Regular", "price": 1500.5, "capacity": 0, "seats": 3}]
    path = tmp_path / "events.json"
    path.write_text(json.dumps([an_event(good), broken]))
    result = load(path)
    assert result.exit_code == 1
    for line in ["[1] startsAt: Give the time zone, e.g. 2026-12-12T19:00:00+03:00.",
                 "[1] currency: Must be one of: KES.",
                 "[1] ticketTypes.0.id: 1-64 lowercase letters, digits or inner hyphens",
                 "[1] ticketTypes.0.price: Not a valid integer.",
                 "[1] ticketTypes.0.capacity: Must be greater than or equal to 1",
                 "[1] ticketTypes.0.seats: Unknown field."]:
        assert line in result.output, result.output
    assert runtime.events.get(good) is None and runtime.events.get(bad) is None


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ('{"id": "x", "name": "x", "startsAt": "2030-01-01T00:00:00Z", "venue": "v", "ticketTypes": ['
     '{"id": "a", "name": "A", "price": 1, "capacity": 1}, {"id": "a", "name": "B", "price": 2, "capacity": 1}]}',
     "ticketTypes: Ticket type ids must be unique within the event."),
    ('"just text"', "expected an event"),
])
def test_malformed_files_are_refused_with_a_sentence(load, tmp_path, text, message):
    path = tmp_path / "event.json"
    path.write_text(text)
    result = load(path)
    assert result.exit_code == 1 and message in result.output, result.output


def test_the_demo_event_file_is_valid():
    [demo] = event_file.read(ROOT / "eventi" / "demo_event.json")
    assert demo["_id"] == "demo" and {t["id"] for t in demo["ticketTypes"]} == {"regular", "vip"}


def test_the_cli_loads_a_file_in_a_process_of_its_own(settings, tmp_path):
    """As make run does it: `flask --app wsgi events load eventi/demo_event.json`."""
    env = {**os.environ, "EVENTI_ENV": "test", "EVENTI_SECRET_KEY": settings["SECRET_KEY"], "EVENTI_VAR_DIR": str(tmp_path),
           "EVENTI_MONGO_URI": settings["MONGO_URI"], "EVENTI_REDIS_URL": settings["REDIS_URL"]}
    done = subprocess.run([str(ROOT / ".venv" / "bin" / "flask"), "--app", "wsgi", "events", "load", "eventi/demo_event.json"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("event demo updated: Nairobi Jazz Night")  # the settings fixture stored it first


# --- Hostile files (issue 19, item 6): each refused with one line on stderr, exit status 1, no traceback ---------


def refused(result, message):
    """The command failed as a refusal does: status 1, one line on stderr naming the problem, nothing raised."""
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert "Traceback" not in result.output
    return result.stderr


def yaml_event(event_id, ticket_line="{id: regular, name: Regular, price: 1500, capacity: 10}", **lines):
    fields = {"id": event_id, "name": "Sauti Sol Live", "startsAt": "2030-06-01T20:00:00+03:00", "venue": "KICC", **lines}
    return "".join(f"{key}: {value}\n" for key, value in fields.items()) + f"ticketTypes:\n  - {ticket_line}\n"


@pytest.mark.parametrize("name, text", [
    ("deep.json", "[" * 3000 + "]" * 3000),
    ("deep-objects.json", '{"a": ' * 3000 + "1" + "}" * 3000),
    ("deep.yaml", "[" * 3000 + "]" * 3000),
    ("deep-block.yaml", "".join(" " * level + "-\n" for level in range(1000))),  # 500 KB
    ("33.json", "[" * 33 + "]" * 33),
    ("33.yaml", "[" * 33 + "]" * 33),
])
def test_nesting_past_32_levels_is_refused(load, tmp_path, name, text):
    """3,000 levels once ended in a RecursionError traceback; 32 levels are parsed (and refused as no event)."""
    path = tmp_path / name
    path.write_text(text)
    refused(load(path), "nested deeper than 32 levels")
    path.write_text("[" * 32 + "]" * 32)
    refused(load(path), "expected an event")


@pytest.mark.parametrize("text", [
    # An alias bomb, kept tiny: each level would double what the one before expands to.
    "a: &a [lol, lol]\nb: &b [*a, *a]\nc: &c [*b, *b]\nd: [*c, *c]\n",
    "a: &x 1\n",  # an anchor alone
    "types: &types\n  - {id: regular, name: Regular, price: 1500, capacity: 10}\n",
])
def test_yaml_anchors_and_aliases_are_refused(load, tmp_path, text):
    path = tmp_path / "event.yaml"
    path.write_text(text)
    assert "line 1, column" in refused(load(path), "anchors and aliases (& and *) are not allowed")


def test_an_event_using_a_yaml_alias_or_merge_key_is_refused_and_not_loaded(load, runtime, tmp_path):
    event_id = "ev-" + uuid.uuid4().hex[:10]
    path = tmp_path / "event.yaml"
    path.write_text(yaml_event(event_id, venue="&v KICC", name="*v"))
    refused(load(path), "anchors and aliases")
    path.write_text(yaml_event(event_id, ticket_line="{<<: {price: 1}, id: regular, name: Regular, price: 1500, capacity: 10}"))
    refused(load(path), "merge keys (<<) are not allowed")
    assert runtime.events.get(event_id) is None


def test_a_repeated_key_is_refused_with_its_place(load, runtime, tmp_path):
    """A price of 100000 then 1 was stored as 1."""
    event_id = "ev-" + uuid.uuid4().hex[:10]
    path = tmp_path / "events.json"
    path.write_text(json.dumps([an_event(event_id)]).replace('"price": 1500', '"price": 100000, "price": 1'))
    refused(load(path), "[0] ticketTypes.0: the key 'price' appears twice")
    path.write_text(json.dumps(an_event(event_id)).replace('"venue"', '"name": "Other", "venue"'))
    refused(load(path), "(top level): the key 'name' appears twice")
    path = tmp_path / "event.yaml"
    path.write_text(yaml_event(event_id, ticket_line="{id: regular, name: Regular, price: 100000, price: 1, capacity: 10}"))
    refused(load(path), "line 6, column 49: the key 'price' appears twice")
    path.write_text(yaml_event(event_id) + "name: Other\n")
    refused(load(path), "line 7, column 1: the key 'name' appears twice")
    assert runtime.events.get(event_id) is None


def test_a_file_past_4_mib_is_refused_unread_and_one_of_4_mib_loads(load, runtime, tmp_path):
    event_id = "ev-" + uuid.uuid4().hex[:10]
    path = tmp_path / "event.json"
    path.write_bytes(json.dumps(an_event(event_id)).encode().ljust(event_file.MAX_FILE_BYTES + 1))
    refused(load(path), "larger than 4,194,304 bytes (4 MiB)")
    assert runtime.events.get(event_id) is None
    path.write_bytes(json.dumps(an_event(event_id)).encode().ljust(event_file.MAX_FILE_BYTES))
    assert load(path).exit_code == 0 and runtime.events.get(event_id) is not None


def test_more_values_than_the_limit_are_refused(load, tmp_path, monkeypatch):
    """What a document may hold once parsed (aliases could make a small file huge; they are refused too)."""
    path = tmp_path / "many.json"
    path.write_text(json.dumps([0] * event_file.MAX_VALUES))  # 200,001 with the list: one too many
    refused(load(path), "more than 200,000 keys and values")
    monkeypatch.setattr(event_file, "MAX_VALUES", 1_000)  # the YAML parser is slower: check it on a smaller limit
    path = tmp_path / "many.yaml"
    path.write_text("[" + "0, " * 1_000 + "]")
    refused(load(path), "more than 1,000 keys and values")
    path.write_text("{" + ", ".join(f"k{i}: 0" for i in range(500)) + "}")  # 500 keys and 500 values, one mapping
    refused(load(path), "more than 1,000 keys and values")
    path = tmp_path / "many.json"
    path.write_text(json.dumps({f"k{i}": 0 for i in range(500)}))
    refused(load(path), "more than 1,000 keys and values")


def test_problems_past_50_are_counted_not_listed(load, tmp_path):
    path = tmp_path / "events.json"
    path.write_text(json.dumps(["x"] * 500))
    result = load(path)
    assert result.exit_code == 1 and result.stderr.count("expected an event") == 50
    assert "... and 450 more problems" in result.stderr


@pytest.mark.parametrize("field", ["name", "venue", "ticket name"])
@pytest.mark.parametrize("char", ["\x1b", "\x07", "\t", "\x7f", "\x85", "\x9b", "\u202a", "\u202b", "\u202d", "\u202e",
                                  "\u2066", "\u2067", "\u2068", "\u2069", "\u200e", "\u061c", "\u2028", "\u2029",
                                  "\u200b", "\u2060", "\ufeff", "\U000e0041"])
def test_text_shown_to_shoppers_refuses_control_bidi_and_invisible_characters(load, runtime, tmp_path, field, char):
    event_id = "ev-" + uuid.uuid4().hex[:10]
    event = an_event(event_id)
    text = f"Sauti{char}Sol"
    if field == "ticket name":
        event["ticketTypes"][0]["name"] = text
    else:
        event[field] = text
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    place = "ticketTypes.0.name" if field == "ticket name" else field
    refused(load(path), f"{place}: Control characters are not allowed (U+{ord(char):04X}).")
    assert runtime.events.get(event_id) is None


def test_text_in_other_scripts_with_joiners_and_emoji_loads(load, runtime, tmp_path):
    event_id = "ev-" + uuid.uuid4().hex[:10]
    name = "Njeri wa Mũthoni · حفلة · मैं · می‌خواهم · 👩‍🎤 🇰🇪"  # ZWNJ in Persian, ZWJ in the emoji
    path = tmp_path / "event.yaml"
    text = yaml_event(event_id, name=json.dumps(name, ensure_ascii=False), venue="Ngong\u00a0Racecourse")
    path.write_text(text, encoding="utf-8")
    result = load(path)
    assert result.exit_code == 0, result.output
    assert runtime.events.get(event_id)["name"] == name


def test_what_a_refusal_quotes_from_the_file_is_escaped(load, tmp_path):
    """An unknown key is named by the refusal: its escape sequences must not reach the operator's terminal."""
    path = tmp_path / "event.json"
    path.write_text(json.dumps(an_event("ev-x", **{"\x1b]0;owned\x07\x1b[2J\u202e": 1})))
    stderr = refused(load(path), r"\x1b]0;owned\x07\x1b[2J\u202e: Unknown field.")
    assert not {"\x1b", "\x07", "\u202e"} & set(stderr)


def test_a_hostile_file_is_refused_in_a_process_of_its_own(settings, tmp_path):
    """The command as ops run it: 3,000 nested lists once printed a RecursionError traceback."""
    path = tmp_path / "deep.json"
    path.write_text("[" * 3000 + "]" * 3000)
    env = {**os.environ, "EVENTI_ENV": "test", "EVENTI_SECRET_KEY": settings["SECRET_KEY"], "EVENTI_VAR_DIR": str(tmp_path),
           "EVENTI_MONGO_URI": settings["MONGO_URI"], "EVENTI_REDIS_URL": settings["REDIS_URL"]}
    done = subprocess.run([str(ROOT / ".venv" / "bin" / "flask"), "--app", "wsgi", "events", "load", str(path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == f"Error: {path} not loaded: nested deeper than 32 levels\n"
