"""The hub's link to Redis pub/sub, behind a small interface: send (UN)SUBSCRIBEs, read what came back.

The hub (hub.py) decides which channels a worker holds; a Subscriber only carries its commands and
hands back replies. A Subscriber is opened, used and closed by the hub's reader greenlet alone
(one connection, one greenlet: PITFALLS.md), and never blocks in read(): it calls its on_readable
callback when read() may have something, so the reader can wait for Redis and for new waits at once.

RedisSubscriber is the one built here: one plain connection (SUBSCRIBE / UNSUBSCRIBE / PING), for one
server or a Sentinel-named master. On a Redis Cluster the hub takes sharded.ShardedSubscriber
(SSUBSCRIBE over one connection per node, a channel going to the node owning its slot): parse_reply
maps ``smessage`` / ``ssubscribe`` / ``sunsubscribe`` to the same Reply kinds, and it reports a
channel ``lost`` when one node's link or subscription went away while the others stay. Channel names
always come from wire.channel_for.
"""
from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol

import gevent
from redis import Redis
from redis.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from .wire import text

if TYPE_CHECKING:
    from gevent._types import _IoWatcher  # what loop.io() returns, in gevent's stubs

ReplyKind = Literal["message", "subscribe", "unsubscribe", "pong", "lost"]


class Reply(NamedTuple):
    """One thing Redis sent: a published message, a (un)subscribe confirmation (one per channel) or a PONG;
    or ``lost``: the channel is no longer subscribed though nobody asked (a cluster node's link dropped,
    or Redis took the subscription away when its slot moved or its master was demoted), so messages may
    have been missed. A Subscriber with one connection never says lost: it raises from read() instead."""

    kind: ReplyKind
    channel: str = ""
    data: bytes | str | None = None


class Subscriber(Protocol):
    """One worker's pub/sub link, used by one greenlet. Sending never waits for the reply: read() brings it.

    Replies to the commands sent on one link come back in the order the commands were sent (a
    variant with several connections keeps that order per connection, which is all the hub needs:
    per channel, and a PING's PONG after the confirmations of the commands sent before it).
    """

    def subscribe(self, channels: Sequence[str]) -> None:
        """Ask for the channels in as few commands as possible; Redis confirms each channel with a Reply."""
        ...

    def unsubscribe(self, channels: Sequence[str]) -> None:
        """Leave the channels (never an empty list: that would mean every channel)."""
        ...

    def ping(self) -> None:
        """Send a heartbeat; its Reply is a ``pong`` once the link has answered everything sent before."""
        ...

    def read(self) -> list[Reply]:
        """Every reply that has arrived, without blocking; raises RedisError or OSError when the link is broken."""
        ...

    def close(self) -> None:
        """Drop the link (quietly when it is already broken); no callback after this."""
        ...


SubscriberFactory = Callable[[Callable[[], None]], Subscriber]
"""Opens a connected Subscriber that calls the given callback whenever read() may have something
(any number of times, from the event loop; it must only set a flag)."""


class RedisSubscriber:
    """A Subscriber on one connection from the client's pool (RESP2 or RESP3, as the client speaks).

    Not redis-py's PubSub: with no channel subscribed, its get_message() reads nothing (it waits
    for a subscription instead), so the reply to a heartbeat PING would never be read, and it
    keeps its own record of channels that it replays on reconnect (unreliable across versions,
    PITFALLS.md). The hub owns both: it reconnects and resubscribes itself.
    """

    def __init__(self, client: Redis, on_readable: Callable[[], None]) -> None:
        self._pool = client.connection_pool
        connection: Connection = self._pool.get_connection()  # connects (CLIENT SETNAME and all)
        self._connection: Connection | None = connection
        sock: socket.socket | None = connection._sock
        if sock is None:
            self.close()
            raise RedisConnectionError("the pub/sub connection closed at once")
        self._watcher: _IoWatcher | None = gevent.get_hub().loop.io(sock.fileno(), 1)
        self._watcher.start(on_readable)  # level-triggered: fires each loop turn until read() drains it

    def subscribe(self, channels: Sequence[str]) -> None:
        self._send("SUBSCRIBE", channels)

    def unsubscribe(self, channels: Sequence[str]) -> None:
        self._send("UNSUBSCRIBE", channels)

    def ping(self) -> None:
        self._send("PING", ())

    def read(self) -> list[Reply]:
        connection = self._live()
        replies: list[Reply] = []
        while connection.can_read(timeout=0):  # what the parser holds, then what the socket has
            # push_request: under RESP3 (redis-py 8's default) a pub/sub reply is a push, which
            # read_response would otherwise hand to the parser's handler instead of returning it.
            reply = parse_reply(connection.read_response(push_request=True))
            if reply is not None:
                replies.append(reply)
        return replies

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher.close()
            self._watcher = None
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            connection.disconnect()  # type: ignore[no-untyped-call]  # unannotated in redis-py
        except (RedisError, OSError):
            pass
        self._pool.release(connection)

    def _send(self, command: str, channels: Sequence[str]) -> None:
        # check_health=False: a health-check PING's reply would arrive among ours and be taken for one of them.
        self._live().send_command(command, *channels, check_health=False)  # type: ignore[no-untyped-call]

    def _live(self) -> Connection:
        if self._connection is None:
            raise RedisConnectionError("the pub/sub connection is closed")
        return self._connection


SHARDED_KINDS = {"smessage": "message", "ssubscribe": "subscribe", "sunsubscribe": "unsubscribe"}
"""Sharded pub/sub's replies (Redis Cluster) and the Reply kinds they stand for."""


def parse_reply(response: Any) -> Reply | None:
    """A Reply from a pub/sub response (a RESP2 array or a RESP3 push); None for another kind of push
    (RESP3 may send others, e.g. maintenance notices); ValueError for anything else."""
    if isinstance(response, bytes | str):
        if text(response).lower() == "pong":  # PING outside RESP2's subscribed state, or in RESP3
            return Reply("pong")
    elif isinstance(response, list) and response:
        kind = text(response[0]).lower()
        kind = SHARDED_KINDS.get(kind, kind)
        if kind == "message" and len(response) == 3:
            return Reply("message", text(response[1]), response[2])
        if kind in ("subscribe", "unsubscribe") and len(response) == 3:
            channel = "" if response[1] is None else text(response[1])  # UNSUBSCRIBE with none held: nil
            return Reply(kind, channel)  # type: ignore[arg-type]  # narrowed by the test above
        if kind == "pong":
            return Reply("pong")
        return None
    raise ValueError(f"unexpected pub/sub reply {response!r:.80}")
