"""gunicorn's gevent worker, plus closing idle keep-alive connections when the worker stops.

A stopping gevent worker waits until every connection greenlet is done, and an idle
keep-alive connection (nginx's upstream pool, PayHero's HTTP client) stays until gunicorn's
keepalive timeout: a deploy would wait that long for nothing. Connections with a request in
progress are left alone; held waits are answered by the app's own shutdown hook.
"""
import gevent
from gunicorn.workers.ggevent import GeventWorker


class EventiGeventWorker(GeventWorker):
    """The gevent worker with close_idle_connections()."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._connections = set()
        self._busy = set()

    def handle(self, listener, client, addr):
        current = gevent.getcurrent()
        self._connections.add(current)
        try:
            super().handle(listener, client, addr)
        finally:
            self._connections.discard(current)

    def handle_request(self, listener_name, req, sock, addr):
        current = gevent.getcurrent()
        self._busy.add(current)
        try:
            return super().handle_request(listener_name, req, sock, addr)
        finally:
            self._busy.discard(current)

    def close_idle_connections(self):
        """Kill the greenlets waiting for a next request on a kept-alive connection."""
        idle = self._connections - self._busy
        for greenlet in idle:
            greenlet.kill(block=False)
        return len(idle)
