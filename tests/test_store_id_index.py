"""The store's `_id` lookups use the `_id` index (scripts/ferretdb-id-lookup.patch), so a callback's
reads and writes cost the same at 100 orders and at 100,000. Checked in PostgreSQL's own counters."""
import os
import subprocess
import uuid

import pytest
from bson import ObjectId
from gevent.pool import Pool
from pymongo import MongoClient

from devstack.wait import eventually

pytestmark = pytest.mark.skipif(bool(os.environ.get("EVENTI_TEST_MONGO_URI")),
                                reason="MongoDB serves _id from its index; this checks the FerretDB build")


def scans(postgres, schema):
    """(sequential scans, index scans) of the schema's one collection table, as PostgreSQL counts them."""
    sql = ("SELECT coalesce(sum(seq_scan), 0) || ' ' || coalesce(sum(idx_scan), 0) FROM pg_stat_user_tables "
           f"WHERE schemaname = '{schema}' AND relname LIKE 'probe%'")
    out = subprocess.run(["psql", postgres.url, "-At", "-c", sql], capture_output=True, text=True, check=True)
    seq, idx = out.stdout.split()
    return int(seq), int(idx)


def test_finds_and_updates_by_id_are_index_scans(postgres_server, mongo_server):
    database = "idx_" + uuid.uuid4().hex[:8]
    client = MongoClient(mongo_server.uri.rsplit("/", 1)[0])
    try:
        probe = client[database]["probe"]
        ids = [ObjectId() for _ in range(2000)]
        probe.insert_many([{"_id": x, "status": "pending"} for x in ids])
        nudge = client[database]["nudge"]
        nudge.insert_one({"n": 1})
        before = scans(postgres_server, database)
        for x in ids[-20:]:
            assert probe.find_one({"_id": x})["status"] == "pending"
            probe.find_one_and_update({"_id": x}, {"$set": {"status": "completed"}})
        # PostgreSQL publishes a backend's counters when a later transaction of it ends (a second after its last
        # publication at the earliest), else once it has idled 10 s: poll for them, each time giving FerretDB's
        # connections a read of another table (not counted), which publishes them within a second or so.

        def counted():
            Pool(8).map(lambda _: nudge.find_one({"n": 1}), range(8))  # on each of the pool's busy connections
            return scans(postgres_server, database)[1] >= before[1] + 40

        eventually(counted, 30, "40 index scans counted")
        after = scans(postgres_server, database)
        # 40 lookups: unpatched, 40 more sequential scans; patched, none of them (one stray count may
        # belong to the inserts, published after `before` was read).
        assert after[0] - before[0] < 5, f"lookups by _id scanned the table: {before} -> {after}"
    finally:
        client.drop_database(database)
        client.close()
