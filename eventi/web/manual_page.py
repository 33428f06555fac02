"""What the payment page offers when the prompt fails: the Paybill, the order's account number, the amount."""
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..domain.models import OrderStatus
from ..errors import StoreUnavailable

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger(__name__)

PAID = frozenset({OrderStatus.COMPLETED.value, OrderStatus.REFUND_NEEDED.value})


@dataclass(frozen=True)
class ManualOffer:
    paybill: str
    account: str  # the order's account number (eventi/storage/manual_payments.py)


def manual_offer(runtime: "Runtime", order: dict[str, Any]) -> ManualOffer | None:
    """The offer for a stored order; None when EVENTI_MANUAL_PAYBILL is unset, the order is paid, or no
    account number could be had now (the page then shows the rest: the prompt, the status)."""
    paybill = runtime.settings.manual_paybill
    if paybill is None or order["status"] in PAID:
        return None
    try:
        account = runtime.manual.account_for(order)
    except StoreUnavailable:
        account = None
    if account is not None:
        return ManualOffer(paybill, account)
    log.warning("No account number for orderId=%s: the payment page offers no Paybill this time", order["_id"])
    return None
