"""One server, a Redis Cluster and a Sentinel group behind EVENTI_REDIS_URL: the status cache, the
broadcaster (cache + publish, read by the notifier each topology uses) and the push limit behave the
same on all three; failovers keep the cache's promise (pending entries of the old master read as
misses, final ones stay) and the news reaches waiters again."""
import time
import uuid
from contextlib import ExitStack
from signal import SIGKILL
from types import SimpleNamespace

import pytest
import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from devstack.processes import RedisSentinelGroup, redis_cli
from devstack.wait import eventually
from eventi import config
from eventi.errors import TooManyPushes
from eventi.notify import Hub, Notification, PerRequestNotifier, Signal
from eventi.notify.sharded import ShardedPerRequestNotifier, ShardedSubscriber, ShardedWaiter
from eventi.notify.wire import channel_for, encode_message
from eventi.runtime import _notifier as runtime_notifier
from eventi.services.broadcast import StatusBroadcaster
from eventi.storage import redis_clients as redis_topology
from eventi.storage.push_limit import KEY_TEMPLATE, PushLimiter
from eventi.storage.redis_url import RedisUrlError, parse
from eventi.storage.status_cache import StatusCache, cache_key

TOPOLOGIES = ("standalone", "cluster", "sentinel")
FIXTURE = {"standalone": "redis_server", "cluster": "redis_cluster", "sentinel": "redis_sentinel"}


def body(order_id, status="pending"):
    return {"orderId": order_id, "paymentStatus": status}


def order_ids(n, prefix="o"):
    return [f"{prefix}{uuid.uuid4().hex[:20]}" for _ in range(n)]


def order_ids_on_every_master(cluster, n):
    """n order ids whose channels' slots span every master of the cluster (n random ones miss one now and then:
    about 1 run in 40 for 12)."""
    while True:
        ids = order_ids(n)
        if len({cluster.get_node_from_key(channel_for(o)).name for o in ids}) == len(cluster.get_primaries()):
            return ids


@pytest.fixture(params=TOPOLOGIES)
def topology(request):
    return parse(request.getfixturevalue(FIXTURE[request.param]).url)


@pytest.fixture
def commands(topology):
    client = redis_topology.commands_client(topology)
    yield client
    client.close()


NOTIFIERS = ("hub", "per-request")


def notifier_for(topology, commands, mode="hub"):
    """The notifier a runtime builds for the topology and EVENTI_NOTIFIER (on a cluster: the hub over
    ShardedSubscriber, or ShardedPerRequestNotifier), started."""
    notifier = runtime_notifier(SimpleNamespace(notifier=mode, recheck_seconds=0.5), topology, commands)
    assert isinstance(notifier, {"hub": Hub, "per-request": (PerRequestNotifier, ShardedPerRequestNotifier)}[mode])
    assert notifier.start(timeout=10)
    return notifier


def next_notification(waiter, order_id, timeout=15.0):
    """The waiter's next Notification for the order, past RECHECK/IDLE signals (AssertionError at timeout)."""
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        event = waiter.next(remaining)
        if isinstance(event, Notification):
            assert event.body["orderId"] == order_id
            return event
    raise AssertionError(f"no notification for {order_id}")


def test_the_status_cache_keeps_its_rules_on_every_topology(commands):
    cache = StatusCache(commands, ttl_seconds=300)
    pending, paid, failed = order_ids(3)
    cache.put(body(pending))
    assert cache.get(pending) == body(pending)
    cache.put(body(paid, "completed"))
    cache.put(body(paid))  # a late pending never hides a final status
    cache.put(body(paid, "failed"))  # nor does a late failure hide a payment
    assert cache.get(paid) == body(paid, "completed")
    cache.put(body(failed, "failed"))
    assert cache.get(failed) == body(failed, "failed")
    assert commands.ttl(cache_key(pending)) > 0


@pytest.mark.parametrize("mode", NOTIFIERS)
def test_the_broadcaster_caches_and_publishes_to_waiters_on_every_topology(topology, commands, mode):
    cache = StatusCache(commands, ttl_seconds=300)
    broadcaster = StatusBroadcaster(commands, cache, sharded=topology.sharded)
    notifier = notifier_for(topology, commands, mode)
    ids = order_ids(6)  # orders on different slots (on a cluster: different nodes) in one pipeline
    for order_id in ids:
        broadcaster.remember(body(order_id))
    finals = {order_id: body(order_id, "failed" if i % 2 else "completed") for i, order_id in enumerate(ids)}
    with notifier.waiter(ids[0]) as first, notifier.waiter(ids[1]) as second:
        broadcaster.send(list(finals.values()))  # one pipeline: scripts and (S)PUBLISH for every order
        assert next_notification(first, ids[0]).body == finals[ids[0]]
        assert next_notification(second, ids[1]).body == finals[ids[1]]
    notifier.stop()
    assert broadcaster.backlog == set()
    for order_id, final in finals.items():
        assert cache.get(order_id) == final


def test_the_push_limit_counts_on_every_topology(commands):
    limiter = PushLimiter(commands, limit=2, window_seconds=60)
    phone = "2547" + uuid.uuid4().int.__str__()[:8]
    with limiter.reserve(phone) as first:
        first.sent()
    with limiter.reserve(phone):
        pass  # not sent: given back
    with limiter.reserve(phone) as second:
        second.sent()
    with pytest.raises(TooManyPushes):
        limiter.reserve(phone)
    key = KEY_TEMPLATE.format(phone=phone)
    assert 0 < commands.ttl(key) <= 60  # the window started with the first push
    commands.persist(key)  # a counter that lost its expiry gets it back at the next reserve
    with pytest.raises(TooManyPushes):
        limiter.reserve(phone)
    assert 0 < commands.ttl(key) <= 60


def test_a_cluster_order_keeps_its_cache_key_and_channel_on_one_slot(redis_cluster):
    cluster = redis_topology.cluster_client(parse(redis_cluster.url), "test")
    for order_id in order_ids(20):
        assert cluster.keyslot(cache_key(order_id)) == cluster.keyslot(channel_for(order_id))
    cluster.close()


@pytest.mark.parametrize("url", [
    "redis+cluster://a:7000,b:7001/", "redis+cluster://a:7000", "rediss+cluster://u:p@a:7000,[::1]:7001/",
    "redis+sentinel://s1:26379,s2:26380/mymaster/2", "redis+sentinel://s1/mymaster", "unix:///tmp/redis.sock",
])
def test_cluster_and_sentinel_urls_are_accepted(tmp_path, url):
    settings = config.load(environ={"EVENTI_VAR_DIR": str(tmp_path), "EVENTI_REDIS_URL": url})
    assert settings.redis_url == url


def test_what_a_url_names():
    sentinel = parse("rediss+sentinel://:secret@s1:26379,s2/mymaster/3")
    assert (sentinel.kind, sentinel.nodes, sentinel.master_name, sentinel.db, sentinel.tls, sentinel.password) == (
        "sentinel", (("s1", 26379), ("s2", 26379)), "mymaster", 3, True, "secret")
    cluster = parse("redis+cluster://a:7000,b:7001/")
    assert (cluster.kind, cluster.nodes, cluster.sharded) == ("cluster", (("a", 7000), ("b", 7001)), True)
    assert parse("redis://h:6379/0").kind == "standalone"


@pytest.mark.parametrize("url", [
    "redis+cluster://a:7000/3", "redis+cluster://a:7000,,b:1/", "redis+cluster://a:99999/",
    "redis+sentinel://s1:26379/", "redis+sentinel://s1:26379/mymaster/zero", "redis+sentinel://s1/m/0?x=1",
    "redis+cluster:///", "http://a:6379",
])
def test_a_malformed_url_is_one_line_naming_the_setting(tmp_path, url):
    with pytest.raises(RedisUrlError):
        parse(url)
    with pytest.raises(config.ConfigError) as raised:
        config.load(environ={"EVENTI_VAR_DIR": str(tmp_path), "EVENTI_REDIS_URL": url})
    assert str(raised.value).startswith("EVENTI_REDIS_URL ") and "\n" not in str(raised.value)


class OldCluster:
    def info(self, section, target_nodes=None):
        return {"127.0.0.1:7000": {"redis_version": "7.2.4"}, "127.0.0.1:7001": {"redis_version": "6.2.14"}}


def test_a_cluster_node_older_than_redis_7_is_refused_in_one_line():
    with pytest.raises(redis_topology.RedisVersionError) as raised:
        redis_topology.check_server(redis_topology.LazyRedisCluster(OldCluster))  # type: ignore[arg-type]
    assert "127.0.0.1:7001 runs Redis 6.2.14" in str(raised.value) and "\n" not in str(raised.value)


def test_a_cluster_client_is_built_on_first_use_so_a_worker_starts_while_redis_is_down():
    client = redis_topology.commands_client("redis+cluster://127.0.0.1:1/")  # nothing listens there
    cache = StatusCache(client, ttl_seconds=300)
    with pytest.raises(RedisError):
        cache.get("o1")
    redis_topology.check_server(client)  # unreachable: not refused, the service keeps retrying


def test_the_cluster_subscriber_holds_one_connection_per_node_and_reads_them_all(redis_cluster):
    """The hub's sharded Subscriber: a batch of channels on many slots goes to each node in one write (one
    SSUBSCRIBE per slot: no CROSSSLOT), replies map to the hub's kinds, a PONG once every node answered."""
    cluster = redis_topology.cluster_client(parse(redis_cluster.url), "test")
    subscriber = ShardedSubscriber(cluster, lambda: None)
    ids = order_ids_on_every_master(cluster, 12)
    channels = [channel_for(order_id) for order_id in ids]
    replies = []

    def read_until(predicate, what):
        eventually(lambda: replies.extend(subscriber.read()) or predicate(), what=what)

    try:
        subscriber.subscribe(channels)
        subscriber.ping()
        read_until(lambda: any(r.kind == "pong" for r in replies), "the PONG")
        confirmed = [r.channel for r in replies if r.kind == "subscribe"]
        assert sorted(confirmed) == sorted(channels)
        assert [r.kind for r in replies][-1] == "pong"  # after every confirmation, once all three answered
        assert len(subscriber.links) == 3  # one connection per master, not per order
        assert {link.writes for link in subscriber.links.values()} == {2}  # the batch, then the PING
        for channel in channels:
            assert cluster.spublish(channel, "m") == 1
        read_until(lambda: len([r for r in replies if r.kind == "message"]) == 12, "every message")
        assert {r.channel for r in replies if r.kind == "message"} == set(channels)
        replies.clear()
        subscriber.unsubscribe(channels[:5])
        read_until(lambda: len(replies) == 5, "the SUNSUBSCRIBEs confirmed")
        assert sorted(r.channel for r in replies) == sorted(channels[:5]) and {r.kind for r in replies} == {
            "unsubscribe"}
    finally:
        subscriber.close()
        cluster.close()


def replica_port(stack, master_port):
    """The port of the master's replica, as INFO replication on the replicas says."""
    return next(port for port, role in stack.roles().items() if role == "slave"
                and f"master_port:{master_port}" in redis_cli(port, "INFO", "replication").split())


def test_channels_a_demoted_master_dropped_go_to_the_new_master_while_the_slot_map_lags(failover_cluster):
    """CLUSTER FAILOVER under the hub's sharded subscriptions, its slot map lagging (a refresh that learns nothing,
    as when the node asked had not heard of the failover). The demoted master, now a replica, confirms an
    SSUBSCRIBE at once, but the new master sends it the shard's SPUBLISHes only once it has learned of its new
    replica, up to a heartbeat later: what was published meanwhile was lost after the waits had re-read the store
    (39 of 300 waits in tests/faults/test_redis_failover.py sat out their hold). So the channels it dropped, and
    one that reached it after the drop (confirmed there), are subscribed on the new master, not on the replica."""
    stack = failover_cluster
    cluster = redis_topology.cluster_client(parse(stack.url), "test")
    subscriber = ShardedSubscriber(cluster, lambda: None)
    subscriber._refresh = lambda: setattr(subscriber, "_stale", False)  # the map learns nothing
    replies = []

    def read_until(predicate, what):
        eventually(lambda: replies.extend(subscriber.read()) or predicate(), what=what)

    def kinds(kind):
        return {r.channel for r in replies if r.kind == kind}

    try:
        old = cluster.get_node_from_key(channel_for("x"))
        mine = [c for c in map(channel_for, order_ids(200)) if cluster.get_node_from_key(c).name == old.name]
        held, late = mine[:3], mine[3:4]
        subscriber.subscribe(held)
        read_until(lambda: kinds("subscribe") == set(held), "the channels confirmed on the master")
        new = replica_port(stack, old.port)
        redis_cli(new, "CLUSTER", "FAILOVER")
        eventually(lambda: redis_cli(old.port, "ROLE").split()[0] == "slave", what="the master demoted")
        subscriber.subscribe(late)  # sent by the old map: the demoted master confirms it
        read_until(lambda: kinds("lost") == set(held) and set(late) <= kinds("subscribe"), "the drops")
        subscriber.subscribe(held)  # what the hub does with channels lost
        read_until(lambda: set(late) <= kinds("lost"), "the channel confirmed on the replica reported lost")
        subscriber.subscribe(late)
        read_until(lambda: [r.channel for r in replies if r.kind == "subscribe"].count(late[0]) == 2
                   and [r.channel for r in replies if r.kind == "subscribe"].count(held[0]) == 2, "the new master")

        for channel in held + late:
            assert redis_cli(new, "PUBSUB", "SHARDNUMSUB", channel).split()[-1] == "1", f"{channel} not on {new}"
            assert redis_cli(old.port, "PUBSUB", "SHARDNUMSUB", channel).split()[-1] == "0"
            assert redis.Redis(port=new).spublish(channel, "paid") == 1  # at once: no heartbeat to wait for
        read_until(lambda: kinds("message") == set(held + late), "every message")
    finally:
        subscriber.close()
        cluster.close()
        stack.wait_ok()


def test_a_per_request_wait_never_stays_subscribed_on_a_demoted_master_while_the_slot_map_lags(failover_cluster):
    """EVENTI_NOTIFIER=per-request on a cluster (ShardedWaiter), CLUSTER FAILOVER under a held wait whose slot map
    lags (a refresh that learns nothing). Redis drops the wait's subscription; subscribed again by the old map,
    the demoted master confirms at once, yet a message the new master publishes meanwhile does not reach it.
    The wait must not sit there idle: it re-reads the store (RECHECK) until the map names the new master, then
    subscribes there and hears its news. Before the fix it stayed subscribed on the replica, idle until its hold
    ended."""
    stack = failover_cluster
    cluster = redis_topology.cluster_client(parse(stack.url), "test")
    order_id = order_ids(1)[0]
    old = cluster.get_node_from_key(channel_for(order_id))
    waiter = ShardedWaiter(cluster, order_id, recheck_seconds=0.2)
    real_refresh, waiter._refresh_slots = waiter._refresh_slots, lambda: None  # the map learns nothing
    try:
        assert waiter.open()
        new = replica_port(stack, old.port)
        redis_cli(new, "CLUSTER", "FAILOVER")
        eventually(lambda: redis_cli(old.port, "ROLE").split()[0] == "slave", what="the master demoted")
        seen = []
        eventually(lambda: seen.append(waiter.next(0.2)) or Signal.RECHECK in seen, what="the drop noticed")
        after = [waiter.next(0.2) for _ in range(3)]  # the stale map names the replica: each try refused
        assert redis_cli(old.port, "PUBSUB", "SHARDNUMSUB", channel_for(order_id)).split()[-1] == "0"
        assert Signal.RECHECK in after, f"the wait sat on the demoted master: {after}"

        waiter._refresh_slots = real_refresh  # the map catches up: the next try lands on the new master
        eventually(lambda: waiter.next(0.2) is Signal.RECHECK and waiter._subscriber is not None,
                   what="subscribed again")
        assert redis_cli(new, "PUBSUB", "SHARDNUMSUB", channel_for(order_id)).split()[-1] == "1"
        assert redis.Redis(port=new).spublish(channel_for(order_id), encode_message(body(order_id, "completed"))) == 1
        heard = []
        eventually(lambda: heard.append(waiter.next(0.2)) or isinstance(heard[-1], Notification), what="the news")
    finally:
        waiter.close()
        cluster.close()
        stack.wait_ok()


@pytest.mark.parametrize("failover", ["master killed", "SENTINEL FAILOVER"])
def test_a_sentinel_failover_moves_commands_and_the_hub_to_the_new_master(tmp_path, failover):
    """The master dies (SIGKILL), or the sentinels are asked to fail over (the old master is demoted and
    stays up: the sentinels kill its clients' connections): commands and the hub end up on the new master."""
    with RedisSentinelGroup(tmp_path / "sentinel") as group:
        topology = parse(group.url)
        commands = redis_topology.commands_client(topology)
        cache = StatusCache(commands, ttl_seconds=300)
        broadcaster = StatusBroadcaster(commands, cache)
        hub = Hub(redis_topology.subscriber_client(topology, "hub", socket_timeout=None, health_check_interval=0,
                                                   retry=Retry(NoBackoff(), 0)), recheck_seconds=0.5)
        try:
            assert hub.start(timeout=10)
            paid, = order_ids(1)
            cache.put(body(paid, "completed"))
            old = group.master
            eventually(lambda: "connected_slaves:1" in redis_cli(old.port, "INFO", "replication")
                       and redis_cli(group.replicas[0].port, "GET", cache_key(paid)).strip(), what="replicated")
            if failover == "master killed":
                old.process.stop(signum=SIGKILL)
            else:
                assert redis_cli(group.sentinel_ports[0], "SENTINEL", "FAILOVER", group.name).strip() == "OK"
            eventually(lambda: group.master_port() not in (None, old.port), what="the sentinels' new master")

            def commands_reach_the_new_master():
                try:
                    return commands.set("probe", "1") and True
                except RedisError:
                    return False

            eventually(commands_reach_the_new_master, what="commands on the new master")
            assert cache.get(paid) == body(paid, "completed")  # replicated, final: still true
            new_master = redis.Redis(port=group.master_port())
            hub_name = redis_topology.client_name("hub")
            eventually(lambda: hub.connected and any(c["name"] == hub_name for c in new_master.client_list()),
                       what="the hub subscribed on the new master")
            if failover == "SENTINEL FAILOVER":  # and not left on the old one, now a replica
                assert not any(c["name"] == hub_name for c in redis.Redis(port=old.port).client_list())
            waiting, = order_ids(1)
            with hub.waiter(waiting) as waiter:
                broadcaster.announce(body(waiting, "completed"))
                assert next_notification(waiter, waiting).body == body(waiting, "completed")
        finally:
            hub.stop()
            broadcaster.close()
            commands.close()


def test_a_cluster_failover_turns_the_old_masters_pending_entries_into_misses(failover_cluster):
    stack = failover_cluster
    topology = parse(stack.url)
    commands = redis_topology.commands_client(topology)
    cache = StatusCache(commands, ttl_seconds=300)
    broadcaster = StatusBroadcaster(commands, cache, sharded=True)
    notifier = ShardedPerRequestNotifier(
        redis_topology.lazy_cluster(topology, "wait", socket_timeout=None, health_check_interval=0), 0.5)
    cluster = redis_topology.cluster_client(topology, "test")
    try:
        # Two orders on one master: one pending, one paid.
        master = cluster.get_node_from_key(cache_key("x"))
        on_master = [o for o in order_ids(200) if cluster.get_node_from_key(cache_key(o)).name == master.name]
        pending, paid, waiting = on_master[:3]
        cache.put(body(pending))
        cache.put(body(paid, "completed"))
        assert cache.get(pending) == body(pending)
        replica = next(p for p, role in stack.roles().items() if role == "slave"
                       and master.name.endswith(f":{p}") is False
                       and redis_cli(p, "INFO", "replication").find(f"master_port:{master.port}") >= 0)
        old_run = redis_cli(master.port, "INFO", "server").split("run_id:")[1].split()[0]
        with notifier.waiter(waiting) as waiter:
            redis_cli(replica, "CLUSTER", "FAILOVER")  # asynchronous: wait for the roles to swap
            eventually(lambda: stack.roles().get(replica) == "master"
                       and stack.roles().get(master.port) == "slave", what="the replica promoted")
            stack.wait_ok()
            new_run = redis_cli(replica, "INFO", "server").split("run_id:")[1].split()[0]
            assert new_run != old_run
            assert redis_cli(replica, "GET", cache_key(pending)).startswith(old_run)  # the entry came along
            assert cache.get(pending) is None  # stamped by the old master's process: a miss
            assert cache.get(paid) == body(paid, "completed")  # final entries stay true
            cache.put(body(pending))  # what the reader does after the miss: re-cache from the store
            assert cache.get(pending) == body(pending)
            # The wait's subscription follows the slot to its new master (Redis dropped the old one).
            broadcaster.announce(body(waiting, "completed"))
            note = next_sharded_notification(waiter, waiting, broadcaster)
            assert note.body == body(waiting, "completed")
    finally:
        broadcaster.close()
        cluster.close()
        commands.close()


def next_sharded_notification(waiter, order_id, broadcaster, timeout=30.0):
    """After a failover the waiter may first renew its subscription (RECHECK): announce again until it hears."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = waiter.next(2.0)
        if isinstance(event, Notification):
            return event
        if event is Signal.RECHECK:  # what a wait does then: re-read; here the news is sent again
            broadcaster.announce(body(order_id, "completed"))
    raise AssertionError(f"no notification for {order_id}")


@pytest.mark.parametrize("kind", TOPOLOGIES)
def test_a_held_wait_is_answered_by_the_callback_on_every_topology(request, make_app, kind):
    import gevent

    from eventi.runtime import current_runtime
    from tests.support.api import create_order, post_callback

    app = make_app(REDIS_URL=request.getfixturevalue(FIXTURE[kind]).url)
    client, runtime = app.test_client(), current_runtime(app)
    assert runtime.broadcaster._sharded is (kind == "cluster")
    assert isinstance(runtime.notifier, Hub)  # on a cluster too: SSUBSCRIBE per order, a connection per node
    order_id, token = create_order(client)
    waiting = gevent.spawn(client.get, f"/api/orders/{order_id}/wait?token={token}&timeout=60")
    assert post_callback(client, runtime, order_id, "success").json == {"received": True}
    body = waiting.get(timeout=30).json
    assert (body["paymentStatus"], body["final"]) == ("completed", True)
    assert runtime.cache.get(order_id)["paymentStatus"] == "completed"


def shard_numsub(stack, channel):
    """Subscriptions to the shard channel on every node of the cluster (PUBSUB SHARDNUMSUB counts a node's own)."""
    return sum(int(redis_cli(node.port, "PUBSUB", "SHARDNUMSUB", channel).split()[-1]) for node in stack.running())


def test_a_cluster_failover_of_every_master_keeps_every_held_wait_learning_its_callback(failover_cluster):
    """The runtime's cluster hub holds waits for orders on all three masters; each master is failed over to
    its replica (CLUSTER FAILOVER) with the waits held. Redis drops the subscriptions of a demoted master
    (an SUNSUBSCRIBE nobody asked for): the hub subscribes them again in their shard, every wait is told
    to re-read, and the callbacks sent after the failover reach every wait. At most one pub/sub
    connection per node throughout."""
    stack = failover_cluster
    topology = parse(stack.url)
    commands = redis_topology.commands_client(topology)
    cache = StatusCache(commands, ttl_seconds=300)
    broadcaster = StatusBroadcaster(commands, cache, sharded=True)
    hub = notifier_for(topology, commands)
    probe = redis_topology.cluster_client(topology, "test")
    hub_name = redis_topology.client_name("hub")

    def hub_connections():
        return {port: sum(1 for c in redis.Redis(port=port).client_list() if c["name"] == hub_name)
                for port in stack.roles()}

    def owner_port(order_id):
        return probe.get_node_from_key(channel_for(order_id)).port

    try:
        by_master = {}
        for order_id in order_ids(300):
            by_master.setdefault(owner_port(order_id), []).append(order_id)
        held = [o for ids in by_master.values() for o in ids[:2]]
        assert len(by_master) == 3
        with ExitStack() as stack_of_waits:
            waiters = {o: stack_of_waits.enter_context(hub.waiter(o)) for o in held}
            assert all(hub.confirmed(channel_for(o)) for o in held)
            assert max(hub_connections().values()) == 1 and sum(hub_connections().values()) == 3
            for old in list(by_master):
                replica = next(port for port, role in stack.roles().items() if role == "slave"
                               and f"master_port:{old}" in redis_cli(port, "INFO", "replication").split())
                redis_cli(replica, "CLUSTER", "FAILOVER")  # asynchronous: wait for the roles to swap
                eventually(lambda: stack.roles().get(replica) == "master"  # noqa: B023
                           and stack.roles().get(old) == "slave", what="the replica promoted")  # noqa: B023
            stack.wait_ok()
            probe.nodes_manager.initialize()
            assert {owner_port(o) for o in held}.isdisjoint(by_master)  # every order has a new master

            # The hub follows: every channel subscribed again, once, on its new master (never on the demoted
            # one, now a replica: the new master sends it the shard's SPUBLISHes only once it has learned of
            # it), and confirmed.
            eventually(lambda: all(hub.confirmed(channel_for(o)) for o in held) and all(
                shard_numsub(stack, channel_for(o)) == 1 for o in held), what="the hub subscribed again")
            for order_id in held:
                assert redis_cli(owner_port(order_id), "PUBSUB", "SHARDNUMSUB", channel_for(order_id)).split()[-1] == "1"
            assert hub.connected and hub.channels_lost >= len(held)
            # Messages may have been missed meanwhile: every wait was told to re-read first.
            for order_id in held:
                broadcaster.announce(body(order_id, "completed"))
            for order_id, waiter in waiters.items():
                events = []
                while not isinstance(event := waiter.next(15), Notification):
                    assert event is Signal.RECHECK, f"no callback for {order_id}"
                    events.append(event)
                assert event.body == body(order_id, "completed")
                if not events:  # both pending: next() hands the message first, then the re-read
                    events.append(waiter.next(0))
                assert events == [Signal.RECHECK]
            connections = hub_connections()
            assert max(connections.values()) <= 1 and sum(connections[port] for port in by_master) <= 3
    finally:
        hub.stop()
        broadcaster.close()
        probe.close()
        commands.close()


def test_a_dead_sentinel_is_asked_once_then_the_next_one(redis_sentinel):
    """redis-py's default retries a refused connection 10 times with backoff (~8 s) before it asks the next
    sentinel: every connection made while a sentinel is down would wait that long. Each sentinel is asked once."""
    first_dead = redis_sentinel.url.replace("redis+sentinel://", f"redis+sentinel://127.0.0.1:{_unused_port()},", 1)
    client = redis_topology.sentinel_master(parse(first_dead), "test")
    sentinels = client.connection_pool.sentinel_manager.sentinels
    assert [s.get_retry().get_retries() for s in sentinels] == [0] * len(sentinels)
    assert client.ping()  # the dead one was asked, then the next
    client.close()


def _unused_port():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_cluster_node_queues_concurrent_commands_beyond_its_pool(redis_cluster):
    """POOL_SIZE connections per node, and greenlets queue for them: redis-py gives the nodes of a cluster
    built from startup nodes plain ConnectionPools, whose third concurrent command raised "Too many
    connections" (a callback's announcement went to the backlog, a status read to MongoDB)."""
    from gevent.pool import Pool

    client = redis_topology.commands_client(redis_cluster.url)
    cache = StatusCache(client, ttl_seconds=300)
    ids = order_ids(60)
    try:
        list(Pool(30).imap(lambda order_id: cache.put(body(order_id)), ids))
        assert list(Pool(30).imap(cache.get, ids)) == [body(order_id) for order_id in ids]
        pools = {node.name: node.redis_connection.connection_pool for node in client.get_primaries()}
        assert {(type(p).__name__, p.max_connections) for p in pools.values()} == {
            ("BlockingConnectionPool", redis_topology.POOL_SIZE)}
    finally:
        client.close()



def test_a_command_cut_short_leaves_no_reply_behind_for_the_next_one(commands):
    """A greenlet timed out (or killed) while it waits for a reply must not give its connection back with
    that reply still to come: the next command on it would read it as its own. redis-py's Sentinel
    connections stayed open after any error in a read (a status cache read got another command's 'OK')."""
    import gevent

    tag = "{" + order_ids(1)[0] + "}"  # both keys on one node of a cluster
    commands.set(f"value:{tag}", "v")
    with pytest.raises(gevent.Timeout):
        with gevent.Timeout(0.3):  # expires while the BLPOP (1 s) waits for its reply
            commands.blpop([f"empty:{tag}"], 1)
    for _ in range(3):  # the pooled connections in turn: none reads the BLPOP's nil as its reply
        assert commands.get(f"value:{tag}") == b"v"
