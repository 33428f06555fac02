"""One worker's runtime: its settings, clients and services, and their whole lifecycle.

create_app builds one Runtime per process (gunicorn loads the app in each worker, after fork) and
installs it on the app (init_app); views, commands and gunicorn's hooks read it back with
current_runtime() (below). Building opens no connection. The lifecycle is three calls, made by
eventi/server/gunicorn_conf.py's hooks:

- start(worker): the worker has loaded the app: header timeout, drain() on stop, the optional
  reconcile sweep, and the hub's first subscription;
- drain(): the worker was told to stop (SIGTERM, HUP reload): held waits are answered at once
  with their last known status, and new waits are not held;
- close(): the worker exits: background retries stop, every client is closed.
"""
import sys
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

import gevent
import redis
from flask import Flask, current_app
from pymongo import MongoClient
from redis.backoff import NoBackoff
from redis.retry import Retry

from . import metrics
from .config import APP_LOAD_ERROR, Settings
from .domain.tokens import OrderTokens
from .logs import startup_error
from .notify import Hub, Notifier, PerRequestNotifier
from .notify.sharded import ShardedPerRequestNotifier, ShardedSubscriber
from .payhero.callbacks import callback_urls
from .payhero.client import PayHeroClient
from .services.broadcast import StatusBroadcaster
from .services.callbacks import CallbackService
from .services.catalogue import EventCatalogue
from .services.checkout import OrderService
from .services.idempotent_checkout import IdempotentOrders
from .services.late_payment import LatePayments
from .services.manual_payment import ManualPayments
from .services.reconcile import Reconciler, reconcile_forever
from .services.second_payment import SecondPayments
from .services.settle import Settler
from .services.status import StatusReader
from .services.waiting import WaitService
from .services.write_retry import WriteRetrier
from .storage import redis_clients as redis_topology
from .storage import redis_url
from .storage.event_store import EventStore
from .storage.idempotency_keys import IdempotencyKeys
from .storage.manual_payments import ManualPaymentStore
from .storage.order_store import OrderStore, connect
from .storage.push_limit import PushLimiter
from .storage.redis_clients import RedisClient
from .storage.redis_url import RedisTopology
from .storage.status_cache import StatusCache
from .storage.ticket_holds import TicketHolds

if TYPE_CHECKING:
    from gunicorn.glogging import Logger

EXTENSION = "eventi"
"""The runtime's key in app.extensions (Runtime.init_app puts it there)."""
PER_REQUEST_MAX_CONNECTIONS = 50_000
REDIS_POOL_SIZE = redis_topology.POOL_SIZE
HUB_FIRST_SUBSCRIPTION_SECONDS = 5.0
"""How long start() waits for the hub's first subscription before the worker serves anyway."""


class Worker(Protocol):
    """What start() needs of the gunicorn worker (eventi.server.gunicorn_worker.EventiGeventWorker)."""

    log: "Logger"  # gunicorn's: the "worker ready" line tests and operators look for is its own
    header_timeout: float | None
    alive: bool  # gunicorn sets it False the moment the worker is told to stop (SIGTERM, HUP reload)

    @property
    def pid(self) -> int | str: ...  # gunicorn sets it once the worker process runs

    def on_stop(self, drain: Callable[[], None]) -> None: ...


class Runtime:
    """One process's clients and services, built from the settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.mongo: MongoClient[dict[str, Any]] = connect(settings.mongo_uri)
        self.topology = redis_url.parse(settings.redis_url)
        self.redis = redis_topology.commands_client(self.topology)
        database = self.mongo.get_default_database()
        self.events = EventStore(database)
        self.tickets = TicketHolds(database, timedelta(seconds=settings.release_interrupted_after_seconds))
        self.catalogue = EventCatalogue(self.events, self.tickets)
        self.keys = IdempotencyKeys(database)
        self.store = OrderStore(database, max_reads=settings.store_max_reads, tickets=self.tickets)
        self.cache = StatusCache(self.redis, settings.status_cache_ttl)
        self.tokens = OrderTokens(settings.secret_key)
        self.notifier = _notifier(settings, self.topology, self.redis)
        self.payhero = _payhero(settings)
        self.broadcaster = StatusBroadcaster(self.redis, self.cache, sharded=self.topology.sharded)
        self.reader = StatusReader(self.store, self.cache, self.broadcaster)
        self.settler = Settler(self.store, self.broadcaster)
        self.retrier = WriteRetrier()
        self.late_payments = LatePayments(self.store, self.events, self.tickets, settings.late_payments)
        self.manual_store = ManualPaymentStore(database)
        self.callbacks = CallbackService(self.store, self.broadcaster, self.settler, reader=self.reader,
                                         verifier=self.payhero if settings.payhero_verify_callbacks else None,
                                         late=self.late_payments, second=SecondPayments(self.manual_store))
        self.manual = ManualPayments(self.store, self.manual_store, self.callbacks)
        self.limiter = PushLimiter(self.redis, settings.push_limit, settings.push_limit_window)
        self.orders = OrderService(
            self.store, self.events, self.tickets, self.broadcaster, self.settler,
            callback_urls(settings.public_base_url, self.tokens), payhero=self.payhero,
            limiter=self.limiter,
            prompt_seconds=settings.prompt_seconds, retrier=self.retrier,
        )
        self.creations = IdempotentOrders(self.orders, self.keys, self.store)
        self.waits = WaitService(self.notifier, self.reader, settings.max_waits_per_order,
                                 settings.max_waits_per_worker)
        self._sweep: gevent.Greenlet[..., None] | None = None
        self._worker: Worker | None = None
        metrics.WAITS_CAPACITY.set(settings.max_waits_per_worker)

    def init_app(self, app: Flask) -> None:
        """Install this runtime on the app, where current_runtime() finds it."""
        app.extensions[EXTENSION] = self

    def reconciler(self) -> Reconciler:
        """A Reconciler over this worker's store, PayHero client and callback path."""
        return Reconciler(self.store, self.payhero, self.callbacks, self.settings.reconcile_after_seconds,
                          self.settings.reconcile_give_up_seconds, tickets=self.tickets, late=self.late_payments,
                          keys=self.keys)

    def start(self, worker: Worker) -> None:
        """The gunicorn worker loaded the app: drain when it stops, sweep if asked, subscribe the hub."""
        try:
            redis_topology.check_server(self.redis)
        except redis_topology.RedisVersionError as exc:  # one line, and gunicorn stops (as for a bad setting)
            print(startup_error(str(exc), self.settings.log_format), file=sys.stderr, flush=True)
            raise SystemExit(APP_LOAD_ERROR) from None
        self._worker = worker
        worker.header_timeout = self.settings.header_timeout_seconds
        worker.on_stop(self.drain)
        interval = self.settings.reconcile_interval_seconds
        if interval > 0:
            self._sweep = gevent.spawn(reconcile_forever, self.reconciler(), self.redis, interval)
        if not self.notifier.start(timeout=HUB_FIRST_SUBSCRIPTION_SECONDS):
            worker.log.warning("eventi: Redis not reachable yet; the hub keeps retrying")
        worker.log.info("eventi worker ready (pid %s)", worker.pid)

    @property
    def stopping(self) -> bool:
        """True from the moment the worker is told to stop (before drain() has answered the held waits)."""
        return self.waits.stopping or (self._worker is not None and not self._worker.alive)

    def drain(self) -> None:
        """The worker is stopping: answer every held wait now and hold no new one."""
        self.waits.drain()

    def close(self) -> None:
        """The process is going away: stop background work and close every client."""
        self.drain()
        if self._sweep is not None:
            self._sweep.kill(block=False)
        if self.payhero is not None:
            self.payhero.close()
        self.settler.close()
        self.retrier.close()
        self.broadcaster.close()
        self.mongo.close()
        self.redis.close()


def _payhero(settings: Settings) -> PayHeroClient | None:
    """The PayHero client, or None when no PAYHERO_BASE_URL is set (development and test only)."""
    token, channel = settings.payhero_auth_token, settings.payhero_channel_id
    if not settings.payhero_base_url or not token or channel is None:  # config.py requires all three or none
        return None
    return PayHeroClient(settings.payhero_base_url, token, channel, timeout=settings.push_timeout)


def _notifier(settings: Settings, topology: RedisTopology, commands: RedisClient) -> Notifier:
    """The notifier of EVENTI_NOTIFIER: the hub (one pub/sub connection per worker, per node on a cluster,
    subscribed per held order) or one subscription per wait.

    On a Redis Cluster the hub's Subscriber is ShardedSubscriber: SSUBSCRIBE on each order's node, over
    connections of its own (one per node), routed by the commands client's slot map (commands: that
    RedisCluster; it follows MOVED and failovers, and the hub refreshes it when a node drops a channel).
    EVENTI_NOTIFIER=per-request on a cluster keeps its per-wait baseline: each wait SSUBSCRIBEs on a
    connection of its own (ShardedPerRequestNotifier). With Sentinel the hub's and the waits'
    connections go to the master the sentinels name when they (re)connect."""
    if topology.kind == "cluster" and settings.notifier == "per-request":
        # One connection per held wait, on the node of its order's slot: lift redis-py's pool cap.
        cluster = redis_topology.lazy_cluster(topology, "wait", socket_timeout=None, health_check_interval=0,
                                              max_connections=PER_REQUEST_MAX_CONNECTIONS,
                                              connection_pool_class=redis.ConnectionPool)
        metrics.HUB_CONNECTED.set(1)  # no hub to lose: each wait opens its own subscription
        return ShardedPerRequestNotifier(cluster, settings.recheck_seconds)
    if topology.kind == "cluster":
        assert not isinstance(commands, redis.Redis)
        return Hub(commands, settings.recheck_seconds,
                   subscriber=partial(ShardedSubscriber, commands, client_name=redis_topology.client_name("hub")))
    if settings.notifier == "per-request":
        # One connection per held wait: lift redis-py's default pool cap.
        client = redis_topology.subscriber_client(topology, "wait", socket_timeout=None, health_check_interval=0,
                                                  max_connections=PER_REQUEST_MAX_CONNECTIONS)
        metrics.HUB_CONNECTED.set(1)  # no hub to lose: each wait opens its own PubSub
        return PerRequestNotifier(client, settings.recheck_seconds)
    # No retries and no socket timeout: the hub owns reconnection and bounds reads itself.
    client = redis_topology.subscriber_client(topology, "hub", socket_timeout=None, health_check_interval=0,
                                              retry=Retry(NoBackoff(), 0))
    return Hub(client, settings.recheck_seconds)


def current_runtime(app: Flask | None = None) -> Runtime:
    """The worker's runtime: of app, or of the app serving the current request or command."""
    runtime: Runtime = (app or current_app).extensions[EXTENSION]
    return runtime
