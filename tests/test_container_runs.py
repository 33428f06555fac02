"""The image's command and environment, and docker/compose.dev.yml's services, run as processes against the
test stack (no Docker engine here): the Dockerfile's ENV and CMD are read from the file, compose's from
`docker-compose config`; service host names become the test servers' addresses."""
import json
import os
import re
import shlex
import subprocess
import sys
from urllib.parse import urlsplit, urlunsplit

import pytest
import yaml

from devstack.processes import ROOT, Process, free_port
from tests.support.compose import compose_command

DOCKERFILE = ROOT / "docker" / "Dockerfile"
BIN = ROOT / ".venv" / "bin"


def dockerfile_instructions():
    """(instruction, rest) of each Dockerfile line, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [tuple(line.split(None, 1)) for line in lines]


def image_env():
    env = {}
    for instruction, rest in dockerfile_instructions():
        if instruction == "ENV":
            env.update(pair.split("=", 1) for pair in shlex.split(rest))
    return env


def image_command(instruction):
    """The exec-form (JSON) CMD, or HEALTHCHECK's command after its options."""
    [rest] = [rest for name, rest in dockerfile_instructions() if name == instruction]
    return json.loads(rest[rest.index("["):]) if instruction == "CMD" else json.loads(rest.split(" CMD ", 1)[1])


def local(argv):
    """An image command with this checkout's venv in place of the image's PATH."""
    program = {"eventi": str(BIN / "eventi"), "python": sys.executable}.get(argv[0], argv[0])
    return [program, *argv[1:]]


def process_env(tmp_path, *layers):
    """The environment a container would get, for a process here: nothing of ours inherited, this checkout's
    eventi importable, the image's local paths in tmp_path, each port its own."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("EVENTI_", "PAYHERO_", "PUBLIC_BASE", "PROMETHEUS_"))}
    env = {**inherited, "PATH": f"{BIN}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}
    for layer in (image_env(), *layers):
        env.update(layer)
    env.update(EVENTI_VAR_DIR=str(tmp_path / "var"), PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
               EVENTI_METRICS_BIND=f"127.0.0.1:{free_port()}")
    (tmp_path / "metrics").mkdir(exist_ok=True)
    return env


def test_the_image_defaults_to_production_and_stops_in_one_line_without_its_secrets(tmp_path):
    assert image_env()["EVENTI_ENV"] == "production"
    env = process_env(tmp_path, {"EVENTI_BIND": f"127.0.0.1:{free_port()}"})
    run = subprocess.run(local(image_command("CMD")), env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 4, run.stderr[-2000:]
    assert "eventi: invalid setting: EVENTI_SECRET_KEY must be set" in run.stderr


def test_the_image_serves_in_production_with_its_secrets_in_files(tmp_path, settings, payhero_simulator):
    secret, token = tmp_path / "secret_key", tmp_path / "payhero_token"
    secret.write_text("s" * 40 + "\n")
    token.write_text(payhero_simulator.token + "\n")
    port = free_port()
    env = process_env(tmp_path, {
        "EVENTI_BIND": f"127.0.0.1:{port}", "EVENTI_WORKERS": "1", "EVENTI_MONGO_URI": settings["MONGO_URI"],
        "EVENTI_REDIS_URL": settings["REDIS_URL"], "EVENTI_SECRET_KEY_FILE": str(secret),
        "PAYHERO_BASE_URL": payhero_simulator.base_url, "PAYHERO_AUTH_TOKEN_FILE": str(token),
        "PAYHERO_CHANNEL_ID": "911", "PUBLIC_BASE_URL": "https://eventi.example",
        "EVENTI_SUPPORT_CONTACT": "call 0700 000 000"})
    app = Process("image", local(image_command("CMD")), env=env, cwd=str(tmp_path))
    try:
        app.start(ready=r"eventi worker ready", timeout=120)
        health = subprocess.run(local(image_command("HEALTHCHECK")), env=env, capture_output=True, text=True, timeout=60)
        assert health.returncode == 0, health.stderr
    finally:
        app.stop()
    assert not (tmp_path / "var" / "secret_key").exists()  # the file's secret, none generated


@pytest.fixture(scope="module")
def dev_compose():
    result = subprocess.run([*compose_command(), "-f", str(ROOT / "docker" / "compose.dev.yml"), "config"],
                            env={k: v for k, v in os.environ.items() if not k.startswith(("EVENTI_", "PAYHERO_"))},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr  # needs no setting from outside
    return yaml.safe_load(result.stdout)["services"]


def test_the_dev_compose_file_runs_the_simulator_and_publishes_only_on_loopback(dev_compose):
    assert dev_compose["app"]["environment"]["EVENTI_ENV"] == "development"
    assert dev_compose["app"]["environment"]["PAYHERO_BASE_URL"] == "http://simulator:8010"
    assert dev_compose["app"]["depends_on"]["setup"] == {"condition": "service_completed_successfully"}
    published = {name: service["ports"] for name, service in dev_compose.items() if service.get("ports")}
    assert set(published) == {"app", "simulator"}
    assert all(str(port).startswith("127.0.0.1:") for ports in published.values() for port in ports)


def test_the_dev_compose_services_pay_an_order_through_the_e2e_script(tmp_path, dev_compose, redis_server, mongo_server):
    app_port, simulator_port = free_port(), free_port()
    store = urlsplit(mongo_server.uri)
    addresses = {  # compose's service names, as the test servers' addresses
        "mongodb://mongo:27017/eventi": urlunsplit((store.scheme, store.netloc, "/eventi_compose_dev", store.query, "")),
        "redis://redis:6379/0": redis_server.url,
        "http://simulator:8010": f"http://127.0.0.1:{simulator_port}",
        "http://app:8000": f"http://127.0.0.1:{app_port}",
    }

    def service_env(name, folder):
        env = {k: addresses.get(str(v), str(v)) for k, v in dev_compose[name]["environment"].items()}
        folder.mkdir()
        return process_env(folder, env, {"EVENTI_BIND": f"127.0.0.1:{app_port}"})

    simulator_argv = local(dev_compose["simulator"]["command"])
    simulator_argv[simulator_argv.index("--port") + 1] = str(simulator_port)
    # its callback 0.5 s after each push, not the default 3 s: the delay is no part of what the compose file says
    simulator = Process("simulator", simulator_argv,
                        env={**service_env("simulator", tmp_path / "simulator"), "EVENTI_SIMULATOR_DELAY": "0.5"})
    app = Process("app", local(image_command("CMD")), env=service_env("app", tmp_path / "app"), cwd=str(tmp_path))
    try:
        simulator.start()
        simulator.wait_for_port(simulator_port)
        setup = subprocess.run(dev_compose["setup"]["command"], env=service_env("setup", tmp_path / "setup"),
                               capture_output=True, text=True, timeout=120)
        assert setup.returncode == 0 and "event demo" in setup.stdout, setup.stderr
        app.start(ready=r"eventi worker ready", timeout=120)
        e2e = subprocess.run([str(ROOT / "scripts" / "run-payment-test.sh")], capture_output=True, text=True, timeout=180,
                             env={**os.environ, "EVENTI_URL": f"http://127.0.0.1:{app_port}",
                                  "SIMULATOR_URL": f"http://127.0.0.1:{simulator_port}"})
        assert e2e.returncode == 0 and e2e.stdout.startswith("e2e: ok "), e2e.stdout + e2e.stderr
    finally:
        app.stop()
        simulator.stop()
