"""What support sees of an order: the order, its status claim and every PayHero delivery, masked as the logs are."""
from datetime import datetime
from typing import Any

from bson import ObjectId

from ..domain.models import iso_utc
from ..logs import redact
from ..storage.manual_payments import ManualPaymentStore
from ..storage.order_store import OrderStore


def order_report(store: OrderStore, order_id: str) -> dict[str, Any] | None:
    """The order, its claim and its payment_events (oldest first) as plain JSON-ready values; None when unknown."""
    order = store.get_order(order_id)
    if order is None:
        return None
    return {
        "order": _masked(order),
        "statusClaim": _masked(store.claim_for(order_id)),
        "deliveries": [_masked(event) for event in store.events_for(order_id)],
    }


def orders_with_reference(store: OrderStore, reference: str, limit: int = 20) -> list[Any]:
    """The orders whose short reference (the 8 characters the payment page shows) is this, newest first, masked."""
    return [_masked(order) for order in store.orders_by_reference(reference, limit)]


def recent_orders(store: OrderStore, phone: str, limit: int = 20) -> list[Any]:
    """The most recent orders of a phone number (2547…/2541…), newest first, masked."""
    return [_masked(order) for order in store.orders_for_phone(phone, limit)]


def orders_needing_attention(store: OrderStore, limit: int = 100) -> list[Any]:
    """Orders paid without tickets (refund_needed) or with a payment strict mode could not confirm, newest first."""
    return [_masked(order) for order in store.orders_needing_attention(limit)]


def manual_payments_to_refund(store: ManualPaymentStore, limit: int = 100) -> list[Any]:
    """Paybill payments that completed no order (unknown account, another amount, paid already), newest first."""
    return [_masked(payment) for payment in store.needing_refund(limit)]


def orders_paid_twice(store: ManualPaymentStore, limit: int = 100) -> list[Any]:
    """Orders holding a second payment they did not use (eventi/services/second_payment.py), newest first."""
    return [_masked(order) for order in store.orders_paid_twice(limit)]


def _masked(value: Any) -> Any:
    """Dates as ISO 8601, ids as strings, every string through the log redaction (phones, e-mails, tokens)."""
    if isinstance(value, dict):
        return {("id" if key == "_id" else key): _masked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked(item) for item in value]
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, str):
        return redact(value)
    return value
