"""python -m bench: the three designs on fresh servers, one after another, then the table."""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402

from . import report  # noqa: E402
from .run import DESIGNS, Config, run_all  # noqa: E402
from .stack import raise_open_files  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--n", type=int, default=10_000, help="orders, and clients held at once")
    p.add_argument("--rate", type=float, default=200.0, help="steady callbacks (and publishes) per second")
    p.add_argument("--callback-concurrency", type=int, default=16,
                   help="callbacks in flight at once, like a sender's pool of delivery workers each POSTing one "
                        "callback at a time on a new connection (0: open loop)")
    p.add_argument("--burst", type=int, default=1000, help="publishes in one burst, then as many callbacks in another")
    p.add_argument("--steady-seconds", type=float, default=5.0,
                   help="length of the steady phases: RATE x this many publishes, then as many callbacks")
    p.add_argument("--idle", type=float, default=30.0, help="seconds of idle hold while server CPU is measured")
    p.add_argument("--create-clients", type=int, default=16,
                   help="concurrent clients creating the N orders through POST /api/orders (each STK-pushed)")
    p.add_argument("--seed", action="store_true",
                   help="insert the N orders straight into the store instead (seconds, not a minute; no creation figures)")
    p.add_argument("--profile", metavar="DIR", default="",
                   help="py-spy every worker during the callback phases into DIR (slows them: figures not comparable)")
    p.add_argument("--fanout", type=int, default=2000, help="unwatched messages to measure the fan-out cost (0: skip)")
    p.add_argument("--loadgens", type=int, default=4, help="load generator processes")
    p.add_argument("--instances", type=int, default=1, help="gunicorn instances (ports) behind one Redis and store")
    p.add_argument("--workers", type=int, default=2, help="gevent workers per gunicorn instance")
    p.add_argument("--redis", choices=("standalone", "cluster"), default="standalone",
                   help="one redis-server, or devstack's Redis Cluster (3 masters + 3 replicas; the hub SSUBSCRIBEs "
                        "per held order there, one connection per node; per-request one per wait)")
    p.add_argument("--nginx", action="store_true",
                   help="the waits go through docker/nginx.conf, its upstream listing the instances; callbacks go "
                        "to the instances, half of them (with 2 or more) to one that does not hold the wait")
    p.add_argument("--no-publish-phases", action="store_true",
                   help="skip the notifier-path phases (publishes without a callback)")
    p.add_argument("--designs", default=",".join(DESIGNS), help="comma-separated: " + ", ".join(DESIGNS))
    p.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md's latest-run section")
    p.add_argument("--report", metavar="RESULTS_JSON", help="only print the table of an earlier results file "
                   "(and, without --no-docs, put it in docs/benchmarks.md)")
    a = p.parse_args(argv)
    if a.report:
        import json
        from pathlib import Path

        path = Path(a.report)
        results = json.loads(path.read_text())
        print(report.table(results["designs"]))
        if not a.no_docs:
            report.update_docs(results, results.get("command", "?"), path, machine=results.get("machine"))
            print("docs/benchmarks.md: latest-run section updated")
        return
    designs = [d.strip() for d in a.designs.split(",") if d.strip()]
    unknown = set(designs) - set(DESIGNS)
    if unknown:
        p.error(f"unknown design(s): {', '.join(sorted(unknown))}")
    soft, hard = raise_open_files()
    print(f"bench: open-file limit raised from {soft} to {hard} for this process and the servers and load "
          f"generators it starts (the hard limit here; hence {a.loadgens} load generator processes)", flush=True)
    cfg = Config(n=a.n, rate=a.rate, callback_concurrency=a.callback_concurrency, burst=a.burst,
                 steady_seconds=a.steady_seconds, idle_seconds=a.idle, loadgens=a.loadgens, fanout=a.fanout,
                 create_clients=a.create_clients, seed=a.seed, profile_dir=a.profile, instances=a.instances,
                 workers=a.workers, designs=designs, redis=a.redis, nginx=a.nginx,
                 publish_phases=not a.no_publish_phases)
    results = run_all(cfg)
    command = "python -m bench " + " ".join(shlex.quote(x) for x in (argv if argv is not None else sys.argv[1:]))
    path = report.write_results(results, command)
    print()
    print(report.table(results["designs"]))
    print(f"\nresults: {path}")
    if not a.no_docs:
        report.update_docs(results, command, path)
        print("docs/benchmarks.md: latest-run section updated")


if __name__ == "__main__":
    main()
