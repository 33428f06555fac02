"""RFC 9457 problem details: the body every error answers, from the app and from below it (pure, no Flask).

`type` is `/api/docs#problem-<code>`: a URI relative to the answering host that names the error code and,
resolved (RFC 9457 3.1.1), opens that code's entry on /api/docs. `title` is the same for every answer of a
code; `detail` says what went wrong this time. `error` and `message` (the shape before problem details:
`error` is the code, `message` equals `detail`) stay, with any fields of the code's own (`details`, `orderId`).
docs/api.md holds the rules.
"""
from typing import Any

MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "/api/docs#problem-"


def type_uri(code: str) -> str:
    """The problem type of an error code."""
    return TYPE_PREFIX + code


def problem(status: int, code: str, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    """A problem details object; extra members (details, orderId, …) follow the standard ones."""
    return {"type": type_uri(code), "title": title, "status": status, "detail": detail,
            "error": code, "message": detail, **extra}
