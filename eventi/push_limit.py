"""At most N STK pushes per phone number per window: a Redis counter (INCR, then EXPIRE)."""
import logging

from redis.exceptions import RedisError

from . import metrics
from .errors import TooManyPushes

log = logging.getLogger(__name__)

KEY_TEMPLATE = "stk:pushes:{phone}"


class PushLimiter:
    """PayHero blocks numbers after repeated failed pushes, so we stop first. limit 0 turns it off."""

    def __init__(self, redis_client, limit, window_seconds):
        self._redis = redis_client
        self.limit = limit
        self.window = window_seconds

    def hit(self, phone):
        """Count one push to phone; raise TooManyPushes past the limit. Open when Redis is down."""
        if not self.limit:
            return
        key = KEY_TEMPLATE.format(phone=phone)
        try:
            count, ttl = self._redis.pipeline().incr(key).ttl(key).execute()
            if ttl < 0:  # a new counter (or one that lost its expiry): start the window
                self._redis.expire(key, self.window)
                ttl = self.window
        except RedisError as exc:
            metrics.REDIS_ERRORS.inc()
            log.warning("Push limit not checked, Redis failed (%s)", exc.__class__.__name__)
            return
        if count > self.limit:
            metrics.STK_PUSHES.labels("limited").inc()
            error = TooManyPushes()
            error.retry_after = max(1, ttl)
            raise error
