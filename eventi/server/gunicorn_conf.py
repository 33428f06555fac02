"""gunicorn settings for eventi: few gevent workers, each holding thousands of long polls.

Every value can be overridden on the command line; EVENTI_BIND and EVENTI_WORKERS come from
the environment as docs/settings.md says.
"""
import os
import shutil
import tempfile
from typing import TYPE_CHECKING, cast

# eventi.config and eventi.logs import the standard library only: safe in gunicorn's master before any fork.
from eventi.config import LOG_LEVELS, exit_on_config_error, load, positive_int
from eventi.logs import gunicorn_logconfig, gunicorn_logger_class

if TYPE_CHECKING:
    from flask import Flask
    from gunicorn.arbiter import Arbiter

    from eventi.runtime import Runtime
    from eventi.server.gunicorn_worker import EventiGeventWorker

# --- Where and how many --------------------------------------------------------------
bind = [os.environ.get("EVENTI_BIND", "127.0.0.1:8000")]
if os.environ.get("EVENTI_METRICS_BIND"):  # /metrics alone on its own listener (eventi/web/health.py)
    bind.append(os.environ["EVENTI_METRICS_BIND"])
with exit_on_config_error():  # an invalid count stops gunicorn as any invalid setting does
    # gevent wants few processes with many connections each, not cpu*2+1 sync workers.
    workers = positive_int("EVENTI_WORKERS", 2)
    # Counts held waits and idle keep-alive connections alike (gunicorn #2585): room for 10,000+ per worker.
    worker_connections = positive_int("EVENTI_WORKER_CONNECTIONS", 12000)
worker_class = "eventi.server.gunicorn_worker.EventiGeventWorker"  # gevent, closing idle keep-alives on stop
backlog = 4096

# --- Time ----------------------------------------------------------------------------
# The longest hold is 120 s. `timeout` is the worker heartbeat, and graceful_timeout must
# cover the hold as well, although on shutdown held waits are answered at once.
timeout = 150
graceful_timeout = 130
keepalive = 75  # above nginx's upstream keepalive_timeout (60 s), so nginx closes first
max_requests = 0  # recycling workers drops held requests (gunicorn #2297, #2567)

# --- Logs ----------------------------------------------------------------------------
accesslog = os.environ.get("EVENTI_ACCESS_LOG") or None
# The path without the query (%(U)s, not %(r)s) and no Referer: both can carry a status token.
access_log_format = ('%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms rid=%({x-request-id}o)s '
                     'xff="%({x-forwarded-for}i)s" "%(a)s"')
# gunicorn's own lines masked like eventi's (tokens, phones, e-mails).
logger_class = gunicorn_logger_class()
errorlog = "-"
loglevel = os.environ.get("EVENTI_LOG_LEVEL", "info").lower()
# EVENTI_LOG_FORMAT=json: gunicorn's own lines and the access log are JSON objects too ({} in text mode).
logconfig_dict = gunicorn_logconfig(os.environ.get("EVENTI_LOG_FORMAT", "text"),
                                    # an invalid level: on_starting stops gunicorn with one line
                                    loglevel.upper() if loglevel.upper() in LOG_LEVELS else "INFO",
                                    accesslog)
proc_name = "eventi"
control_socket_disable = True  # gunicorn 24+: one shared ctl path would clash between instances


# --- Hooks ---------------------------------------------------------------------------
# Each hands over to eventi. Those run in a worker import eventi.web.common there, after gevent patched it.
def on_starting(server: "Arbiter") -> None:
    """Before it binds or forks: check eventi's settings (a bad one stops gunicorn here, in one line, and not
    once per worker, racing), then give prometheus_client a fresh multiprocess directory."""
    with exit_on_config_error():
        load()
    _fresh_metrics_directory()


def post_worker_init(worker: "EventiGeventWorker") -> None:
    """The worker loaded the app: start its runtime, which drains when the worker is told to stop."""
    _runtime(worker).start(worker)


def worker_exit(server: "Arbiter", worker: "EventiGeventWorker") -> None:
    """Close the worker's clients so the gevent hub can exit (no runtime when the app did not load)."""
    if hasattr(worker, "wsgi"):
        _runtime(worker).close()


def child_exit(server: "Arbiter", worker: "EventiGeventWorker") -> None:
    """In the master: the dead worker's metrics files stop counting as live."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def worker_int(worker: "EventiGeventWorker") -> None:
    """On SIGINT/SIGQUIT, dump every thread's stack: a blocked event loop shows up here."""
    worker.dump_stacks()


def _runtime(worker: "EventiGeventWorker") -> "Runtime":
    from eventi.runtime import current_runtime

    return current_runtime(cast("Flask", worker.wsgi))  # gunicorn loaded wsgi:app, eventi's Flask app


def _fresh_metrics_directory() -> None:
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path, exist_ok=True)
    else:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="eventi-metrics-")
