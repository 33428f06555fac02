"""PayHero's HTTP API: the M-Pesa STK push and transaction-status. No Flask; never logs secrets."""
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests
from urllib3.exceptions import NewConnectionError

from .. import metrics
from ..errors import PaymentProviderError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 3.0


class PayHeroUnavailable(PaymentProviderError):
    """PayHero could not be reached or did not answer within the timeout.

    Once the request may have reached PayHero (sent), whether it queued the push is unknown.
    """

    reason = "unreachable"

    def __init__(self, message: str, sent: bool = True) -> None:
        super().__init__(message)
        self.sent = sent
        self.uncertain = sent


class PayHeroRejected(PaymentProviderError):
    """PayHero answered, but not with a queued push (4xx, 5xx or an unexpected body).

    A 5xx is uncertain: PayHero may have failed after handing the push to M-Pesa. A 4xx or a 2xx
    that did not queue the push is a refusal: nothing reaches the phone.
    """

    reason = "rejected"

    def __init__(self, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.uncertain = http_status is not None and http_status >= 500


@dataclass(frozen=True)
class Push:
    """A queued STK push: PayHero's own reference and M-Pesa's CheckoutRequestID."""

    reference: str
    checkout_request_id: str | None


class PayHeroClient:
    """One per worker; requests is gevent-patched there, so a push costs a greenlet, not a thread."""

    def __init__(self, base_url: str, auth_token: str, channel_id: int, timeout: float = 8.0,
                 session: requests.Session | None = None) -> None:
        self._base = base_url.rstrip("/")
        self._channel_id = channel_id
        self._timeout = (min(CONNECT_TIMEOUT, timeout), timeout)
        self._session = session or requests.Session()
        self._session.headers["Authorization"] = f"Basic {auth_token}"
        _read_environment_once(self._session, self._base)

    def stk_push(self, amount: int, phone: str, external_reference: str, customer_name: str | None,
                 callback_url: str) -> Push:
        """Ask PayHero to prompt the phone. Sent once: the caller must never retry blindly."""
        body = {
            "amount": amount,
            "phone_number": local_phone(phone),
            "channel_id": self._channel_id,
            "provider": "m-pesa",
            "external_reference": external_reference,
            "customer_name": customer_name,
            "callback_url": callback_url,
        }
        with _observed("stk_push"):
            data = self._call("POST", "/api/v2/payments", json=body)
            reference = data.get("reference")
            if not data.get("success") or not isinstance(reference, str) or not reference:
                raise PayHeroRejected(f"PayHero did not queue the push (status {data.get('status')!r}).")
        return Push(reference=reference, checkout_request_id=data.get("CheckoutRequestID") or None)

    def transaction_status(self, reference: str) -> dict[str, Any]:
        """PayHero's record of one push: its `status` is QUEUED, SUCCESS or FAILED."""
        with _observed("transaction_status"):
            return self._call("GET", "/api/v2/transaction-status", params={"reference": reference})

    def close(self) -> None:
        self._session.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._session.request(method, self._base + path, timeout=self._timeout, **kwargs)
        except requests.ConnectTimeout:  # before requests.Timeout: a ConnectTimeout is both
            raise PayHeroUnavailable("PayHero could not be connected to in time.", sent=False) from None
        except requests.Timeout:
            raise PayHeroUnavailable("PayHero did not answer in time.") from None
        except requests.RequestException as exc:
            raise PayHeroUnavailable(f"PayHero is not reachable ({exc.__class__.__name__}).",
                                     sent=not _never_connected(exc)) from None
        if not 200 <= response.status_code < 300:
            log.warning("PayHero answered %s to %s %s", response.status_code, method, path)
            raise PayHeroRejected(f"PayHero answered HTTP {response.status_code}.", response.status_code)
        try:
            data = response.json()
        except ValueError:
            raise PayHeroRejected("PayHero answered with a body that is not JSON.") from None
        if not isinstance(data, dict):
            raise PayHeroRejected("PayHero answered with an unexpected body.")
        return data


def _read_environment_once(session: requests.Session, base_url: str) -> None:
    """Take the proxy and CA bundle settings (HTTPS_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE...) now.

    With `trust_env` on, requests walks os.environ and looks for ~/.netrc on every call: about a tenth
    of a worker's CPU per order created. The environment does not change under a running worker.
    """
    settings = session.merge_environment_settings(base_url, {}, None, None, None)
    session.proxies.update(settings["proxies"])
    session.verify = settings["verify"]
    session.trust_env = False


@contextmanager
def _observed(call: str) -> Iterator[None]:
    """Time one call to PayHero into eventi_payhero_request_duration_seconds{call, outcome}."""
    started = time.perf_counter()
    outcome = "unreachable"
    try:
        yield
        outcome = "ok"
    except PayHeroRejected:
        outcome = "rejected"
        raise
    finally:
        metrics.PAYHERO_CALLS.labels(call, outcome).observe(time.perf_counter() - started)


def _never_connected(exc: requests.RequestException) -> bool:
    """True when requests failed to open the connection (refused, no route, no DNS): nothing was sent."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(exc, requests.ConnectionError) and isinstance(reason, NewConnectionError)


def local_phone(phone: str) -> str:
    """2547XXXXXXXX (as stored) to 07XXXXXXXX, the spelling PayHero's examples use."""
    return "0" + phone[3:] if phone.startswith("254") and len(phone) == 12 else phone
