"""Fault tests get servers of their own, because they stop and start them."""
import uuid

import pytest

from tests.support.events import seed_test_events
from tests.support.processes import FerretDB, RedisServer


@pytest.fixture
def own_redis(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    yield server
    if server.process.proc.poll() is None:
        server.stop()


@pytest.fixture
def own_mongo(postgres_server):
    """A FerretDB of this test's own (a database of its own on the session's PostgreSQL), with the test events."""
    server = FerretDB(postgres_server, database="eventi_" + uuid.uuid4().hex[:12]).start()
    seed_test_events(server.uri)
    yield server
    if server.process.proc.poll() is None:
        server.stop()
