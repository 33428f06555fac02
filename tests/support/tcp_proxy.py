"""A TCP proxy in front of one server, switched by the test between a good network and bad ones.

Modes:
- ``pass``: bytes flow both ways (``restore()`` comes back to it).
- ``cut``: every open connection is reset (RST), and so is every new one as soon as it is accepted.
- ``blackhole``: nothing flows any more, and nothing is refused or closed: bytes are accepted and dropped.
  A connection that dropped bytes is *dead*: it stays silent for good, as when a phone's network changes
  under a held request (no FIN, no RST). On ``restore()`` the connections that lost nothing (idle
  keep-alive ones) are closed cleanly, and new connections flow again.

Every connection and request is recorded (``connections``, ``events``) for the test's assertions.
"""
from __future__ import annotations

import itertools
import re
import socket
import struct
import threading
from dataclasses import dataclass, field

REQUEST_LINE = re.compile(rb"(?:GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) (\S+) HTTP/1\.[01]\r\n")
MODES = ("pass", "cut", "blackhole")


@dataclass
class Connection:
    """What the proxy saw of one client connection."""

    id: int
    opened_in: str
    requests: list = field(default_factory=list)  # (target, passed on to the server?)
    fate: str = "open"  # open | closed | cut | dead
    blackholed: bool = False
    sent_up: int = 0
    sent_down: int = 0
    dropped_up: int = 0
    dropped_down: int = 0
    client: socket.socket | None = field(default=None, repr=False)
    server: socket.socket | None = field(default=None, repr=False)

    def asked(self, fragment: str) -> bool:
        return any(fragment in target for target, _ in self.requests)


class TcpProxy:
    """Listens on 127.0.0.1 (a free port) and relays to ``upstream`` (host, port)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.mode = "pass"
        self.connections: list[Connection] = []
        self.events: list[tuple] = []  # ("mode", name) and ("request", connection id, target, passed), in order
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._stopped = False

    def start(self) -> TcpProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopped = True
        _close(self._listener)
        with self._lock:
            for conn in self.connections:
                if conn.fate in ("open", "dead"):
                    self._reset(conn)

    def cut(self) -> None:
        """Reset every open connection (dead ones too) and every new one."""
        with self._lock:
            self._set("cut")
            for conn in self.connections:
                if conn.fate in ("open", "dead"):
                    self._reset(conn)

    def blackhole(self) -> None:
        """Let nothing through any more, and close nothing."""
        with self._lock:
            self._set("blackhole")
            for conn in self.connections:
                if conn.fate == "open":
                    conn.blackholed = True

    def restore(self) -> None:
        """New connections flow again; blackholed ones that lost nothing are closed; dead ones stay silent."""
        with self._lock:
            self._set("pass")
            for conn in self.connections:
                if conn.fate == "open" and conn.blackholed:
                    conn.fate = "closed"
                    _close(conn.client)
                    _close(conn.server)

    def requests(self, fragment: str) -> list[Connection]:
        """The connections that carried a request whose target contains fragment, in order."""
        with self._lock:
            return [c for c in self.connections if c.asked(fragment)]

    def since_restore(self) -> list[tuple]:
        """The events after the last restore()."""
        with self._lock:
            last = max(i for i, e in enumerate(self.events) if e == ("mode", "pass"))
            return self.events[last + 1:]

    def _set(self, mode: str) -> None:
        assert mode in MODES
        self.mode = mode
        self.events.append(("mode", mode))

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                conn = Connection(next(self._ids), self.mode, client=client)
                self.connections.append(conn)
                if self.mode == "cut":
                    self._reset(conn)
                    continue
                conn.blackholed = self.mode == "blackhole"
            if not conn.blackholed:
                try:
                    server = socket.create_connection(self.upstream)
                except OSError:
                    with self._lock:
                        self._reset(conn)
                    continue
                with self._lock:
                    conn.server = server
                    if conn.fate == "cut":  # cut while connecting
                        _close(server)
                        continue
                threading.Thread(target=self._pump, args=(conn, "down"), daemon=True).start()
            threading.Thread(target=self._pump, args=(conn, "up"), daemon=True).start()

    def _pump(self, conn: Connection, direction: str) -> None:
        """Relay one direction until either side closes, or drop what comes while blackholed."""
        source = conn.client if direction == "up" else conn.server
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            with self._lock:
                if conn.fate in ("closed", "cut"):
                    return
                if direction == "up":
                    for target in REQUEST_LINE.findall(data):
                        passed = not conn.blackholed
                        conn.requests.append((target.decode(), passed))
                        self.events.append(("request", conn.id, target.decode(), passed))
                if not data:
                    if not conn.blackholed:  # a close passes through; while blackholed it is lost, silently
                        conn.fate = "closed"
                        _close(conn.client)
                        _close(conn.server)
                    return
                if conn.blackholed:
                    conn.fate = "dead"
                    if direction == "up":
                        conn.dropped_up += len(data)
                    else:
                        conn.dropped_down += len(data)
                    continue
                target_socket = conn.server if direction == "up" else conn.client
            try:
                target_socket.sendall(data)
            except OSError:
                continue  # the other side is closing: its own pump records how
            with self._lock:
                if direction == "up":
                    conn.sent_up += len(data)
                else:
                    conn.sent_down += len(data)

    def _reset(self, conn: Connection) -> None:
        """RST to the client (SO_LINGER 0), close to the server. The caller holds the lock."""
        conn.fate = "cut"
        try:
            conn.client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        _close(conn.client)
        _close(conn.server)


def _close(sock: socket.socket | None) -> None:
    """Close a socket and wake whoever is blocked reading it (shutting down SHUT_RD sends nothing)."""
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RD)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
