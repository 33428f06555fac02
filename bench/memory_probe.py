"""What a held request costs below eventi: python -m bench.memory_probe.

Runs gunicorn with one gevent worker on `bench.memory_apps:raw` (bare WSGI), then on
`bench.memory_apps:flask_app` (smallest Flask), holds 5,000 wait-shaped requests on each and prints
the worker's RSS growth per held request. Compare with "RSS per held client" of `make bench`
(docs/benchmarks.md) and with `python -m bench.greenlet_probe`.
"""
from gevent import monkey

monkey.patch_all()

import socket  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402

from devstack.processes import ROOT, Process, free_port  # noqa: E402
from devstack.wait import eventually  # noqa: E402

from .rawhttp import Connection  # noqa: E402
from .stack import children, raise_open_files, rss_bytes  # noqa: E402

HELD = 5000
APPS = ("bench.memory_apps:raw", "bench.memory_apps:flask_app")


def _hold(port, count):
    """Open `count` connections, each sending one wait request and never reading the answer."""
    request = (f"GET /api/orders/{'6b0ade5c347701d5547b1307'}/wait?token={'a' * 64}&timeout=120 HTTP/1.1\r\n"
               "Host: 127.0.0.1\r\nUser-Agent: memory-probe\r\nAccept: */*\r\n\r\n").encode()

    def one():
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(request)
        return sock

    greenlets = [gevent.spawn(one) for _ in range(count)]
    gevent.joinall(greenlets, raise_error=True)
    return [g.value for g in greenlets]


def _held(port):
    conn = Connection("127.0.0.1", port, timeout=30)
    try:
        return int(conn.request("GET", "/held")[2])
    finally:
        conn.close()


def _await_held(port, count, timeout=60):
    eventually(lambda: _held(port) >= count, timeout, f"{count} requests held", interval=0.2)


def _per_request(app):
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="eventi-memory-probe-"))
    (workdir / "empty.conf.py").write_text("")  # not eventi's gunicorn.conf.py: no eventi hooks
    argv = [str(ROOT / ".venv" / "bin" / "gunicorn"), "-c", str(workdir / "empty.conf.py"), "-k", "gevent",
            "-w", "1", "--worker-connections", str(HELD * 2), "-b", f"127.0.0.1:{port}", "--timeout", "300", app]
    server = Process(app, argv, cwd=str(ROOT), log_path=workdir / "gunicorn.log").start(r"Booting worker", timeout=60)
    try:
        server.wait_for_port(port)
        _held(port)  # the worker has imported the app
        worker = children(server.pid)[0]
        before = rss_bytes(worker)
        sockets = _hold(port, HELD)
        _await_held(port, HELD)
        grown = rss_bytes(worker) - before
        for sock in sockets:
            sock.close()
        return grown / HELD
    finally:
        server.stop(timeout=10)


def main():
    raise_open_files()
    for app in APPS:
        print(f"{app:>30}: {_per_request(app) / 1024:.1f} KB RSS per held request (gunicorn, 1 gevent worker)")


if __name__ == "__main__":
    main()
