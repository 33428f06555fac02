"""Idempotent order creation: one order per Idempotency-Key, its first answer replayed for 24 hours.

The key is claimed (a unique insert, eventi/storage/idempotency_keys.py) before anything else happens, with an
orderId reserved for it, so two requests racing with one key create one order: the other is told the
key is in use (409). A request that surely created nothing (sold out, push limit, unknown event) frees
its key so it can be sent again; one that stored an order keeps its answer, 201 or the 502 of a refused
push, and later requests with the same key and body get that answer again, with no second push. The
same key with another body is 422. A request that stopped without an answer (the store failed, the
process died) is settled by the first retry after UNANSWERED_AFTER: see _unanswered.
"""
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bson import ObjectId

from ..domain.models import utcnow
from ..errors import EventiError, IdempotencyKeyInUse, IdempotencyKeyReused, PaymentProviderError, StoreUnavailable
from ..storage.idempotency_keys import IdempotencyKeys
from ..storage.order_store import OrderStore
from .checkout import OrderService

log = logging.getLogger(__name__)

UNANSWERED_AFTER = timedelta(seconds=60)
"""A key this old without an answer belongs to a request that stopped (its push times out after 8 s)."""


Render = Callable[[dict[str, Any]], dict[str, Any]]
"""order -> the body of its 201 answer."""


@dataclass(frozen=True)
class Created:
    status: int
    body: dict[str, Any]
    replayed: bool = False


def digest(fields: dict[str, Any]) -> str:
    """What makes two requests "the same body": the validated fields, normalised (phone as 254...)."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class IdempotentOrders:
    """OrderService.create behind an optional Idempotency-Key."""

    def __init__(self, orders: OrderService, keys: IdempotencyKeys, store: OrderStore,
                 unanswered_after: timedelta = UNANSWERED_AFTER) -> None:
        self._orders = orders
        self._keys = keys
        self._store = store
        self._unanswered_after = unanswered_after

    def create(self, fields: dict[str, Any], key: str | None, render: Render) -> Created:
        """Create an order (render(order) is its 201 body), or replay the key's first answer."""
        if key is None:
            return Created(201, render(self._orders.create(fields)))
        request_digest, order_id = digest(fields), ObjectId()
        earlier = self._keys.claim(key, request_digest, order_id)
        if earlier is None:
            return self._create(key, fields, render, order_id)
        if earlier["digest"] != request_digest:
            raise IdempotencyKeyReused()
        if earlier.get("answer") is not None:
            return Created(earlier["answer"]["status"], earlier["answer"]["body"], replayed=True)
        return self._unanswered(key, earlier, fields, render)

    def _create(self, key: str, fields: dict[str, Any], render: Render, order_id: ObjectId) -> Created:
        try:
            order = self._orders.create(fields, order_id)
        except PaymentProviderError as exc:  # the order is stored, failed: that is this key's answer
            self._keep(key, exc.status, {"error": exc.code, "message": exc.message, **exc.extra})
            raise
        except (StoreUnavailable, IdempotencyKeyInUse):
            raise  # the order may land yet, or another request made it: the key stays taken
        except BaseException:
            self._forget(key)  # nothing was created: the key may be sent again
            raise
        body = render(order)
        self._keep(key, 201, body)
        return Created(201, body)

    def _unanswered(self, key: str, earlier: dict[str, Any], fields: dict[str, Any], render: Render) -> Created:
        """The key's first request has not answered: still running, or it stopped (store failure, crash).

        After UNANSWERED_AFTER it has surely stopped. If its order was stored, that order is the answer;
        if not, the order is created now under the orderId reserved for the key, so a late insert of the
        first request and this one cannot both land (the order's _id is unique).
        """
        if earlier["createdAt"] > utcnow() - self._unanswered_after:
            raise IdempotencyKeyInUse()
        order = self._store.get_order(str(earlier["orderId"]))
        if order is None:
            log.warning("Idempotent request that stopped before storing its order is retried orderId=%s",
                        earlier["orderId"])
            return self._create(key, fields, render, earlier["orderId"])
        body = render(order)
        self._keep(key, 201, body)
        return Created(201, body, replayed=True)

    def _keep(self, key: str, status: int, body: dict[str, Any]) -> None:
        try:
            self._keys.answer(key, status, body)
        except EventiError:  # the order exists and the shopper must hear so; a replay rebuilds it from the order
            log.warning("Answer of an idempotent request not kept orderId=%s", body.get("orderId"))

    def _forget(self, key: str) -> None:
        try:
            self._keys.forget(key)
        except EventiError:
            log.warning("Idempotency key of a request that created nothing not freed; it is retried after %s",
                        self._unanswered_after)
