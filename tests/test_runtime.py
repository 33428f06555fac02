"""The runtime's lifecycle is what gunicorn's hooks call, and the settings it is built from are frozen and typed."""
import dataclasses
import logging

import gevent
import pytest
from pymongo.errors import InvalidOperation

from devstack.wait import eventually
from eventi import config, create_app
from eventi.runtime import current_runtime
from eventi.server import gunicorn_conf
from tests.support.api import order_fields


class HookedWorker:
    """What gunicorn hands its hooks, as far as eventi uses it (eventi.runtime.Worker): the app it loaded,
    and the stop callback it was given, kept so the test can play gunicorn's SIGTERM."""

    def __init__(self, app):
        self.wsgi, self.pid, self.log = app, 4242, logging.getLogger("test.worker")
        self.header_timeout = None
        self.drain = None
        self.alive = True  # gunicorn turns it False on SIGTERM, before the worker drains

    def on_stop(self, drain):
        self.drain = drain


def test_the_hooks_start_drain_and_close_the_runtime(settings):
    app = create_app({**settings, "HEADER_TIMEOUT_SECONDS": 7.5})
    runtime, worker = current_runtime(app), HookedWorker(app)

    gunicorn_conf.post_worker_init(worker)
    assert worker.header_timeout == 7.5 and worker.drain == runtime.drain
    assert not runtime.stopping
    worker.alive = False  # told to stop: /readyz says so before the drain has run
    assert runtime.stopping and not runtime.waits.stopping
    order_id = str(runtime.orders.create(order_fields())["_id"])
    held = gevent.spawn(runtime.waits.wait, order_id, 60)
    eventually(lambda: runtime.waits.held == 1, 10, "the wait to be held")

    worker.drain()  # what the worker does when told to stop
    result = held.get(timeout=10)
    assert (result.outcome, result.body["paymentStatus"], result.cut_short) == ("shutdown", "pending", True)
    assert runtime.waits.wait(order_id, 60).outcome == "shutdown"  # a new wait is not held either

    gunicorn_conf.worker_exit(None, worker)
    with pytest.raises(InvalidOperation, match="after close"):
        runtime.mongo.get_default_database().orders.find_one()


def test_only_the_wait_service_decides_it_is_stopping(runtime):
    with pytest.raises(AttributeError):
        runtime.waits.stopping = True
    assert runtime.waits.stopping is False


def test_settings_are_frozen_and_typed(tmp_path):
    settings = config.load(environ={"EVENTI_VAR_DIR": str(tmp_path), "EVENTI_PUSH_TIMEOUT": "3",
                                    "PAYHERO_VERIFY_CALLBACKS": "yes", "EVENTI_CORS_ORIGINS": "https://a.example, https://b.example"},
                           overrides={"RECHECK_SECONDS": 1, "WAIT_MAX_SECONDS": "90"})
    assert (settings.push_timeout, type(settings.push_timeout)) == (3.0, float)
    assert (settings.recheck_seconds, type(settings.recheck_seconds)) == (1.0, float)
    assert settings.wait_max_seconds == 90 and settings.payhero_verify_callbacks is True
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert {field.name.upper() for field in dataclasses.fields(settings)} == set(config.DEFAULTS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.wait_max_seconds = 5


@pytest.mark.parametrize("overrides, named", [
    ({"WAIT_MAX_SECOND": 5}, "WAIT_MAX_SECOND is not a setting"),
    ({"PUSH_LIMIT": 2.5}, "EVENTI_PUSH_LIMIT must be a whole number"),
    ({"RECHECK_SECONDS": "soon"}, "EVENTI_RECHECK_SECONDS must be a number"),
    ({"PROXY_COUNT": True}, "EVENTI_PROXY_COUNT must be a whole number"),
])
def test_a_wrong_setting_in_code_is_refused_by_name(tmp_path, overrides, named):
    with pytest.raises(config.ConfigError, match=f"^{named}"):
        config.load({"VAR_DIR": str(tmp_path), **overrides}, environ={})
