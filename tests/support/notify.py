"""Notifiers for tests that must know when a message has reached the waiters."""
import redis

from eventi.notify import Hub, Notifier, PerRequestNotifier


class CountingHub(Hub):
    """A Hub that counts the messages it has read from Redis (all orders)."""

    def __init__(self, redis_client, recheck_seconds=2.0):
        super().__init__(redis_client, recheck_seconds)
        self.received = 0

    def _dispatch(self, channel, data):
        self.received += 1
        super()._dispatch(channel, data)


def notifier(mode: str, redis_url: str, recheck_seconds: float) -> Notifier:
    """A notifier of the mode on its own Redis client: CountingHub for "hub"."""
    client = redis.Redis.from_url(redis_url)
    if mode == "hub":
        return CountingHub(client, recheck_seconds)
    return PerRequestNotifier(client, recheck_seconds)
