"""The per-worker parts (clients, notifier, services), built once per process after fork."""
import os
from dataclasses import dataclass

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from . import metrics
from . import store as store_module
from .events import EventStore
from .idempotency import IdempotencyKeys
from .payhero_client import PayHeroClient
from .push_limit import PushLimiter
from .notifier import Hub, PerRequestNotifier
from .services.broadcast import StatusBroadcaster
from .services.callbacks import CallbackService
from .services.idempotent import IdempotentOrders
from .services.ordering import OrderService
from .services.reconcile import Reconciler
from .services.settle import Settler
from .services.status import StatusReader
from .services.waiting import WaitService
from .status_cache import StatusCache
from .tickets import TicketHolds
from .tokens import OrderTokens

PER_REQUEST_MAX_CONNECTIONS = 50_000
REDIS_POOL_SIZE = 2
"""Commands (cache, publish) share this many connections per worker; greenlets queue for them."""


@dataclass
class Parts:
    settings: dict
    mongo: object
    redis: object
    store: store_module.OrderStore
    cache: StatusCache
    tokens: OrderTokens
    notifier: object
    reader: StatusReader
    orders: OrderService
    waits: WaitService
    callbacks: CallbackService
    broadcaster: StatusBroadcaster
    settler: Settler
    events: EventStore
    tickets: TicketHolds
    keys: IdempotencyKeys
    creations: IdempotentOrders
    payhero: PayHeroClient | None = None

    def reconciler(self):
        """A Reconciler over this worker's store, PayHero client and callback path."""
        return Reconciler(self.store, self.payhero, self.callbacks,
                          self.settings["RECONCILE_AFTER_SECONDS"], self.settings["RECONCILE_GIVE_UP_SECONDS"],
                          tickets=self.tickets)

    def close(self):
        if self.payhero is not None:
            self.payhero.close()
        self.waits.stopping = True
        self.notifier.stop()
        self.settler.close()
        self.broadcaster.close()
        self.mongo.close()
        self.redis.close()


def redis_client(url, role, **overrides):
    """A redis-py client named after this process and its role (visible in CLIENT LIST)."""
    options = dict(
        socket_connect_timeout=2,
        socket_timeout=5,
        socket_keepalive=True,
        health_check_interval=30,
        retry=Retry(NoBackoff(), 1),
        client_name=f"eventi:{os.getpid()}:{role}",
    )
    options.update(overrides)
    return redis.Redis.from_url(url, **options)


def build(settings):
    """Create every part from the settings. Opens no connection until first use."""
    mongo = store_module.connect(settings["MONGO_URI"])
    pool = redis.BlockingConnectionPool.from_url(
        settings["REDIS_URL"], max_connections=REDIS_POOL_SIZE, timeout=5,
        socket_connect_timeout=2, socket_timeout=5, socket_keepalive=True, health_check_interval=30,
        retry=Retry(NoBackoff(), 1), client_name=f"eventi:{os.getpid()}:pool",
    )
    commands = redis.Redis(connection_pool=pool)
    database = mongo.get_default_database()
    events, tickets, keys = EventStore(database), TicketHolds(database), IdempotencyKeys(database)
    store = store_module.OrderStore(database, max_reads=settings["STORE_MAX_READS"], tickets=tickets)
    cache = StatusCache(commands, settings["STATUS_CACHE_TTL"])
    notifier = _notifier(settings)
    metrics.WAITS_CAPACITY.set(settings["MAX_WAITS_PER_WORKER"])
    reader = StatusReader(store, cache)
    tokens = OrderTokens(settings["SECRET_KEY"])
    payhero = _payhero(settings)
    verify = payhero is not None and settings["PAYHERO_VERIFY_CALLBACKS"] in ("1", "true", "yes")
    broadcaster = StatusBroadcaster(commands, cache)
    settler = Settler(store, broadcaster.announce)
    callbacks = CallbackService(store, broadcaster, settler, payhero if verify else None, reader=reader)
    orders = OrderService(
        store, cache, events, tickets, payhero=payhero, announce=broadcaster.announce, settle=settler.watch,
        prompt_seconds=settings["PROMPT_SECONDS"], limiter=PushLimiter(commands, settings["PUSH_LIMIT"], settings["PUSH_LIMIT_WINDOW"]),
        callback_url=lambda order_id: (f"{settings['PUBLIC_BASE_URL']}/api/payhero/callback"
                                       f"?token={tokens.callback_token(order_id)}"),
    )
    return Parts(
        settings=settings, mongo=mongo, redis=commands, store=store, cache=cache,
        tokens=tokens, notifier=notifier, reader=reader, orders=orders,
        events=events, tickets=tickets, keys=keys, creations=IdempotentOrders(orders, keys, store),
        waits=WaitService(notifier, reader, settings["MAX_WAITS_PER_ORDER"], settings["MAX_WAITS_PER_WORKER"]),
        callbacks=callbacks, broadcaster=broadcaster, settler=settler, payhero=payhero,
    )


def _payhero(settings):
    """The PayHero client, or None when no PAYHERO_BASE_URL is set (development and test only)."""
    if not settings["PAYHERO_BASE_URL"]:
        return None
    return PayHeroClient(settings["PAYHERO_BASE_URL"], settings["PAYHERO_AUTH_TOKEN"],
                         settings["PAYHERO_CHANNEL_ID"], timeout=settings["PUSH_TIMEOUT"])


def _notifier(settings):
    recheck = settings["RECHECK_SECONDS"]
    if settings["NOTIFIER"] == "per-request":
        # One connection per held wait: lift redis-py's default pool cap.
        client = redis_client(settings["REDIS_URL"], "wait", socket_timeout=None, health_check_interval=0,
                              max_connections=PER_REQUEST_MAX_CONNECTIONS)
        metrics.HUB_CONNECTED.set(1)  # no hub to lose: each wait opens its own PubSub
        return PerRequestNotifier(client, recheck)
    # No retries and no socket timeout: the hub owns reconnection and bounds reads itself.
    client = redis_client(settings["REDIS_URL"], "hub", socket_timeout=None, health_check_interval=0,
                          retry=Retry(NoBackoff(), 0))
    return Hub(client, recheck)
