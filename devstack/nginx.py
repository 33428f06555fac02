"""Debian's nginx with the project's docker/nginx.conf, rendered for local ports (tests and the benchmark).

render() replaces only what the config itself says is deployment-specific: the `server app:8000;`
upstream line (one line per app instance), `listen 80`, the /tmp/nginx* paths and the allowed CORS origins. Options for the
benchmark's many held waits (`worker_processes`, `reuseport`) are explicit arguments, off by default.
"""
from __future__ import annotations

import os
import pwd
from collections.abc import Sequence
from pathlib import Path

from devstack.processes import ROOT, Process, Server, free_port

NGINX = os.environ.get("EVENTI_NGINX", "/usr/sbin/nginx")
CONFIG = ROOT / "docker" / "nginx.conf"


def render(template: str, listen_port: int, upstreams: str | Sequence[str], tmp: str | Path,
           worker_processes: int | None = None, reuseport: bool = False, cors_origins: Sequence[str] = ()) -> str:
    """docker/nginx.conf with the given ports and paths, run as the current user.

    upstreams: "host:port" or several (the upstream block gets one `server` line each). worker_processes
    replaces `auto`; reuseport lets the kernel spread new connections evenly over the workers. cors_origins
    (EVENTI_CORS_ORIGINS' list) become lines of the $eventi_cors_allowed map, as ops write them."""
    servers = [upstreams] if isinstance(upstreams, str) else list(upstreams)
    lines = "\n        ".join(f"server {u};" for u in servers)
    config = template.replace("server app:8000;", lines)
    listen = f"listen 127.0.0.1:{listen_port}{' reuseport' if reuseport else ''};"
    config = config.replace("listen 80;", listen)
    config = config.replace("/tmp/nginx", f"{tmp}/nginx")
    assert all(f"server {u};" in config for u in servers) and listen in config
    if cors_origins:
        example = '# "https://shop.example.com" $http_origin;'
        assert example in config
        config = config.replace(example, " ".join(f'"{origin}" $http_origin;' for origin in cors_origins))
    if worker_processes is not None:
        assert "worker_processes auto;" in config
        config = config.replace("worker_processes auto;", f"worker_processes {worker_processes};")
    if os.geteuid() == 0:  # workers would otherwise switch to nobody, who cannot use a private tmp dir
        config = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" + config
    return config


class Nginx(Server):
    """nginx with docker/nginx.conf in front of `upstreams` ("host:port" each), on a free port."""

    def __init__(self, upstreams: str | Sequence[str], tmp: str | Path, worker_processes: int | None = None,
                 reuseport: bool = False, log_path: Path | None = None) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        tmp = Path(tmp)
        tmp.mkdir(parents=True, exist_ok=True)
        self.config = tmp / "nginx.conf"
        self.config.write_text(render(CONFIG.read_text(), self.port, upstreams, tmp, worker_processes, reuseport))
        self.process = Process("nginx", [NGINX, "-e", "stderr", "-p", f"{tmp}/", "-c", str(self.config),
                                         "-g", "daemon off;"], log_path=log_path)

    def start(self) -> Nginx:
        self.process.start()
        self.process.wait_for_port(self.port)
        return self
