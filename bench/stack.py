"""The stack as production runs it: redis-server, FerretDB over PostgreSQL, gunicorn from gunicorn.conf.py,
and the PayHero simulator that takes the orders' STK pushes (devstack's processes, logging to files)."""
import os
import resource
import shutil
import signal
import subprocess
from pathlib import Path

import redis

from devstack.processes import ROOT, FerretDB, Gunicorn, Postgres, RedisServer, child_env
from devstack.simulator import PayHeroSimulator

SECRET = "bench-secret-" + "b" * 40
PAYHERO_TOKEN = "YmVuY2g6c2ltdWxhdG9y"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def raise_open_files():
    """Raise this process's (and its children's) open-file soft limit to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return soft, hard


class Stack:
    """Fresh Redis + FerretDB data and a PayHero simulator, then `instances` gunicorn masters with
    `workers` gevent workers each, pushing every order to the simulator."""

    def __init__(self, workdir, notifier="hub", instances=1, workers=2, log_level="INFO"):
        self.dir = Path(workdir)
        self.notifier, self.instances, self.workers, self.log_level = notifier, instances, workers, log_level
        self.redis_server = self.postgres = self.ferretdb = self.simulator = None
        self.redis_url = self.mongo_uri = None
        self.gunicorns = []
        self.ports = []

    def start(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
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
               **{k: str(v) for k, v in self.simulator.settings.items()}}
        self._flask(env, "create-indexes")
        self._flask(env, "events", "load", str(ROOT / "bench" / "event.json"))  # the event bench.create orders from
        for i in range(self.instances):
            metrics_dir = self.dir / f"metrics-{i}"
            metrics_dir.mkdir(parents=True, exist_ok=True)  # the worker class may import eventi.metrics first
            g = Gunicorn({**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}, workers=self.workers,
                         log_path=self.dir / f"gunicorn-{i}.log").start()
            self.gunicorns.append(g)
            self.ports.append(g.port)
        return self

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
        for server in (self.simulator, self.ferretdb, self.redis_server):
            if server:
                server.process.stop(timeout=20)
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

    def redis_cpu_seconds(self):
        return cpu_seconds(self.redis_server.process.pid)

    def cpu(self):
        """CPU seconds so far of each server: gunicorn (master and workers), redis-server, FerretDB,
        PostgreSQL (the postmaster, its backends and the backends it has reaped) and the simulator."""
        postmaster = self.postgres.process.pid
        return {"gunicorn": self.cpu_seconds(), "gunicorn_system": sum(cpu_seconds(p, user=False) for p in self.gunicorn_pids()),
                "redis": self.redis_cpu_seconds(),
                "ferretdb": cpu_seconds(self.ferretdb.process.pid),
                "postgres": cpu_seconds(postmaster, reaped=True) + sum(cpu_seconds(p) for p in children(postmaster)),
                "simulator": cpu_seconds(self.simulator.process.pid)}

    def redis(self):
        return redis.Redis.from_url(self.redis_url)

    def redis_clients(self):
        """(connected_clients, {worker pid: connections named eventi:<pid>:*})."""
        r = self.redis()
        try:
            total = r.info("clients")["connected_clients"]
            names = [c.get("name", "") for c in r.client_list()]
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

