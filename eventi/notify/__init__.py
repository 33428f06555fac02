"""Status notifications over Redis pub/sub: a wait learns that its order's status changed.

wire.py         the channel name and the JSON message (Notification)
protocol.py     Notifier and Waiter, the protocols both modes implement; Signal, what next() returns
hub.py          Hub: one pub/sub connection per worker, subscribed to the orders its waits hold (the default,
                EVENTI_NOTIFIER=hub)
subscriber.py   Subscriber: the hub's link to Redis (RedisSubscriber: SUBSCRIBE over one connection)
sharded.py      Redis Cluster: ShardedSubscriber (the hub's SSUBSCRIBE link, one connection per node) and
                ShardedPerRequestNotifier (EVENTI_NOTIFIER=per-request on a cluster)
per_request.py  PerRequestNotifier: one PubSub per wait (the baseline, EVENTI_NOTIFIER=per-request)
fallback.py     StorePollingWaiter: re-reading the store while Redis is unreachable
pubsub.py       subscribing and closing a redis-py PubSub (per-request mode)

Publishing lives in eventi/services/broadcast.py.
"""
from .hub import Hub
from .per_request import PerRequestNotifier
from .protocol import Notifier, Signal, Waiter, WaitEvent
from .wire import CHANNEL_PATTERN, CHANNEL_PREFIX, Notification, channel_for, encode_message

__all__ = [
    "CHANNEL_PATTERN", "CHANNEL_PREFIX", "Hub", "Notification", "Notifier", "PerRequestNotifier", "Signal",
    "WaitEvent", "Waiter", "channel_for", "encode_message",
]
