"""One load-generator process: holds its share of waits (or short polls) and records each answer.

Run as ``python -m bench.loadgen spec.json``. Prints ``sent`` once every first request is written
(``ready`` once every short poller had its first answer), ``done`` once every order is final or it
was told to stop (SIGUSR1), and writes its results to spec["out"].
"""
from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
from gevent.event import Event  # noqa: E402
from gevent.lock import BoundedSemaphore  # noqa: E402

from bench.rawhttp import Connection, HttpError  # noqa: E402

CONNECT_CONCURRENCY = 200
"""Connections being opened at once per process; keeps the listen backlog from overflowing."""


class Client:
    """One shopper's payment page: a wait (or a poll loop) for one order, on one keep-alive connection."""

    def __init__(self, spec, order_id, token, port):
        self.spec, self.order_id, self.token = spec, order_id, token
        self.conn = Connection("127.0.0.1", port, source_ip=spec.get("source_ip"), timeout=spec["io_timeout"])
        self.requests = 0
        self.timeouts = 0
        self.errors = []
        self.answered_at = None
        self.status = None
        self.wrong_order = False

    def result(self):
        return {"id": self.order_id, "at": self.answered_at, "status": self.status, "requests": self.requests,
                "timeouts": self.timeouts, "errors": self.errors, "wrong": self.wrong_order}

    def _exchange(self, path):
        """One request, reconnecting once if a kept-alive connection was closed under us."""
        for attempt in (1, 2):
            try:
                self.requests += 1
                status, _, body = self.conn.request("GET", path)
                return status, body
            except (OSError, HttpError) as exc:
                self.conn.close()
                self.errors.append(f"{type(exc).__name__}: {exc}"[:120])
                if attempt == 2:
                    raise
                gevent.sleep(random.uniform(0.05, 0.2))
        raise AssertionError("unreachable")

    def _take(self, status, body):
        """True when the answer is final; records errors and wrong answers."""
        if status != 200:
            self.errors.append(f"HTTP {status}: {body[:80]!r}")
            return False
        data = json.loads(body)
        if data.get("orderId") != self.order_id:
            self.wrong_order = True
            self.errors.append(f"answer for another order {data.get('orderId')}")
            return True
        if data["paymentStatus"] != "pending":
            self.answered_at = time.time()
            self.status = data["paymentStatus"]
            return True
        return False

    def run_wait(self, gate, sent):
        path = f"/api/orders/{self.order_id}/wait?token={self.token}&timeout={self.spec['wait_timeout']}"
        first = True
        while True:
            try:
                if first:
                    with gate:
                        self.conn.connect()
                        self.requests += 1
                        self.conn.send("GET", path)
                    sent()
                    first = False
                    status, _, body = self.conn.read_response()
                else:
                    status, body = self._exchange(path)
            except (OSError, HttpError) as exc:
                if first:
                    sent()
                    first = False
                self.errors.append(f"{type(exc).__name__}: {exc}"[:120])
                self.conn.close()
                if len(self.errors) > 5:
                    return
                gevent.sleep(random.uniform(0.2, 1.0))
                continue
            if self._take(status, body):
                return
            if status == 200:
                self.timeouts += 1
            elif len(self.errors) > 5:
                return

    def run_poll(self, gate, sent):
        interval = self.spec["poll_interval"]
        gevent.sleep(random.uniform(0, interval))  # browsers opened their pages at different moments
        path = f"/api/orders/{self.order_id}?token={self.token}"
        first = True
        while True:
            started = time.monotonic()
            try:
                if first:
                    with gate:
                        self.conn.connect()
                status, body = self._exchange(path)
            except (OSError, HttpError):
                status, body = None, b""
            if first:
                sent()
                first = False
            if status is not None and self._take(status, body):
                return
            if len(self.errors) > 20:
                return
            gevent.sleep(max(0.0, interval - (time.monotonic() - started)))


def main(spec_path):
    with open(spec_path) as f:
        spec = json.load(f)
    stop = Event()
    gevent.signal_handler(signal.SIGUSR1, stop.set)
    ports = spec["ports"]
    clients = [Client(spec, oid, token, ports[i % len(ports)]) for i, (oid, token) in enumerate(spec["orders"])]
    gate = BoundedSemaphore(CONNECT_CONCURRENCY)
    remaining = [len(clients)]

    def sent():
        remaining[0] -= 1
        if remaining[0] == 0:
            print("ready" if spec["mode"] == "poll" else "sent", flush=True)

    run = "run_poll" if spec["mode"] == "poll" else "run_wait"
    greenlets = [gevent.spawn(getattr(c, run), gate, sent) for c in clients]
    if not clients:
        print("sent", flush=True)
    everyone = gevent.spawn(gevent.joinall, greenlets)
    gevent.wait([everyone, stop], count=1)
    if not everyone.ready():
        gevent.killall(greenlets, block=True, timeout=5)
    for c in clients:
        c.conn.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    with open(spec["out"], "w") as f:
        json.dump({"cpu": usage.ru_utime + usage.ru_stime, "clients": [c.result() for c in clients]}, f)
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
