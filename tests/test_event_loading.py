"""`flask --app wsgi events load FILE`: JSON or YAML, validated whole, with each problem named by its place."""
import json
import os
import subprocess
import uuid

import pytest

from devstack.processes import ROOT
from eventi import event_file


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
    assert stored["ticketTypes"] == [{"id": "regular", "name": "Regular", "price": 2000, "capacity": 800, "maxPerOrder": 6}]
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
