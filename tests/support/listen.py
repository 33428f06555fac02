"""A test's own subscriber to an order's status channel, as a waiting worker's hub would hear it."""
import json
import time

from eventi.notify import channel_for
from eventi.notify.sharded import ShardPubSub
from eventi.storage import redis_clients as redis_topology
from eventi.storage.redis_url import parse


class ChannelListener:
    """Subscribed (and confirmed) on construction; next_body() reads what was published since.
    A context manager: closed on leaving the with block. redis_url is any EVENTI_REDIS_URL: on a
    cluster it SSUBSCRIBEs on the node of the order's slot, with Sentinel it subscribes on the master."""

    def __init__(self, redis_url, order_id, timeout=10):
        topology = parse(redis_url)
        self._sharded = topology.sharded
        if self._sharded:
            self._client = redis_topology.cluster_client(topology, "test-listener", socket_timeout=None)
            self._subscriber = ShardPubSub(self._client)
            self._subscriber.subscribe(order_id)
            self._await(lambda: self._subscriber.get_message(1), "subscribed", timeout)
            return
        self._client = redis_topology.subscriber_client(topology, "test-listener", socket_timeout=None)
        self._pubsub = self._client.pubsub()
        self._pubsub.subscribe(channel_for(order_id))
        self._await(lambda: self._pubsub.get_message(timeout=1), "subscribe", timeout)

    def _await(self, read, kind, timeout):
        deadline = time.monotonic() + timeout
        while (message := read()) is None or _kind(message) != kind:
            if time.monotonic() > deadline:
                raise AssertionError("no subscribe confirmation")

    def next_body(self, timeout=10):
        """The next published status body, or None when none came within timeout."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            if self._sharded:
                event = self._subscriber.get_message(min(remaining, 1))
                if event is not None and event.kind == "message":
                    return json.loads(event.data)["body"]
                continue
            message = self._pubsub.get_message(timeout=min(remaining, 1))
            if message is not None and message["type"] == "message":
                return json.loads(message["data"])["body"]
        return None

    def close(self):
        if self._sharded:
            self._subscriber.close()
        else:
            self._pubsub.close()
        self._client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _kind(message):
    return message.kind if hasattr(message, "kind") else message["type"]
