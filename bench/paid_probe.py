"""python -m bench.paid_probe: what one paid order costs every server, creation to answered wait.

A fresh stack as `make bench` starts it (redis-server, PostgreSQL + FerretDB, the PayHero simulator,
gunicorn with 2 gevent workers), then three measured phases over --orders orders:
1. created through `POST /api/orders` (--clients keep-alive clients, each order STK-pushed);
2. one `GET /api/orders/<id>/wait` held per order (from this process);
   the workers' PSS (proportional set size) is read once half are held and once all are: the second
   half's growth per wait is the memory per held wait (the first half refills the heap creation freed);
3. one PayHero callback per order (bench.run's mix: 3 paid, 1 cancelled, 1 insufficient funds), at most
   --concurrency in flight, each on a new connection; measured until every wait is answered.
CPU (utime + stime from /proc) of gunicorn, FerretDB, PostgreSQL and Redis is read around phases 1
and 3 (phase 3 includes answering the woken waits); the simulator's CPU is reported apart. Prints
the CPU per order of each, and with --json writes them to a file (docs/benchmarks.md, "Paid order");
--profile DIR py-spies the workers during phases 1 and 3 (DIR/create-*.txt, DIR/callbacks-*.txt;
python -m bench.profile DIR/*.txt for the shares);
--no-callbacks stops after phase 2 (memory only);
--tracemalloc DIR runs the workers with tracemalloc (bench/tracemalloc_conf.py) from half the waits held,
snapshots each then and when all are held, and prints what each held wait of the second half allocated
(bench.tracemalloc_report); its PSS figure then includes tracemalloc's own memory.
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402

from devstack.processes import ROOT  # noqa: E402
from devstack.wait import poll_until  # noqa: E402

from .create import create_orders  # noqa: E402
from .profile import Profiler  # noqa: E402
from .rawhttp import Connection, HttpError  # noqa: E402
from .run import AMOUNT, CALLBACK_KINDS, EXPECTED, callbacks, metrics  # noqa: E402
from .stack import Stack, cpu_delta, raise_open_files  # noqa: E402
from .tracemalloc_report import report as tracemalloc_report  # noqa: E402

SERVERS = ("gunicorn", "ferretdb", "postgres", "redis")
SETTLE_SECONDS = 1.0


def hold(port, order_id, token, answers, again=False):
    """One wait for the order; with again, waited for again while it is answered pending (a slow traced run
    outlasts the 120 s hold)."""
    conn = Connection("127.0.0.1", port, timeout=300)
    try:
        while True:
            status, _, body = conn.request("GET", f"/api/orders/{order_id}/wait?token={token}&timeout=120")
            answer = json.loads(body) if status == 200 else {}
            if not (again and answer.get("final") is False):
                break
        answers[order_id] = answer.get("paymentStatus") if status == 200 else f"HTTP {status}"
    except (OSError, HttpError) as exc:
        answers[order_id] = type(exc).__name__
    finally:
        conn.close()


def pss_bytes(pids):
    """The processes' summed PSS: shared pages counted once over all processes that map them."""
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1]) * 1024
    return total


def per_order(cpu, n):
    """{server: ms per order} plus the four servers' sum."""
    out = {k: 1000 * cpu[k] / n for k in (*SERVERS, "gunicorn_system", "simulator")}
    out["servers"] = sum(out[k] for k in SERVERS)
    return out


def snapshot(pids, directory, n):
    """Have each worker start tracing (n = 0) or write its snapshot n (bench/tracemalloc_conf.py); wait for them."""
    for pid in pids:
        os.kill(pid, signal.SIGUSR2)
    name = "{}-0.started" if n == 0 else "{}-" + f"{n}.snap"
    poll_until(lambda: all((Path(directory) / name.format(pid)).exists() for pid in pids), 600, interval=0.5)


def run(orders, clients, concurrency, workers, profile_dir="", pay=True, tracemalloc_dir=""):
    args = ()
    if tracemalloc_dir:
        os.environ["BENCH_TRACEMALLOC_DIR"] = str(Path(tracemalloc_dir).resolve())
        Path(tracemalloc_dir).mkdir(parents=True, exist_ok=True)
        args = ("-c", str(ROOT / "bench" / "tracemalloc_conf.py"))
    stack = Stack(Path(tempfile.mkdtemp(prefix="eventi-paid-probe-")) / "stack", workers=workers, gunicorn_args=args)
    try:
        stack.start()
        profiler = Profiler(stack.worker_pids(), profile_dir, "create") if profile_dir else None
        cpu0 = stack.cpu()
        created = create_orders(stack.ports, orders, clients, AMOUNT)
        create_cpu = cpu_delta(cpu0, stack.cpu())
        create_profile = profiler.stop() if profiler else None
        made = created["orders"]
        answers = {}
        waits, pss = [], []
        for half in (made[:len(made) // 2], made[len(made) // 2:]):
            waits += [gevent.spawn(hold, stack.ports[i % len(stack.ports)], oid, token, answers, bool(tracemalloc_dir))
                      for i, (oid, token) in enumerate(half, start=len(waits))]
            held = len(waits)
            poll_until(lambda held=held: metrics(stack).get("eventi_waits_held", 0) >= held, 300, interval=0.5)
            gevent.sleep(SETTLE_SECONDS)
            pss.append(pss_bytes(stack.worker_pids()))
            if tracemalloc_dir:  # traced from the first half held on: only the second half's allocations count
                if len(pss) == 1:
                    snapshot(stack.worker_pids(), tracemalloc_dir, 0)
                snapshot(stack.worker_pids(), tracemalloc_dir, len(pss))
        # the second half's growth: the first half fills what the creation phase freed in the heap
        pss_per_wait = (pss[1] - pss[0]) / max(1, len(made) - len(made) // 2)
        ids = [oid for oid, _ in made] if pay else []
        kinds = {oid: CALLBACK_KINDS[i % len(CALLBACK_KINDS)] for i, oid in enumerate(ids)}
        starts, posts = {}, {}
        profiler = Profiler(stack.worker_pids(), profile_dir, "callbacks") if profile_dir else None
        cpu1, t1 = stack.cpu(), time.monotonic()
        if pay:
            callbacks(stack, ids, kinds, None, starts, posts, concurrency)
            gevent.joinall(waits, timeout=120)
        seconds = time.monotonic() - t1
        gevent.sleep(SETTLE_SECONDS)
        callback_cpu = cpu_delta(cpu1, stack.cpu())
        profile = profiler.stop() if profiler else None
    finally:
        stack.stop()
    wrong = sum(1 for oid in ids if answers.get(oid) != EXPECTED[kinds[oid]])
    failed = sum(1 for p in posts.values() if p["status"] != 200)
    create, callback = per_order(create_cpu, len(made)), per_order(callback_cpu, max(1, len(ids)))
    return {"orders": len(made), "create_errors": created["errors"], "create_rate": len(made) / created["seconds"],
            "callback_errors": failed, "wrong_answers": wrong, "callback_seconds": seconds,
            "create_ms": create, "callback_ms": callback, "paid": pay, "pss_per_wait": pss_per_wait,
            "paid_order_ms": {k: create[k] + callback[k] for k in create}, "loadavg": os.getloadavg(), "profile": profile,
            "create_profile": create_profile}


def table(res):
    rows = [("created", res["create_ms"])]
    if res["paid"]:
        rows += [("callback + answered wait", res["callback_ms"]), ("paid order", res["paid_order_ms"])]
    lines = [f"{res['orders']} orders ({res['create_rate']:.0f}/s created, {res['create_errors']} errors); callbacks: "
             f"{res['callback_errors']} failed, {res['wrong_answers']} waits answered wrong; "
             f"{res['pss_per_wait'] / 1024:.1f} KB PSS per held wait; load {res['loadavg']}",
             "CPU ms per order | gunicorn | FerretDB | PostgreSQL | Redis | all four | simulator",
             "|---|---|---|---|---|---|---|"]
    for name, ms in rows:
        lines.append(f"| {name} | {ms['gunicorn']:.2f} | {ms['ferretdb']:.2f} | {ms['postgres']:.2f} | "
                     f"{ms['redis']:.2f} | {ms['servers']:.2f} | {ms['simulator']:.2f} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.paid_probe", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--orders", type=int, default=2000, help="orders created, waited for and paid")
    p.add_argument("--clients", type=int, default=16, help="concurrent clients creating the orders")
    p.add_argument("--concurrency", type=int, default=16, help="callbacks in flight at once")
    p.add_argument("--workers", type=int, default=2, help="gevent workers")
    p.add_argument("--json", metavar="PATH", help="also write the figures to this file")
    p.add_argument("--profile", metavar="DIR", default="",
                   help="py-spy the workers during the creation and the callbacks into DIR "
                        "(slows them: CPU figures not comparable)")
    p.add_argument("--tracemalloc", metavar="DIR", default="",
                   help="tracemalloc in the workers: snapshots into DIR and what each held wait allocated")
    p.add_argument("--no-callbacks", dest="pay", action="store_false",
                   help="stop once every wait is held (memory per held wait only)")
    a = p.parse_args(argv)
    raise_open_files()
    res = run(a.orders, a.clients, a.concurrency, a.workers, a.profile, a.pay, a.tracemalloc)
    print(table(res))
    if a.tracemalloc:
        print(tracemalloc_report(a.tracemalloc, res["orders"] - res["orders"] // 2))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
