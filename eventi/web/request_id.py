"""The request id: taken from X-Request-ID when it is short and safe, else made; logged and returned."""
import re
import uuid

from flask import Flask, Response, g, request

from ..logs import REQUEST_ID

HEADER = "X-Request-ID"
SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def init_app(app: Flask) -> None:
    """Give every request an id, visible in every log line about it and in the response header."""

    @app.before_request
    def _take_request_id() -> None:
        given = request.headers.get(HEADER, "")
        g.request_id = given if SAFE_ID.match(given) else uuid.uuid4().hex
        REQUEST_ID.set(g.request_id)

    @app.after_request
    def _return_request_id(response: Response) -> Response:
        request_id = g.get("request_id")
        if request_id:
            response.headers[HEADER] = request_id
        return response

    @app.teardown_request
    def _forget_request_id(exc: BaseException | None = None) -> None:
        # A keep-alive connection serves its next request in the same greenlet.
        REQUEST_ID.set(None)
