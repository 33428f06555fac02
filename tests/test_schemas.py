"""Validation of every input shape, including NoSQL-operator injection attempts."""
import pytest
from marshmallow import ValidationError

from devstack.payhero_payloads import callback_body, payhero_fixture
from eventi.domain.models import OrderStatus, decide_outcome
from eventi.payhero.callbacks import parse_callback
from eventi.schemas import OrderCreateSchema, WaitQuerySchema
from tests.support.api import order_body

SCHEMA = OrderCreateSchema()


@pytest.mark.parametrize("phone, stored", [
    ("0712345678", "254712345678"),
    ("0112345678", "254112345678"),
    ("254712345678", "254712345678"),
    ("+254712345678", "254712345678"),
    ("+254112345678", "254112345678"),
    ("0712 345 678", "254712345678"),
    ("0712-345-678", "254712345678"),
    ("0712.345.678", "254712345678"),
    ("+254 712 345 678", "254712345678"),
    ("254-112-345-678", "254112345678"),
])
def test_phone_is_normalised(phone, stored):
    assert SCHEMA.load(order_body(phone=phone))["phone"] == stored


@pytest.mark.parametrize("phone", ["0812345678", "071234567", "07123456789", "255712345678", "+0712345678", "", "phone",
                                   "0712/345/678", "0712_345_678", "07１2345678", "0712345678\n1"])
def test_phone_that_is_not_kenyan_mobile_is_rejected_in_plain_words(phone):
    with pytest.raises(ValidationError) as err:
        SCHEMA.load(order_body(phone=phone))
    assert err.value.messages["phone"] == ["Enter a Kenyan mobile number, like 0712 345 678."]


@pytest.mark.parametrize("separator", ["\t", "\n", "\r", "\v", "\f", "\x1c", "\x85", "\u2028", "\u2029", "\u3000", "\u00a0",
                                       "\u2009", "\u202f", "\u2007", "\u200b", "\ufeff", "_", "\u2010", "\u2212", "\uff0e"])
def test_a_phone_takes_only_ascii_space_hyphen_and_dot_between_digits(separator):
    """The README allows spaces, dashes and dots; \\s also took tabs, newlines, U+2028, U+3000 and U+00A0."""
    for phone in (f"0712{separator}345{separator}678", f"+254{separator}712345678", f"0712345678{separator}"):
        with pytest.raises(ValidationError) as err:
            SCHEMA.load(order_body(phone=phone))
        assert err.value.messages["phone"] == ["Enter a Kenyan mobile number, like 0712 345 678."]


@pytest.mark.parametrize("digits", ["٠٧١٢٣٤٥٦٧٨", "۰۷۱۲۳۴۵۶۷۸", "०७१२३४५६७८", "０７１２３４５６７８", "𝟎𝟕𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖"])
def test_a_phone_in_other_scripts_digits_is_refused(digits):
    with pytest.raises(ValidationError) as err:
        SCHEMA.load(order_body(phone=digits))
    assert err.value.messages["phone"] == ["Enter a Kenyan mobile number, like 0712 345 678."]


def test_the_readme_phone_examples_still_load():
    for phone in ("0712 345 678", "0712-345-678", "+254 712 345 678", "0712.345.678", "2547 1234 5678", " 0712345678 "):
        assert SCHEMA.load(order_body(phone=phone))["phone"] == "254712345678"


HIDDEN = ["\x00", "\x1b", "\x07", "\t", "\r\n", "\x7f", "\x85", "\x9b", "\x9d", "\u202a", "\u202b", "\u202c", "\u202d",
          "\u202e", "\u2066", "\u2067", "\u2068", "\u2069", "\u200e", "\u200f", "\u061c", "\u2028", "\u2029", "\u200b",
          "\u2060", "\u00ad", "\ufeff", "\ufff9", "\U000e0001", "\U000e0041"]


@pytest.mark.parametrize("char", HIDDEN)
def test_an_order_name_refuses_control_bidi_separator_and_invisible_characters(char):
    """docs/security.md: control characters are refused. The name comes back on the checkout page ("Try again")."""
    with pytest.raises(ValidationError) as err:
        SCHEMA.load(order_body(name=f"Wanjiru{char}Kamau"))
    assert err.value.messages["name"] == [f"Control characters are not allowed (U+{ord(char[0]):04X})."]


@pytest.mark.parametrize("email", ["shopper@exam\u202eple.com", "shopper@example.com\u2028", "shopper@example.com\x85",
                                   "shopper@example.com\u200b", "shopper@ex\u2066ample.com"])
def test_an_email_shown_on_the_payment_page_refuses_bidi_and_separators(email):
    """marshmallow's Email took U+202E in the domain and a trailing U+2028; the success page shows the address."""
    with pytest.raises(ValidationError) as err:
        SCHEMA.load(order_body(email=email))
    assert "email" in err.value.messages


@pytest.mark.parametrize("name", ["Njeri wa Mũthoni", "محمد علی", "می‌خواهم", "👩‍🎤 Amani", "🇰🇪 Otieno", "O'Brien-Wairimu",
                                  "Zawadi\u00a0Achieng", "दीपक"])
def test_names_in_any_script_with_joiners_and_emoji_load(name):
    assert SCHEMA.load(order_body(name=name))["name"] == name


@pytest.mark.parametrize("kind, char", [("success", "\u202e"), ("success", "\x9b"), ("flat-success", "\u2066")])
def test_a_receipt_shown_to_the_shopper_refuses_hidden_characters(kind, char):
    body = callback_body("6751a3f2c9e77b0012ab34cd", kind)
    fields = body.get("response", body)
    field = "MpesaReceiptNumber" if "response" in body else "provider_reference"
    fields[field] = f"SLK4H5{char}J6K7"
    with pytest.raises(ValidationError) as err:
        parse_callback(body)
    assert "Control characters are not allowed" in str(err.value.messages)


def test_the_phone_pattern_is_written_once():
    """schemas, the support command, the simulator and log redaction all read eventi/domain/phones.py."""
    from devstack.processes import ROOT

    written = [str(path.relative_to(ROOT)) for path in (ROOT / "eventi").rglob("*.py")
               if "[17]" in path.read_text()]
    assert written == ["eventi/domain/phones.py"]


@pytest.mark.parametrize("field, value", [
    ("eventId", {"$ne": None}),
    ("eventId", {"$gt": ""}),
    ("eventId", ["a"]),
    ("eventId", "a" * 65),
    ("eventId", "bad id"),
    ("eventId", "ev$1"),
    ("eventId", ""),
    ("ticketTypeId", {"$ne": None}),
    ("ticketTypeId", "bad id"),
    ("ticketTypeId", ""),
    ("quantity", {"$gt": 0}),
    ("quantity", "2"),
    ("quantity", 1.5),
    ("quantity", True),
    ("quantity", 0),
    ("quantity", 101),
    ("amount", 1500),  # the server prices the order: an amount is an unknown field
    ("phone", {"$regex": ".*"}),
    ("phone", 712345678),
    ("email", {"$ne": None}),
    ("email", "not-an-email"),
    ("name", {"$where": "1"}),
    ("name", "x" * 101),
    ("name", "Bad\x00Name"),
    ("name", "tab\tname"),
])
def test_wrong_types_and_operator_objects_are_rejected(field, value):
    with pytest.raises(ValidationError) as err:
        SCHEMA.load(order_body(**{field: value}))
    assert field in err.value.messages


def test_unknown_fields_are_rejected():
    with pytest.raises(ValidationError) as err:
        SCHEMA.load(order_body(status="completed"))
    assert "status" in err.value.messages


def test_required_fields_are_named():
    with pytest.raises(ValidationError) as err:
        SCHEMA.load({})
    assert set(err.value.messages) == {"eventId", "ticketTypeId", "quantity", "phone", "email"}


def test_a_valid_order_loads_with_unicode_name():
    data = SCHEMA.load(order_body(name="Wanjirũ Kamau 🎟"))
    assert data == {"eventId": "ev-test", "ticketTypeId": "regular", "quantity": 1, "phone": "254712345675",
                    "email": "shopper@example.com", "name": "Wanjirũ Kamau 🎟"}


@pytest.mark.parametrize("timeout", ["0", "121", "-1", "1.5", "abc", "1e3", ""])
def test_wait_timeout_outside_1_to_120_is_rejected(timeout):
    with pytest.raises(ValidationError):
        WaitQuerySchema().load({"token": "t", "timeout": timeout})


def test_v2_success_callback_parses():
    result = parse_callback(payhero_fixture("callback-success"))
    assert (result.order_id, result.paid, result.amount, result.receipt) == ("6751a3f2c9e77b0012ab34cd", True, 1500, "SAE3YULR0Y")


def test_a_whole_float_amount_is_an_amount_and_status_may_be_absent():
    body = payhero_fixture("callback-success")
    body["response"]["Amount"] = 1500.0
    del body["status"], body["response"]["Status"]
    result = parse_callback(body)
    assert (result.paid, result.amount) == (True, 1500) and isinstance(result.amount, int)


def test_flat_success_callback_parses():
    result = parse_callback(payhero_fixture("callback-flat-success"))
    assert (result.order_id, result.paid, result.amount, result.receipt) == ("6751a3f2c9e77b0012ab34cd", True, 1500, "UFU51A2XO2")


@pytest.mark.parametrize("kind, status, reason", [
    ("success", OrderStatus.COMPLETED, None),
    ("cancelled", OrderStatus.CANCELLED, "Request cancelled by user"),
    ("insufficient-funds", OrderStatus.FAILED, "The balance is insufficient for the transaction."),
    ("timeout", OrderStatus.FAILED, "DS timeout user cannot be reached"),
    ("wrong-pin", OrderStatus.FAILED, "The initiator information is invalid."),
    ("flat-success", OrderStatus.COMPLETED, None),
    ("flat-cancelled", OrderStatus.CANCELLED, "Request Cancelled by user."),
])
def test_each_result_maps_to_its_status(kind, status, reason):
    outcome = decide_outcome(parse_callback(payhero_fixture(f"callback-{kind}")), order_amount=1500)
    assert (outcome.status, outcome.failure_reason) == (status, reason)


@pytest.mark.parametrize("kind", ["success", "flat-success"])
def test_a_different_amount_never_completes(kind):
    result = parse_callback(callback_body("6751a3f2c9e77b0012ab34cd", kind, amount=1))
    outcome = decide_outcome(result, order_amount=1500)
    assert (outcome.status, outcome.failure_reason) == (OrderStatus.FAILED, "amount_mismatch")


@pytest.mark.parametrize("payload", [
    {},
    [],
    {"response": {}},
    {"response": "x"},
    {"response": {"ExternalReference": "a", "Amount": 1, "ResultCode": "zero"}},
    {"response": {"ExternalReference": {"$ne": None}, "Amount": 1, "ResultCode": 0}},
    {"response": {"ExternalReference": "a", "Amount": 1.5, "ResultCode": 0}},
    {"status": "success", "external_reference": "a", "amount": 1},
    {"status": "maybe", "external_reference": "a"},
    # strictly typed (issue 11): a string, bool or float ResultCode; a string Amount; a success without receipt
    {"response": {"ExternalReference": "a", "Amount": 1, "ResultCode": "0", "MpesaReceiptNumber": "R"}},
    {"response": {"ExternalReference": "a", "Amount": 1, "ResultCode": 0.0, "MpesaReceiptNumber": "R"}},
    {"response": {"ExternalReference": "a", "Amount": 1, "ResultCode": True, "MpesaReceiptNumber": "R"}},
    {"response": {"ExternalReference": "a", "Amount": "1", "ResultCode": 0, "MpesaReceiptNumber": "R"}},
    {"response": {"ExternalReference": "a", "Amount": 1, "ResultCode": 0}},
    {"response": {"ExternalReference": "a", "Amount": 1, "ResultCode": 0, "MpesaReceiptNumber": "R"}, "status": False},
    {"response": {"ExternalReference": "a", "Amount": 1, "ResultCode": 0, "MpesaReceiptNumber": "R", "Status": "Failed"}},
    {"status": "success", "external_reference": "a", "amount": "1", "provider_reference": "R"},
    {"status": "success", "external_reference": "a", "amount": 1, "provider_reference": "R", "success": False},
])
def test_malformed_callbacks_are_rejected(payload):
    with pytest.raises(ValidationError):
        parse_callback(payload)
