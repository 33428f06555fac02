"""One exception base for the service; the web layer turns each into the JSON error shape."""
from typing import Any


class EventiError(Exception):
    """An error with an HTTP status and a stable code."""

    status = 500
    code = "internal_error"
    message = "Something went wrong on our side."
    title: str | None = None  # the problem details title of the code; the class's message when None
    retry_after: int | None = None  # seconds for the Retry-After header (every 429 has one, 5 unless set)

    def __init__(self, message: str | None = None, details: dict[str, Any] | list[Any] | None = None, **extra: Any) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.details = details
        self.extra = extra


class NotFound(EventiError):
    status, code, message = 404, "not_found", "No such order, or the token does not match it."
    title = "Not Found"  # as werkzeug's 404 of an unknown path, which answers the same code


class ValidationFailed(EventiError):
    status, code, message = 400, "validation_error", "The request is not valid."


class Unauthorized(EventiError):
    status, code, message = 401, "unauthorized", "Missing or wrong callback token."


class StoreUnavailable(EventiError):
    status, code, message = 503, "store_unavailable", "The order store is not reachable; try again."


class ChangeInProgress(StoreUnavailable):
    """Another writer started this order's change moments ago (a ticket release, a late payment's decision)
    and has not finished it.

    The order must not show a final status before the change is done; like a store failure, a callback
    answers 503 (PayHero delivers again) and the Settler or the reconcile sweep finishes the change.
    """


class TooManyWaits(EventiError):
    status, code, message = 429, "too_many_waits", "Too many requests are waiting; retry shortly."


class PaymentProviderError(EventiError):
    """PayHero was unreachable, too slow, or refused the STK push."""

    status, code = 502, "payment_provider_error"
    message = "The payment provider did not accept the M-Pesa request; try again shortly."
    sent = True  # False only when the request surely never reached PayHero (the push limit then gives it back)
    uncertain = False  # True when PayHero may have queued the push anyway (a timeout, a 5xx): the phone may be prompted


class TooManyPushes(EventiError):
    """Too many STK pushes to one phone number lately."""

    status, code, message = 429, "too_many_pushes", "Too many M-Pesa requests to this phone number; wait a few minutes."

    @classmethod
    def after(cls, seconds: int) -> "TooManyPushes":
        """The error whose Retry-After is seconds, its message saying how long in minutes."""
        minutes = max(1, -(-seconds // 60))
        error = cls(f"Too many M-Pesa requests to this phone number; try again in {minutes} "
                    f"minute{'' if minutes == 1 else 's'}.")
        error.retry_after = seconds
        return error


class EventNotFound(EventiError):
    """No such event, or it has started: its tickets are no longer sold."""

    status, code, message = 404, "event_not_found", "No such event, or its ticket sales have closed."


class SoldOut(EventiError):
    """Fewer tickets of the type are left than the order asks for (`left`, when known, says how many are)."""

    status, code, message = 409, "sold_out", "Not enough tickets of this type are left."

    @classmethod
    def with_left(cls, ticket_type_name: str, left: int) -> "SoldOut":
        """The error naming the type and how many of it are left (`left` in the body too)."""
        if left <= 0:
            return cls(f"{ticket_type_name} is sold out: no tickets of this type are left.", left=0)
        noun = "ticket is" if left == 1 else "tickets are"
        return cls(f"Only {left} {ticket_type_name} {noun} left.", left=left)


class PriceChanged(EventiError):
    """The total the shopper confirmed (`expectedAmount`) is not what the order costs now: nothing was done."""

    status, code, message = 409, "price_changed", "The total changed since you saw it: check the new total."


class IdempotencyKeyReused(EventiError):
    """An Idempotency-Key sent again with a different body."""

    status, code, message = 422, "idempotency_key_reused", "This Idempotency-Key was used with a different order; use a new key."


class IdempotencyKeyInUse(EventiError):
    """An Idempotency-Key whose first request is still being answered."""

    status, code = 409, "idempotency_key_in_use"
    message = "An order with this Idempotency-Key is still being created; retry shortly."
    retry_after = 1


class OrderExists(IdempotencyKeyInUse):
    """The orderId an Idempotency-Key reserved was stored by another request with that key."""
