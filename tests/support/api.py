"""Talking to eventi the way its users do: orders from the browser, callbacks from PayHero."""
import copy
import json
import time
from pathlib import Path

import gevent
import requests

from eventi.tokens import OrderTokens
from tests.support.answers import record_http

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "payhero"
SAMPLE_ORDER_ID = "6751a3f2c9e77b0012ab34cd"


def payhero_fixture(name):
    return json.loads((FIXTURES / f"{name}.json").read_text())


def callback_body(order_id, kind="success", amount=1500):
    """A PayHero callback from the reference fixtures, addressed to order_id."""
    body = copy.deepcopy(payhero_fixture(f"callback-{kind}"))
    if "response" in body:
        body["response"]["ExternalReference"] = order_id
        body["response"]["Amount"] = amount
    else:
        body["external_reference"] = order_id
        if "amount" in body:
            body["amount"] = amount
    return body


QUIET_PHONE = "0712345675"
"""The simulator never calls back for numbers ending in 5: the tests deliver callbacks themselves."""


def order_body(event_id="ev-test", ticket_type="regular", quantity=1, **extra):
    """An order for quantity Regular tickets (KES 1,500 each) of the test event."""
    return {"eventId": event_id, "ticketTypeId": ticket_type, "quantity": quantity, "phone": QUIET_PHONE,
            "email": "shopper@example.com", "name": "Wanjiru Kamau", **extra}


def order_fields(event_id="ev-test", phone="254712345675", **extra):
    """Validated fields for OrderService.create, as the route passes them."""
    return {"eventId": event_id, "ticketTypeId": "regular", "quantity": 1, "phone": phone,
            "email": "shopper@example.com", **extra}


class Api:
    """A small client for a running eventi (gunicorn or nginx in front)."""

    def __init__(self, base_url, secret, metrics_url=None):
        self.base_url = base_url
        self.metrics_url = metrics_url or base_url  # nginx does not pass /metrics on: read them from the app
        self.tokens = OrderTokens(secret)

    def create_order(self, **fields):
        response = record_http(requests.post(f"{self.base_url}/api/orders", json=order_body(**fields), timeout=60))
        assert response.status_code == 201, response.text
        data = response.json()
        return data["orderId"], data["statusToken"]

    def status(self, order_id, token):
        return record_http(requests.get(f"{self.base_url}/api/orders/{order_id}", params={"token": token}, timeout=60))

    def wait(self, order_id, token, timeout=30):
        return record_http(requests.get(f"{self.base_url}/api/orders/{order_id}/wait",
                                        params={"token": token, "timeout": timeout}, timeout=timeout + 30))

    def callback(self, order_id, kind="success", amount=1500, token=None, body=None):
        token = self.tokens.callback_token(order_id) if token is None else token
        return record_http(requests.post(f"{self.base_url}/api/payhero/callback", params={"token": token},
                                         json=body if body is not None else callback_body(order_id, kind, amount),
                                         timeout=60))

    def metric(self, name):
        text = requests.get(f"{self.metrics_url}/metrics", timeout=60).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def await_waits_held(self, count, timeout=30):
        """Block until the server reports at least count held waits."""
        eventually(lambda: self.metric("eventi_waits_held") >= count, timeout,
                   f"{count} waits held (last: {self.metric('eventi_waits_held')})")


def eventually(predicate, timeout=30, what="condition"):
    """Poll a condition against a deadline. The pause only paces the polling; it never decides."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        gevent.sleep(0.05)
