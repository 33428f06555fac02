"""The stack as production runs it: redis-server, FerretDB over PostgreSQL, gunicorn from gunicorn.conf.py,
and the PayHero simulator that takes the orders' STK pushes (devstack's processes, logging to files)."""
import math
import os
import re
import resource
import shutil
import signal
import subprocess
from pathlib import Path

import redis
from redis.cluster import ClusterNode
from redis.cluster import RedisCluster as ClusterClient

from devstack.nginx import Nginx
from devstack.payhero_simulator import PayHeroSimulator
from devstack.processes import ROOT, FerretDB, Gunicorn, Postgres, RedisCluster, RedisServer, child_env

SECRET = "bench-secret-" + "b" * 40
PAYHERO_TOKEN = "YmVuY2g6c2ltdWxhdG9y"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
REDIS_TOPOLOGIES = ("standalone", "cluster")
NGINX_CONNECTIONS_PER_WORKER = 8000
"""Below docker/nginx.conf's worker_connections (9000): a held wait is two nginx connections."""
MAX_WAITS_PER_WORKER_DEFAULT = 10_000
"""EVENTI_MAX_WAITS_PER_WORKER's default (eventi/config.py)."""
WAIT_STARTED = re.compile(r"Long polling started orderId=([0-9a-f]{24})")


def raise_open_files():
    """Raise this process's (and its children's) open-file soft limit to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return soft, hard


class Stack:
    """Fresh Redis + FerretDB data and a PayHero simulator, then `instances` gunicorn masters with
    `workers` gevent workers each, pushing every order to the simulator."""

    def __init__(self, workdir, notifier="hub", instances=1, workers=2, log_level="INFO", redis_topology="standalone",
                 nginx=False, waits=0, gunicorn_args=()):
        if redis_topology not in REDIS_TOPOLOGIES:
            raise ValueError(f"redis_topology must be one of {REDIS_TOPOLOGIES}")
        self.dir = Path(workdir)
        self.notifier, self.instances, self.workers, self.log_level = notifier, instances, workers, log_level
        self.redis_topology, self.with_nginx, self.waits = redis_topology, nginx, waits
        self.gunicorn_args = tuple(gunicorn_args)  # e.g. ("-c", bench/tracemalloc_conf.py): the last -c wins
        self.redis_server = self.redis_cluster = self.postgres = self.ferretdb = self.simulator = self.nginx = None
        self.redis_url = self.mongo_uri = None
        self.nginx_workers = None
        self.gunicorns = []
        self.ports = []  # the gunicorn instances' own ports (callbacks, /metrics, order creation)
        self.front_ports = []  # where the shoppers' waits go: nginx's port, or the instances' ports

    @property
    def sharded(self):
        """A cluster: status messages go by SPUBLISH."""
        return self.redis_topology == "cluster"

    def start(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        if self.redis_topology == "cluster":
            # devstack's cluster: 3 masters + 3 replicas. A cluster runtime SSUBSCRIBEs per wait (one
            # connection per held wait, spread over the 3 masters by slot).
            self.redis_cluster = RedisCluster(self.dir / "redis-cluster").start()
            self.redis_url = self.redis_cluster.url
        else:
            # Room for one pub/sub connection per wait in per-request mode (FD limit 20,000 per process).
            self.redis_server = RedisServer(self.dir / "redis", maxclients=19000, extra_args=("--tcp-backlog", "4096"),
                                            log_path=self.dir / "redis.log").start()
            self.redis_url = self.redis_server.url
        # PostgreSQL with its default (durable) settings, as production would run it.
        self.postgres = Postgres(options=()).start()
        self.ferretdb = FerretDB(self.postgres, database="eventi", state_dir=self.dir / "ferretdb", log_level="warn",
                                 log_path=self.dir / "ferretdb.log").start()
        self.mongo_uri = self.ferretdb.uri
        # The simulator never calls back for numbers ending in 5 (bench.create's): the benchmark sends the
        # callbacks. Delay 0: a push's settle timer (one thread each) ends at once instead of piling up.
        self.simulator = PayHeroSimulator(delay=0, token=PAYHERO_TOKEN, log_path=self.dir / "simulator.log").start()
        env = {"EVENTI_ENV": "production", "EVENTI_SECRET_KEY": SECRET, "EVENTI_SUPPORT_CONTACT": "bench",
               "EVENTI_REDIS_URL": self.redis_url, "EVENTI_MONGO_URI": self.mongo_uri,
               "EVENTI_NOTIFIER": self.notifier, "EVENTI_VAR_DIR": str(self.dir / "var"),
               "EVENTI_LOG_LEVEL": self.log_level, "PUBLIC_BASE_URL": "http://127.0.0.1",
               **{k: str(v) for k, v in self.simulator.settings.items()}, **self.capacity()}
        self._flask(env, "create-indexes")
        self._flask(env, "events", "load", str(ROOT / "bench" / "event.json"))  # the event bench.create orders from
        for i in range(self.instances):
            metrics_dir = self.dir / f"metrics-{i}"
            metrics_dir.mkdir(parents=True, exist_ok=True)  # the worker class may import eventi.metrics first
            g = Gunicorn({**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}, workers=self.workers,
                         extra_args=self.gunicorn_args, log_path=self.dir / f"gunicorn-{i}.log").start()
            self.gunicorns.append(g)
            self.ports.append(g.port)
        self.front_ports = list(self.ports)
        if self.with_nginx:
            # docker/nginx.conf, its upstream listing the instances. Its 2 x 9,000 worker_connections
            # (worker_processes auto on 2 cores) hold ~8,000 waits; more waits get more nginx workers,
            # spread by SO_REUSEPORT (each worker: 20,000 open files, worker_connections 9,000).
            needed = math.ceil((2 * self.waits + 1000) / NGINX_CONNECTIONS_PER_WORKER)
            more = needed > (os.cpu_count() or 1)
            self.nginx_workers = needed if more else None
            self.nginx = Nginx([f"127.0.0.1:{p}" for p in self.ports], self.dir / "nginx",
                               worker_processes=self.nginx_workers, reuseport=more,
                               log_path=self.dir / "nginx.log").start()
            self.front_ports = [self.nginx.port]
        return self

    def capacity(self):
        """Per-worker limits for `waits` held waits: the defaults (10,000 waits, 12,000 connections) unless one
        worker's share, with room for the kernel handing one worker more connections than the other
        (10,456 of 20,000 in one run), needs more. Open files per worker stay under this machine's 20,000."""
        share = math.ceil(1.15 * self.waits / (self.instances * self.workers))
        if share <= MAX_WAITS_PER_WORKER_DEFAULT:
            return {}
        return {"EVENTI_MAX_WAITS_PER_WORKER": str(share), "EVENTI_WORKER_CONNECTIONS": str(share + 2000)}

    @staticmethod
    def _flask(env, *command):
        done = subprocess.run([str(ROOT / ".venv" / "bin" / "flask"), "--app", "wsgi", *command],
                              env=child_env(env), cwd=str(ROOT), capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")

    def stop(self):
        for g in self.gunicorns:
            # Quick shutdown: the measurements are over, and a graceful stop would write one log line
            # and one answer per held wait.
            g.stop(timeout=30, signum=signal.SIGQUIT)
        if self.nginx:
            self.nginx.stop()
        for server in (self.simulator, self.ferretdb, self.redis_server):
            if server:
                server.process.stop(timeout=20)
        if self.redis_cluster:
            self.redis_cluster.stop()
        if self.postgres:
            self.postgres.stop()

    # --- what the server costs --------------------------------------------------------
    def gunicorn_pids(self):
        pids = []
        for g in self.gunicorns:
            pids.append(g.process.pid)
            pids.extend(children(g.process.pid))
        return pids

    def worker_pids(self):
        return [pid for g in self.gunicorns for pid in children(g.process.pid)]

    def rss_bytes(self):
        return sum(rss_bytes(pid) for pid in self.gunicorn_pids())

    def cpu_seconds(self):
        return sum(cpu_seconds(pid) for pid in self.gunicorn_pids())

    def worker_cpu(self):
        """{worker pid: CPU seconds so far}."""
        return {pid: cpu_seconds(pid) for pid in self.worker_pids()}

    def redis_pids(self):
        if self.redis_cluster:
            return [node.process.pid for node in self.redis_cluster.nodes]
        return [self.redis_server.process.pid]

    def redis_cpu_seconds(self):
        """All redis-server processes: the one server, or the cluster's masters and replicas."""
        return sum(cpu_seconds(pid) for pid in self.redis_pids())

    def nginx_cpu_seconds(self):
        if not self.nginx:
            return 0.0
        master = self.nginx.process.pid
        return cpu_seconds(master) + sum(cpu_seconds(p) for p in children(master))

    def holders(self):
        """{order id: index of the instance whose log says it holds that order's wait} (the last
        "Long polling started" line wins)."""
        found = {}
        for i in range(len(self.gunicorns)):
            text = (self.dir / f"gunicorn-{i}.log").read_text(errors="replace")
            for order_id in WAIT_STARTED.findall(text):
                found[order_id] = i
        return found

    def cpu(self):
        """CPU seconds so far of each server: gunicorn (master and workers), redis-server, FerretDB,
        PostgreSQL (the postmaster, its backends and the backends it has reaped) and the simulator."""
        postmaster = self.postgres.process.pid
        return {"gunicorn": self.cpu_seconds(), "gunicorn_system": sum(cpu_seconds(p, user=False) for p in self.gunicorn_pids()),
                "redis": self.redis_cpu_seconds(),
                "ferretdb": cpu_seconds(self.ferretdb.process.pid),
                "postgres": cpu_seconds(postmaster, reaped=True) + sum(cpu_seconds(p) for p in children(postmaster)),
                "simulator": cpu_seconds(self.simulator.process.pid), "nginx": self.nginx_cpu_seconds()}

    def redis(self):
        """A commands client: redis.Redis, or a RedisCluster client on a cluster."""
        if self.redis_cluster:
            return ClusterClient(startup_nodes=[ClusterNode("127.0.0.1", p) for p in self.redis_cluster.ports])
        return redis.Redis.from_url(self.redis_url)

    def redis_clients(self):
        """(connected_clients, {worker pid: connections named eventi:<pid>:*}), over every node."""
        ports = self.redis_cluster.ports if self.redis_cluster else [self.redis_server.port]
        total, names = 0, []
        for port in ports:
            r = redis.Redis(host="127.0.0.1", port=port)
            try:
                total += r.info("clients")["connected_clients"]
                names.extend(c.get("name", "") for c in r.client_list())
            finally:
                r.close()
        per_worker = {pid: sum(1 for n in names if n.startswith(f"eventi:{pid}:")) for pid in self.worker_pids()}
        return total, per_worker


def children(pid):
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.extend(int(p) for p in (task / "children").read_text().split())
        except OSError:
            pass
    return found


def rss_bytes(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_seconds(pid, reaped=False, user=True):
    """utime + stime of a process (stime alone without user); with reaped, plus those of the children
    it has waited for."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = (int(fields[11]) if user else 0) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if reaped else 0)
    return ticks / CLOCK_TICKS


def cpu_delta(before, after):
    return {k: after[k] - before[k] for k in after}

