"""gunicorn settings for eventi: the package's own, so that `gunicorn -c gunicorn.conf.py wsgi:app` from a
checkout and `eventi serve` (gunicorn -c python:eventi.server.gunicorn_conf eventi.wsgi:app) run the same."""
from eventi.server.gunicorn_conf import *  # noqa: F401,F403
