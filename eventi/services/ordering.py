"""Creating orders."""
from redis.exceptions import RedisError

from ..models import status_body


class OrderService:
    """Stores new orders and primes the status cache for their waits."""

    def __init__(self, store, cache):
        self._store = store
        self._cache = cache

    def create(self, fields):
        """Store a pending order from validated fields; return the stored document."""
        order = self._store.create_order(fields)
        try:
            self._cache.put(status_body(order))
        except RedisError:
            pass  # a cache miss later costs one MongoDB read, nothing more
        return order
