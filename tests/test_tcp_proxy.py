"""tests/support/tcp_proxy.py does what the browser tests rely on: pass, cut, blackhole, restore."""
import socket
import threading
from collections.abc import Iterator

import pytest

from devstack.wait import eventually
from tests.support.tcp_proxy import TcpProxy


class EchoServer:
    """Echoes every chunk back and records what reached it."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.received: list[bytes] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    def _echo(self, conn: socket.socket) -> None:
        with conn:
            while data := _recv(conn):
                self.received.append(data)
                conn.sendall(data)


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def request(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode()


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.listener.close()


@pytest.fixture
def proxy(echo: EchoServer) -> Iterator[TcpProxy]:
    proxy = TcpProxy(("127.0.0.1", echo.port)).start()
    yield proxy
    proxy.stop()


def connect(proxy: TcpProxy) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.port))
    sock.settimeout(30)  # stops a broken test from hanging; asserts nothing
    return sock


def test_pass_relays_both_ways_and_records_the_requests(proxy: TcpProxy) -> None:
    with connect(proxy) as sock:
        sock.sendall(request("/a"))
        assert sock.recv(65536) == request("/a")
    assert proxy.connections[0].requests == [("/a", True)] and proxy.events == [("request", 1, "/a", True)]


def test_cut_resets_open_connections_and_new_ones(proxy: TcpProxy) -> None:
    with connect(proxy) as held:
        held.sendall(request("/held"))
        assert held.recv(65536) == request("/held")
        proxy.cut()
        with pytest.raises(ConnectionResetError):
            held.recv(65536)
        with connect(proxy) as late, pytest.raises(ConnectionResetError):
            late.recv(65536)
    assert [c.fate for c in proxy.connections] == ["cut", "cut"]


def test_blackhole_swallows_bytes_silently_and_restore_opens_new_connections_only(
        proxy: TcpProxy, echo: EchoServer) -> None:
    with connect(proxy) as held, connect(proxy) as idle:
        held.sendall(request("/held"))
        assert held.recv(65536) == request("/held")
        eventually(lambda: len(proxy.connections) == 2, what="both connections accepted")
        proxy.blackhole()
        held.sendall(request("/lost"))
        with connect(proxy) as during:
            during.sendall(request("/during"))
            eventually(lambda: [c.fate for c in proxy.connections] == ["dead", "open", "dead"], what="dead connections")
            proxy.restore()
            assert idle.recv(65536) == b""  # idle while blackholed: closed cleanly on restore
            with connect(proxy) as after:
                after.sendall(request("/after"))
                assert after.recv(65536) == request("/after")
            for dead in (held, during):  # no byte, no FIN, no RST: silent for good
                dead.setblocking(False)
                with pytest.raises(BlockingIOError):
                    dead.recv(65536)
    assert echo.received == [request("/held"), request("/after")]
    assert proxy.events == [("request", 1, "/held", True), ("mode", "blackhole"), ("request", 1, "/lost", False),
                            ("request", 3, "/during", False), ("mode", "pass"), ("request", 4, "/after", True)]
