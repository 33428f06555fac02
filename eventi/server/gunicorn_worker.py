"""gunicorn's gevent worker, with eventi's rules for what happens below Flask.

- Errors gunicorn's parser raises (request line, headers, framing) answer the same JSON shape
  as the app's errors, not gunicorn's HTML page.
- A new connection has `header_timeout` seconds to send its first request's headers, else it is
  closed without an answer. Later requests on a kept-alive connection keep gunicorn's rule: the
  whole request head within `keepalive` of the previous answer (an idle keep-alive costs as much
  as a half-sent header, so a shorter limit there would protect nothing).
- When the worker stops, requests in progress are answered with `Connection: close`, and idle
  keep-alive connections are closed without a byte (no 500 page, no ERROR line): a stopping
  gevent worker otherwise waits for every connection greenlet, and an idle one stays until the
  keepalive timeout. Held waits are answered by the drain given to on_stop (eventi.runtime).
"""
import json
import sys
import threading
import traceback
import uuid
from collections.abc import Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import gevent
from greenlet import greenlet
from gunicorn import util
from gunicorn.http import errors
from gunicorn.workers.ggevent import GeventWorker
from werkzeug.exceptions import default_exceptions

from ..errors import EventiError
from ..problems import MEDIA_TYPE as PROBLEM
from ..problems import problem

if TYPE_CHECKING:
    from gevent.socket import socket
    from gunicorn._types import _AddressType  # the stubs' own alias: a TCP pair, a Unix path or a descriptor
    from gunicorn.http import Request

_STATUS = (  # first match wins; ParseException subclasses are the client's fault
    # the app's fault (new in gunicorn 23, not in types-gunicorn yet)
    ((errors.InvalidResponseHeader, errors.InvalidResponseHeaderName), 500),  # type: ignore[attr-defined]
    (errors.LimitRequestLine, 414),
    (errors.LimitRequestHeaders, 431),
    (errors.UnsupportedTransferCoding, 501),
    (errors.ExpectationFailed, 417),
    (errors.ForbiddenProxyRequest, 403),
    (errors.ConfigurationProblem, 500),
    (errors.ParseException, 400),
)


def status_for(exc: BaseException) -> int:
    """The HTTP status for an error raised below the app; 500 for anything not the client's fault."""
    for kinds, status in _STATUS:
        if isinstance(exc, kinds):
            return status
    return 500


def error_response(status: int, request_id: str) -> bytes:
    """A complete HTTP/1.1 error response in the app's problem details shape, named as the app names the
    status (eventi/web/error_handlers.py: werkzeug's name and description, and its own internal_error for a 500)."""
    if status == 500:
        error = problem(500, EventiError.code, EventiError.message, EventiError.message)
    else:
        http_error = default_exceptions[status]()
        error = problem(status, http_error.name.lower().replace(" ", "_"), http_error.name, str(http_error.description))
    body = json.dumps(error).encode()
    head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nConnection: close\r\n"
            f"Content-Type: {PROBLEM}\r\nContent-Length: {len(body)}\r\n"
            f"Cache-Control: no-store\r\nX-Request-ID: {request_id}\r\n\r\n")
    return head.encode("latin-1") + body


def _peer(addr: "_AddressType") -> str:
    """The client's address for a log line ("" on a Unix socket, whose peer has none)."""
    return str(addr[0]) if isinstance(addr, tuple) and addr else ""


class _Connection:
    """What the worker knows about one client connection (one greenlet)."""

    __slots__ = ("served", "request")

    def __init__(self) -> None:
        self.served = 0
        self.request: Request | None = None  # the request being served; None while waiting for the next one


def close_connection_after_response() -> None:
    """Ask the worker serving the current request to close its connection once it has answered
    (a body whose framing broke leaves the rest of the stream unreadable). A no-op outside gunicorn."""
    worker = EventiGeventWorker.running
    connection = worker._connections.get(gevent.getcurrent()) if worker else None
    if connection is not None and connection.request is not None:
        connection.request.must_close = True


class EventiGeventWorker(GeventWorker):
    """The gevent worker with JSON errors, a header timeout and a quiet stop."""

    running: "EventiGeventWorker | None" = None
    """The worker of this process, once it runs (one per process)."""

    header_timeout: float | None = None
    """Seconds a client has to send a request's headers (EVENTI_HEADER_TIMEOUT_SECONDS, set by
    eventi.runtime.Runtime.start); None keeps gunicorn's keepalive timeout for everything."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._connections: dict[greenlet, _Connection] = {}

    def init_process(self) -> None:
        EventiGeventWorker.running = self
        # Not recording each connection greenlet's spawning stack and tree: nothing reads them, and a held
        # wait kept them for its whole hold (docs/benchmarks.md, "Memory per held wait").
        gevent.config.track_greenlet_tree = False
        super().init_process()

    def handle(self, listener: "socket", client: "socket", addr: "_AddressType") -> None:
        current = gevent.getcurrent()
        self._connections[current] = _Connection()
        try:
            super().handle(listener, client, addr)
        finally:
            del self._connections[current]

    def handle_request(self, listener_name: "_AddressType", req: "Request", sock: "socket", addr: "_AddressType") -> bool:
        connection = self._connections.get(gevent.getcurrent())
        if connection is None:  # not through handle(): nothing to track
            return super().handle_request(listener_name, req, sock, addr)
        connection.request = req
        connection.served += 1
        try:
            return super().handle_request(listener_name, req, sock, addr)
        finally:
            connection.request = None

    def timeout_ctx(self) -> gevent.Timeout | None:  # type: ignore[override]  # the stubs say None; it is a Timeout
        """gunicorn reads each request inside this (base_async.AsyncWorker.handle): the first one on a
        connection within header_timeout of connecting, later ones within keepalive of the last answer.
        On expiry the read ends quietly with no request, and gunicorn closes the connection."""
        connection = self._connections.get(gevent.getcurrent())
        if connection is None or connection.served or self.header_timeout is None:
            return super().timeout_ctx()
        return gevent.Timeout(self.header_timeout, False)  # type: ignore[arg-type]  # False: expire silently

    def on_stop(self, drain: Callable[[], None]) -> None:
        """As soon as this worker is told to stop (SIGTERM, HUP reload): answer requests in progress with
        `Connection: close`, call drain (which answers held waits), then close idle connections until exit."""
        gevent.spawn(self._stop_quietly, drain)

    def _stop_quietly(self, drain: Callable[[], None]) -> None:
        while self.alive:
            gevent.sleep(0.2)
        # /readyz has answered 503 since alive turned False; tests and operators wait for this line.
        self.log.info("eventi worker draining (pid %s): not ready, answering held waits", self.pid)
        self.close_after_response()  # first: the waits answered next must close their connections
        drain()
        while True:  # idle keep-alive connections would hold the worker until the keepalive timeout
            self.close_idle_connections()
            gevent.sleep(0.2)

    def dump_stacks(self) -> None:
        """Log every thread's stack at DEBUG (worker_int: a blocked event loop shows up here)."""
        names = {t.ident: t.name for t in threading.enumerate()}
        for ident, frame in sys._current_frames().items():
            self.log.debug("# Thread %s (%s)\n%s", names.get(ident, ""), ident, "".join(traceback.format_stack(frame)))

    def close_after_response(self) -> None:
        """Answer every request in progress with `Connection: close`. gunicorn decides keep-alive when
        a request starts, so a wait held since before the stop would otherwise keep its connection."""
        for connection in self._connections.values():
            if connection.request is not None:
                connection.request.must_close = True

    def close_idle_connections(self) -> int:
        """Close the connections waiting for a next request (or its headers): their greenlets end
        quietly (see handle_error) and the client reads EOF."""
        idle = [glet for glet, connection in self._connections.items() if connection.request is None]
        for glet in idle:
            gevent.kill(glet)  # asynchronously, as Greenlet.kill(block=False)
        return len(idle)

    def handle_error(self, req: "Request | None", client: "socket", addr: "_AddressType", exc: BaseException) -> None:
        """gunicorn's handler, writing the app's JSON error shape instead of an HTML page."""
        if isinstance(exc, gevent.GreenletExit):  # closed by close_idle_connections: nothing to say
            self.log.debug("Closed an idle connection from %s", _peer(addr))
            return
        status = status_for(exc)
        request_id = uuid.uuid4().hex
        if status == 500:
            self.log.exception("Error handling request rid=%s", request_id)
        else:
            self.log.warning("Invalid request from ip=%s rid=%s: %s %s", _peer(addr), request_id,
                             status, exc)
        try:
            util.write_nonblock(client, error_response(status, request_id))
        except OSError:
            self.log.debug("Failed to send error message.")
