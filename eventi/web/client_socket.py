"""Noticing that a waiting client has gone, by peeking at gunicorn's raw socket."""
import socket


def client_gone_probe(environ):
    """A function telling whether the client closed its connection; None when unknowable."""
    sock = environ.get("gunicorn.socket")
    if sock is None:
        return None
    return lambda: connection_closed(sock)


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
