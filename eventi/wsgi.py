"""WSGI entry point: gevent patches the standard library before anything else is imported."""
from gevent import monkey

monkey.patch_all()

from eventi import create_app  # noqa: E402
from eventi.config import exit_on_config_error  # noqa: E402

with exit_on_config_error():  # one line naming the setting and exit 4, not a traceback per worker
    app = create_app()
