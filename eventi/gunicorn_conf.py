"""gunicorn settings for eventi: few gevent workers, each holding thousands of long polls.

Every value can be overridden on the command line; EVENTI_BIND and EVENTI_WORKERS come from
the environment as the README's settings table says.
"""
import os
import shutil
import sys
import tempfile

# eventi.config and eventi.logs import the standard library only: safe in gunicorn's master before any fork.
from eventi.config import LOG_LEVELS
from eventi.logs import gunicorn_logconfig, gunicorn_logger_class, startup_error

APP_LOAD_ERROR = 4
"""The exit code of every invalid setting, as gunicorn's own "App failed to load"."""


def _int_setting(name, default):
    """A positive integer from the environment; anything else stops gunicorn with one line naming it."""
    raw = os.environ.get(name) or str(default)
    if not raw.isdigit() or int(raw) < 1:
        print(startup_error(f"{name} must be a positive integer, got {raw!r}", os.environ.get("EVENTI_LOG_FORMAT")),
              file=sys.stderr, flush=True)
        raise SystemExit(APP_LOAD_ERROR)
    return int(raw)


# --- Where and how many --------------------------------------------------------------
bind = [os.environ.get("EVENTI_BIND", "127.0.0.1:8000")]
if os.environ.get("EVENTI_METRICS_BIND"):  # /metrics alone on its own listener (eventi/web/health.py)
    bind.append(os.environ["EVENTI_METRICS_BIND"])
# gevent wants few processes with many connections each, not cpu*2+1 sync workers.
workers = _int_setting("EVENTI_WORKERS", 2)
worker_class = "eventi.gunicorn_worker.EventiGeventWorker"  # gevent, closing idle keep-alives on stop
# Counts held waits and idle keep-alive connections alike (gunicorn #2585): room for 10,000+ per worker.
worker_connections = _int_setting("EVENTI_WORKER_CONNECTIONS", 12000)
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
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms rid=%({x-request-id}o)s xff="%({x-forwarded-for}i)s" "%(a)s"'
# gunicorn's own lines masked like eventi's (tokens, phones, e-mails).
logger_class = gunicorn_logger_class()
errorlog = "-"
loglevel = os.environ.get("EVENTI_LOG_LEVEL", "info").lower()
# EVENTI_LOG_FORMAT=json: gunicorn's own lines and the access log are JSON objects too ({} in text mode).
logconfig_dict = gunicorn_logconfig(os.environ.get("EVENTI_LOG_FORMAT", "text"),
                                    loglevel.upper() if loglevel.upper() in LOG_LEVELS else "INFO",  # else on_starting stops
                                    accesslog)
proc_name = "eventi"
control_socket_disable = True  # gunicorn 24+: one shared ctl path would clash between instances


# --- Hooks ---------------------------------------------------------------------------
def on_starting(server):
    """Check eventi's settings, then give prometheus_client a fresh multiprocess directory, before any fork."""
    _check_settings()
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path, exist_ok=True)
    else:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="eventi-metrics-")


def _check_settings():
    """A bad setting stops gunicorn here, before it binds, in one line (and not once per worker, racing:
    two workers failing together make gunicorn's halt raise again with a traceback). eventi.config
    imports the stdlib only. wsgi.py keeps the same check for other ways of loading the app."""
    from eventi.config import ConfigError, load

    try:
        load()
    except ConfigError as exc:
        print(startup_error(str(exc), os.environ.get("EVENTI_LOG_FORMAT")), file=sys.stderr, flush=True)
        raise SystemExit(APP_LOAD_ERROR) from None  # as eventi/wsgi.py


def post_worker_init(worker):
    """Answer held waits as soon as this worker is told to stop (SIGTERM, HUP reload)."""
    import gevent

    parts = worker.wsgi.extensions["eventi"]
    worker.header_timeout = parts.settings["HEADER_TIMEOUT_SECONDS"]

    def watch_for_shutdown():
        while worker.alive:
            gevent.sleep(0.2)
        worker.close_after_response()  # first: the waits answered next must close their connections
        parts.waits.stopping = True
        parts.notifier.stop()
        while True:  # idle keep-alive connections would hold the worker until the keepalive timeout
            worker.close_idle_connections()
            gevent.sleep(0.2)

    gevent.spawn(watch_for_shutdown)
    interval = parts.settings["RECONCILE_INTERVAL_SECONDS"]
    if interval > 0:
        from eventi.services.reconcile import reconcile_forever

        gevent.spawn(reconcile_forever, parts.reconciler(), parts.redis, interval)
    if not parts.notifier.start(timeout=5):
        worker.log.warning("eventi: Redis not reachable yet; the hub keeps retrying")
    worker.log.info("eventi worker ready (pid %s)", worker.pid)


def worker_exit(server, worker):
    """Close the worker's MongoDB and Redis clients so the gevent hub can exit."""
    app = getattr(worker, "wsgi", None)
    if app is not None and "eventi" in getattr(app, "extensions", {}):
        app.extensions["eventi"].close()


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def worker_int(worker):
    """On SIGINT/SIGQUIT, dump every thread's stack: a blocked event loop shows up here."""
    import sys
    import threading
    import traceback

    names = {t.ident: t.name for t in threading.enumerate()}
    for ident, frame in sys._current_frames().items():
        worker.log.debug("# Thread %s (%s)\n%s", names.get(ident, ""), ident, "".join(traceback.format_stack(frame)))
