"""Expired idempotency keys are removed by the reconcile sweep on the embedded store (FerretDB has no TTL
index): keys past KEY_LIFETIME go, live ones stay, and one sweep removes a bounded number."""
import uuid
from datetime import timedelta

from bson import ObjectId

from eventi.domain.models import utcnow
from eventi.runtime import current_runtime
from eventi.storage.idempotency_keys import KEY_LIFETIME


def put_keys(runtime, tag, ages):
    """Key documents of the given ages, as claim() writes them; their ids."""
    now = utcnow()
    ids = [f"{tag}-{i}" for i in range(len(ages))]
    runtime.keys.keys.insert_many([{"_id": key, "digest": "d", "orderId": ObjectId(), "createdAt": now - age,
                                    "answer": None} for key, age in zip(ids, ages, strict=True)])
    return ids


def present(runtime, ids):
    return sorted(doc["_id"] for doc in runtime.keys.keys.find({"_id": {"$in": ids}}, {"_id": 1}))


def test_the_reconcile_sweep_removes_expired_keys_and_keeps_live_ones(app):
    runtime = current_runtime(app)
    tag = uuid.uuid4().hex
    expired = put_keys(runtime, f"{tag}-old", [KEY_LIFETIME + timedelta(minutes=1), timedelta(days=30)])
    live = put_keys(runtime, f"{tag}-live", [timedelta(0), KEY_LIFETIME - timedelta(minutes=5)])
    report = runtime.reconciler().run_once()
    assert report.keys_removed >= 2
    assert present(runtime, expired + live) == sorted(live)


def test_one_sweep_removes_at_most_its_limit(app):
    runtime = current_runtime(app)
    expired = put_keys(runtime, uuid.uuid4().hex, [KEY_LIFETIME + timedelta(hours=1)] * 3)
    assert runtime.keys.remove_expired(utcnow(), limit=2) == 2
    assert len(present(runtime, expired)) == 1
    assert runtime.keys.remove_expired(utcnow(), limit=2) >= 1
    assert present(runtime, expired) == []
