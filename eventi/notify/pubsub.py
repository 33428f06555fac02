"""Opening and closing redis-py PubSubs the way both modes need."""
from __future__ import annotations

import time

from redis import Redis
from redis.client import PubSub
from redis.exceptions import RedisError


def open_pubsub(client: Redis) -> PubSub:
    """A new PubSub on the client's pool (redis-py leaves Redis.pubsub() unannotated)."""
    pubsub: PubSub = client.pubsub()  # type: ignore[no-untyped-call]  # unannotated in redis-py
    return pubsub


def await_confirmation(pubsub: PubSub, timeout: float) -> None:
    """Read until Redis confirms the SUBSCRIBE, so it is live before the status read."""
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        message = pubsub.get_message(timeout=remaining)
        if message is not None and message["type"] == "subscribe":
            return
    raise TimeoutError("Redis did not confirm the subscription")


def close_quietly(pubsub: PubSub) -> None:
    """Close a PubSub whose connection may already be broken."""
    try:
        pubsub.close()
    except (RedisError, OSError):
        pass
