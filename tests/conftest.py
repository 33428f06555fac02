"""Fixtures: real redis-server, PostgreSQL and FerretDB per session, apps and gunicorn instances on top.

The test process is gevent-patched like a gunicorn worker, so the notifier's greenlets and
the many concurrent HTTP clients of the tests run cooperatively.
"""
from gevent import monkey

monkey.patch_all()

import contextlib  # noqa: E402
import os  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from signal import SIGKILL  # noqa: E402
from types import SimpleNamespace  # noqa: E402
from typing import Any  # noqa: E402
from urllib.parse import urlsplit, urlunsplit  # noqa: E402

import pytest  # noqa: E402

from devstack.payhero_simulator import PayHeroSimulator  # noqa: E402
from devstack.processes import (  # noqa: E402
    FerretDB,
    Gunicorn,
    Postgres,
    RedisCluster,
    RedisSentinelGroup,
    RedisServer,
    Server,
)
from eventi.config import env_name  # noqa: E402
from eventi.runtime import current_runtime  # noqa: E402
from tests.support.answers import start_recording  # noqa: E402
from tests.support.events import event_spec, save_events, seed_test_events  # noqa: E402

TEST_SECRET = "test-secret-" + "x" * 40


def pytest_configure(config):
    start_recording()  # every answer of every in-process app, for tests/test_openapi_answers.py


def pytest_collection_modifyitems(items):
    """Tests marked `last` run after all others: they check what the others recorded."""
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)


def outside_or_own(variable: str, field: str, own: Callable[[], Server]) -> Iterator[Any]:
    """The server whose address the environment variable holds, when set; else `own()`, started here and
    stopped after. Either way the fixture's value has the address as attribute `field` (url or uri)."""
    if os.environ.get(variable):
        yield SimpleNamespace(**{field: os.environ[variable]})
        return
    with own() as server:
        yield server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real Redis: EVENTI_TEST_REDIS_URL if set, else a redis-server of our own."""
    yield from outside_or_own("EVENTI_TEST_REDIS_URL", "url", lambda: RedisServer(tmp_path_factory.mktemp("redis")))


@pytest.fixture(scope="session")
def redis_cluster():
    """A Redis Cluster of our own (3 masters, 3 replicas), started on first use; `.url` is redis+cluster://.
    Tests that fail masters over use failover_cluster; tests that kill nodes start one of their own
    (devstack.processes.RedisCluster)."""
    with RedisCluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def _failover_cluster(tmp_path_factory):
    with RedisCluster(tmp_path_factory.mktemp("failover-cluster")) as cluster:
        yield cluster


@pytest.fixture
def failover_cluster(_failover_cluster):
    """A Redis Cluster of our own (never an outside one) shared by the tests that fail masters over with
    CLUSTER FAILOVER: each finds it healthy (every node ok, every replica linked) and leaves it so, its
    roles swapped: which node is a master is always asked, never assumed."""
    _failover_cluster.wait_ok()
    return _failover_cluster


@pytest.fixture(scope="session")
def redis_sentinel():
    """A Sentinel group of our own (a master, a replica, 3 sentinels, quorum 2), started on first use;
    `.url` is redis+sentinel://…/eventi/0. Tests that fail the master over start one of their own."""
    with RedisSentinelGroup() as group:
        yield group


TOPOLOGIES = ("standalone", "cluster", "sentinel")
TOPOLOGY_FIXTURE = {"standalone": "redis_server", "cluster": "redis_cluster", "sentinel": "redis_sentinel"}
on_every_topology = pytest.mark.parametrize("redis_topology", TOPOLOGIES, indirect=True)
"""Run a test against one Redis server, the session's Redis Cluster and its Sentinel group: the
`settings` (and so the app, the runtime and the client) take the topology's EVENTI_REDIS_URL."""


@pytest.fixture
def redis_topology(request):
    """The EVENTI_REDIS_URL the test's settings use: the session's one server, unless the test is
    parametrized (on_every_topology) with "cluster" or "sentinel"."""
    kind = getattr(request, "param", "standalone")
    return request.getfixturevalue(TOPOLOGY_FIXTURE[kind]).url


@pytest.fixture(scope="session")
def postgres_server():
    """One private PostgreSQL cluster per test run, under every FerretDB the tests start."""
    with Postgres() as server:
        yield server


@pytest.fixture(scope="session")
def mongo_server(request):
    """A real MongoDB-protocol server: EVENTI_TEST_MONGO_URI if set, else FerretDB over PostgreSQL."""
    yield from outside_or_own("EVENTI_TEST_MONGO_URI", "uri",
                              lambda: FerretDB(request.getfixturevalue("postgres_server")))


@pytest.fixture(scope="session")
def payhero_simulator():
    """The local PayHero simulator as a real process; its callback delay is an hour, so it never
    races the tests' own callbacks. Only tests that ask for it (push_settings) send pushes."""
    with PayHeroSimulator(delay=3600) as server:
        yield server


@pytest.fixture(scope="session")
def quick_simulator():
    """A simulator that settles each push 0.2 s after it and calls back (not for numbers ending in 5),
    and takes 30 s over a push to a number ending in 9."""
    with PayHeroSimulator(delay=0.2, slow_seconds=30) as server:
        yield server


def settings_for(redis_url: str, mongo_uri: str, var_dir: str) -> dict[str, Any]:
    """The settings fixture's values for these servers (for a fixture of a wider scope); seeds the test events."""
    seed_test_events(mongo_uri)
    return {
        "ENV": "test",
        "PUSH_LIMIT": 0,
        "SECRET_KEY": TEST_SECRET,
        "REDIS_URL": redis_url,
        "MONGO_URI": mongo_uri,
        "VAR_DIR": var_dir,
        "RECHECK_SECONDS": 1.0,
    }


def with_own_database(settings: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The settings with MONGO_URI naming a database of the test's own (the test events in it) on the session's
    store server: the shared database slows down as the tests fill it (a test that makes hundreds of checkouts
    after the failover tests' 900 orders took 13 s instead of 5 s), and a test that fills it slows the rest."""
    uri = urlsplit(settings["MONGO_URI"])
    own = urlunsplit(uri._replace(path=f"/{prefix}_{uuid.uuid4().hex[:12]}"))
    seed_test_events(own)
    return {**settings, "MONGO_URI": own}


@pytest.fixture
def settings(redis_topology, mongo_server, tmp_path):
    """No PAYHERO_BASE_URL: orders are stored without an STK push (see push_settings). The push limit is
    off because tests reuse phone numbers in one Redis; tests/test_payments.py sets it to check it.
    The store holds the test events (tests/support/events.py). REDIS_URL is redis_topology's."""
    return settings_for(redis_topology, mongo_server.uri, str(tmp_path / "var"))


@pytest.fixture
def push_settings(settings, payhero_simulator):
    """settings plus PayHero = the session's simulator: every order gets a real STK push over HTTP."""
    return {**settings, **payhero_simulator.settings}


@pytest.fixture
def app(settings):
    from eventi import create_app

    app = create_app(settings)
    app.testing = True
    yield app
    current_runtime(app).close()


@pytest.fixture
def make_app(settings):
    """Apps of the test settings with overrides (EVENTI_* names without the prefix); each closed at the end."""
    from eventi import create_app

    made = []

    def make(**overrides):
        made.append(create_app({**settings, **overrides}))
        return made[-1]

    yield make
    for made_app in made:
        current_runtime(made_app).close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runtime(app):
    return current_runtime(app)


def gunicorn_env(settings, **extra):
    env = {env_name(k): str(v) for k, v in settings.items() if k != "VAR_DIR"}
    env["EVENTI_VAR_DIR"] = settings["VAR_DIR"]
    env.update({k: str(v) for k, v in extra.items()})
    return env


def stop_quickly(server: Gunicorn) -> int | None:
    """Stop a test's gunicorn once the test no longer looks at it: SIGKILL to the master (so it starts no new
    worker), then to its workers. SIGQUIT, gunicorn's quick shutdown, took about 0.85 s: each worker's interpreter
    tears down its heap on the way out; SIGTERM's graceful stop about a second more. Tests of a stop send its
    signal themselves (server.stop())."""
    code = server.stop(signum=SIGKILL)
    for pid in server.worker_pids():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, SIGKILL)
    return code


@pytest.fixture
def start_gunicorn(settings):
    """Start gunicorn instances from gunicorn.conf.py; all are stopped (quickly) after the test."""
    started = []

    def start(workers=2, **env):
        server = Gunicorn(gunicorn_env(settings, **env), workers=workers).start()
        started.append(server)
        return server

    yield start
    for server in started:
        stop_quickly(server)


@pytest.fixture
def new_event(settings):
    """Store a fresh event (event_spec keywords: capacity, vip_capacity, starts_in) and return its id."""
    def make(**spec):
        event_id = "ev-" + uuid.uuid4().hex[:12]
        save_events(settings["MONGO_URI"], event_spec(event_id, **spec))
        return event_id

    return make


@pytest.fixture
def unique_event(mongo_server):
    """A fresh event, on sale, like ev-test: its orders and tickets are this test's alone."""
    event_id = "ev-" + uuid.uuid4().hex[:12]
    save_events(mongo_server.uri, event_spec(event_id))
    return event_id
