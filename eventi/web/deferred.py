"""A response worked out after Flask has let go of the request, so a held wait parks without its contexts."""
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from flask import Response
from werkzeug.wrappers import Response as AnyResponse

from ..errors import EventiError
from ..logs import REQUEST_ID
from .error_handlers import eventi_error_response, unexpected_error_response

log = logging.getLogger(__name__)

_PLACEHOLDER_HEADERS = frozenset(("content-type", "content-length"))


class DeferredResponse(Response):
    """A view's answer that is only known later (a held wait). Flask's after_request hooks see a 200 and add
    their headers (request id, Cache-Control, CORS); gunicorn then iterates it once Flask has popped the
    request and app contexts, so a parked request keeps `produce` and those headers, not the Request, `g`,
    the parsed query and the view's frames. `produce()` runs on the first iteration and returns the real
    response (EventiError: its problem details, as Flask's handler would); the hooks' headers are added to it
    unless it sets them itself; start_response is called then (PEP 3333 allows it on the first iteration)."""

    def __init__(self, produce: Callable[[], AnyResponse]) -> None:
        super().__init__()
        self._produce = produce
        self._answered: list[Callable[[int], None]] = []

    def when_answered(self, call: Callable[[int], None]) -> None:
        """Call `call(status)` once the real answer is known (request metrics observe its status and time)."""
        self._answered.append(call)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        extra = [(k, v) for k, v in self.headers.items() if k.lower() not in _PLACEHOLDER_HEADERS]
        return _answer(self._produce, extra, self._answered, REQUEST_ID.get(), environ, start_response)


def _answer(produce: Callable[[], AnyResponse], extra: list[tuple[str, str]], answered: list[Callable[[int], None]],
            request_id: str | None, environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
    REQUEST_ID.set(request_id)  # the log lines of the hold and its answer carry the request's id
    try:
        try:
            response = produce()
        except EventiError as exc:
            response = eventi_error_response(exc)
        except Exception:
            log.exception("Unhandled error")
            response = unexpected_error_response()
        for call in answered:
            call(response.status_code)
        own = {k.lower() for k in response.headers.keys()}
        for key, value in extra:
            if key.lower() not in own:
                response.headers.add(key, value)
        body, status, headers = response.get_wsgi_response(environ)
        start_response(status, headers)
    finally:
        REQUEST_ID.set(None)
    yield from body
