"""Noticing that a waiting client has gone, from gunicorn's raw socket, at no cost while it stays."""
import socket

import gevent


class ClientConnection:
    """The waiting client's socket: wakes a waiter when it turns readable, tells whether it closed."""

    def __init__(self, sock) -> None:
        self._sock = sock
        self._watcher = None

    def watch(self, wake) -> None:
        """Call wake() once when the socket becomes readable (EOF, reset, or pipelined bytes)."""
        self._watcher = gevent.get_hub().loop.io(self._sock.fileno(), 1)

        def fire() -> None:
            self._watcher.stop()  # level-triggered: fire once, then look with gone()
            wake()

        self._watcher.start(fire)

    def gone(self):
        return connection_closed(self._sock)

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher.close()
            self._watcher = None


def client_connection(environ):
    """The ClientConnection of a gunicorn request, or None when the server does not expose it."""
    sock = environ.get("gunicorn.socket")
    return ClientConnection(sock) if sock is not None else None


def connection_closed(sock):
    """True when the peer has closed (EOF or error); pipelined bytes do not count."""
    previous = sock.gettimeout()
    sock.settimeout(0.0)  # a non-blocking peek, also on gevent's cooperative sockets
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (BlockingIOError, socket.timeout):
        return False
    except OSError:
        return True
    finally:
        sock.settimeout(previous)
