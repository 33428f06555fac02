"""Notifiers for tests that must know when a message has reached the waiters, or must act inside the hub's
reader greenlet between sending a (UN)SUBSCRIBE and reading its confirmation."""
from collections.abc import Callable, Sequence

import redis

from eventi.notify import Hub, Notifier, PerRequestNotifier
from eventi.notify.subscriber import RedisSubscriber


class CountingHub(Hub):
    """A Hub whose `received` counts the messages it has read from Redis (all orders)."""

    @property
    def received(self):
        return self.messages_read


Hook = Callable[[Sequence[str]], None]


class HookedSubscriber(RedisSubscriber):
    """A RedisSubscriber that counts the commands it sends and calls a hook right after sending each
    SUBSCRIBE / UNSUBSCRIBE, in the hub's reader greenlet, before the reader can read the reply."""

    def __init__(self, client, on_readable, counts, on_subscribe=None, on_unsubscribe=None):
        super().__init__(client, on_readable)
        self._counts = counts
        self._on_subscribe = on_subscribe
        self._on_unsubscribe = on_unsubscribe

    def subscribe(self, channels):
        super().subscribe(channels)
        self._counts["SUBSCRIBE"] += 1
        if self._on_subscribe:
            self._on_subscribe(channels)

    def unsubscribe(self, channels):
        super().unsubscribe(channels)
        self._counts["UNSUBSCRIBE"] += 1
        if self._on_unsubscribe:
            self._on_unsubscribe(channels)


def hooked_hub(redis_url, recheck_seconds=60.0, on_subscribe: Hook | None = None, on_unsubscribe: Hook | None = None,
               client_name=None):
    """A CountingHub on its own client whose subscriber is a HookedSubscriber; hub.commands counts what it sent."""
    client = redis.Redis.from_url(redis_url, client_name=client_name)
    counts = {"SUBSCRIBE": 0, "UNSUBSCRIBE": 0}

    def open_subscriber(on_readable):
        return HookedSubscriber(client, on_readable, counts, on_subscribe, on_unsubscribe)

    hub = CountingHub(client, recheck_seconds, subscriber=open_subscriber)
    hub.commands = counts
    hub.client_name = client_name
    return hub


def numsub(redis_url, channel):
    """How many connections Redis has subscribed to the channel (PUBSUB NUMSUB)."""
    return dict(redis.Redis.from_url(redis_url).pubsub_numsub(channel)).get(channel.encode(), 0)


def notifier(mode: str, redis_url: str, recheck_seconds: float) -> Notifier:
    """A notifier of the mode on its own Redis client: CountingHub for "hub"."""
    client = redis.Redis.from_url(redis_url)
    if mode == "hub":
        return CountingHub(client, recheck_seconds)
    return PerRequestNotifier(client, recheck_seconds)
