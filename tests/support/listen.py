"""A test's own subscriber to an order's status channel, as a waiting worker's hub would hear it."""
import json
import time

import redis

from eventi.notify import channel_for


class ChannelListener:
    """Subscribed (and confirmed) on construction; next_body() reads what was published since.
    A context manager: closed on leaving the with block."""

    def __init__(self, redis_url, order_id, timeout=10):
        self._client = redis.Redis.from_url(redis_url)
        self._pubsub = self._client.pubsub()
        self._pubsub.subscribe(channel_for(order_id))
        deadline = time.monotonic() + timeout
        while (message := self._pubsub.get_message(timeout=1)) is None or message["type"] != "subscribe":
            if time.monotonic() > deadline:
                raise AssertionError("no subscribe confirmation")

    def next_body(self, timeout=10):
        """The next published status body, or None when none came within timeout."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            message = self._pubsub.get_message(timeout=min(remaining, 1))
            if message is not None and message["type"] == "message":
                return json.loads(message["data"])["body"]
        return None

    def close(self):
        self._pubsub.close()
        self._client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
