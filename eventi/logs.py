"""Logging: one line per event, as text or JSON lines (EVENTI_LOG_FORMAT), with the request id, redacted.

Both formatters escape control characters in the message (format string and arguments alike), so a
caller's value (a callback's ExternalReference, a header) can never start a forged log line.
"""
import contextvars
import json
import logging
import os
import re
import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .domain import phones

if TYPE_CHECKING:
    from gunicorn.config import Config
    from gunicorn.glogging import Logger

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("eventi_request_id", default=None)
"""The id of the request the current greenlet serves (greenlet >= 1.0 gives each greenlet its own context)."""

_REDACTIONS = (
    # key=value secrets, as in query strings: token=abc -> token=***
    (re.compile(r"(?i)\b((?:[a-z_]*token|secret|password|api_?key|signature)=)[^&\s\"',;]+"), r"\1***"),
    # Authorization header values
    (re.compile(r"(?i)\b(Basic|Bearer)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 ***"),
    # 64-hex values: statusToken, callbackToken, the secret key
    (re.compile(r"(?<![0-9A-Fa-f])([0-9A-Fa-f]{4})[0-9A-Fa-f]{60}(?![0-9A-Fa-f])"), r"\1***"),
    # e-mail addresses: keep the first character and the domain
    (re.compile(r"(?<![\w.+-])([\w+-])[\w.+-]*@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)"), r"\1***@\2"),
    # Kenyan mobile numbers in any spelling (2547..., +2541..., 07..., 01...): keep the last 3 digits
    (re.compile(r"(?<![\w+])" + phones.MOBILE + r"(?!\w)"), r"***\2"),
)

_KEYWORDS = ("token=", "secret=", "password=", "apikey=", "api_key=", "signature=", "basic", "bearer", "@")
"""The first, second and fourth redactions need one of these in the (lowercased) line; the third a
64-hex run and the fifth a phone's digits, the two patterns below."""
_HEX_RUN = re.compile(r"[0-9A-Fa-f]{64}")
_PHONE_DIGITS = re.compile(phones.MOBILE)


_LINE_BREAKERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
"""Control characters (C0, DEL, C1 such as NEL), Unicode line and paragraph separators, lone surrogates."""


def escape_controls(text: str) -> str:
    """Write control characters as Python escapes (newline as \\n, ESC as \\x1b), so a logged value
    can neither start a line of its own nor drive a terminal."""
    return _LINE_BREAKERS.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def _may_hold_secret(text: str) -> bool:
    """False only when no redaction can match: most lines, checked far faster than by the five
    regular expressions (docs/benchmarks.md, cut 2). ASCII only: under IGNORECASE, "ſ", "K" (Kelvin), "İ" and "ı"
    match ASCII letters that lower() does not give, so other text takes the full path."""
    if not text.isascii():
        return True
    lowered = text.lower()
    return (any(word in lowered for word in _KEYWORDS)
            or _PHONE_DIGITS.search(text) is not None or _HEX_RUN.search(text) is not None)


def redact(text: str) -> str:
    """Mask tokens, phone numbers and e-mail addresses in a log line."""
    if not _may_hold_secret(text):
        return text
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


class RequestIdFilter(logging.Filter):
    """Put the current request id (or None) on every record as ``request_id``."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class TextFormatter(logging.Formatter):
    """``time [pid] LEVEL logger: message requestId=...``, redacted; the message on one line, escaped."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)  # the message only: a traceback keeps its lines
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None)
        if request_id:
            first, sep, rest = line.partition("\n")  # a traceback stays below the line it explains
            line = f"{first} requestId={request_id}{sep}{rest}"
        return redact(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, pid, event, message, requestId (in a request), every
    ``key=value`` of the message as a field of its own (orderId, status, ...), exc."""

    def format(self, record: logging.LogRecord) -> str:
        message = redact(escape_controls(record.getMessage()))
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "event": getattr(record, "event", None) or event_name(record.msg),
            "message": message,
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            line["requestId"] = request_id
        for key, value in _FIELDS.findall(message):
            line.setdefault(key, value)
        if record.exc_info:
            line["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(line)


_FIELDS = re.compile(r"(?<![\w.])([A-Za-z][A-Za-z0-9_]{0,40})=([^\s,;()]+)")
"""``orderId=6751…`` in a message: the fields that JsonFormatter lifts out."""
_EVENT_END = re.compile(r"\s+[A-Za-z][A-Za-z0-9_]*=|%|:|\(|\[|$")


def event_name(template: object) -> str:
    """A stable name for a log line, from its format string: "Long polling started orderId=%s" -> long_polling_started."""
    text = template if isinstance(template, str) else type(template).__name__
    end = _EVENT_END.search(text)  # never None: the pattern matches at the end of any text
    words = re.findall(r"[a-z0-9]+", text[:end.start() if end else len(text)].lower())
    return "_".join(words)[:64] or "log"


class AccessJsonFormatter(logging.Formatter):
    """gunicorn's access lines as JSON: its atoms become fields; the path never has its query string."""

    def format(self, record: logging.LogRecord) -> str:
        atoms: Mapping[str, Any] = record.args if isinstance(record.args, Mapping) else {}
        path = redact(escape_controls(str(atoms.get("U", "-"))))
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "event": "http_access",
            "method": atoms.get("m"),
            "path": path,
            "status": _int_or_none(atoms.get("s")),
            "bytes": _int_or_none(atoms.get("b")),
            "durationMs": atoms.get("M"),
            "remoteAddr": atoms.get("h"),
            "requestId": atoms.get("{x-request-id}o"),
            "forwardedFor": redact(escape_controls(str(atoms.get("{x-forwarded-for}i", "-")))),
            "userAgent": redact(escape_controls(str(atoms.get("a", "-")))),
            "message": redact(escape_controls(record.getMessage())),
        }
        order = re.search(r"/orders/([0-9a-f]{24})(?:/|$)", path)
        if order:
            line["orderId"] = order.group(1)
        return json.dumps(line)


def _int_or_none(value: object) -> int | None:
    return int(str(value)) if str(value).isdigit() else None


def configure(log_format: str = "text", level: str = "INFO") -> None:
    """Send the eventi loggers to stderr in the chosen format (idempotent)."""
    # No format here names the caller's file, function, line or thread: not looking them up (logging's
    # documented optimisations) spares a walk up the stack per line, which left a frame object per caller
    # alive on every held wait, and a gevent _DummyThread per greenlet that logs (docs/benchmarks.md,
    # "Memory per held wait").
    logging._srcfile = None
    logging.logThreads = False
    logger = logging.getLogger("eventi")
    logger.setLevel(level)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    logger.addHandler(handler)


class _RedactingFormatter(logging.Formatter):
    """Wraps another formatter and masks secrets in what it produces."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record))


def gunicorn_logger_class() -> type["Logger"]:
    """gunicorn's Logger with its error and access lines redacted (gunicorn.conf.py's logger_class).

    gunicorn's own lines can carry a query string ("Error handling request /…?token=…", or an
    access_log_format with %(r)s). Imports gunicorn only when called: the master calls it once.
    """
    from gunicorn.glogging import Logger

    class RedactingLogger(Logger):
        def setup(self, cfg: "Config") -> None:
            super().setup(cfg)
            for log in (self.error_log, self.access_log):
                for handler in log.handlers:
                    if not isinstance(handler.formatter, (_RedactingFormatter, JsonFormatter, AccessJsonFormatter)):
                        handler.setFormatter(_RedactingFormatter(handler.formatter or logging.Formatter()))

        def _compute_access_log_enabled(self) -> bool:
            return bool(self.cfg.accesslog)  # EVENTI_ACCESS_LOG alone decides, logconfig_dict or not

    return RedactingLogger


def gunicorn_logconfig(log_format: str, level: str, access_log: str | None) -> dict[str, Any]:
    """gunicorn.conf.py's logconfig_dict: in JSON mode, gunicorn's error and access lines (and any other
    library's warnings) as JSON too; in text mode nothing ({}), gunicorn's own human format stays."""
    if log_format != "json":
        return {}
    access_handler = ({"class": "logging.StreamHandler", "stream": "ext://sys.stdout"} if access_log == "-"
                      else {"class": "logging.FileHandler", "filename": access_log})
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"json": {"()": JsonFormatter}, "access": {"()": AccessJsonFormatter}},
        "handlers": {
            "error": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "json",
                      "filters": ["request_id"]},
            **({"access": {**access_handler, "formatter": "access"}} if access_log else {}),
        },
        "root": {"level": "WARNING", "handlers": ["error"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["error"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["access"] if access_log else [], "propagate": False},
        },
    }


def startup_error(message: str, log_format: str | None) -> str:
    """The one line an invalid setting prints before logging is set up: JSON in JSON mode."""
    line = f"eventi: invalid setting: {message}"
    if log_format != "json":
        return line
    return json.dumps({"ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "level": "CRITICAL", "logger": "eventi",
                       "pid": os.getpid(), "event": "invalid_setting", "setting": message.split(" ", 1)[0], "message": line})
