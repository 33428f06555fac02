"""Order creation as shoppers do it: POST /api/orders from K concurrent clients, each STK-pushed.

Each client is one keep-alive connection (a browser tab buying, again and again) sending its next
order as soon as the last one is answered. Phone numbers are distinct (the server's push limit
counts per number, as in production) and end in 5, the PayHero simulator's "no callback" outcome:
the benchmark delivers the callbacks itself, later.
"""
import json
import time

import gevent

from .rawhttp import Connection, HttpError
from .stats import percentiles

SLICE = 10_000
"""Orders per slice of the creation rate (issue 10's first and last 10,000)."""


def phone(i):
    """A distinct Safaricom number for order i, ending in 5."""
    return f"07{i % 10_000_000:07d}5"


def order_body(i, amount):
    # One ticket of bench/event.json (KES 1,500 = amount): the server prices the order (issue 12).
    return {"eventId": "ev-bench", "ticketTypeId": "regular", "quantity": 1, "phone": phone(i),
            "email": "shopper@example.com", "name": "Wanjiru Kamau"}


def create_orders(ports, count, clients, amount, timeout=60, progress=None):
    """Create `count` orders from `clients` concurrent connections spread over ports.

    Returns {"orders": [(id, status token)] in completion order, "done_at": [time.time() per order],
    "errors": count, "error_samples": [...], "post": [seconds per POST], "started": t0, "seconds": wall}.
    progress(created) is called every 1,000 orders.
    """
    out = {"orders": [], "done_at": [], "errors": 0, "error_samples": [], "post": []}
    next_i = [0]

    def client(k):
        conn = Connection("127.0.0.1", ports[k % len(ports)], timeout=timeout)
        try:
            while next_i[0] < count:
                i = next_i[0]
                next_i[0] += 1
                t = time.time()
                try:
                    status, _, body = conn.request("POST", "/api/orders", order_body(i, amount))
                except (OSError, HttpError) as exc:
                    conn.close()
                    _error(out, f"{type(exc).__name__}: {exc}")
                    continue
                now = time.time()
                out["post"].append(now - t)
                if status != 201:
                    _error(out, f"HTTP {status}: {body[:120].decode(errors='replace')}")
                    continue
                data = json.loads(body)
                out["orders"].append((data["orderId"], data["statusToken"]))
                out["done_at"].append(now)
                if progress and len(out["orders"]) % 1000 == 0:
                    progress(len(out["orders"]))
        finally:
            conn.close()

    out["started"] = time.time()
    gevent.joinall([gevent.spawn(client, k) for k in range(max(1, clients))], raise_error=True)
    out["seconds"] = time.time() - out["started"]
    return out


def _error(out, text):
    out["errors"] += 1
    if len(out["error_samples"]) < 10:
        out["error_samples"].append(text[:160])


def _span(times, started, a, b):
    """Rate of the orders completed a..b-1 (0-based, in completion order)."""
    t0 = times[a - 1] if a > 0 else started
    span = times[b - 1] - t0
    return {"first": a + 1, "last": b, "orders": b - a, "seconds": span, "rate": (b - a) / span if span > 0 else None}


def summary(created, size=SLICE):
    """Overall rate, the rate of every slice of `size` orders, of the first and the last `size`
    orders (by completion; fewer when fewer were created), errors and POST percentiles."""
    times, started = sorted(created["done_at"]), created["started"]
    n = len(times)
    slices = [_span(times, started, a, min(a + size, n)) for a in range(0, n, size)]
    return {"orders": n, "errors": created["errors"], "error_samples": created["error_samples"],
            "seconds": created["seconds"], "rate": n / created["seconds"] if created["seconds"] else None,
            "slice": size, "slices": slices,
            "first": _span(times, started, 0, min(size, n)) if n else None,
            "last": _span(times, started, max(0, n - size), n) if n else None,
            "post": percentiles(created["post"])}
