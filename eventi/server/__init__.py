"""The gunicorn process: its config, its gevent worker and the container health check."""
