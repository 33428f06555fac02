"""Two WSGI apps that hold every wait request on one gevent Event, for bench.memory_probe.

`raw` is a bare WSGI callable; `flask_app` is the smallest Flask app with eventi's wait route shape.
Neither reads Redis or the store: they measure what gunicorn's gevent worker and Flask cost per held
request before eventi adds anything. `GET /held` answers at once with the number of requests held.
"""
from flask import Flask, jsonify
from gevent.event import Event

HOLD_SECONDS = 120
_never = Event()
_held = [0]


def _hold():
    _held[0] += 1
    _never.wait(HOLD_SECONDS)


def raw(environ, start_response):
    if environ["PATH_INFO"] != "/held":
        _hold()
    body = str(_held[0]).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


flask_app = Flask(__name__)


@flask_app.get("/held")
def held():
    return str(_held[0])


@flask_app.get("/api/orders/<order_id>/wait")
def wait(order_id):
    _hold()
    return jsonify(orderId=order_id)
