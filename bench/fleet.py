"""python -m bench.fleet: K instances behind nginx over one Redis or a Redis Cluster, interleaved rounds.

For every round, for every K in --instances, for every topology in --redis: a fresh stack (devstack's
servers; K gunicorn instances of 2 gevent workers behind docker/nginx.conf, its upstream listing the
K instances), N seeded orders, N waits held through nginx, the fan-out phase (unwatched messages), then
CALLBACKS callbacks at RATE/s sent straight to the instances, half of them (K >= 2) to an instance that
does not hold the wait (the gunicorn logs say which does). Printed and written to
bench/results/fleet-<stamp>.json: per run and as medians over the rounds,

- callback -> answer p50 / p99 (the POST starts -> the waiting client has its answer);
- server CPU per callback: utime + stime of every gunicorn process (masters and workers, all
  instances, from /proc) over the callback phase / callbacks; "net" subtracts the idle rate measured
  just before (heartbeats, timers) for the phase's length;
- fan-out CPU per unwatched message: the workers' CPU while messages for orders nobody waits for are
  published, per message (all workers) and per message per worker. With the broadcast hub every
  worker receives every message; with per-order subscriptions none does;
- Redis CPU per callback: every redis-server process (the cluster's 6 nodes) over the callback phase;
- the model: what a callback costs a fleet of 10, 50 and 100 hosts (2 workers each), broadcast vs
  per-order subscriptions, from the measured per-callback and per-message costs (docs/scaling.md).

The design's EVENTI_NOTIFIER, the notifier a worker actually runs ("hub-sharded" on a cluster: the hub
SSUBSCRIBEs per held order over one connection per node) and the git commit are in the results.
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shlex  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

from . import report  # noqa: E402
from .run import DESIGNS, Config, run_design  # noqa: E402
from .stack import raise_open_files  # noqa: E402

HOSTS = (10, 50, 100)
WORKERS_PER_HOST = 2


def summary(res):
    """The figures of one run."""
    cb = res["callback_cpu"]
    n = res["callbacks_sent"]
    idle_rate = res["idle_cpu"]["gunicorn"] / res["idle_seconds"]
    lat = res["phases"]["callback_steady"]["latency"] or {}
    fan = res.get("fanout") or {}
    workers = fan.get("workers") or res["instances"] * res["workers_per_instance"]
    fan_net = fan["worker_cpu"] - idle_rate * fan["seconds"] if fan else None
    return {
        "instances": res["instances"], "workers": workers, "redis": res["redis"], "design": res["design"],
        "notifier": res["notifier"], "notifier_effective": res["notifier_effective"],
        "waits_held": res["held"] if res["all_held"] else None, "waits_per_instance": res.get("waits_per_instance"),
        "callbacks": n, "callbacks_elsewhere": res.get("callbacks_elsewhere", 0),
        "answered": res["phases"]["callback_steady"]["answered"] + res["phases"]["callback_burst"]["answered"],
        "errors": res["errors"], "unanswered": res["unanswered"], "wrong_order": res["wrong_order"],
        "p50_ms": 1000 * lat["p50"] if lat else None, "p99_ms": 1000 * lat["p99"] if lat else None,
        "server_ms_per_callback": 1000 * cb["gunicorn"] / n,
        "server_net_ms_per_callback": 1000 * (cb["gunicorn"] - idle_rate * res["callback_phase_seconds"]) / n,
        "redis_ms_per_callback": 1000 * cb["redis"] / n,
        "nginx_ms_per_callback": 1000 * cb.get("nginx", 0.0) / n,
        "store_ms_per_callback": 1000 * (cb["ferretdb"] + cb["postgres"]) / n,
        # Net of the idle rate measured just before (timers, heartbeats, per-wait polls) for the phase's length.
        "fanout_us_per_message": 1e6 * fan_net / fan["messages"] if fan else None,
        "fanout_us_per_message_per_worker": 1e6 * fan_net / fan["messages"] / workers if fan else None,
        "fanout_raw_us_per_message": 1e6 * fan["worker_cpu"] / fan["messages"] if fan else None,
        "fanout_redis_us_per_message": 1e6 * fan["redis_cpu"] / fan["messages"] if fan else None,
        "idle_server_cpu_share": idle_rate,
        "loadavg_start": res["loadavg_start"], "loadavg_end": res.get("loadavg_end"),
    }


def medians(rows):
    """{(redis, instances): {figure: median}} over the rounds."""
    groups = {}
    for row in rows:
        groups.setdefault((row["redis"], row["instances"]), []).append(row)
    out = {}
    for key, group in sorted(groups.items()):
        med = {"runs": len(group)}
        for field in group[0]:
            values = [g[field] for g in group if isinstance(g.get(field), (int, float)) and not isinstance(g.get(field), bool)]
            if values and len(values) == len(group):
                med[field] = statistics.median(values)
        for field in ("redis", "notifier_effective", "notifier", "design"):
            med[field] = group[0][field]
        med["loadavg_start"] = [statistics.median(g["loadavg_start"][0] for g in group)]
        out[key] = med
    return out


def model(meds, hosts=HOSTS):
    """What one callback costs the fleet (ms of CPU) at H hosts of 2 workers, broadcast vs per-order.

    From the one-instance standalone run (2 workers): own = server CPU per callback - (2 - 1) x f,
    the callback's path (store, answer, the holder's own receipt) without the other worker's fan-out,
    f = fan-out CPU per unwatched message per worker. Broadcast: own + (W - 1) x f, W = 2H workers.
    Per-order subscriptions: own (the other workers never see the message). Redis: the PUBLISH's cost
    per receiving connection, fitted over the K runs, times W for broadcast; once for per-order."""
    base = meds.get(("standalone", 1))
    if not base or base.get("fanout_us_per_message_per_worker") is None:
        return None
    f = base["fanout_us_per_message_per_worker"] / 1000
    own = base["server_net_ms_per_callback"] - (base["workers"] - 1) * f
    # Redis CPU per fan-out message against the number of subscribed workers: slope = per receiver.
    pts = [(m["workers"], m["fanout_redis_us_per_message"]) for (r, _), m in meds.items()
           if r == "standalone" and m.get("fanout_redis_us_per_message") is not None]
    slope = 0.0
    if len(pts) >= 2:
        mx = statistics.mean(x for x, _ in pts)
        my = statistics.mean(y for _, y in pts)
        den = sum((x - mx) ** 2 for x, _ in pts)
        slope = sum((x - mx) * (y - my) for x, y in pts) / den / 1000 if den else 0.0
    # The second estimate: server CPU per callback against workers over the K runs (each message arriving
    # alone at 200/s, and 2-6 workers sharing 2 cores): its slope is the whole cost of one more worker.
    cb = sorted((m["workers"], m["server_net_ms_per_callback"]) for (r, _), m in meds.items() if r == "standalone")
    fit = _fit(cb)
    rows = []
    for h in hosts:
        w = h * WORKERS_PER_HOST
        row = {"hosts": h, "workers": w, "broadcast_ms": own + (w - 1) * f, "per_order_ms": own,
               "broadcast_redis_extra_ms": max(slope, 0.0) * (w - 1)}
        if fit:
            row["broadcast_fit_ms"] = fit[0] + fit[1] * w
            row["per_order_fit_ms"] = fit[0] + fit[1]
        rows.append(row)
    return {"own_ms": own, "fanout_ms_per_worker": f, "redis_ms_per_receiver": slope, "rows": rows,
            "fit": {"intercept_ms": fit[0], "ms_per_worker": fit[1]} if fit else None}


def _fit(points):
    """(intercept, slope) of a least-squares line through (x, y) points; None with fewer than 2 xs."""
    if len({x for x, _ in points}) < 2:
        return None
    mx = statistics.mean(x for x, _ in points)
    my = statistics.mean(y for _, y in points)
    slope = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)
    return my - slope * mx, slope


def table(rows, title):
    cols = [("K", "instances", "{:.0f}"), ("workers", "workers", "{:.0f}"), ("redis", "redis", "{}"),
            ("notifier", "notifier_effective", "{}"), ("runs", "runs", "{}"),
            ("p50 ms", "p50_ms", "{:.1f}"), ("p99 ms", "p99_ms", "{:.1f}"),
            ("server ms/cb", "server_ms_per_callback", "{:.2f}"), ("net", "server_net_ms_per_callback", "{:.2f}"),
            ("fan-out µs/msg", "fanout_us_per_message", "{:.0f}"),
            ("per worker", "fanout_us_per_message_per_worker", "{:.0f}"),
            ("Redis ms/cb", "redis_ms_per_callback", "{:.3f}"), ("Redis µs/unwatched", "fanout_redis_us_per_message", "{:.1f}"),
            ("nginx ms/cb", "nginx_ms_per_callback", "{:.2f}"), ("load", "loadavg_start", "{}")]
    lines = [f"### {title}", "", "| " + " | ".join(c for c, _, _ in cols) + " |", "|" + "---|" * len(cols)]
    for row in rows:
        cells = []
        for _, key, fmt in cols:
            v = row.get(key)
            if key == "loadavg_start" and isinstance(v, (list, tuple)):
                v = f"{v[0]:.1f}"
            cells.append("–" if v is None else (fmt.format(v) if not isinstance(v, str) else v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--instances", default="1,2,3", help="comma-separated K: gunicorn instances behind nginx")
    p.add_argument("--workers", type=int, default=2, help="gevent workers per instance")
    p.add_argument("--redis", default="standalone,cluster", help="comma-separated: standalone, cluster")
    p.add_argument("--design", default="hub", choices=[d for d, (_, mode) in DESIGNS.items() if mode == "wait"],
                   help="EVENTI_NOTIFIER (hub: per-order subscriptions, SSUBSCRIBE per node on a cluster)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians are over these)")
    p.add_argument("--n", type=int, default=10_000, help="held waits in all (spread over the K instances)")
    p.add_argument("--callbacks", type=int, default=1000, help="callbacks, at RATE")
    p.add_argument("--rate", type=float, default=200.0)
    p.add_argument("--fanout", type=int, default=2000, help="unwatched messages at 1,000/s (0: skip)")
    p.add_argument("--idle", type=float, default=5.0, help="idle hold (seconds) measuring the servers' idle CPU")
    p.add_argument("--loadgens", type=int, default=4)
    p.add_argument("--model", metavar="RESULTS_JSON", help="only print the tables and model of an earlier run")
    a = p.parse_args(argv)
    if a.model:
        data = json.loads(Path(a.model).read_text())
        print_all(data["runs"], data.get("command", "?"))
        return
    ks = [int(k) for k in a.instances.split(",") if k.strip()]
    topologies = [t.strip() for t in a.redis.split(",") if t.strip()]
    raise_open_files()
    command = "python -m bench.fleet " + " ".join(shlex.quote(x) for x in (argv if argv is not None else sys.argv[1:]))
    runs, failures = [], []
    partial = report.ROOT / "bench" / "results" / f"fleet-partial-{os.getpid()}.json"
    partial.parent.mkdir(parents=True, exist_ok=True)
    for rnd in range(a.rounds):
        for k in ks:
            for topology in topologies:
                cfg = Config(n=a.n, rate=a.rate, burst=0, steady_seconds=a.callbacks / a.rate, idle_seconds=a.idle,
                             loadgens=a.loadgens, fanout=a.fanout, seed=True, instances=k, workers=a.workers,
                             redis=topology, nginx=True, publish_phases=False, designs=[a.design])
                print(f"=== round {rnd + 1}/{a.rounds}: K={k} redis={topology} load {os.getloadavg()[0]:.2f}", flush=True)
                try:
                    res = run_design(a.design, cfg)
                except Exception as exc:  # one topology failing must not lose the others' runs
                    traceback.print_exc()
                    failures.append({"round": rnd, "instances": k, "redis": topology,
                                     "error": f"{type(exc).__name__}: {exc}"[:500]})
                    continue
                res["round"] = rnd
                runs.append(res)
                partial.write_text(json.dumps({"runs": runs, "failures": failures, "command": command}))
                row = summary(res)
                print(table([row], f"K={k} {topology}"), flush=True)
    path = report.write_results({"runs": runs, "failures": failures, "eventi_notifier": DESIGNS[a.design][0],
                                 "config": vars(a)}, command, prefix="fleet-")
    print_all(runs, command)
    partial.unlink(missing_ok=True)
    print(f"\nresults: {path}")


def print_all(runs, command):
    rows = [summary(r) for r in runs]
    print(f"\nCommand: `{command}`\n")
    print(table(rows, "every run"))
    meds = medians(rows)
    print()
    print(table([{**m} for m in meds.values()], "medians over the rounds"))
    m = model(meds)
    if m:
        print(f"\n### model: one callback's CPU over the fleet ({WORKERS_PER_HOST} workers per host)\n")
        print(f"own path {m['own_ms']:.2f} ms, fan-out {1000 * m['fanout_ms_per_worker']:.0f} µs per worker per message, "
              f"Redis {1000 * m['redis_ms_per_receiver']:.1f} µs per receiving connection\n")
        if m["fit"]:
            print(f"fit over K: {m['fit']['intercept_ms']:.2f} ms + {m['fit']['ms_per_worker']:.3f} ms per worker\n")
        print("| hosts | workers | broadcast (every worker receives) | per-order subscriptions | broadcast / per-order "
              "| Redis extra, broadcast | broadcast, fit over K | per-order, fit over K |")
        print("|---|---|---|---|---|---|---|---|")
        for r in m["rows"]:
            fits = (f"{r['broadcast_fit_ms']:.1f} ms | {r['per_order_fit_ms']:.2f} ms" if "broadcast_fit_ms" in r
                    else "– | –")
            print(f"| {r['hosts']} | {r['workers']} | {r['broadcast_ms']:.1f} ms | {r['per_order_ms']:.2f} ms | "
                  f"{r['broadcast_ms'] / r['per_order_ms']:.1f}x | {r['broadcast_redis_extra_ms']:.2f} ms | {fits} |")


if __name__ == "__main__":
    main()
