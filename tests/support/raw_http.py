"""HTTP/1.1 on a raw socket: for what requests hides (keep-alive, pipelining, malformed requests, EOF)."""
import socket
from dataclasses import dataclass


@dataclass
class RawResponse:
    status: int
    headers: dict  # lower-case names
    body: bytes


def connect(port, timeout=30):
    """A client socket; `timeout` only stops a broken test from hanging, it asserts nothing."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(timeout)
    return sock


def get(path, **headers):
    lines = [f"GET {path} HTTP/1.1", "Host: test", *(f"{k.replace('_', '-')}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Reader:
    """Reads responses, one at a time, off a kept-alive connection."""

    def __init__(self, sock):
        self.sock = sock
        self.buffer = b""

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError(f"connection closed with {self.buffer!r} unread")
        self.buffer += data

    def response(self):
        """The next complete response (Content-Length framed, as eventi and gunicorn's errors are)."""
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in lines)}
        length = int(headers.get("content-length", 0))
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return RawResponse(int(status_line.split()[1]), headers, body)

    def rest(self):
        """Every byte until the server closes the connection (b"" when it sends nothing more)."""
        rest, self.buffer = self.buffer, b""
        while True:
            data = self.sock.recv(65536)
            if not data:
                return rest
            rest += data
