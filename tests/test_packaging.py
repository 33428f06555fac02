"""Packaging: a wheel built without warnings that holds the WSGI entry and the gunicorn config, the `eventi`
command, lock files that pin what setup.cfg asks for, and `make run` installing only what running needs."""
import configparser
import os
import re
import subprocess
import sys
import zipfile
from importlib import metadata

import requests
from packaging.requirements import Requirement

from devstack.processes import ROOT, Process, free_port
from tests.conftest import gunicorn_env

EVENTI = str(ROOT / ".venv" / "bin" / "eventi")


def setup_cfg():
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    return parser


def requirements(section, key):
    return [Requirement(line) for line in setup_cfg()[section][key].strip().splitlines()]


def pins(path):
    lines = (ROOT / path).read_text().splitlines()
    return {re.sub(r"[-_.]+", "-", name).lower(): version
            for name, version in (line.split("==") for line in lines if line and not line.startswith("#"))}


def test_the_wheel_builds_without_warnings_and_holds_what_running_needs(tmp_path):
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", str(tmp_path), str(ROOT)],
                           capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    warnings = [line for line in (built.stdout + built.stderr).splitlines()
                if "warning" in line.lower() and "byte-compiling is disabled" not in line]  # PYTHONDONTWRITEBYTECODE
    assert not warnings, "\n".join(warnings)
    [wheel] = tmp_path.glob("eventi-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("eventi/wsgi.py", "eventi/server/gunicorn_conf.py", "eventi/cli/main.py", "eventi/templates/checkout.html",
                 "eventi/static/js/long-poll.js", "eventi/static/css/eventi.css", "eventi/static/favicon.svg"):
        assert name in names, name
    assert not any(name.startswith(("tests/", "bench/", "devstack/")) for name in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "eventi = eventi.cli.main:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_the_lock_files_pin_every_requirement_setup_cfg_names():
    runtime, test = pins("requirements.lock"), pins("requirements-test.lock")
    for requirement in requirements("options", "install_requires"):
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        assert name in runtime and requirement.specifier.contains(runtime[name]), requirement
    for requirement in requirements("options.extras_require", "test"):
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        assert name in test and requirement.specifier.contains(test[name]), requirement
    assert {name: test[name] for name in runtime} == runtime  # one set of versions
    for name, version in runtime.items():  # and this venv was installed from them (make deps)
        assert metadata.version(name) == version, name


def test_make_run_installs_only_what_running_needs_and_make_test_adds_the_test_tools():
    run = subprocess.run(["make", "-n", "-B", "run"], cwd=ROOT, capture_output=True, text=True, timeout=60).stdout
    test = subprocess.run(["make", "-n", "-B", "test"], cwd=ROOT, capture_output=True, text=True, timeout=60).stdout
    assert "pip install -q -r requirements.lock" in run and "requirements-test.lock" not in run
    assert not re.search(r"chromium|nginx|nodejs|prometheus|\[test\]", run), run
    assert "pip install -q -r requirements-test.lock" in test and "chromium" in test and "prometheus" in test


def test_eventi_serve_runs_the_packaged_app_from_any_directory(settings, tmp_path):
    port = free_port()
    env = {**os.environ, **gunicorn_env(settings), "EVENTI_BIND": f"127.0.0.1:{port}", "EVENTI_WORKERS": "1"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    server = Process("eventi serve", [EVENTI, "serve"], env=env, cwd=str(tmp_path))  # no wsgi.py, no gunicorn.conf.py here
    server.start(ready=r"eventi worker ready", timeout=60)
    try:
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json() == {"status": "ok"}
    finally:
        server.stop()


def test_eventi_lists_every_command(tmp_path):
    env = {**os.environ, "EVENTI_ENV": "test", "EVENTI_VAR_DIR": str(tmp_path)}
    listing = subprocess.run([EVENTI, "--help"], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    for command in ("serve", "create-indexes", "reconcile", "order", "simulator"):
        assert re.search(rf"^\s+{command}\s", listing.stdout, re.M), command
    order = subprocess.run([sys.executable, "-m", "eventi", "order", "--help"], env=env, capture_output=True, text=True,
                           timeout=60, cwd=tmp_path)
    assert order.returncode == 0 and "show" in order.stdout and "find" in order.stdout


def test_an_invalid_setting_stops_the_eventi_command_with_one_line(tmp_path):
    env = {**os.environ, "EVENTI_ENV": "test", "EVENTI_VAR_DIR": str(tmp_path), "EVENTI_MONGO_URI": "mongodb://db:27017"}
    result = subprocess.run([EVENTI, "create-indexes"], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 4
    assert result.stderr.strip() == ("eventi: invalid setting: EVENTI_MONGO_URI must name the database in its path, "
                                     "e.g. mongodb://host:27017/eventi")
