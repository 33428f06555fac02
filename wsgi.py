"""WSGI entry point of a checkout (`gunicorn wsgi:app`, `flask --app wsgi`): the package's eventi.wsgi."""
from eventi.wsgi import app  # noqa: F401  (eventi.wsgi patches gevent before anything else is imported)
