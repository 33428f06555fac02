"""The plain reasons of failed and cancelled orders (eventi/domain/reasons.py) and the status body that carries them."""
from datetime import UTC, datetime

import pytest
from bson import ObjectId

from eventi.domain import reasons as outcomes
from eventi.domain.models import PaymentResult, decide_outcome, status_body

# Every failure code of the M-Pesa result-code table (PayHero's callback ResultCode), with the reason we expect.
RESULT_CODES = {
    1: ("insufficient_funds", "Not enough M-Pesa balance: top up or use another number."),
    17: ("mpesa_error", "M-Pesa had a problem on its side: try again in a moment."),
    26: ("mpesa_busy", "M-Pesa is busy right now: try again in about 30 seconds."),
    1001: ("payment_in_progress",
           "Another M-Pesa payment is in progress on your phone: finish it or wait for it, then try again."),
    1019: ("prompt_expired", "The prompt expired before it was answered: try again."),
    1025: ("prompt_not_delivered",
           "The prompt could not be sent to your phone: check the number and your signal, then try again."),
    1032: ("cancelled_by_user", "You cancelled the request: try again when you are ready."),
    1037: ("unreachable", "Your phone could not be reached or the prompt was not answered in time: "
                          "check the phone is on, unlocked and has signal, then try again."),
    2001: ("wrong_pin", "Wrong M-Pesa PIN: try again with the right PIN."),
}


@pytest.mark.parametrize("code", sorted(RESULT_CODES))
def test_each_mpesa_result_code_has_its_own_reason_and_sentence(code):
    reason = outcomes.reason_for(code == 1032, code, "whatever M-Pesa said")
    assert (reason.code, reason.text) == RESULT_CODES[code]
    assert reason.code in outcomes.CODES


def test_reasons_are_distinct():
    reasons = [outcomes.reason_for(False, code) for code in RESULT_CODES]
    assert len({r.code for r in reasons}) == len({r.text for r in reasons}) == len(RESULT_CODES)


@pytest.mark.parametrize("failure_reason, code", [("amount_mismatch", "amount_mismatch"),
                                                  ("stk_push_failed", "push_failed"),
                                                  ("no_callback", "no_callback")])
def test_our_own_failure_reasons_win_over_any_result_code(failure_reason, code):
    assert outcomes.reason_for(False, 0, failure_reason).code == code
    assert outcomes.reason_for(False, None, failure_reason).code == code


def test_unknown_codes_are_other_and_a_cancel_without_a_code_is_the_shoppers():
    assert outcomes.reason_for(False, 9999, "Something odd") == outcomes.OTHER
    assert outcomes.reason_for(False, None, "Failed") == outcomes.OTHER
    assert outcomes.reason_for(True, None, "Request cancelled by user").code == "cancelled_by_user"


def test_decide_outcome_keeps_the_result_code():
    wrong_pin = PaymentResult("o", paid=False, result_code=2001, description="The initiator information is invalid.")
    short = PaymentResult("o", paid=True, amount=1, result_code=0, receipt="R")
    assert decide_outcome(wrong_pin, 1500).result_code == 2001
    assert decide_outcome(short, 1500).result_code == 0


def order(status, **fields):
    return {"_id": ObjectId(), "status": status, "amount": 1500, "updatedAt": datetime.now(UTC), **fields}


def test_status_body_of_a_failed_order_carries_reason_and_sentence_next_to_the_raw_reason():
    body = status_body(order("failed", resultCode=2001, failureReason="The initiator information is invalid."))
    assert body["failureReason"] == "The initiator information is invalid."
    assert (body["reason"], body["reasonText"]) == RESULT_CODES[2001]
    cancelled = status_body(order("cancelled", failureReason="Request cancelled by user"))  # flat callback: no code
    assert (cancelled["reason"], cancelled["reasonText"]) == RESULT_CODES[1032]


@pytest.mark.parametrize("status", ["pending", "completed"])
def test_no_reason_unless_failed_or_cancelled(status):
    assert not {"reason", "reasonText"} & set(status_body(order(status, mpesaReceipt="R")))


def test_the_api_docs_reasons_table_lists_every_reason_code():
    from devstack.processes import ROOT

    table = (ROOT / "docs" / "api.md").read_text().split("### Reasons")[1].split("\n## ")[0]
    assert not [code for code in outcomes.CODES if f"| `{code}` |" not in table]
