"""Idempotent order creation: one order per Idempotency-Key, its first answer replayed for 24 hours.

The key is claimed (a unique insert, eventi/idempotency.py) before anything else happens, so two
requests racing with one key create one order: the other is told the key is in use (409). A request
that created nothing (sold out, push limit, store down) forgets its key so it can be sent again; one
that stored an order keeps its answer, 201 or the 502 of a refused push, and later requests with the
same key and body get that answer again, with no second push. The same key with another body is 422.
"""
import hashlib
import json
import logging
from dataclasses import dataclass

from bson import ObjectId

from ..errors import EventiError, IdempotencyKeyInUse, IdempotencyKeyReused, PaymentProviderError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Created:
    status: int
    body: dict
    replayed: bool = False


def digest(fields):
    """What makes two requests "the same body": the validated fields, normalised (phone as 254...)."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class IdempotentOrders:
    """OrderService.create behind an optional Idempotency-Key."""

    def __init__(self, orders, keys):
        self._orders = orders
        self._keys = keys

    def create(self, fields, key, render):
        """Create an order (render(order) is its 201 body), or replay the key's first answer."""
        if key is None:
            return Created(201, render(self._orders.create(fields)))
        order_id = ObjectId()
        earlier = self._keys.claim(key, digest(fields), order_id)
        if earlier is not None:
            return _replay(earlier, digest(fields))
        try:
            order = self._orders.create(fields, order_id)
        except PaymentProviderError as exc:  # the order is stored, failed: that is this key's answer
            self._keep(key, exc.status, {"error": exc.code, "message": exc.message, **exc.extra})
            raise
        except BaseException:
            self._forget(key)
            raise
        body = render(order)
        self._keep(key, 201, body)
        return Created(201, body)

    def _keep(self, key, status, body):
        try:
            self._keys.answer(key, status, body)
        except EventiError:  # the order exists and the shopper must hear so; the key answers 409 from now on
            log.warning("Answer of an idempotent request not kept orderId=%s", body.get("orderId"))

    def _forget(self, key):
        try:
            self._keys.forget(key)
        except EventiError:
            log.warning("Idempotency key of a request that created nothing not freed; it answers 409 until it expires")


def _replay(earlier, request_digest):
    if earlier["digest"] != request_digest:
        raise IdempotencyKeyReused()
    if earlier.get("answer") is None:
        raise IdempotencyKeyInUse()
    return Created(earlier["answer"]["status"], earlier["answer"]["body"], replayed=True)
