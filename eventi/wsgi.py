"""WSGI entry point: gevent patches the standard library before anything else is imported."""
from gevent import monkey

monkey.patch_all()

import os  # noqa: E402
import sys  # noqa: E402

from eventi import create_app  # noqa: E402
from eventi.config import ConfigError  # noqa: E402
from eventi.logs import startup_error  # noqa: E402

APP_LOAD_ERROR = 4
"""gunicorn's exit code for "App failed to load": the arbiter stops instead of starting the worker again."""

try:
    app = create_app()
except ConfigError as exc:  # one line naming the setting, not a traceback per worker
    print(startup_error(str(exc), os.environ.get("EVENTI_LOG_FORMAT")), file=sys.stderr, flush=True)
    sys.exit(APP_LOAD_ERROR)
