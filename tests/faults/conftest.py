"""Fault tests get servers of their own, because they stop and start them."""
import pytest

from tests.support.processes import FerretDB, RedisServer


@pytest.fixture
def own_redis(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    yield server
    if server.process.proc.poll() is None:
        server.stop()


@pytest.fixture
def own_mongo(tmp_path):
    server = FerretDB(tmp_path / "ferretdb").start()
    yield server
    if server.process.proc.poll() is None:
        server.stop()
