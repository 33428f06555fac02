"""The wire format of a status notification: its channel and its JSON message.

A message on ``order:status:<orderId>`` is JSON ``{"body": <status body>, "sentAt": <epoch seconds>}``;
it is sent (by eventi/services/broadcast.py) only after the store holds the same status, so a waiter
may answer with its body.
"""
from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CHANNEL_PREFIX = "order:status:"
CHANNEL_PATTERN = CHANNEL_PREFIX + "*"


def channel_for(order_id: str) -> str:
    """The channel an order's status changes are published on."""
    return CHANNEL_PREFIX + order_id


def order_id_of(channel: str | bytes) -> str:
    """The order id a channel name belongs to."""
    return text(channel)[len(CHANNEL_PREFIX):]


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
