"""Manual (Paybill) payments in MongoDB: the account numbers shoppers type, and every C2B confirmation.

Two collections, each deciding by a unique insert under its _id (FerretDB has no other atomic write):
- `account_numbers`: _id = the account number (ACCOUNT_DIGITS digits, easy on a phone keypad), orderId.
  An account number names one order for good. An order gets one when its payment page first offers
  manual payment; two pages rendered at once may give it two, and both name that order.
- `manual_payments`: _id = M-Pesa's transaction id (TransID, the receipt): however often a
  confirmation of one payment arrives, one document, one decision (`outcome`, written once).
A paid STK callback for an order paid already by another receipt (a prompt paid after a Paybill payment)
is kept on the order, in `secondPayments` (eventi/services/second_payment.py).
"""
import secrets
from typing import Any

from bson import ObjectId
from pymongo import DESCENDING
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from ..domain.models import utcnow
from .order_store import durable, unavailable_on_error

ACCOUNT_DIGITS = 8
"""10^8 numbers: a collision (another draw) is rare, and 8 digits fit M-Pesa's account number field."""
DRAWS = 10
"""Draws before giving up on an account number (each taken one is another order's)."""

REFUND_OUTCOMES = ("unknown_account", "amount_mismatch", "already_paid")
"""Outcomes of a manual payment that completed no order: the money is ours, a person refunds it."""


class AccountNumbersExhausted(RuntimeError):
    """DRAWS account numbers in a row were taken: the space is too full (raise ACCOUNT_DIGITS)."""


def normalise_account(text: str) -> str:
    """What a shopper typed, as stored: spaces and dashes dropped (M-Pesa keeps the account as typed)."""
    return "".join(ch for ch in str(text) if ch not in " -").upper()


class ManualPaymentStore:
    """Every read and write of manual payments."""

    def __init__(self, database: Database[dict[str, Any]]) -> None:
        writes = durable(database)
        self.orders = database.get_collection("orders", write_concern=writes)
        self.accounts = database.get_collection("account_numbers", write_concern=writes)
        self.payments = database.get_collection("manual_payments", write_concern=writes)

    @unavailable_on_error
    def ensure_indexes(self) -> None:
        self.payments.create_index([("outcome", DESCENDING), ("receivedAt", DESCENDING)])  # `eventi order refunds`

    @unavailable_on_error
    def account_for(self, order: dict[str, Any]) -> str:
        """The order's account number, drawn and stored the first time it is asked for."""
        if order.get("accountNumber"):
            return str(order["accountNumber"])
        for _ in range(DRAWS):
            number = "".join(secrets.choice("0123456789") for _ in range(ACCOUNT_DIGITS))
            try:
                self.accounts.insert_one({"_id": number, "orderId": order["_id"], "createdAt": utcnow()})
            except DuplicateKeyError:
                continue  # another order's number
            # The order shows the first number it was given; a number drawn by a page rendered at the same
            # moment still names this order, so a shopper who read it pays the right order all the same.
            kept = self.orders.find_one_and_update({"_id": order["_id"], "accountNumber": {"$exists": False}},
                                                   {"$set": {"accountNumber": number}})
            if kept is None:
                current = self.orders.find_one({"_id": order["_id"]}, {"accountNumber": 1})
                return str((current or {}).get("accountNumber") or number)
            return number
        raise AccountNumbersExhausted()

    @unavailable_on_error
    def order_id_for(self, account: str) -> str | None:
        """The id of the order an account number names, or None."""
        found = self.accounts.find_one({"_id": normalise_account(account)})
        return None if found is None else str(found["orderId"])

    @unavailable_on_error
    def claim(self, payment: dict[str, Any]) -> dict[str, Any] | None:
        """Insert a confirmation under its TransID; None when it went in, else the document that stands."""
        try:
            self.payments.insert_one(payment)
            return None
        except DuplicateKeyError:
            return self.payments.find_one({"_id": payment["_id"]})

    @unavailable_on_error
    def decide(self, receipt: str, outcome: str, order_id: str | None, event_id: ObjectId | None) -> bool:
        """Write the payment's outcome once; True for the writer that wrote it."""
        changed = self.payments.update_one({"_id": receipt, "outcome": None}, {"$set": {
            "outcome": outcome, "orderId": order_id, "eventId": event_id, "decidedAt": utcnow()}})
        return changed.modified_count == 1

    @unavailable_on_error
    def needing_refund(self, limit: int = 100) -> list[dict[str, Any]]:
        """Manual payments that completed no order (REFUND_OUTCOMES), newest first."""
        return list(self.payments.find({"outcome": {"$in": list(REFUND_OUTCOMES)}})
                    .sort("receivedAt", DESCENDING).limit(limit))


    @unavailable_on_error
    def add_second_payment(self, order_id: ObjectId, payment: dict[str, Any]) -> bool:
        """Keep a payment the order did not use; True the first time (the same payment twice is kept once)."""
        changed = self.orders.update_one({"_id": order_id}, {"$addToSet": {"secondPayments": payment}})
        return changed.modified_count == 1

    @unavailable_on_error
    def orders_paid_twice(self, limit: int = 100) -> list[dict[str, Any]]:
        """Orders holding a payment they did not use (secondPayments), newest first."""
        return list(self.orders.find({"secondPayments": {"$exists": True}}).sort("updatedAt", DESCENDING).limit(limit))
