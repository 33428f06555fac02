"""`make run`'s script from a fresh clone in a private folder (0700, as root's home on Debian) whose path
has a space: the whole local stack starts, the store answers and the e2e script pays an order. The clone
borrows this checkout's .venv and .tools (no rebuild); as root, PostgreSQL's data goes to
/var/tmp/eventi-<hash>/ (scripts/postgres.sh)."""
import os
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest
from pymongo import MongoClient

from devstack.processes import ROOT, Process, free_port


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    """A clone of this checkout's HEAD in a private folder (0700) whose path has a space, borrowing the venv."""
    home = tmp_path_factory.mktemp("run-anywhere") / "private home"
    home.mkdir(mode=0o700)
    home.chmod(0o700)
    clone = home / "my eventi"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    for tool in (".venv", ".tools"):
        (clone / tool).symlink_to(ROOT / tool)
    return clone


def clean_env():
    return {k: v for k, v in os.environ.items() if not k.startswith(("EVENTI_", "PAYHERO_", "PUBLIC_BASE_URL", "PROMETHEUS_"))}


def test_the_stack_starts_from_a_clone_in_a_private_folder_whose_path_has_a_space(checkout):
    ports = {name: free_port() for name in ("redis", "postgres", "mongo", "simulator", "http")}
    env = clean_env()
    env.update(EVENTI_LOCAL_REDIS_PORT=str(ports["redis"]), EVENTI_LOCAL_POSTGRES_PORT=str(ports["postgres"]),
               EVENTI_LOCAL_MONGO_PORT=str(ports["mongo"]), EVENTI_SIMULATOR_PORT=str(ports["simulator"]),
               EVENTI_BIND=f"127.0.0.1:{ports['http']}", EVENTI_WORKERS="1", EVENTI_SIMULATOR_DELAY="0.5")
    stack = Process("make run", [str(checkout / "scripts" / "run.sh")], env=env, cwd=str(checkout))
    elsewhere = None
    try:
        stack.start(ready=r"eventi worker ready", timeout=180)
        log = (checkout / "var" / "log" / "postgres.log").read_text()
        moved = re.search(r"the cluster is in (\S+)/postgres", log)
        if os.geteuid() == 0:  # the postgres user cannot reach var/ under the private folder
            assert moved, log
            elsewhere = Path(moved.group(1))
            assert (elsewhere / "postgres" / "PG_VERSION").is_file()
            assert (elsewhere / "checkout").read_text().strip() == str(checkout / "var" / "postgres")
        else:  # run as the invoking user, the data stays in var/
            assert moved is None and (checkout / "var" / "postgres" / "PG_VERSION").is_file()
        with MongoClient(f"mongodb://127.0.0.1:{ports['mongo']}/eventi", serverSelectionTimeoutMS=10_000) as client:
            demo = client.eventi.events.find_one({"_id": "demo"})
        assert demo is not None and demo["ticketTypes"]
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['http']}/healthz", timeout=30) as answer:
            assert answer.status == 200
        e2e = subprocess.run([str(checkout / "scripts" / "run-payment-test.sh")], env=env, capture_output=True,
                             text=True, timeout=180)  # `make e2e`: finds the stack by EVENTI_BIND and the simulator port
        assert e2e.returncode == 0 and e2e.stdout.startswith("e2e: ok "), e2e.stdout + e2e.stderr
    finally:
        stack.stop(timeout=60)
        if elsewhere is not None:
            shutil.rmtree(elsewhere, ignore_errors=True)

