"""Fault tests get servers of their own, because they stop and start them (stopping one that a test
has stopped already is a no-op)."""
import uuid

import pytest

from devstack.processes import FerretDB, RedisServer
from tests.support.events import seed_test_events


@pytest.fixture
def own_redis(tmp_path):
    with RedisServer(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def own_mongo(postgres_server):
    """A FerretDB of this test's own (a database of its own on the session's PostgreSQL), with the test events."""
    with FerretDB(postgres_server, database="eventi_" + uuid.uuid4().hex[:12]) as server:
        seed_test_events(server.uri)
        yield server
