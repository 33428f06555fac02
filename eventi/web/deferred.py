"""A response worked out after Flask has let go of the request, so a held wait parks without its contexts."""
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import gevent
from flask import Response
from werkzeug.wrappers import Response as AnyResponse

from ..errors import EventiError
from ..logs import REQUEST_ID
from .error_handlers import eventi_error_response, unexpected_error_response

log = logging.getLogger(__name__)

_PLACEHOLDER_HEADERS = frozenset(("content-type", "content-length"))
WSGI_APP = Callable[[dict[str, Any], Any], Iterable[bytes]]


class DeferredResponse(Response):
    """A view's answer that is only known later (a held wait). Flask's after_request hooks see a 200 and add
    their headers (request id, Cache-Control, CORS); Flask then pops the request and app contexts and returns
    a `Deferred`, which `park_after_flask` (the app's outermost WSGI layer) answers: a parked request keeps
    `produce` and those headers, not the Request, `g`, the parsed query and the view's frames. `produce()`
    returns the real response (EventiError: its problem details, as Flask's handler would); the hooks'
    headers are added to it unless it sets them itself; start_response is called then."""

    def __init__(self, produce: Callable[[], AnyResponse], abandon: Callable[[], None]) -> None:
        super().__init__()
        self._produce = produce
        self._abandon = abandon  # releases what produce would have (the connection went before the hold)
        self._answered: list[Callable[[int], None]] = []

    def when_answered(self, call: Callable[[int], None]) -> None:
        """Call `call(status)` once the real answer is known (request metrics observe its status and time)."""
        self._answered.append(call)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> "Deferred":
        extra = [(k, v) for k, v in self.headers.items() if k.lower() not in _PLACEHOLDER_HEADERS]
        return Deferred(self._produce, self._abandon, extra, self._answered, REQUEST_ID.get(), environ,
                        start_response)


class Deferred:
    """What Flask returns for a DeferredResponse: answered by park_after_flask once Flask has returned (or,
    without it, on the first iteration: PEP 3333 allows start_response then)."""

    __slots__ = ("_produce", "abandon", "_extra", "_answered", "_request_id", "_environ", "_start_response")

    def __init__(self, produce: Callable[[], AnyResponse], abandon: Callable[[], None], extra: list[tuple[str, str]],
                 answered: list[Callable[[int], None]], request_id: str | None, environ: dict[str, Any],
                 start_response: Any) -> None:
        self._produce, self.abandon, self._extra, self._answered = produce, abandon, extra, answered
        self._request_id, self._environ, self._start_response = request_id, environ, start_response

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.answer())

    def answer(self) -> Iterable[bytes]:
        """Hold (in produce), then start the real response; its body."""
        environ = self._environ
        REQUEST_ID.set(self._request_id)  # the log lines of the hold and its answer carry the request's id
        try:
            try:
                response = self._produce()
            except EventiError as exc:
                response = eventi_error_response(exc)
            except Exception:
                log.exception("Unhandled error")
                response = unexpected_error_response()
            for call in self._answered:
                call(response.status_code)
            own = {k.lower() for k in response.headers.keys()}
            for key, value in self._extra:
                if key.lower() not in own:
                    response.headers.add(key, value)
            body, status, headers = response.get_wsgi_response(environ)
            self._start_response(status, headers)
        finally:
            REQUEST_ID.set(None)
        return body


def park_after_flask(wsgi_app: WSGI_APP) -> WSGI_APP:
    """The app's outermost WSGI layer: a Deferred answer holds here, after Flask (and any middleware under
    this one) has returned. A function, not a class: Python inlines the call, so a parked wait's greenlet
    saves one C frame fewer, and no generator or partial lies between gunicorn and the hold.

    A wait (GET .../wait) goes through Flask in a greenlet of its own, which ends before the hold: the
    connection's greenlet, which holds for up to 120 s, then never had Flask's, marshmallow's and the
    store clients' frames on it, and keeps a shallower Python data stack (about one 4 KB page less,
    docs/benchmarks.md, "Memory per held wait"). If the connection's greenlet is killed meanwhile (the
    worker stopping), the dispatch is killed too, or its hold released if it got that far."""

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "GET" and environ.get("PATH_INFO", "").endswith("/wait"):
            answer = _dispatched_apart(wsgi_app, environ, start_response)
        else:
            answer = wsgi_app(environ, start_response)
        if type(answer) is Deferred:
            environ.pop("werkzeug.request", None)  # Flask's Request object, its parsed query and caches
            return answer.answer()
        return answer

    return app


def _dispatched_apart(wsgi_app: WSGI_APP, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    dispatch = gevent.spawn(wsgi_app, environ, start_response)
    try:
        return dispatch.get()
    except BaseException:
        dispatch.kill()  # GreenletExit inside: begin() releases its slot and waiter, Flask pops its contexts
        if dispatch.successful() and type(dispatch.value) is Deferred:
            dispatch.value.abandon()  # it finished first: nobody will answer its hold
        raise
