"""The wire format of a status notification: its channel and its JSON message.

A message on ``order:{<orderId>}:status`` is JSON ``{"body": <status body>, "sentAt": <epoch seconds>}``;
it is sent (by eventi/services/broadcast.py) only after the store holds the same status, so a waiter
may answer with its body. The order id in braces is a Redis Cluster hash tag: the channel and the
order's status cache key (``order:{<orderId>}:cache``, eventi/storage/status_cache.py) hash to one slot, so on
a cluster the cache scripts, the SPUBLISH and the SSUBSCRIBE of one order all go to one node.
"""
from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CHANNEL_PREFIX = "order:{"
CHANNEL_SUFFIX = "}:status"
CHANNEL_PATTERN = CHANNEL_PREFIX + "*" + CHANNEL_SUFFIX
"""Every order's channel, for PSUBSCRIBE (glob: the braces are plain characters to it)."""


def hash_tag(order_id: str) -> str:
    """The Redis Cluster hash tag of an order's keys and channel: its id in braces."""
    return "{" + order_id + "}"


def channel_for(order_id: str) -> str:
    """The channel an order's status changes are published on."""
    return CHANNEL_PREFIX + order_id + CHANNEL_SUFFIX


def order_id_of(channel: str | bytes) -> str:
    """The order id a channel name belongs to."""
    name = text(channel)
    if name.startswith(CHANNEL_PREFIX) and name.endswith(CHANNEL_SUFFIX):
        return name[len(CHANNEL_PREFIX):-len(CHANNEL_SUFFIX)]
    return ""


def encode_message(body: Mapping[str, Any], sent_at: float | None = None) -> str:
    """The message for a status body, stamped with sent_at (now by default)."""
    return json.dumps({"body": body, "sentAt": time.time() if sent_at is None else sent_at})


@dataclass(frozen=True, slots=True)
class Notification:
    """A status body received from Redis, with the time it was published."""

    body: dict[str, Any]
    sent_at: float | None

    @classmethod
    def decode(cls, data: str | bytes) -> Notification:
        """Parse a message; ValueError, KeyError or TypeError when it is not one."""
        message = json.loads(data)
        return cls(message["body"], message.get("sentAt"))


def text(value: str | bytes) -> str:
    """A channel name as str (redis-py hands out bytes unless decode_responses is set)."""
    return value.decode() if isinstance(value, bytes) else value
