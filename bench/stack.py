"""The stack as production runs it: redis-server, FerretDB over PostgreSQL, gunicorn from gunicorn.conf.py,
and the PayHero simulator that takes the orders' STK pushes."""
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

from tests.support.processes import Postgres, free_port

ROOT = Path(__file__).resolve().parents[1]
FERRETDB = os.environ.get("EVENTI_FERRETDB", str(ROOT / ".tools" / "bin" / "ferretdb"))
SECRET = "bench-secret-" + "b" * 40
PAYHERO_TOKEN = "YmVuY2g6c2ltdWxhdG9y"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def raise_open_files():
    """Raise this process's (and its children's) open-file soft limit to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return soft, hard


class Server:
    """A child process logging to a file; ready when a pattern has appeared `count` times."""

    def __init__(self, name, argv, log_path, env=None):
        self.name, self.argv, self.log_path, self.env = name, argv, Path(log_path), env
        self.proc = None

    def start(self, ready, count=1, timeout=60):
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.argv, env=self.env, cwd=str(ROOT), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while len(re.findall(ready, self.log())) < count:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: no {ready!r} x{count} within {timeout}s:\n{self.log()[-3000:]}")
            time.sleep(0.1)  # paces the polling of the log file only
        return self

    def log(self):
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout=150, signum=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signum)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Stack:
    """Fresh Redis + FerretDB data and a PayHero simulator, then `instances` gunicorn masters with
    `workers` gevent workers each, pushing every order to the simulator."""

    def __init__(self, workdir, notifier="hub", instances=1, workers=2, log_level="INFO"):
        self.dir = Path(workdir)
        self.notifier, self.instances, self.workers, self.log_level = notifier, instances, workers, log_level
        self.postgres = None
        self.redis_port = free_port()
        self.mongo_port = free_port()
        self.simulator_port = free_port()
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.mongo_uri = f"mongodb://127.0.0.1:{self.mongo_port}/eventi"
        self.servers = []
        self.gunicorns = []
        self.ports = []

    def start(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        (self.dir / "ferretdb").mkdir(parents=True)
        (self.dir / "redis").mkdir(parents=True)
        # Room for one pub/sub connection per wait in per-request mode (FD limit 20,000 per process).
        rds = Server("redis-server", [shutil.which("redis-server") or "/usr/bin/redis-server", "--bind", "127.0.0.1",
                                      "--port", str(self.redis_port), "--dir", str(self.dir / "redis"), "--save", "",
                                      "--appendonly", "no", "--maxclients", "19000", "--tcp-backlog", "4096"],
                     self.dir / "redis.log")
        self.servers.append(rds.start(r"Ready to accept connections"))
        # PostgreSQL with its default (durable) settings, as production would run it.
        self.postgres = Postgres(options=()).start()
        fdb = Server("ferretdb", [FERRETDB, "--handler=postgresql", f"--postgresql-url={self.postgres.url}",
                                  f"--state-dir={self.dir / 'ferretdb'}", f"--listen-addr=127.0.0.1:{self.mongo_port}",
                                  "--debug-addr=-", "--telemetry=disable", "--log-level=warn", "--log-format=text"],
                     self.dir / "ferretdb.log")
        self.servers.append(fdb.start(r".", count=0))
        _await_port(self.mongo_port)
        # The simulator never calls back for numbers ending in 5 (bench.create's): the benchmark sends the
        # callbacks. Delay 0: a push's settle timer (one thread each) ends at once instead of piling up.
        sim = Server("payhero-simulator", [sys.executable, "-m", "eventi.simulator", "--port", str(self.simulator_port),
                                           "--delay", "0"], self.dir / "simulator.log",
                     env={**os.environ, "PAYHERO_AUTH_TOKEN": PAYHERO_TOKEN})
        self.servers.append(sim.start(r"PayHero simulator listening"))
        env = {**os.environ, "EVENTI_ENV": "production", "EVENTI_SECRET_KEY": SECRET, "EVENTI_SUPPORT_CONTACT": "bench",
               "EVENTI_REDIS_URL": self.redis_url, "EVENTI_MONGO_URI": self.mongo_uri,
               "EVENTI_NOTIFIER": self.notifier, "EVENTI_WORKERS": str(self.workers),
               "EVENTI_VAR_DIR": str(self.dir / "var"), "EVENTI_LOG_LEVEL": self.log_level,
               "PAYHERO_BASE_URL": f"http://127.0.0.1:{self.simulator_port}", "PAYHERO_AUTH_TOKEN": PAYHERO_TOKEN,
               "PAYHERO_CHANNEL_ID": "1", "PUBLIC_BASE_URL": "http://127.0.0.1"}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        done = subprocess.run([str(ROOT / ".venv" / "bin" / "flask"), "--app", "wsgi", "create-indexes"],
                              env=env, cwd=str(ROOT), capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"create-indexes failed:\n{done.stdout}{done.stderr}")
        done = subprocess.run([str(ROOT / ".venv" / "bin" / "flask"), "--app", "wsgi", "events", "load",
                               str(ROOT / "bench" / "event.json")], env=env, cwd=str(ROOT), capture_output=True, text=True)
        if done.returncode != 0:  # the event bench.create orders from
            raise RuntimeError(f"events load failed:\n{done.stdout}{done.stderr}")
        for i in range(self.instances):
            port = free_port()
            metrics_dir = self.dir / f"metrics-{i}"
            metrics_dir.mkdir(parents=True, exist_ok=True)  # the worker class may import eventi.metrics first
            genv = {**env, "EVENTI_BIND": f"127.0.0.1:{port}", "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
            g = Server(f"gunicorn-{i}", [str(ROOT / ".venv" / "bin" / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"),
                                         "wsgi:app"], self.dir / f"gunicorn-{i}.log", env=genv)
            g.start(r"eventi worker ready", count=self.workers, timeout=90)
            self.gunicorns.append(g)
            self.ports.append(port)
        return self

    def stop(self):
        for g in self.gunicorns:
            # Quick shutdown: the measurements are over, and a graceful stop would write one log line
            # and one answer per held wait.
            g.stop(timeout=30, signum=signal.SIGQUIT)
        for s in reversed(self.servers):
            s.stop(timeout=20)
        if self.postgres:
            self.postgres.stop()

    # --- what the server costs --------------------------------------------------------
    def gunicorn_pids(self):
        pids = []
        for g in self.gunicorns:
            pids.append(g.proc.pid)
            pids.extend(children(g.proc.pid))
        return pids

    def worker_pids(self):
        return [pid for g in self.gunicorns for pid in children(g.proc.pid)]

    def rss_bytes(self):
        return sum(rss_bytes(pid) for pid in self.gunicorn_pids())

    def cpu_seconds(self):
        return sum(cpu_seconds(pid) for pid in self.gunicorn_pids())

    def redis_cpu_seconds(self):
        return cpu_seconds(self.servers[0].proc.pid)

    def cpu(self):
        """CPU seconds so far of each server: gunicorn (master and workers), redis-server, FerretDB,
        PostgreSQL (the postmaster, its backends and the backends it has reaped) and the simulator."""
        postmaster = self.postgres.process.proc.pid
        return {"gunicorn": self.cpu_seconds(), "gunicorn_system": sum(cpu_seconds(p, user=False) for p in self.gunicorn_pids()),
                "redis": self.redis_cpu_seconds(),
                "ferretdb": cpu_seconds(self.servers[1].proc.pid),
                "postgres": cpu_seconds(postmaster, reaped=True) + sum(cpu_seconds(p) for p in children(postmaster)),
                "simulator": cpu_seconds(self.servers[2].proc.pid)}

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


def _await_port(port, timeout=30):
    import socket

    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)  # paces the connection attempts only
