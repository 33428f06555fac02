"""Real server processes on free ports: redis-server, PostgreSQL, FerretDB over it and gunicorn.

A child's output goes through a pipe into memory, where lines can be awaited, or (with `log_path`)
straight into a file that is read back only when awaited: the benchmark's servers log there, so their
output costs the measuring process nothing.
"""
from __future__ import annotations

import os
import queue
import random
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


_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now, below Linux's ephemeral range (32768-60999): a port
    the kernel hands out (bind to 0) can be taken as the source port of any outgoing connection before the
    server we start binds it, which the tests' thousands of connections made happen. Never the same port twice
    in one process: two asked for before either is bound (a server's and its metrics') must differ."""
    for _ in range(200):
        port = random.randint(10000, 32000)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port found in 10000-32000")


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
                 log_path: Path | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
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


def redis_cli(port: int, *args: str, timeout: float = 30) -> str:
    """redis-cli against 127.0.0.1:port; its output (CalledProcessError when it fails)."""
    argv = [shutil.which("redis-cli") or "/usr/bin/redis-cli", "-h", "127.0.0.1", "-p", str(port), *args]
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=timeout).stdout


def cluster_port(taken: Sequence[int] = ()) -> int:
    """A free port for a cluster node: at most 55535, with its cluster bus port (+10000) free too."""
    for _ in range(1000):
        port = random.randrange(20000, 55535)
        if port in taken or port + 10000 in taken or accepts(port) or accepts(port + 10000):
            continue
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


QUICK_FIRST_SYNC = ["--repl-diskless-sync-delay", "0"]
"""For a node that will have replicas: its first full sync to a replica starts at once, not after the 5 s Redis
waits for more replicas to join the same transfer (each cluster or Sentinel group start waited it out)."""


class RedisCluster(Server):
    """A Redis Cluster of `masters` masters with one replica each, on free ports, data under a temp dir.

    `url` names it the way EVENTI_REDIS_URL does (redis+cluster://host:port,…/). Replicas are started with
    `--enable-debug-command yes` off: a node is failed over with CLUSTER FAILOVER or killed with SIGKILL.
    """

    def __init__(self, workdir: str | Path | None = None, masters: int = 3, node_timeout_ms: int = 2000) -> None:
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="eventi-redis-cluster-"))
        self.ports: list[int] = []
        while len(self.ports) < 2 * masters:
            self.ports.append(cluster_port(self.ports))
        self.masters = masters
        self.nodes: list[RedisServer] = []
        for port in self.ports:
            node = RedisServer(self.dir / str(port), port=port, extra_args=[
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(node_timeout_ms), "--cluster-require-full-coverage", "no",
                "--cluster-allow-reads-when-down", "no", *QUICK_FIRST_SYNC])
            self.nodes.append(node)
        self.url = "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports[:masters]) + "/"

    def start(self) -> RedisCluster:
        for node in self.nodes:
            node.start()
        redis_cli(self.ports[0], "--cluster", "create", *(f"127.0.0.1:{port}" for port in self.ports),
                  "--cluster-replicas", "1", "--cluster-yes", timeout=60)
        self.wait_ok()
        return self

    def running(self) -> list[RedisServer]:
        return [n for n in self.nodes if n.process.proc is not None and n.process.proc.poll() is None]

    def wait_ok(self, timeout: float = 60) -> None:
        """Block until every running node says cluster_state:ok, sees every running node with its role
        (`masters` masters, the rest replicas) and every replica's link to its master is up."""
        def ok() -> bool:
            live = self.running()
            try:
                for node in live:
                    if "cluster_state:ok" not in redis_cli(node.port, "CLUSTER", "INFO", timeout=5):
                        return False
                    roles = self.roles(node.port)
                    if sorted(roles) != sorted(n.port for n in live):
                        return False
                    if list(roles.values()).count("master") != self.masters:
                        return False
                    if roles[node.port] == "slave" and "master_link_status:up" not in redis_cli(
                            node.port, "INFO", "replication", timeout=5):
                        return False
            except (subprocess.SubprocessError, OSError):
                return False
            return True

        if not poll_until(ok, timeout, POLL_SECONDS):
            raise TimeoutError(f"redis cluster not ok within {timeout}s")

    def roles(self, port: int | None = None) -> dict[int, str]:
        """Each node's role by port as CLUSTER NODES on `port` (else the first running node) says:
        master or slave; nodes it flags as failed are left out."""
        port = port or self.running()[0].port
        roles = {}
        for line in redis_cli(port, "CLUSTER", "NODES", timeout=5).splitlines():
            fields = line.split()
            flags = fields[2].split(",")
            if "fail" in flags or "fail?" in flags or not {"master", "slave"} & set(flags):
                continue
            roles[int(fields[1].split("@")[0].rsplit(":", 1)[1])] = "master" if "master" in flags else "slave"
        return roles

    def node(self, port: int) -> RedisServer:
        return next(n for n in self.nodes if n.port == port)

    def stop(self) -> int | None:
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        return None


SENTINEL_CONF = """port {port}
bind 127.0.0.1
dir {dir}
sentinel monitor {name} 127.0.0.1 {master} {quorum}
sentinel down-after-milliseconds {name} {down_after}
sentinel failover-timeout {name} {failover_timeout}
sentinel parallel-syncs {name} 1
"""


class RedisSentinelGroup(Server):
    """One master, `replicas` replicas and `sentinels` sentinels (quorum 2) on free ports, under a temp dir.

    down-after-milliseconds and failover-timeout are short, so a failover takes a few seconds. `url` names
    it the way EVENTI_REDIS_URL does (redis+sentinel://host:port,…/<name>/0).
    """

    def __init__(self, workdir: str | Path | None = None, name: str = "eventi", replicas: int = 1,
                 sentinels: int = 3, quorum: int = 2, down_after_ms: int = 1000,
                 failover_timeout_ms: int = 3000) -> None:
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="eventi-redis-sentinel-"))
        self.name = name
        self.master = RedisServer(self.dir / "master", extra_args=QUICK_FIRST_SYNC)
        self.replicas = [RedisServer(self.dir / f"replica{i}",
                                     extra_args=["--replicaof", "127.0.0.1", str(self.master.port), *QUICK_FIRST_SYNC])
                         for i in range(replicas)]
        self.sentinels: list[Process] = []
        self.sentinel_ports = [free_port() for _ in range(sentinels)]
        for port in self.sentinel_ports:
            sdir = self.dir / f"sentinel{port}"
            sdir.mkdir(parents=True, exist_ok=True)
            conf = sdir / "sentinel.conf"
            conf.write_text(SENTINEL_CONF.format(port=port, dir=sdir, name=name, master=self.master.port,
                                                 quorum=quorum, down_after=down_after_ms,
                                                 failover_timeout=failover_timeout_ms))
            argv = [shutil.which("redis-server") or "/usr/bin/redis-server", str(conf), "--sentinel"]
            self.sentinels.append(Process(f"redis-sentinel:{port}", argv))
        self.url = ("redis+sentinel://" + ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
                    + f"/{name}/0")

    @property
    def data_nodes(self) -> list[RedisServer]:
        return [self.master, *self.replicas]

    def start(self) -> RedisSentinelGroup:
        for node in self.data_nodes:
            node.start()
        for sentinel in self.sentinels:
            sentinel.start(ready=r"Sentinel ID is|monitor master")
        self.wait_stable(self.master.port)
        return self

    def master_port(self) -> int | None:
        """The master's port as the first sentinel that answers says."""
        for port in self.sentinel_ports:
            try:
                out = redis_cli(port, "SENTINEL", "get-master-addr-by-name", self.name, timeout=5).split()
            except (subprocess.SubprocessError, OSError):
                continue
            if len(out) == 2:
                return int(out[1])
        return None

    def wait_stable(self, master_port: int, timeout: float = 60) -> None:
        """Block until every sentinel names master_port as master, sees the other sentinels, and the
        master has its replicas online."""
        def stable() -> bool:
            try:
                for port in self.sentinel_ports:
                    out = redis_cli(port, "SENTINEL", "get-master-addr-by-name", self.name, timeout=5).split()
                    if out[-1:] != [str(master_port)]:
                        return False
                    info = redis_cli(port, "SENTINEL", "master", self.name, timeout=5).split()
                    fields = dict(zip(info[::2], info[1::2], strict=False))
                    if int(fields.get("num-other-sentinels", 0)) < len(self.sentinel_ports) - 1:
                        return False
                    if "s_down" in fields.get("flags", "") or "o_down" in fields.get("flags", ""):
                        return False
                role = redis_cli(master_port, "INFO", "replication", timeout=5)
                return "role:master" in role and f"connected_slaves:{len(self.replicas)}" in role
            except (subprocess.SubprocessError, OSError):
                return False

        if not poll_until(stable, timeout, POLL_SECONDS):
            raise TimeoutError(f"sentinel group not stable on master {master_port} within {timeout}s")

    def node(self, port: int) -> RedisServer:
        return next(n for n in self.data_nodes if n.port == port)

    def stop(self) -> int | None:
        for sentinel in self.sentinels:
            sentinel.stop()
        for node in self.data_nodes:
            node.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        return None
