"""eventi/web/deferred.py's outermost layer: a wait goes through Flask in a greenlet of its own, which ends
before the hold; when the connection's greenlet is killed meanwhile (the worker stopping), nothing the
dispatch took is left held."""
from typing import Any

import gevent
from flask import Response
from gevent.event import Event
from werkzeug.test import EnvironBuilder

from eventi.web.deferred import Deferred, DeferredResponse, park_after_flask


def _wait_environ() -> dict[str, Any]:
    return EnvironBuilder("/api/orders/6b0ade5c347701d5547b1307/wait").get_environ()


def test_a_wait_is_dispatched_in_a_greenlet_that_has_ended_when_it_parks() -> None:
    dispatched_in: list[Any] = []

    def flask(environ: dict[str, Any], start_response: Any) -> Any:
        dispatched_in.append(gevent.getcurrent())
        return DeferredResponse(lambda: Response(b"held"), abandon=lambda: None)(
            environ, start_response)

    started: list[str] = []
    body = gevent.spawn(park_after_flask(flask), _wait_environ(), lambda s, h: started.append(s)).get()
    (dispatch,) = dispatched_in
    assert dispatch is not gevent.getcurrent() and dispatch.dead
    assert started == ["200 OK"] and b"".join(body) == b"held"


def test_a_connection_killed_while_its_wait_is_dispatched_ends_the_dispatch() -> None:
    entered, released = Event(), []

    def flask(environ: dict[str, Any], start_response: Any) -> Any:
        entered.set()
        try:
            Event().wait()  # begin(): waiting for Redis to confirm the channel, say
        finally:
            released.append("slot and waiter")
        raise AssertionError("not reached")

    connection = gevent.spawn(park_after_flask(flask), _wait_environ(), lambda s, h: None)
    entered.wait(10)
    connection.kill()
    assert released == ["slot and waiter"]


def test_a_connection_killed_after_its_wait_was_dispatched_releases_the_hold() -> None:
    abandoned = []
    connection = None

    def flask(environ: dict[str, Any], start_response: Any) -> Deferred:
        connection.kill(block=False)  # arrives before the dispatch's answer does
        return DeferredResponse(lambda: Response(b"never"), abandon=lambda: abandoned.append(1))(
            environ, start_response)

    connection = gevent.spawn(park_after_flask(flask), _wait_environ(), lambda s, h: None)
    connection.join(10)
    assert connection.dead and abandoned == [1]
