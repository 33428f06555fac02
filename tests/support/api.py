"""Talking to eventi the way its users do: orders from the browser, callbacks from PayHero."""
from __future__ import annotations

import random
from typing import Any, Protocol

import requests
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from devstack.payhero_payloads import callback_body
from devstack.wait import eventually
from eventi.domain.tokens import OrderTokens
from eventi.payhero.callbacks import CALLBACK_PATH
from tests.support.answers import record_http


class HasTokens(Protocol):
    """What the callback helpers need of the app's parts: the token signer."""

    tokens: OrderTokens


def callback_request(tokens: OrderTokens, order_id: str, kind: str = "success", amount: int = 1500,
                     token: str | None = None, body: Any = None) -> tuple[dict[str, str], Any]:
    """The query (its callbackToken: the right one unless token is given) and the JSON body (the fixture
    of kind, addressed to order_id, unless body is given) of a PayHero callback."""
    token = tokens.callback_token(order_id) if token is None else token
    return {"token": token}, body if body is not None else callback_body(order_id, kind, amount)


def post_callback(client: FlaskClient, parts: HasTokens, order_id: str, kind: str = "success", amount: int = 1500,
                  token: str | None = None, body: Any = None) -> TestResponse:
    """A PayHero callback through an in-process app's test client (Api.callback sends it over HTTP)."""
    query, json_body = callback_request(parts.tokens, order_id, kind, amount, token, body)
    return client.post(CALLBACK_PATH, query_string=query, json=json_body)


def create_order(client: FlaskClient, **fields: Any) -> tuple[str, str]:
    """An order created through an in-process app (order_body's fields): its id and statusToken."""
    response = client.post("/api/orders", json=order_body(**fields))
    data = response.get_json()
    assert response.status_code == 201, data
    return data["orderId"], data["statusToken"]


def phone_ending(digit: int) -> str:
    """A fresh Kenyan number whose last digit picks the simulator's outcome."""
    return "07" + "".join(random.choice("0123456789") for _ in range(7)) + str(digit)


QUIET_PHONE = "0712345675"
"""The simulator never calls back for numbers ending in 5: the tests deliver callbacks themselves."""


def order_body(event_id: str = "ev-test", ticket_type: str = "regular", quantity: int = 1,
               **extra: Any) -> dict[str, Any]:
    """An order for quantity Regular tickets (KES 1,500 each) of the test event."""
    return {"eventId": event_id, "ticketTypeId": ticket_type, "quantity": quantity, "phone": QUIET_PHONE,
            "email": "shopper@example.com", "name": "Wanjiru Kamau", **extra}


def order_fields(event_id: str = "ev-test", phone: str = "254712345675", **extra: Any) -> dict[str, Any]:
    """Validated fields for OrderService.create, as the route passes them."""
    return {"eventId": event_id, "ticketTypeId": "regular", "quantity": 1, "phone": phone,
            "email": "shopper@example.com", **extra}


class Api:
    """A small client for a running eventi (gunicorn or nginx in front)."""

    def __init__(self, base_url: str, secret: str, metrics_url: str | None = None) -> None:
        self.base_url = base_url
        self.metrics_url = metrics_url or base_url  # nginx does not pass /metrics on: read them from the app
        self.tokens = OrderTokens(secret)

    def create_order(self, **fields: Any) -> tuple[str, str]:
        response = record_http(requests.post(f"{self.base_url}/api/orders", json=order_body(**fields), timeout=60))
        assert response.status_code == 201, response.text
        data = response.json()
        return data["orderId"], data["statusToken"]

    def status(self, order_id: str, token: str) -> requests.Response:
        return record_http(requests.get(f"{self.base_url}/api/orders/{order_id}", params={"token": token}, timeout=60))

    def page(self, order_id: str, token: str) -> requests.Response:
        """The shopper's payment page (HTML)."""
        return record_http(requests.get(f"{self.base_url}/orders/{order_id}/status", params={"token": token},
                                        timeout=60))

    def wait(self, order_id: str, token: str, timeout: float = 30) -> requests.Response:
        return record_http(requests.get(f"{self.base_url}/api/orders/{order_id}/wait",
                                        params={"token": token, "timeout": str(timeout)}, timeout=timeout + 30))

    def callback(self, order_id: str, kind: str = "success", amount: int = 1500, token: str | None = None,
                 body: Any = None) -> requests.Response:
        """A PayHero callback over HTTP (post_callback sends it through an in-process app)."""
        query, json_body = callback_request(self.tokens, order_id, kind, amount, token, body)
        return record_http(requests.post(self.base_url + CALLBACK_PATH, params=query, json=json_body, timeout=60))

    def metric(self, name: str) -> float:
        """The sum of a metric's samples on /metrics."""
        text = requests.get(f"{self.metrics_url}/metrics", timeout=60).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def await_waits_held(self, count: int, timeout: float = 30) -> None:
        """Block until the server reports at least count held waits."""
        eventually(lambda: self.metric("eventi_waits_held") >= count, timeout,
                   f"{count} waits held (last: {self.metric('eventi_waits_held')})")

