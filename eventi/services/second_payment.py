"""A paid result for an order paid already by another M-Pesa receipt: a second payment, kept for a refund.

It happens when the shopper pays twice: the prompt reached the phone after all and they had paid the
Paybill (or the other way round, which eventi/services/manual_payment.py handles as `already_paid`), or
two prompts of one order were both approved. The order keeps its first payment and its tickets; the
other receipt goes into the order's `secondPayments` (once, however often it is delivered), an ERROR
line and `eventi_second_payments_total` say so, and `eventi order refunds` lists it. A redelivery of the
payment that decided the order carries the same receipt and is no second payment.
"""
import logging
from typing import Any

from bson import ObjectId

from .. import metrics
from ..domain.models import PaymentResult
from ..storage.manual_payments import ManualPaymentStore

log = logging.getLogger(__name__)


class SecondPayments:
    """Notices a paid result whose receipt is not the one the final order holds."""

    def __init__(self, manual: ManualPaymentStore) -> None:
        self._manual = manual

    def check(self, result: PaymentResult, body: dict[str, Any], source: str) -> bool:
        """Keep result when it is a second payment for the order body describes; True when it is one."""
        kept = body.get("mpesaReceipt")
        if not (result.paid and result.receipt and kept) or result.receipt == kept:
            return False
        payment = {"receipt": result.receipt, "amount": result.amount, "source": source}
        if self._manual.add_second_payment(ObjectId(result.order_id), payment):
            metrics.SECOND_PAYMENTS.inc()
            log.error("Second payment for orderId=%s status=%s receipt=%s amount=%s (the order holds %s); "
                      "a refund is due (eventi order refunds)", result.order_id, body["paymentStatus"],
                      result.receipt, result.amount, kept)
        return True
