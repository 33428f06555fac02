"""A minimal HTTP/1.1 client on raw sockets: one request at a time per connection, keep-alive."""
import json
import socket

IP_BIND_ADDRESS_NO_PORT = 24
"""Linux: pick the source port at connect(), so many sources can share the ephemeral range."""


class HttpError(Exception):
    """The connection failed or the answer was not HTTP."""


class Connection:
    """One keep-alive connection; request() sends one request and reads the full answer."""

    def __init__(self, host, port, source_ip=None, timeout=None):
        self.host, self.port = host, port
        self.source_ip = source_ip
        self.timeout = timeout
        self.sock = None
        self._buffer = b""

    def connect(self):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.source_ip:
            sock.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((self.source_ip, 0))
        sock.settimeout(self.timeout)
        try:
            sock.connect((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.sock = sock
        self._buffer = b""

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def send(self, method, path, body=None, content_type="application/json"):
        """Send a request in one write (headers and body together: no Nagle stall)."""
        if self.sock is None:
            self.connect()
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUser-Agent: eventi-bench\r\n"
        payload = b""
        if body is not None:
            payload = body if isinstance(body, bytes) else json.dumps(body).encode()
            head += f"Content-Type: {content_type}\r\nContent-Length: {len(payload)}\r\n"
        self.sock.sendall(head.encode() + b"\r\n" + payload)

    def read_response(self):
        """(status, headers, body bytes) once the whole answer is in."""
        while b"\r\n\r\n" not in self._buffer:
            self._fill()
        head, _, rest = self._buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise HttpError(f"not an HTTP answer: {lines[0][:80]!r}")
        status = int(parts[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        self._buffer = rest
        while len(self._buffer) < length:
            self._fill()
        body, self._buffer = self._buffer[:length], self._buffer[length:]
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, body

    def request(self, method, path, body=None):
        self.send(method, path, body)
        return self.read_response()

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            self.close()
            raise HttpError("connection closed by the server")
        self._buffer += chunk
