"""Real server processes on free ports: redis-server, PostgreSQL, FerretDB over it and gunicorn.

A child's output goes through a pipe into memory, where lines can be awaited, or (with `log_path`)
straight into a file that is read back only when awaited: the benchmark's servers log there, so their
output costs the measuring process nothing.
"""
from __future__ import annotations

import os
import queue
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from signal import SIGTERM

from devstack.wait import poll_until

ROOT = Path(__file__).resolve().parents[1]
FERRETDB = os.environ.get("EVENTI_FERRETDB", str(ROOT / ".tools" / "bin" / "ferretdb"))
GUNICORN = str(ROOT / ".venv" / "bin" / "gunicorn")
POLL_SECONDS = 0.1
"""How often a log file or a port is looked at while awaited: it paces the polling, it never decides."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def accepts(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:port."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


class Process:
    """A child process whose output lines can be awaited (no sleeps as synchronisation)."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None,
                 cwd: str | None = None, log_path: Path | None = None) -> None:
        self.name, self.argv, self.env, self.cwd = name, list(argv), env, cwd
        self.log_path = Path(log_path) if log_path else None
        self.proc: subprocess.Popen[str] | None = None
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.log: list[str] = []  # every line, when piped

    def start(self, ready: str | None = None, count: int = 1, timeout: float = 30) -> Process:
        """Start, then block until `ready` (a regex) has appeared `count` times in the output."""
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "w") as log:
                self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdout=log,
                                             stderr=subprocess.STDOUT, text=True)
        else:
            self.lines, self.log = queue.Queue(), []
            self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True)
            # The pump gets this start's queue and list: a previous run's pump may still be draining.
            threading.Thread(target=_pump, args=(self.proc, self.lines, self.log), daemon=True).start()
        if ready:
            self.wait_for(ready, count, timeout)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was never started"
        return self.proc.pid

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 30) -> None:
        """Block until a line matching pattern has been printed count times."""
        if self.log_path:
            self._wait_in_file(pattern, count, timeout)
            return
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
                raise RuntimeError(f"{self.name} exited ({self.proc and self.proc.wait()}):\n{self.output()}")
            if re.search(pattern, line):
                seen += 1

    def _wait_in_file(self, pattern: str, count: int, timeout: float) -> None:
        def printed() -> bool:
            return self._running() and len(re.findall(pattern, self._file_text(), re.M)) >= count

        if not poll_until(printed, timeout, POLL_SECONDS):
            raise TimeoutError(f"{self.name}: no {pattern!r} x{count} within {timeout}s:\n{self.output()}")

    def wait_for_port(self, port: int, timeout: float = 30) -> None:
        """Block until the process accepts connections on port; raise if it exits first."""
        if not poll_until(lambda: self._running() and accepts(port), timeout, POLL_SECONDS):
            raise TimeoutError(f"{self.name}: not listening on port {port} within {timeout}s:\n{self.output()}")

    def _running(self) -> bool:
        """True while the process runs; RuntimeError with its output once it has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.output()}")
        return True

    def _file_text(self) -> str:
        assert self.log_path is not None
        return self.log_path.read_text(errors="replace")

    def output(self) -> str:
        """The end of what the process printed, for error messages."""
        if self.log_path:
            return self._file_text()[-3000:]
        return "".join(self.log[-80:])

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 30, signum: int = SIGTERM) -> int | None:
        """Send signum, wait up to timeout, then kill; nothing when it has already exited. The exit code."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signum)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None


def _pump(proc: subprocess.Popen[str], lines: queue.Queue[str | None], log: list[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        log.append(line)
        lines.put(line)
    lines.put(None)


class Server:
    """A server process: started and stopped, also as a context manager (started on entering)."""

    process: Process

    def start(self) -> Server:
        raise NotImplementedError

    def stop(self) -> int | None:
        return self.process.stop()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RedisServer(Server):
    """redis-server on a free port; stop() and start() again keep the port."""

    def __init__(self, workdir: str | Path, maxclients: int = 10000, extra_args: Sequence[str] = (),
                 log_path: Path | None = None) -> None:
        self.port = free_port()
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        argv = [shutil.which("redis-server") or "/usr/bin/redis-server", "--bind", "127.0.0.1", "--port", str(self.port),
                "--dir", str(self.dir), "--save", "", "--appendonly", "no", "--maxclients", str(maxclients), *extra_args]
        self.process = Process("redis-server", argv, log_path=log_path)

    def start(self) -> RedisServer:
        self.process.start(ready=r"Ready to accept connections")
        return self


class Postgres(Server):
    """A private PostgreSQL cluster (scripts/postgres.sh) on a free port: the storage under FerretDB.

    Its data lives in a fresh directory under the system temp dir, not pytest's: pytest's are private to
    root, and as root the cluster runs as the `postgres` user. The default options turn fsync off: test
    data need not survive a power cut, and the tests run faster without it (the benchmark passes none).
    """

    def __init__(self, options: Sequence[str] = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="eventi-postgres-"))
        self.dir.chmod(0o755)
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"
        args = [arg for option in options for arg in ("-c", option)]
        self.process = Process("postgres", [str(ROOT / "scripts" / "postgres.sh"), str(self.dir / "data"),
                                            str(self.port), *args])

    def start(self) -> Postgres:
        self.process.start(ready=r"database system is ready to accept connections", timeout=60)
        return self

    def stop(self) -> int | None:
        code = self.process.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        return code


class FerretDB(Server):
    """FerretDB (MongoDB wire protocol) over a Postgres, on a free port; stop() and start() keep the port.

    Stopping it is how the tests stop "the store": the Postgres under it keeps running. Several FerretDBs
    may share one Postgres: each MongoDB database is a schema of its own there. Ready when it accepts
    connections (it says nothing at log level warn).
    """

    def __init__(self, postgres: Postgres, database: str = "eventi_test", state_dir: Path | None = None,
                 log_level: str = "info", log_path: Path | None = None) -> None:
        self.port = free_port()
        self.postgres = postgres
        self.uri = f"mongodb://127.0.0.1:{self.port}/{database}"
        self.state_dir = Path(state_dir or tempfile.mkdtemp(prefix="eventi-ferretdb-"))
        self.state_dir.mkdir(parents=True, exist_ok=True)
        argv = [FERRETDB, "--handler=postgresql", f"--postgresql-url={postgres.url}",
                f"--state-dir={self.state_dir}", f"--listen-addr=127.0.0.1:{self.port}", "--debug-addr=-",
                "--telemetry=disable", f"--log-level={log_level}", "--log-format=text"]
        self.process = Process("ferretdb", argv, log_path=log_path)

    def start(self) -> FerretDB:
        self.process.start()
        self.process.wait_for_port(self.port)
        return self


def child_env(env: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without PROMETHEUS_MULTIPROC_DIR, plus env."""
    inherited = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    return {**inherited, **env}


class Gunicorn(Server):
    """gunicorn from the project's gunicorn.conf.py with gevent workers, on a free port."""

    def __init__(self, env: Mapping[str, str], workers: int = 2, extra_args: Sequence[str] = (),
                 log_path: Path | None = None) -> None:
        self.port = free_port()
        self.workers = workers
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = child_env({**env, "EVENTI_BIND": f"127.0.0.1:{self.port}", "EVENTI_WORKERS": str(workers)})
        argv = [GUNICORN, "-c", str(ROOT / "gunicorn.conf.py"), *extra_args, "wsgi:app"]
        self.process = Process("gunicorn", argv, env=self.env, cwd=str(ROOT), log_path=log_path)

    def start(self) -> Gunicorn:
        self.process.start(ready=r"eventi worker ready", count=self.workers, timeout=90)
        return self

    def worker_pids(self) -> list[int]:
        """The pids of the workers that have said they are ready (piped output only)."""
        return [int(pid) for pid in re.findall(r"eventi worker ready \(pid (\d+)\)", "".join(self.process.log))]

    def stop(self, timeout: float = 150, signum: int = SIGTERM) -> int | None:
        return self.process.stop(timeout=timeout, signum=signum)
