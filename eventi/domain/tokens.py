"""Per-order secrets: statusToken for the shopper, callbackToken for PayHero."""
import hashlib
import hmac


class OrderTokens:
    """HMAC-SHA256 tokens under one secret; the purpose prefix keeps them apart."""

    def __init__(self, secret_key: str) -> None:
        self._key = secret_key.encode()

    def status_token(self, order_id: str) -> str:
        return self._sign("status:", order_id)

    def callback_token(self, order_id: str) -> str:
        return self._sign("callback:", order_id)

    def check_status_token(self, order_id: str, token: object) -> bool:
        return _same(self.status_token(order_id), token)

    def check_callback_token(self, order_id: str, token: object) -> bool:
        return _same(self.callback_token(order_id), token)

    def _sign(self, purpose: str, order_id: str) -> str:
        return hmac.new(self._key, (purpose + order_id).encode(), hashlib.sha256).hexdigest()


def _same(expected: str, given: object) -> bool:
    return isinstance(given, str) and hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))
