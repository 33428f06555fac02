"""Reading an order's current status: the Redis cache first, MongoDB on a miss."""
import logging
from typing import Any

from redis.exceptions import RedisError

from ..domain.models import status_body
from ..errors import StoreUnavailable
from ..storage.order_store import OrderStore
from ..storage.status_cache import StatusCache
from .broadcast import StatusBroadcaster

log = logging.getLogger(__name__)


class StatusReader:
    """At most one MongoDB read per call to current(); what it reads from the store it caches via the broadcaster."""

    def __init__(self, store: OrderStore, cache: StatusCache, broadcaster: StatusBroadcaster) -> None:
        self._store = store
        self._cache = cache
        self._broadcaster = broadcaster

    def current(self, order_id: str) -> dict[str, Any] | None:
        """The status body from the cache or the store; None when the order does not exist."""
        try:
            cached = self._cache.get(order_id)
        except RedisError:
            cached = None
        if cached is not None:
            return cached
        return self.from_store(order_id, refresh_cache=True)

    def from_store(self, order_id: str, refresh_cache: bool = False) -> dict[str, Any] | None:
        """The status body as MongoDB holds it (the truth); None when there is no such order."""
        order = self._store.get_order(order_id)
        if order is None:
            return None
        body: dict[str, Any] = status_body(order)
        if refresh_cache:
            self._broadcaster.remember(body)
        return body

    def with_order(self, order_id: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The stored order and its status body, from one MongoDB read (the payment page shows what was bought,
        which the cache does not hold); None when there is no such order."""
        order = self._store.get_order(order_id)
        if order is None:
            return None
        return order, status_body(order)

    def recheck(self, order_id: str, fallback: dict[str, Any]) -> dict[str, Any]:
        """Re-read the store after a missed notification; keep the fallback if it is down."""
        try:
            return self.from_store(order_id) or fallback
        except StoreUnavailable:
            return fallback
