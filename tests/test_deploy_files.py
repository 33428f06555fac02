"""docker/: the compose file as `docker-compose config` reads it, the Dockerfile's layers and healthcheck,
.dockerignore, and the healthcheck command itself (no Docker engine here: nothing is built or run)."""
import os
import re
import subprocess
import sys

import pytest
import yaml

from devstack.processes import ROOT, free_port
from eventi.server.healthcheck import url
from tests.support.compose import compose_command

COMPOSE_ENV = {"EVENTI_SECRET_KEY": "k" * 40, "PAYHERO_BASE_URL": "https://payhero.example", "PAYHERO_AUTH_TOKEN": "t",
               "PAYHERO_CHANNEL_ID": "1", "PUBLIC_BASE_URL": "https://eventi.example",
               "EVENTI_SUPPORT_CONTACT": "call 0700 000 000"}


@pytest.fixture(scope="module")
def compose():
    result = subprocess.run([*compose_command(), "-f", str(ROOT / "docker" / "compose.yml"), "config"],
                            env={**os.environ, **COMPOSE_ENV}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)["services"]


def test_compose_refuses_to_start_without_the_secrets():
    result = subprocess.run([*compose_command(), "-f", str(ROOT / "docker" / "compose.yml"), "config"],
                            env={k: v for k, v in os.environ.items() if k not in COMPOSE_ENV}, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0 and "EVENTI_SECRET_KEY" in result.stderr


def test_every_long_running_service_has_a_healthcheck_and_a_restart_policy(compose):
    for name in ("app", "nginx", "mongo", "redis"):
        assert compose[name]["restart"] == "unless-stopped", name
        assert compose[name]["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
    assert compose["indexes"]["command"] == ["eventi", "create-indexes"]


def test_services_start_in_order_once_what_they_need_is_healthy(compose):
    assert compose["app"]["depends_on"] == {"indexes": {"condition": "service_completed_successfully"},
                                            "mongo": {"condition": "service_healthy"},
                                            "redis": {"condition": "service_healthy"}}
    assert compose["nginx"]["depends_on"] == {"app": {"condition": "service_healthy"}}
    assert compose["indexes"]["depends_on"] == {"mongo": {"condition": "service_healthy"}}


def test_only_nginx_is_published_and_metrics_have_their_own_port(compose):
    assert [name for name, service in compose.items() if service.get("ports")] == ["nginx"]
    assert compose["app"]["environment"]["EVENTI_METRICS_BIND"] == "0.0.0.0:9100"
    assert compose["app"]["healthcheck"]["test"] == ["CMD", "python", "-m", "eventi.server.healthcheck"]
    assert int(compose["app"]["stop_grace_period"].rstrip("s")) > 130  # gunicorn's graceful_timeout


def test_the_dockerfile_installs_dependencies_before_copying_the_code():
    lines = [line for line in (ROOT / "docker" / "Dockerfile").read_text().splitlines() if line and not line.startswith("#")]
    position = {what: next(i for i, line in enumerate(lines) if re.search(pattern, line)) for what, pattern in {
        "copy lock": r"^COPY requirements\.lock ", "install lock": r"^RUN pip install .*-r requirements\.lock",
        "copy code": r"^COPY eventi ", "install code": r"^RUN pip install .*--no-deps \."}.items()}
    assert position["copy lock"] < position["install lock"] < position["copy code"] < position["install code"]
    [healthcheck] = [line for line in lines if line.startswith("HEALTHCHECK")]
    assert "--start-period=" in healthcheck and "eventi.server.healthcheck" in healthcheck and "8000" not in healthcheck
    assert lines[-1] == 'CMD ["eventi", "serve"]'


def test_the_build_context_leaves_out_local_state():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if not line.startswith("#")}
    assert {".git", ".venv", ".tools", "var", "tests", "bench", "**/__pycache__", ".env"} <= ignored
    assert not {"eventi", "requirements.lock", "setup.cfg", "pyproject.toml", "README.md"} & ignored


@pytest.mark.parametrize("bind, expected", [("0.0.0.0:8000", "http://127.0.0.1:8000/healthz"),
                                            ("127.0.0.1:9000", "http://127.0.0.1:9000/healthz"),
                                            ("[::]:8080", "http://127.0.0.1:8080/healthz"),
                                            ("[::1]:8080", "http://[::1]:8080/healthz")])
def test_the_healthcheck_follows_eventi_bind(bind, expected):
    assert url(bind) == expected


def test_the_healthcheck_command_answers_for_a_running_app_and_fails_for_none(start_gunicorn):
    server = start_gunicorn(workers=1)
    check = [sys.executable, "-m", "eventi.server.healthcheck"]
    up = subprocess.run(check, env={**os.environ, "EVENTI_BIND": f"0.0.0.0:{server.port}"}, capture_output=True, timeout=30)
    down = subprocess.run(check, env={**os.environ, "EVENTI_BIND": f"0.0.0.0:{free_port()}"}, capture_output=True, timeout=30)
    assert (up.returncode, down.returncode) == (0, 1), down.stderr
