"""A local PayHero: the STK push and transaction-status endpoints, and the callback it sends later; and, for
manual payments, M-Pesa's C2B confirmation of a Paybill payment (POST /simulator/c2b).

A separate WSGI app (no part of eventi's own app). Threads, not gevent, so it runs unpatched
from `python -m eventi.payhero.simulator`.
"""
import hmac
import logging
import secrets
import string
import threading
import time
from datetime import UTC, datetime
from typing import Any

import requests
from flask import Flask, Response, jsonify, request

from ...domain import phones
from . import scenarios as outcomes

log = logging.getLogger("eventi.payhero.simulator")

CALLBACK_TIMEOUT = 10


class Simulator:
    """The simulator's record of every push; transaction-status answers from it."""

    def __init__(self, auth_token: str, delay: float = 3.0, slow_seconds: float = 30.0) -> None:
        self.auth_token = auth_token
        self.delay = delay
        self.slow_seconds = slow_seconds
        self.pushes: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def authorised(self, header: str | None) -> bool:
        return hmac.compare_digest((header or "").encode(), f"Basic {self.auth_token}".encode())

    def queue(self, body: dict[str, Any], outcome: outcomes.Outcome) -> dict[str, Any]:
        """Record a push and schedule its callback(s)."""
        reference = _code(10)
        record = {
            "reference": reference,
            "CheckoutRequestID": "ws_CO_" + datetime.now(UTC).strftime("%d%m%Y%H%M%S") + _digits(9),
            "MerchantRequestID": f"{_digits(4)}-{_digits(8)}-1",
            "external_reference": body["external_reference"],
            "amount": body["amount"],
            "phone_number": body["phone_number"],
            "callback_url": body["callback_url"],
            "outcome": outcome.name,
            "status": "QUEUED",
            "receipt": _code(10) if outcome.paid else "",
            "queuedAt": time.time(),
            "deliveries": [],
        }
        with self._lock:
            self.pushes[reference] = record
        timer = threading.Timer(self.delay, self._settle, args=(reference, outcome))
        timer.daemon = True
        timer.start()
        return record

    def _settle(self, reference: str, outcome: outcomes.Outcome) -> None:
        record = self.pushes[reference]
        record["status"] = "SUCCESS" if outcome.paid else "FAILED"
        record["transaction_date"] = datetime.now(UTC).isoformat()
        for _ in range(outcome.callbacks):
            self._deliver(record, outcome)

    def _deliver(self, record: dict[str, Any], outcome: outcomes.Outcome) -> None:
        body = callback_body(record, outcome)
        sent_at = time.time()
        status: int | str
        try:
            # One connection per delivery, closed after it, like a webhook sender; an idle keep-alive
            # connection would hold up a graceful shutdown of the receiving gunicorn worker.
            status = requests.post(record["callback_url"], json=body, timeout=CALLBACK_TIMEOUT,
                                   headers={"Connection": "close"}).status_code
        except requests.RequestException as exc:
            status = exc.__class__.__name__
        record["deliveries"].append({"sentAt": sent_at, "answer": status})
        log.info("simulator: callback delivered reference=%s externalReference=%s outcome=%s answer=%s",
                 record["reference"], record["external_reference"], outcome.name, status)

    def find(self, external_reference: str) -> list[dict[str, Any]]:
        return [r for r in list(self.pushes.values()) if r["external_reference"] == external_reference]


def callback_body(record: dict[str, Any], outcome: outcomes.Outcome) -> dict[str, Any]:
    """PayHero's v2 callback (Safaricom's field names nested under `response`)."""
    phone = record["phone_number"]
    return {
        "forward_url": "",
        "response": {
            "Amount": record["amount"],
            "CheckoutRequestID": record["CheckoutRequestID"],
            "ExternalReference": record["external_reference"],
            "MerchantRequestID": record["MerchantRequestID"],
            "MpesaReceiptNumber": record["receipt"],
            "Phone": "+254" + phone[-9:],
            "ResultCode": outcome.result_code,
            "ResultDesc": outcome.description,
            "Status": "Success" if outcome.paid else "Failed",
        },
        "status": outcome.paid,
    }


def c2b_body(paybill: str, account: str, amount: int, receipt: str) -> dict[str, Any]:
    """M-Pesa's C2B confirmation of a Paybill payment (Daraja's field names; amounts as text)."""
    return {"TransactionType": "Pay Bill", "TransID": receipt, "TransTime": datetime.now(UTC).strftime("%Y%m%d%H%M%S"),
            "TransAmount": f"{amount}.00", "BusinessShortCode": paybill, "BillRefNumber": account, "InvoiceNumber": "",
            "OrgAccountBalance": "", "ThirdPartyTransID": "", "MSISDN": "2547 ***** 678", "FirstName": "Simulated"}


def _post(url: str, body: dict[str, Any]) -> tuple[int | str, Any]:
    """One delivery: (status or the error's name, the JSON answer or None)."""
    try:
        answer = requests.post(url, json=body, timeout=CALLBACK_TIMEOUT, headers={"Connection": "close"})
    except requests.RequestException as exc:
        return exc.__class__.__name__, None
    try:
        return answer.status_code, answer.json()
    except ValueError:
        return answer.status_code, None


def transaction_status_body(record: dict[str, Any]) -> dict[str, Any]:
    """The answer of GET /api/v2/transaction-status for one recorded push."""
    body = {"success": True, "status": record["status"], "reference": record["reference"],
            "CheckoutRequestID": record["CheckoutRequestID"]}
    if record["status"] != "QUEUED":
        body.update(transaction_date=record["transaction_date"], provider="m-pesa", merchant="eventi simulator",
                    payment_reference="", third_party_reference=record["receipt"], provider_reference=record["receipt"])
    return body


def create_app(auth_token: str, delay: float = 3.0, slow_seconds: float = 30.0) -> Flask:
    """The simulator as a WSGI app; app.extensions["simulator"] holds its record."""
    sim = Simulator(auth_token, delay, slow_seconds)
    app = Flask(__name__)
    app.extensions["simulator"] = sim

    @app.before_request
    def _check_token() -> tuple[Response, int] | None:
        if request.path.startswith("/api/") and not sim.authorised(request.headers.get("Authorization")):
            return _error(401, "Unauthorized: invalid or missing Basic token")
        return None

    @app.post("/api/v2/payments")
    def payments() -> tuple[Response, int]:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return _error(400, "Body must be a JSON object")
        problem = _invalid_push(body)
        if problem:
            return _error(400, problem)
        outcome = outcomes.for_phone(body["phone_number"])
        if outcome.push_error:
            return _error(outcome.push_error, "The push was refused (simulated)")
        if outcome.slow:
            time.sleep(sim.slow_seconds)
        record = sim.queue(body, outcome)
        log.info("simulator: push queued reference=%s externalReference=%s outcome=%s delay=%ss",
                 record["reference"], record["external_reference"], outcome.name, sim.delay)
        return jsonify(success=True, status="QUEUED", reference=record["reference"],
                       CheckoutRequestID=record["CheckoutRequestID"]), 201

    @app.get("/api/v2/transaction-status")
    def transaction_status() -> Response | tuple[Response, int]:
        record = sim.pushes.get(request.args.get("reference", ""))
        if record is None:
            return _error(404, "Transaction not found")
        return jsonify(transaction_status_body(record))

    @app.get("/simulator/pushes")
    def pushes() -> Response:
        """Not PayHero: what the simulator did for one order (for scripts and tests)."""
        return jsonify(pushes=sim.find(request.args.get("external_reference", "")), delay=sim.delay)

    @app.post("/simulator/c2b")
    def c2b() -> Response | tuple[Response, int]:
        """Not PayHero: a shopper pays a Paybill from the M-Pesa menu; M-Pesa posts its C2B confirmation to
        confirmation_url (`deliveries` times, one TransID). Body: confirmation_url, paybill, account, amount."""
        body = request.get_json(silent=True)
        needed = ("confirmation_url", "paybill", "account")
        if not isinstance(body, dict) or not all(isinstance(body.get(k), str) for k in needed):
            return _error(400, "confirmation_url, paybill and account are required strings")
        if isinstance(body.get("amount"), bool) or not isinstance(body.get("amount"), int):
            return _error(400, "amount must be a whole number of KES")
        deliveries = body.get("deliveries", 1)
        if isinstance(deliveries, bool) or not isinstance(deliveries, int) or not 1 <= deliveries <= 10:
            return _error(400, "deliveries must be 1 to 10")
        confirmation = c2b_body(body["paybill"], body["account"], body["amount"], body.get("receipt") or _code(10))
        answers = [_post(body["confirmation_url"], confirmation) for _ in range(deliveries)]
        log.info("simulator: C2B confirmation sent transId=%s account=%s amount=%s answers=%s",
                 confirmation["TransID"], body["account"], body["amount"], [a[0] for a in answers])
        return jsonify(TransID=confirmation["TransID"], answers=[{"status": a[0], "body": a[1]} for a in answers])

    @app.get("/healthz")
    def health() -> Response:
        return jsonify(status="ok")

    return app


def _invalid_push(body: object) -> str | None:
    if not isinstance(body, dict):
        return "Body must be a JSON object"
    amount = body.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, int) or not 1 <= amount <= 250_000:
        return "amount must be a whole number of KES from 1 to 250000"
    if not isinstance(body.get("phone_number"), str) or not phones.KENYAN_MOBILE.fullmatch(body["phone_number"]):
        return "phone_number is not a valid Safaricom number"
    if isinstance(body.get("channel_id"), bool) or not isinstance(body.get("channel_id"), int):
        return "channel_id must be a number"
    if body.get("provider") != "m-pesa":
        return "provider must be m-pesa"
    if not isinstance(body.get("external_reference"), str) or not body["external_reference"]:
        return "external_reference is required"
    if not isinstance(body.get("callback_url"), str) or not body["callback_url"].startswith(("http://", "https://")):
        return "callback_url must be an http(s) URL"
    return None


def _error(status: int, message: str) -> tuple[Response, int]:
    return jsonify(success=False, error_message=message), status


def _code(length: int) -> str:
    return "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(length))


def _digits(length: int) -> str:
    return "".join(secrets.choice(string.digits) for _ in range(length))
