"""Idempotency keys of POST /api/orders in MongoDB: one document per key, inserted before anything else.

The key document is inserted with the key as _id (a unique insert: atomic on MongoDB and FerretDB
alike), so of two requests racing with one key exactly one creates the order. It holds a digest of
the request, the orderId reserved for it and, once answered, the answer to replay for 24 hours. Expired
keys go by MongoDB's TTL index, and on every store by remove_expired (the reconcile sweep calls it):
FerretDB refuses TTL indexes.
"""
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError, OperationFailure

from ..domain.models import utcnow
from ..errors import IdempotencyKeyInUse
from .order_store import durable, unavailable_on_error

KEY_LIFETIME = timedelta(hours=24)
SWEEP_LIMIT = 1000
"""The most expired keys one remove_expired call deletes: a sweep stays short however many piled up."""


class IdempotencyKeys:
    """Claims, answers and forgets idempotency keys."""

    def __init__(self, database: Database[dict[str, Any]]) -> None:
        self.keys = database.get_collection("idempotency_keys", write_concern=durable(database))

    def ensure_indexes(self) -> None:
        """A TTL index lets MongoDB drop keys after a day; the code ignores older keys either way."""
        try:
            self.keys.create_index([("createdAt", ASCENDING)], expireAfterSeconds=int(KEY_LIFETIME.total_seconds()))
        except OperationFailure:
            self.keys.create_index([("createdAt", ASCENDING)])  # FerretDB v1 refuses TTL indexes

    @unavailable_on_error
    def claim(self, key: str, digest: str, order_id: ObjectId) -> dict[str, Any] | None:
        """Take the key for a new request: None when taken, else the document of the earlier request.

        A key older than KEY_LIFETIME is free again (MongoDB's TTL monitor runs once a minute; FerretDB
        has none); if another request takes it in the meantime, this one is told the key is in use.
        """
        document = {"_id": key, "digest": digest, "orderId": order_id, "createdAt": utcnow(), "answer": None}
        if self._insert(document):
            return None
        earlier = self.keys.find_one({"_id": key})
        if earlier is not None and earlier["createdAt"] > utcnow() - KEY_LIFETIME:
            return earlier
        if earlier is not None:
            self.keys.delete_one({"_id": key, "createdAt": earlier["createdAt"]})
        if self._insert(document):
            return None
        raise IdempotencyKeyInUse()

    def _insert(self, document: dict[str, Any]) -> bool:
        try:
            self.keys.insert_one(document)
            return True
        except DuplicateKeyError:
            return False

    @unavailable_on_error
    def answer(self, key: str, status: int, body: dict[str, Any]) -> None:
        """Keep the answer the key's request got, for replays."""
        self.keys.update_one({"_id": key}, {"$set": {"answer": {"status": status, "body": body}}})

    @unavailable_on_error
    def forget(self, key: str) -> None:
        """The request created nothing: the key may be used again."""
        self.keys.delete_one({"_id": key})

    @unavailable_on_error
    def remove_expired(self, now: datetime, limit: int = SWEEP_LIMIT) -> int:
        """Delete up to limit keys older than KEY_LIFETIME (claim already treats them as free); how many went.

        The delete repeats the age filter, so a key claimed again since it was found is kept on MongoDB;
        FerretDB's delete finds, then deletes by id, so a key re-claimed in between may go (claim()'s own
        delete of an expired key has the same window; it needs a key reused after 24 h).
        """
        cutoff = now - KEY_LIFETIME
        expired = [doc["_id"] for doc in self.keys.find({"createdAt": {"$lt": cutoff}}, {"_id": 1}).limit(limit)]
        if not expired:
            return 0
        return self.keys.delete_many({"_id": {"$in": expired}, "createdAt": {"$lt": cutoff}}).deleted_count
