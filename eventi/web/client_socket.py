"""Noticing that a waiting client has gone, from gunicorn's raw socket, at no cost while it stays."""
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gevent

if TYPE_CHECKING:
    from gevent._types import _IoWatcher  # what loop.io() returns, in gevent's stubs


class ClientConnection:
    """The waiting client's socket: wakes a waiter when it turns readable, tells whether it closed.
    Slots and a bound method as the watcher's callback (no closure): one is kept per held wait."""

    __slots__ = ("_sock", "_watcher", "_wake")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._watcher: _IoWatcher | None = None
        self._wake: Callable[[], None] | None = None

    def watch(self, wake: Callable[[], None]) -> None:
        """Call wake() once when the socket becomes readable (EOF, reset, or pipelined bytes)."""
        self._wake = wake
        self._watcher = gevent.get_hub().loop.io(self._sock.fileno(), 1)
        self._watcher.start(self._fire)

    def _fire(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()  # level-triggered: fire once, then look with gone()
        if self._wake is not None:
            self._wake()

    def gone(self) -> bool:
        return connection_closed(self._sock)

    def close(self) -> None:
        self._wake = None
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher.close()
            self._watcher = None


def client_connection(environ: dict[str, Any]) -> ClientConnection | None:
    """The ClientConnection of a gunicorn request, or None when the server does not expose it."""
    sock = environ.get("gunicorn.socket")
    return ClientConnection(sock) if sock is not None else None


def connection_closed(sock: socket.socket) -> bool:
    """True when the peer has closed (EOF or error); pipelined bytes do not count."""
    previous = sock.gettimeout()
    sock.settimeout(0.0)  # a non-blocking peek, also on gevent's cooperative sockets
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (TimeoutError, BlockingIOError):
        return False
    except OSError:
        return True
    finally:
        sock.settimeout(previous)
