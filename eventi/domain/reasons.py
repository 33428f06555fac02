"""What a failed or cancelled order means to the shopper: a stable reason code and a plain sentence.

Pure: the status body carries both next to the raw `failureReason`, so the payment page says the same
words before and after a reload. Result codes are M-Pesa's STK push `ResultCode`s, as PayHero relays them.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Reason:
    code: str
    text: str


BY_RESULT_CODE = {
    1: Reason("insufficient_funds", "Not enough M-Pesa balance: top up or use another number."),
    17: Reason("mpesa_error", "M-Pesa had a problem on its side: try again in a moment."),
    26: Reason("mpesa_busy", "M-Pesa is busy right now: try again in about 30 seconds."),
    1001: Reason("payment_in_progress",
                 "Another M-Pesa payment is in progress on your phone: finish it or wait for it, then try again."),
    1019: Reason("prompt_expired", "The prompt expired before it was answered: try again."),
    1025: Reason("prompt_not_delivered",
                 "The prompt could not be sent to your phone: check the number and your signal, then try again."),
    1032: Reason("cancelled_by_user", "You cancelled the request: try again when you are ready."),
    1037: Reason("unreachable", "Your phone could not be reached or the prompt was not answered in time: "
                                "check the phone is on, unlocked and has signal, then try again."),
    2001: Reason("wrong_pin", "Wrong M-Pesa PIN: try again with the right PIN."),
}
"""Every code in the M-Pesa result-code table but 0 (paid)."""

BY_FAILURE_REASON = {
    "amount_mismatch": Reason("amount_mismatch", "The amount paid did not match the order: "
                                                 "keep your M-Pesa message and contact us with the order reference."),
    "stk_push_failed": Reason("push_failed", "We could not send the M-Pesa prompt to your phone: try again in a moment."),
    "no_callback": Reason("no_callback", "M-Pesa never confirmed this payment: if you were charged, contact us "
                                         "with the order reference; otherwise try again."),
}
"""Our own failureReason values, which say more than any result code stored with them."""

REFUND_NEEDED_REASON = Reason("sold_out_after_payment",
                              "We received your payment after this order had expired, and its tickets have sold "
                              "out since: we will refund you. Keep your M-Pesa message; our support team has the "
                              "order reference.")
"""An order paid late (after it failed) whose tickets could not be held again: status refund_needed."""
LATE_REFUND_REASON = Reason("paid_after_expiry",
                            "We received your payment after this order had expired: we will refund you. Keep your "
                            "M-Pesa message; our support team has the order reference.")
"""An order paid late under EVENTI_LATE_PAYMENTS=refund: its tickets are not held again."""

CANCELLED = BY_RESULT_CODE[1032]
OTHER = Reason("other", "M-Pesa did not complete the payment: try again, or contact us with the order reference.")

REFUND_REASONS = {"sold_out": REFUND_NEEDED_REASON, "late": LATE_REFUND_REASON,
                  "amount_mismatch": BY_FAILURE_REASON["amount_mismatch"]}
"""A refund_needed order's `refundReason` -> what its status body says."""

CODES = sorted({r.code for r in (*BY_RESULT_CODE.values(), *BY_FAILURE_REASON.values(), OTHER,
                                 *REFUND_REASONS.values())})
"""Every reason code the status body can carry (the OpenAPI document lists them)."""


def reason_for(cancelled: bool, result_code: int | None = None, failure_reason: str | None = None) -> Reason:
    """The Reason of a failed (or cancelled) order from what its status claim stored."""
    if failure_reason in BY_FAILURE_REASON:
        return BY_FAILURE_REASON[failure_reason]
    if result_code in BY_RESULT_CODE:
        return BY_RESULT_CODE[result_code]
    return CANCELLED if cancelled else OTHER


def refund_reason(refund: str | None) -> Reason:
    """The Reason of a refund_needed order (paid after it failed) from its stored refundReason."""
    return REFUND_REASONS.get(refund or "", REFUND_NEEDED_REASON)
