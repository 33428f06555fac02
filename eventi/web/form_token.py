"""Proof that a checkout form post without JavaScript comes from one of our own pages (issue 19, item 7).

The form carries a token issued with it: `<issued>.<hex HMAC-SHA256>` under the secret key, over the event
id, the form's hidden Idempotency-Key and the time it was issued, so it is good for that form only and for
MAX_AGE_SECONDS. The browser's own word is checked too: `Sec-Fetch-Site` must be same-origin (or none: typed,
a bookmark) and `Origin` one of ours, whenever the browser sends them. No Flask here: pages.py passes the
headers in.
"""
import hashlib
import hmac
import re
import time
from collections.abc import Collection
from urllib.parse import urlsplit

from ..schemas import IDEMPOTENCY_KEY

MAX_AGE_SECONDS = 4 * 3600
"""How long a rendered checkout form may be sent: a shopper who left it open longer gets the form again."""

CLOCK_SKEW_SECONDS = 60
"""A token issued this far in the future still counts (the workers' clocks)."""

SAME_ORIGIN_FETCHES = frozenset({"same-origin", "none"})
"""`Sec-Fetch-Site` values of a post from our own page ("none": the user's own action, e.g. a reload)."""

_PURPOSE = "checkout-form"
_TOKEN = re.compile(r"^([0-9]{1,12})\.([0-9a-f]{64})$")
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def issue(secret_key: str, event_id: str, key: str, now: float | None = None) -> str:
    """The token for one rendering of event_id's checkout form, whose hidden Idempotency-Key is key."""
    issued = int(time.time() if now is None else now)
    return f"{issued}.{_sign(secret_key, event_id, key, issued)}"


def is_valid(secret_key: str, event_id: str, key: str, token: str, now: float | None = None,
             max_age: int = MAX_AGE_SECONDS) -> bool:
    """Whether token was issued by us for this event and key, at most max_age seconds ago."""
    match = _TOKEN.match(token)
    if match is None or not IDEMPOTENCY_KEY.fullmatch(key):
        return False
    issued, mac = int(match.group(1)), match.group(2)
    age = (time.time() if now is None else now) - issued
    if not -CLOCK_SKEW_SECONDS <= age <= max_age:
        return False
    return hmac.compare_digest(_sign(secret_key, event_id, key, issued), mac)


def from_our_pages(sec_fetch_site: str | None, origin: str | None, our_origins: Collection[str]) -> bool:
    """Whether the browser's headers allow a post from our own pages: each is checked only when it is sent
    (older browsers send neither, and the token is what holds them). `Origin: null` (a page under a no-referrer
    policy, a sandboxed frame) names nobody: it passes only with `Sec-Fetch-Site: same-origin`, which no page
    can set for itself."""
    fetch_site = None if sec_fetch_site is None else sec_fetch_site.strip().lower()
    if fetch_site is not None and fetch_site not in SAME_ORIGIN_FETCHES:
        return False
    if origin is not None and origin.strip() == "null":
        return fetch_site == "same-origin"
    return origin is None or origin_of(origin) in our_origins


def origin_of(url: str) -> str:
    """scheme://host[:port] of url, lower-cased, without its scheme's default port ("" when url has none)."""
    parts = urlsplit(url.strip())
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if not scheme or not host:
        return ""
    try:
        port = parts.port
    except ValueError:
        return ""
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" if port is None or str(port) == _DEFAULT_PORTS.get(scheme) else f"{scheme}://{host}:{port}"


def _sign(secret_key: str, event_id: str, key: str, issued: int) -> str:
    message = "\n".join((_PURPOSE, event_id, key, str(issued)))  # is_valid lets no key with a "\n" this far
    return hmac.new(secret_key.encode(), message.encode("utf-8", "replace"), hashlib.sha256).hexdigest()
