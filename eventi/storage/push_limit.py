"""At most N STK pushes per phone number per window: a Redis counter of the pushes sent.

A push is counted by reserving it before the order is stored (INCR, EXPIRE on the first, in one script) and giving
the reservation back when no push went out: a 503 from the store, a 500, PayHero unreachable. So
the limit counts only pushes that may have reached PayHero, which is what PayHero blocks numbers
for, and concurrent checkouts for one phone still cannot push more than N between them (counting
only after the push would let them all pass the check first).
"""
import logging
from types import TracebackType
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from .. import metrics
from ..errors import TooManyPushes

if TYPE_CHECKING:
    from .redis_clients import RedisClient

log = logging.getLogger(__name__)

KEY_TEMPLATE = "stk:pushes:{phone}"
"""One key per phone (no hash tag needed on a cluster: each script touches it alone)."""

# INCR, and start the window on a new counter (or one that lost its expiry): one round trip, atomic.
_TAKE = """local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) ttl = tonumber(ARGV[1]) end
return {count, ttl}"""
# DECR only a counter that still exists: one that expired meanwhile must not come back at -1, without expiry.
_GIVE_BACK = "if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('DECR', KEYS[1]) end return 0"


class PushLimiter:
    """PayHero blocks numbers after repeated failed pushes, so we stop first. limit 0 turns it off."""

    def __init__(self, redis_client: "RedisClient", limit: int, window_seconds: int) -> None:
        self._redis = redis_client
        self.limit = limit
        self.window = window_seconds
        self._take = redis_client.register_script(_TAKE)
        self._give_back = redis_client.register_script(_GIVE_BACK)

    def reserve(self, phone: str) -> "Reservation":
        """One push to phone, held until sent(); raises TooManyPushes past the limit. Open when Redis is down."""
        if not self.limit:
            return Reservation()
        key = KEY_TEMPLATE.format(phone=phone)
        try:
            count, ttl = self._take(keys=[key], args=[self.window])
        except RedisError as exc:
            metrics.REDIS_ERRORS.inc()
            log.warning("Push limit not checked, Redis failed (%s)", exc.__class__.__name__)
            return Reservation()
        if count > self.limit:
            self.release(key)  # a refused push is not a push
            metrics.STK_PUSHES.labels("limited").inc()
            raise TooManyPushes.after(max(1, ttl))
        return Reservation(self, key)

    def wait_seconds(self, phone: str) -> int:
        """Seconds until reserve(phone) would pass again: 0 when it would now (or Redis cannot tell: it is open then).
        The same figure as a refused reserve's Retry-After, so a page can say when before anyone tries."""
        if not self.limit:
            return 0
        key = KEY_TEMPLATE.format(phone=phone)
        try:
            pipe = self._redis.pipeline()
            pipe.get(key)
            pipe.ttl(key)
            count, ttl = pipe.execute()
        except RedisError as exc:
            metrics.REDIS_ERRORS.inc()
            log.warning("Push limit not read, Redis failed (%s)", exc.__class__.__name__)
            return 0
        if count is None or int(count) < self.limit:
            return 0
        return ttl if ttl > 0 else self.window  # no expiry: the next reserve starts a full window

    def release(self, key: str) -> None:
        """Give one reserved push back. If Redis fails here, the push stays counted until the window ends."""
        try:
            self._give_back(keys=[key])
        except RedisError as exc:
            metrics.REDIS_ERRORS.inc()
            log.warning("Push limit reservation not given back, Redis failed (%s)", exc.__class__.__name__)


class Reservation:
    """A push held against the limit: given back when its with-block ends unless sent() was called."""

    def __init__(self, limiter: PushLimiter | None = None, key: str | None = None) -> None:
        self._limiter = limiter
        self._key = key

    def sent(self) -> None:
        """The push went out (or may have): it counts for the rest of the window."""
        self._key = None

    def __enter__(self) -> "Reservation":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self._key is not None and self._limiter is not None:
            self._limiter.release(self._key)
            self._key = None
