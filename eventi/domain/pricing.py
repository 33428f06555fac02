"""Pricing an order: the event's stored price times the quantity, checked against its limits (pure)."""
from dataclasses import dataclass
from typing import Any

from ..errors import ValidationFailed
from ..storage.event_store import ticket_type
from .event_file import MAX_PAYMENT


@dataclass(frozen=True)
class Quote:
    """What an order buys and what it costs, as stored on the order."""

    event_id: str
    event_name: str
    ticket_type_id: str
    ticket_type_name: str
    quantity: int
    unit_price: int
    amount: int
    currency: str
    capacity: int
    slot_range: int
    """The highest capacity the type ever had: above capacity when it was lowered (eventi/storage/ticket_holds.py)."""

    def order_fields(self) -> dict[str, Any]:
        return {"eventId": self.event_id, "eventName": self.event_name, "ticketTypeId": self.ticket_type_id,
                "ticketTypeName": self.ticket_type_name, "quantity": self.quantity, "unitPrice": self.unit_price,
                "amount": self.amount, "currency": self.currency}


def quote(event: dict[str, Any], ticket_type_id: str, quantity: int) -> Quote:
    """Price quantity tickets of one type; ValidationFailed (per field) when the order cannot be made."""
    ticket = ticket_type(event, ticket_type_id)
    if ticket is None:
        raise ValidationFailed(details={"ticketTypeId": ["This event has no such ticket type."]})
    if quantity > ticket["maxPerOrder"]:
        raise ValidationFailed(details={"quantity": [f"At most {ticket['maxPerOrder']} tickets of this type per order."]})
    amount = ticket["price"] * quantity
    if amount > MAX_PAYMENT:
        raise ValidationFailed(details={"quantity": [
            f"The total would exceed KES {MAX_PAYMENT:,}, the most one M-Pesa payment carries."]})
    return Quote(event["_id"], event["name"], ticket["id"], ticket["name"], quantity, ticket["price"], amount,
                 event["currency"], ticket["capacity"], max(ticket["capacity"], ticket.get("slots", 0)))
