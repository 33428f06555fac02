"""The Redis status cache: the latest public status body of each order, with a short TTL."""
import json

CACHE_PREFIX = "order:cache:"


class StatusCache:
    """Caches status bodies so a wait usually needs no MongoDB read."""

    def __init__(self, redis_client, ttl_seconds=60):
        self._redis = redis_client
        self._ttl = ttl_seconds

    def get(self, order_id):
        """The cached body, or None. Raises RedisError."""
        raw = self._redis.get(CACHE_PREFIX + order_id)
        return json.loads(raw) if raw else None

    def put(self, body):
        """Cache the body for the TTL. Raises RedisError."""
        self._redis.set(CACHE_PREFIX + body["orderId"], json.dumps(body), ex=self._ttl)
