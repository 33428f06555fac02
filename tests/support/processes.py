"""Real server processes for the tests and the benchmark: redis-server, PostgreSQL, FerretDB and gunicorn."""
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FERRETDB = os.environ.get("EVENTI_FERRETDB", str(ROOT / ".tools" / "bin" / "ferretdb"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A child process whose output lines can be awaited (no sleeps)."""

    def __init__(self, name, argv, env=None, cwd=None):
        self.name, self.argv, self.env, self.cwd = name, argv, env, cwd
        self.proc = None
        self.lines = queue.Queue()
        self.log = []

    def start(self, ready=None, count=1, timeout=30):
        """Start, then block until `ready` (a regex) has appeared `count` times in the output."""
        self.proc = subprocess.Popen(
            self.argv, env=self.env, cwd=self.cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        threading.Thread(target=self._pump, args=(self.proc,), daemon=True).start()
        if ready:
            self.wait_for(ready, count, timeout)
        return self

    def _pump(self, proc):
        for line in proc.stdout:
            self.log.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, pattern, count=1, timeout=30):
        """Block until a line matching pattern has been printed count times."""
        deadline = time.monotonic() + timeout
        seen = 0
        while seen < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self.name}: no {pattern!r} within {timeout}s:\n{self.output()}")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"{self.name} exited ({self.proc.wait()}):\n{self.output()}")
            if re.search(pattern, line):
                seen += 1

    def output(self):
        return "".join(self.log[-80:])

    def signal(self, signum):
        self.proc.send_signal(signum)

    def stop(self, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None


class RedisServer:
    """redis-server on a free port; stop() and start() again keep the port."""

    def __init__(self, workdir):
        self.port = free_port()
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self):
        argv = [shutil.which("redis-server") or "/usr/bin/redis-server", "--bind", "127.0.0.1", "--port", str(self.port),
                "--dir", str(self.dir), "--save", "", "--appendonly", "no", "--maxclients", "10000"]
        self.process = Process("redis-server", argv).start(ready=r"Ready to accept connections")
        return self

    def stop(self):
        self.process.stop()


class Postgres:
    """A private PostgreSQL cluster (scripts/postgres.sh) on a free port: the storage under FerretDB.

    Its data lives in a fresh directory under the system temp dir, not pytest's: pytest's are private to
    root, and as root the cluster runs as the `postgres` user. fsync is off: test data need not survive
    a power cut, and the tests run faster without it.
    """

    def __init__(self, options=("fsync=off", "synchronous_commit=off", "full_page_writes=off")):
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="eventi-postgres-"))
        self.dir.chmod(0o755)
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"
        options = [arg for option in options for arg in ("-c", option)]
        self.process = Process("postgres", [str(ROOT / "scripts" / "postgres.sh"), str(self.dir / "data"),
                                            str(self.port), *options])

    def start(self):
        self.process.start(ready=r"database system is ready to accept connections", timeout=60)
        return self

    def stop(self):
        self.process.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class FerretDB:
    """FerretDB (MongoDB wire protocol) over a Postgres, on a free port; stop() and start() keep the port.

    Stopping it is how the tests stop "the store": the Postgres under it keeps running. Several FerretDBs
    may share one Postgres: each MongoDB database is a schema of its own there.
    """

    def __init__(self, postgres, database="eventi_test"):
        self.port = free_port()
        self.postgres = postgres
        self.uri = f"mongodb://127.0.0.1:{self.port}/{database}"
        self.state_dir = Path(tempfile.mkdtemp(prefix="eventi-ferretdb-"))
        self.process = None

    def start(self):
        argv = [FERRETDB, "--handler=postgresql", f"--postgresql-url={self.postgres.url}",
                f"--state-dir={self.state_dir}", f"--listen-addr=127.0.0.1:{self.port}", "--debug-addr=-",
                "--telemetry=disable", "--log-level=info", "--log-format=text"]
        self.process = Process("ferretdb", argv).start(ready=r"Listening on TCP")
        return self

    def stop(self):
        self.process.stop()


class Gunicorn:
    """gunicorn from the project's gunicorn.conf.py with gevent workers, on a free port."""

    def __init__(self, env, workers=2, extra_args=()):
        self.port = free_port()
        self.workers = workers
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **env, "EVENTI_BIND": f"127.0.0.1:{self.port}", "EVENTI_WORKERS": str(workers)}
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        argv = [str(ROOT / ".venv" / "bin" / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), *extra_args, "wsgi:app"]
        self.process = Process("gunicorn", argv, env=self.env, cwd=str(ROOT))

    def start(self):
        self.process.start(ready=r"eventi worker ready", count=self.workers, timeout=60)
        return self

    def worker_pids(self):
        return [int(pid) for pid in re.findall(r"eventi worker ready \(pid (\d+)\)", "".join(self.process.log))]

    def stop(self):
        return self.process.stop(timeout=150)
