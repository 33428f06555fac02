"""Log lines: redaction of tokens, phones and e-mails; request ids per request and per greenlet; ProxyFix."""
import json
import logging
import sys

import gevent
import pytest
from flask import request
from hypothesis import example, given, settings
from hypothesis import strategies as st

from eventi import logs
from eventi.logs import REQUEST_ID, JsonFormatter, RequestIdFilter, TextFormatter, redact
from eventi.runtime import current_runtime

TOKEN = "3f1c9a7e5b2d4f6081a3c5e7f9b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7"


@pytest.mark.parametrize("text, secret, kept", [
    ("phone=254712345678 sent", "254712345678", "678"),
    ("phone +254112345678", "254112345678", "678"),
    ("from 0712345678.", "0712345678", "678"),
    ("email=wanjiru.kamau@example.co.ke", "wanjiru.kamau@", "@example.co.ke"),
    (f"GET /api/orders/x/wait?token={TOKEN[:20]}&timeout=5", TOKEN[:20], "timeout=5"),
    (f"statusToken {TOKEN} issued", TOKEN, TOKEN[:4]),
    ('{"callbackToken": "abc"} url?callback_token=s3cr3t', "s3cr3t", "callback_token=***"),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload", "eyJhbGciOiJIUzI1NiJ9", "Bearer ***"),
])
def test_redact_masks_secrets_and_keeps_context(text, secret, kept):
    masked = redact(text)
    assert secret not in masked
    assert kept in masked


@pytest.mark.parametrize("text", [
    "orderId=6751a3f2c9e77b0012ab34cd status=completed",  # ids, amounts and receipts stay readable
    "amount=1500 waitedMs=20713 receipt=TKS2P0X9QH",
    "orderId=0712345678abcdef01234567",  # hex that merely contains a phone-like run
])
def test_redact_leaves_ordinary_fields_alone(text):
    assert redact(text) == text


def redact_in_full(text):
    """Every redaction over the whole line, as redact() did before its pre-check."""
    for pattern, replacement in logs._REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


SECRETY = ["token=", "Token=", "secret=", "PASSWORD=", "api_key=", "apikey=", "signature=", "Basic ", "bearer ", "@",
           "example.co.ke", "w.k@example.com", "254712345678", "+254112345678", "0712345678", "0112345678", TOKEN, TOKEN.upper(),
           "abcdefgh12", "=", "&", " ", ".", "0", "7", "1", "ſecret=", "to\u212aen=", "apİkey=", "apıkey=", "é"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(SECRETY), st.text(max_size=6)), max_size=12).map("".join))
@example("secret=abc \u017fecret=def")
@example("to\u212aen=abc")
@example("mail a.b@example.co.ke")
@example("call +254712345678")
@example("call 0112345678")
@example("Authorization: Bearer abcdefgh12")
@example(f"key {TOKEN}")
@example("url?API_KEY=abc")
def test_the_pre_check_never_changes_what_is_masked(text):
    assert redact(text) == redact_in_full(text)


@pytest.mark.parametrize("line", [
    "2026-11-29 19:55:00,123 [1234] INFO eventi.services.callbacks: Payment status stored "
    "orderId=6751a3f2c9e77b0012ab34cd status=completed source=callback requestId=0f8c6a0251b44c619a478c5c1f3a4e10",
    "2026-11-29 19:55:00,123 [1234] INFO eventi.services.waiting: Payment status changed via Redis "
    "orderId=6751a3f2c9e77b0012ab34cd status=completed elapsedMs=20713 requestId=e68a53c8c3494e92a308de8eef0deb03",
])
def test_ordinary_lines_skip_the_redaction_patterns(line):
    """The lines logged per callback and per wait hold nothing to mask: the five patterns are not run."""
    assert not logs._may_hold_secret(line)


def record(message, *args, exc_info=None):
    rec = logging.LogRecord("eventi.test", logging.INFO, __file__, 1, message, args, exc_info)
    RequestIdFilter().filter(rec)
    return rec


def test_json_formatter_gives_one_redacted_object_with_request_id():
    token = REQUEST_ID.set("req-42")
    try:
        line = JsonFormatter().format(record("STK push to %s for %s", "254712345678", "a@example.com"))
    finally:
        REQUEST_ID.reset(token)
    assert "\n" not in line
    data = json.loads(line)
    assert data["requestId"] == "req-42"
    assert data["message"] == "STK push to ***678 for a***@example.com"
    assert {"ts", "level", "logger", "pid"} <= set(data)


@pytest.mark.parametrize("formatter", [TextFormatter, JsonFormatter])
def test_control_characters_in_a_message_are_escaped_in_both_formats(formatter):
    """A value can neither start a line (\\n, \\r, NEL, U+2028) nor drive a terminal (ESC)."""
    value = "abc\n2026-01-01 00:00:00,000 [1] INFO eventi: forged\r\x1b[2J\x85\u2028\u2029\ud800 é 🎟"
    line = formatter().format(record("PayHero callback rejected orderId=%s", value))
    message = json.loads(line)["message"] if formatter is JsonFormatter else line
    assert len(line.splitlines()) == 1 and len(message.splitlines()) == 1
    assert message.endswith("orderId=abc\\n2026-01-01 00:00:00,000 [1] INFO eventi: forged"
                            "\\r\\x1b[2J\\x85\\u2028\\u2029\\ud800 é 🎟")


def test_text_formatter_appends_request_id_on_the_first_line_and_redacts_tracebacks():
    try:
        raise ValueError(f"bad token={TOKEN}")
    except ValueError:
        exc_info = sys.exc_info()
    token = REQUEST_ID.set("req-7")
    try:
        text = TextFormatter().format(record("Unhandled error", exc_info=exc_info))
    finally:
        REQUEST_ID.reset(token)
    first, rest = text.split("\n", 1)
    assert first.endswith("eventi.test: Unhandled error requestId=req-7")
    assert "ValueError: bad token=***" in rest and TOKEN not in text
    assert "requestId" not in TextFormatter().format(record("outside any request"))


def test_each_greenlet_has_its_own_request_id():
    """greenlet >= 1.0 gives every greenlet its own contextvars context; gevent's hub does not share it."""
    seen = {}

    def serve(request_id):
        REQUEST_ID.set(request_id)
        gevent.sleep(0)  # let the others set theirs in between
        seen[request_id] = REQUEST_ID.get()

    gevent.joinall([gevent.spawn(serve, f"r{i}") for i in range(20)])
    assert seen == {f"r{i}": f"r{i}" for i in range(20)}
    assert REQUEST_ID.get() is None


@pytest.mark.parametrize("given, kept", [
    ("abc-123_X.y:z", True),
    ("0f8c6a02-51b4-4c61-9a47-8c5c1f3a4e10", True),
    ("", False),
    ("has space", False),
    ("x" * 65, False),
    ("semi;colon", False),
    ("new\nline", False),
])
def test_request_id_is_taken_only_when_short_and_safe(client, given, kept):
    headers = {"X-Request-ID": given} if "\n" not in given else {}
    response = client.get("/healthz", headers=headers)
    returned = response.headers["X-Request-ID"]
    if kept:
        assert returned == given
    else:
        assert returned != given and len(returned) == 32 and int(returned, 16) >= 0


def test_request_id_is_on_error_answers_too(client):
    response = client.get("/api/orders/nope", headers={"X-Request-ID": "err-1"})
    assert response.status_code == 404 and response.headers["X-Request-ID"] == "err-1"


def test_request_id_is_forgotten_after_the_request(client):
    client.get("/healthz", headers={"X-Request-ID": "gone-after"})
    assert REQUEST_ID.get() is None


def test_proxy_count_trusts_only_the_last_forwarded_hop(settings):
    from eventi import create_app

    app = create_app({**settings, "PROXY_COUNT": 1})
    seen = []
    app.get("/test-remote-addr")(lambda: seen.append(request.remote_addr) or "ok")
    try:
        app.test_client().get("/test-remote-addr", headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.9"},
                              environ_base={"REMOTE_ADDR": "127.0.0.1"})
    finally:
        current_runtime(app).close()
    assert seen == ["203.0.113.9"]


def test_without_proxy_count_forwarded_for_is_ignored(app):
    seen = []
    app.get("/test-remote-addr")(lambda: seen.append(request.remote_addr) or "ok")
    app.test_client().get("/test-remote-addr", headers={"X-Forwarded-For": "6.6.6.6"},
                          environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert seen == ["127.0.0.1"]


def test_json_lines_carry_the_event_and_each_key_value_as_a_field():
    data = json.loads(JsonFormatter().format(record("Long polling started orderId=%s timeout=%ss phone=%s",
                                                    "6751a3f2c9e77b0012ab34cd", 60, "254712345678")))
    assert data["event"] == "long_polling_started"
    assert (data["orderId"], data["timeout"], data["phone"]) == ("6751a3f2c9e77b0012ab34cd", "60s", "***678")
    assert json.loads(JsonFormatter().format(record("level=%s", "forged")))["level"] == "INFO"  # a message never overrides


def test_access_lines_become_json_fields_without_the_query():
    from eventi.logs import AccessJsonFormatter

    atoms = {"m": "GET", "U": "/api/orders/6751a3f2c9e77b0012ab34cd/wait", "s": "200", "b": "163", "M": 20713,
             "h": "10.0.0.7", "{x-request-id}o": "rid-1", "{x-forwarded-for}i": "203.0.113.9", "a": "Mozilla/5.0"}
    rec = logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1, '%(m)s %(U)s %(s)s', (atoms,), None)
    data = json.loads(AccessJsonFormatter().format(rec))
    assert data == {**{k: data[k] for k in ("ts", "pid", "message")}, "level": "INFO", "logger": "gunicorn.access",
                    "event": "http_access", "method": "GET", "path": "/api/orders/6751a3f2c9e77b0012ab34cd/wait",
                    "status": 200, "bytes": 163, "durationMs": 20713, "remoteAddr": "10.0.0.7", "requestId": "rid-1",
                    "forwardedFor": "203.0.113.9", "userAgent": "Mozilla/5.0", "orderId": "6751a3f2c9e77b0012ab34cd"}
