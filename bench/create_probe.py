"""python -m bench.create_probe: order creation through POST /api/orders up to many orders.

A fresh stack as `make bench` starts it (redis-server, PostgreSQL + FerretDB, the PayHero simulator,
gunicorn with 2 gevent workers), then --orders orders from --clients concurrent clients, each with
its STK push to the simulator; prints the rate of every slice of 10,000 orders (issue 10: the rate
over the 90,001st-100,000th orders should be at least 80 % of the first 10,000's) and the CPU per
order of each server, and writes bench/results/create-<timestamp>.json.
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from .create import SLICE, create_orders, summary  # noqa: E402
from .report import ROOT, machine  # noqa: E402
from .run import AMOUNT  # noqa: E402
from .stack import Stack, cpu_delta, raise_open_files  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.create_probe", description=__doc__)
    p.add_argument("--orders", type=int, default=100_000, help="orders to create")
    p.add_argument("--clients", type=int, default=16, help="concurrent clients (keep-alive connections)")
    p.add_argument("--slice", type=int, default=SLICE, help="orders per reported slice")
    p.add_argument("--workers", type=int, default=2, help="gevent workers")
    a = p.parse_args(argv)
    raise_open_files()
    stack = Stack(Path(tempfile.mkdtemp(prefix="eventi-create-probe-")) / "stack", workers=a.workers)
    t0 = time.monotonic()
    try:
        stack.start()
        print(f"creating {a.orders} orders from {a.clients} clients", flush=True)
        cpu0 = stack.cpu()
        last = [time.time()]

        def progress(k):
            if k % a.slice == 0:
                now = time.time()
                print(f"  {k:>7} orders, last {a.slice} at {a.slice / (now - last[0]):.0f}/s", flush=True)
                last[0] = now

        created = create_orders(stack.ports, a.orders, a.clients, AMOUNT, progress=progress)
        cpu = cpu_delta(cpu0, stack.cpu())
    finally:
        stack.stop()
    res = {**summary(created, a.slice), "clients": a.clients, "cpu": cpu, "wall_seconds": time.monotonic() - t0}
    print(table(res))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = ROOT / "bench" / "results" / f"create-{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**res, "command": "python -m bench.create_probe " + " ".join(argv or []),
                                "machine": machine(), "finished": stamp}, indent=1))
    print(f"results: {path}")


def table(res):
    lines = [f"{res['orders']} orders in {res['seconds']:.1f} s ({res['rate']:.0f}/s), {res['errors']} errors "
             f"{res['error_samples'][:3] if res['errors'] else ''}",
             f"POST p50 {1000 * res['post']['p50']:.1f} ms, p99 {1000 * res['post']['p99']:.1f} ms",
             "CPU ms per order: " + ", ".join(f"{k} {1000 * v / max(1, res['orders']):.2f}" for k, v in res["cpu"].items()),
             "| orders | seconds | orders/s |", "|---|---|---|"]
    lines += [f"| {s['first']:,}-{s['last']:,} | {s['seconds']:.1f} | {s['rate']:.0f} |" for s in res["slices"]]
    first, last = res["first"], res["last"]
    if first and last and first["rate"]:
        lines.append(f"last {last['orders']:,} / first {first['orders']:,}: {100 * last['rate'] / first['rate']:.0f} %")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
