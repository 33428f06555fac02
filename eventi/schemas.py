"""Marshmallow schemas for every request body and query string the API accepts."""
import math
import re
from collections.abc import Mapping
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from .domain import phones
from .domain.models import OrderStatus
from .domain.reasons import CODES as REASON_CODES
from .domain.text import describe, hidden_character

EVENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
EVENT_ID_ERROR = "1-64 characters of A-Z, a-z, 0-9, _ or -."
SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
"""Ids of events and ticket types in event files: lowercase letters, digits and inner hyphens."""
IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class StrictInteger(fields.Integer):
    """An integer that must arrive as a JSON number: no strings, floats or booleans."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class QueryInteger(fields.Integer):
    """An integer in a query string: ASCII digits only (int() would also take "٣" or " 3_0")."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> int:
        if not isinstance(value, str) or not re.fullmatch(r"[0-9]{1,6}", value):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class KenyanPhone(fields.String):
    """A Kenyan mobile number in any usual spelling (spaces, dashes, dots allowed), loaded as 2547XXXXXXXX / 2541XXXXXXXX."""

    default_error_messages = {"phone": phones.MESSAGE}

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        phone = phones.normalise(text)
        if phone is None:
            raise self.make_error("phone")
        return phone


def no_control_chars(value: str) -> None:
    """Refuse text holding a character that may not be shown to people (eventi/domain/text.py): control
    characters (C0, DEL, C1), bidi overrides, embeddings and isolates, line and paragraph separators,
    other invisible format characters."""
    char = hidden_character(value)
    if char is not None:
        raise ValidationError(f"Control characters are not allowed ({describe(char)}).")


NAME_MAX = 100
"""The longest name an order keeps; the checkout form says so (and refuses a longer one, never cuts it)."""


class OrderCreateSchema(Schema):
    """Body of POST /api/orders."""

    eventId = fields.String(required=True, validate=validate.Regexp(EVENT_ID, error=EVENT_ID_ERROR))
    ticketTypeId = fields.String(required=True, validate=validate.Regexp(EVENT_ID, error=EVENT_ID_ERROR))
    quantity = StrictInteger(required=True, validate=validate.Range(min=1, max=100))
    phone = KenyanPhone(required=True, error_messages={"required": "Enter the M-Pesa phone number to charge."})
    email = fields.Email(required=True, validate=[validate.Length(max=254), no_control_chars], error_messages={
        "required": "Enter your email address.", "invalid": "Enter an email address, like name@example.com."})
    name = fields.String(validate=[validate.Length(max=NAME_MAX, error="Use at most {max} characters."), no_control_chars])
    expectedAmount = StrictInteger(validate=validate.Range(min=1), metadata={
        "description": "Optional: the total the shopper was shown. When it is not what the order costs now (a price "
                       "changed), the answer is `409 price_changed` with the current `amount`: nothing stored, no push."})


class TokenQuerySchema(Schema):
    """Query of the routes that take a token: GET /api/orders/<id> (statusToken), PayHero's callback (callbackToken)."""

    class Meta:
        unknown = EXCLUDE

    token = fields.String(load_default=None, validate=validate.Length(max=128))


class WaitQuerySchema(TokenQuerySchema):
    """Query of GET /api/orders/<id>/wait; timeout at most max_seconds (EVENTI_WAIT_MAX_SECONDS)."""

    timeout = QueryInteger(load_default=None, validate=validate.Range(min=1, max=120))
    heartbeat = QueryInteger(load_default=None, validate=validate.Range(min=1, max=30), metadata={
        "description": "Seconds between heartbeats: the answer starts at once and a space is sent every "
                       "`heartbeat` seconds while held (JSON allows leading whitespace), so a client notices a "
                       "dead connection in seconds. Without it the answer comes whole at the end."})

    def __init__(self, max_seconds: int = 120, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fields["timeout"].validators = [validate.Range(min=1, max=max_seconds)]  # this instance's copy


def schema_for(schema: type[Schema], wait_max_seconds: int) -> Schema:
    """An instance of a request schema: the wait route's timeout is at most wait_max_seconds (EVENTI_WAIT_MAX_SECONDS)."""
    if issubclass(schema, WaitQuerySchema):
        return schema(wait_max_seconds)
    return schema()


class WholeNumber(fields.Number[float]):
    """An amount as a JSON number that is whole: 1500 or 1500.0. No strings ("1_500", "１５００"), no booleans."""

    num_type = float

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.make_error("invalid")
        if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
            raise ValidationError("Not a whole number.")
        return int(value)


class StrictBoolean(fields.Boolean):
    """A JSON true or false: not "true", 1 or "yes", which fields.Boolean would also take."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


# Bounds keep absurd numbers out of BSON (8-byte ints) and out of the audit trail.
CALLBACK_AMOUNT = validate.Range(min=0, max=10_000_000)
RESULT_CODE = validate.Range(min=-(2**31), max=2**31 - 1)


class _Lenient(Schema):
    class Meta:
        unknown = EXCLUDE


class CallbackV2ResponseSchema(_Lenient):
    """The ``response`` object of PayHero's v2 callback (Safaricom's field names)."""

    Amount = WholeNumber(required=True, validate=CALLBACK_AMOUNT)
    CheckoutRequestID = fields.String(load_default=None, allow_none=True)
    ExternalReference = fields.String(required=True, validate=validate.Length(min=1, max=64))
    MerchantRequestID = fields.String(load_default=None, allow_none=True)
    MpesaReceiptNumber = fields.String(load_default=None, allow_none=True, validate=[validate.Length(max=64), no_control_chars])
    ResultCode = StrictInteger(required=True, validate=RESULT_CODE)
    ResultDesc = fields.String(load_default="", allow_none=True, validate=validate.Length(max=500))
    Status = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64))

    @validates_schema
    def _a_success_is_consistent(self, data: dict[str, Any], **kwargs: Any) -> None:
        """ResultCode 0 is the only success: it needs its receipt, and Status may not say otherwise."""
        paid = data["ResultCode"] == 0
        if paid and not (data.get("MpesaReceiptNumber") or "").strip():
            raise ValidationError("A successful payment (ResultCode 0) needs its MpesaReceiptNumber.", "MpesaReceiptNumber")
        status = (data.get("Status") or "").strip()
        if status and (status.lower() == "success") != paid:
            raise ValidationError(f"Status {status!r} contradicts ResultCode {data['ResultCode']}.", "Status")


class CallbackV2Schema(_Lenient):
    """PayHero's v2 callback: ``{"status": bool, "response": {...}}``."""

    response = fields.Nested(CallbackV2ResponseSchema, required=True)
    status = StrictBoolean(load_default=None, allow_none=True)

    @validates_schema
    def _status_agrees_with_the_result_code(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["status"] is not None and data["status"] != (data["response"]["ResultCode"] == 0):
            raise ValidationError(f"status {str(data['status']).lower()} contradicts ResultCode "
                                  f"{data['response']['ResultCode']}.", "status")


class CallbackFlatSchema(_Lenient):
    """PayHero's newer flat callback."""

    status = fields.String(required=True,
                           validate=validate.OneOf(["success", "failed", "SUCCESS", "FAILED", "Success", "Failed"]))
    external_reference = fields.String(required=True, validate=validate.Length(min=1, max=64))
    amount = WholeNumber(load_default=None, allow_none=True, validate=CALLBACK_AMOUNT)
    message = fields.String(load_default="", allow_none=True, validate=validate.Length(max=500))
    reference = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=128))
    provider_reference = fields.String(load_default=None, allow_none=True, validate=[validate.Length(max=64), no_control_chars])
    success = StrictBoolean(load_default=None, allow_none=True)

    @validates_schema
    def _a_success_is_consistent(self, data: dict[str, Any], **kwargs: Any) -> None:
        paid = data["status"].lower() == "success"
        if paid and not (data.get("provider_reference") or "").strip():
            raise ValidationError("A successful payment needs its provider_reference.", "provider_reference")
        if data["success"] is not None and data["success"] != paid:
            raise ValidationError(f"success {str(data['success']).lower()} contradicts status {data['status']!r}.", "success")


# --- Responses: documented in the OpenAPI document (eventi/web/openapi.py), never used to load ---------
# Open to added fields (no additionalProperties: false): docs/api.md's compatibility rule lets an answer
# gain a field without a new version, so a strict generated client must not refuse one.


class _Answer(Schema):
    class Meta:
        unknown = EXCLUDE


class ProblemSchema(_Answer):
    """Every error: RFC 9457 problem details (application/problem+json) plus `error` and `message`, the shape
    before problem details (eventi/problems.py)."""

    type = fields.String(required=True, metadata={
        "format": "uri-reference", "example": "/api/docs#problem-validation_error",
        "description": "The problem type: `/api/docs#problem-` and the error code, relative to the answering host; "
                       "resolved, it opens the code's entry on /api/docs. Compare it (or `error`); do not fetch it."})
    title = fields.String(required=True, metadata={"description": "The same short sentence for every answer of this type."})
    status = fields.Integer(required=True, metadata={"description": "The HTTP status code of the answer."})
    detail = fields.String(required=True, metadata={"description": "What went wrong this time, for a person."})
    error = fields.String(required=True, metadata={"example": "validation_error", "description": "The stable error code."})
    message = fields.String(required=True, metadata={"description": "The same as `detail` (kept for clients of the "
                                                                    "shape before problem details)."})
    details = fields.Dict(metadata={"description": "Field name to a list of messages (validation errors)."})
    orderId = fields.String(metadata={"description": "payment_provider_error only: the order, stored and now failed."})
    left = fields.Integer(metadata={"description": "sold_out only: how many tickets of the type are left now."})
    amount = fields.Integer(metadata={"description": "price_changed only: what the order costs now."})
    currency = fields.String(metadata={"description": "price_changed only: the amount's currency (KES)."})


class OrderCreatedSchema(_Answer):
    """Answer of POST /api/orders."""

    orderId = fields.String(required=True, metadata={"description": "24 hex characters."})
    paymentStatus = fields.String(required=True, validate=validate.OneOf(["pending"]))
    statusToken = fields.String(required=True, metadata={"description": "Pass as ?token= to the status and wait routes."})
    amount = fields.Integer(required=True, metadata={
        "description": "What the STK push asks for: price x quantity, decided by the server."})
    currency = fields.String(required=True, validate=validate.OneOf(["KES"]))
    waitUrl = fields.String(required=True, metadata={
        "description": "The wait route for this order, token included; absolute, on PUBLIC_BASE_URL."})
    statusUrl = fields.String(required=True, metadata={
        "description": "The status route for this order, token included; absolute, on PUBLIC_BASE_URL."})
    pushState = fields.String(validate=validate.OneOf(["uncertain"]), metadata={
        "description": "Only when PayHero did not say whether it queued the STK push (it timed out or answered 5xx): "
                       "the phone may still be prompted, so the order stays pending and its callback (or the reconcile "
                       "sweep) decides it. Tell the shopper to approve a prompt that appears and not to pay twice."})


class TicketTypeSchema(_Answer):
    """One ticket type of an event, with what is left of it."""

    id = fields.String(required=True)
    name = fields.String(required=True)
    price = fields.Integer(required=True, metadata={"description": "Whole shillings per ticket."})
    maxPerOrder = fields.Integer(required=True)
    left = fields.Integer(required=True, metadata={"description": "Tickets not held by pending or completed orders."})
    soldOut = fields.Boolean(required=True, metadata={"description": "true when `left` is 0."})


class EventSchema(_Answer):
    """Answer of GET /api/events/<eventId>."""

    id = fields.String(required=True)
    name = fields.String(required=True)
    startsAt = fields.DateTime(required=True, metadata={"description": "UTC, with milliseconds (ends in Z)."})
    venue = fields.String(required=True)
    currency = fields.String(required=True, validate=validate.OneOf(["KES"]))
    soldOut = fields.Boolean(required=True, metadata={"description": "true when every ticket type is sold out."})
    ticketTypes = fields.List(fields.Nested(TicketTypeSchema), required=True)


class EventListSchema(_Answer):
    """Answer of GET /api/events."""

    events = fields.List(fields.Nested(EventSchema), required=True, metadata={
        "description": "The events on sale (not started), soonest first; at most 100."})


class OrderStatusSchema(_Answer):
    """The public status of an order and what it bought (enough for a receipt): never the phone, e-mail or name."""

    orderId = fields.String(required=True)
    reference = fields.String(required=True, validate=validate.Regexp(r"^[0-9A-F]{8}$"), metadata={
        "description": "The short order reference to show shoppers and to give support: the orderId's last 8 "
                       "characters, upper-cased (`flask --app wsgi order show` accepts it)."})
    paymentStatus = fields.String(required=True, validate=validate.OneOf([s.value for s in OrderStatus]), metadata={
        "description": "`pending` until one of the final statuses: `completed`, `failed`, `cancelled`, or "
                       "`refund_needed` (paid after the order had failed, its tickets sold out since: no tickets, "
                       "the payment is refunded; show `reasonText`, not a way to pay again)."})
    amount = fields.Integer(required=True, metadata={"description": "What the order costs, in `currency`."})
    eventId = fields.String(required=True)
    eventName = fields.String(metadata={"description": "The event's name when the order was made (absent on orders "
                                                       "stored before the status body carried it)."})
    ticketTypeId = fields.String(required=True)
    ticketTypeName = fields.String(required=True, metadata={"description": "The ticket type's name when the order "
                                                                           "was made."})
    quantity = fields.Integer(required=True)
    currency = fields.String(required=True, validate=validate.OneOf(["KES"]))
    updatedAt = fields.DateTime(required=True, metadata={"description": "UTC, with milliseconds (ends in Z)."})
    promptExpiresAt = fields.DateTime(metadata={
        "description": "Only while pending, once the STK push went out (or may have): when the M-Pesa prompt on the "
                       "phone stops being answerable (push time + EVENTI_PROMPT_SECONDS), ISO 8601 UTC. After it, do "
                       "not ask for the PIN again: a callback or the reconcile sweep still decides the order."})
    pushState = fields.String(validate=validate.OneOf(["uncertain"]), metadata={
        "description": "Only while pending, when PayHero did not say whether it queued the push (timeout, 5xx): "
                       "a prompt may or may not appear."})
    mpesaReceipt = fields.String(allow_none=True, metadata={"description": "Only when completed or refund_needed."})
    failureReason = fields.String(allow_none=True, metadata={
        "description": "Only when failed or cancelled: the raw reason (M-Pesa's `ResultDesc`, or `amount_mismatch`, "
                       "`stk_push_failed`, `no_callback`), for support; show `reasonText` to the shopper."})
    reason = fields.String(validate=validate.OneOf(REASON_CODES), metadata={
        "description": "Only when failed, cancelled or refund_needed: a stable code for why, from M-Pesa's result "
                       "code or our own reason (`other` when neither is known; `sold_out_after_payment` for "
                       "refund_needed)."})
    reasonText = fields.String(metadata={
        "description": "Only when failed, cancelled or refund_needed: the plain sentence for the shopper, with what "
                       "to do next."})


class WaitResultSchema(OrderStatusSchema):
    """Answer of the wait route: the status plus whether it is final and how long the request was held."""

    final = fields.Boolean(required=True, metadata={
        "description": "false only when the wait timed out (or the server is stopping) with the order still pending."})
    waitedMs = fields.Integer(required=True)
    retryAfter = fields.Integer(metadata={
        "description": "Only in an answer streamed with `heartbeat=` (its headers went out before the outcome was "
                       "known): 0 when the server is stopping, as the `Retry-After` header says otherwise."})


class CallbackAckSchema(_Answer):
    """Answer to PayHero's callback."""

    received = fields.Boolean(required=True)
    duplicate = fields.Boolean(metadata={
        "description": "true when an earlier delivery had decided the status; nothing changed, the final status was "
                       "announced again."})
    verified = fields.Boolean(metadata={
        "description": "false (PAYHERO_VERIFY_CALLBACKS=1 only) when transaction-status did not confirm a paid callback: "
                       "the order stays pending."})


class ShillingsText(fields.Field[int]):
    """M-Pesa's C2B amount: a string ("1500.00") or a number, in whole shillings."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> int:
        if isinstance(value, str) and re.fullmatch(r"[0-9]{1,8}(\.[0-9]{1,2})?", value.strip()):
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValidationError("Not an amount.")
        if not (math.isfinite(value) and float(value).is_integer()):
            raise ValidationError("Not a whole number of shillings.")
        return int(value)


class C2BConfirmationSchema(_Lenient):
    """The confirmation M-Pesa (Daraja's C2B API) posts for a payment to a Paybill; other fields are ignored."""

    TransID = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9]{10}$",
                                                                    error="M-Pesa's 10-character transaction id."))
    TransAmount = ShillingsText(required=True, validate=CALLBACK_AMOUNT)
    BusinessShortCode = fields.String(required=True, validate=validate.Regexp(r"^[0-9]{5,7}$"))
    BillRefNumber = fields.String(load_default="", allow_none=True, validate=[validate.Length(max=40), no_control_chars])
    TransactionType = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=40))
    TransTime = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=20))


class C2BAckSchema(_Answer):
    """Answer to a C2B confirmation: Daraja's acknowledgement, and what eventi made of the payment."""

    ResultCode = fields.Integer(required=True, metadata={"description": "0: received (a confirmation is after the fact)."})
    ResultDesc = fields.String(required=True)
    outcome = fields.String(required=True, metadata={
        "description": "completed or refund_needed (the order's status after it), or unknown_account, "
                       "amount_mismatch, already_paid: no order completed, a person refunds it."})
    duplicate = fields.Boolean(required=True, metadata={"description": "true when an earlier delivery had decided it."})


class HealthSchema(_Answer):
    """Answer of /healthz and /readyz when all is well."""

    status = fields.String(required=True, validate=validate.OneOf(["ok", "ready"]))


class ReadySchema(HealthSchema):
    """Answer of /readyz when the instance takes traffic, perhaps without Redis."""

    degraded = fields.List(fields.String(validate=validate.OneOf(["redis"])), metadata={
        "description": "Dependencies down that do not stop the instance serving (absent when none)."})
    message = fields.String(metadata={"description": "What a degraded instance still does."})


class NotReadySchema(_Answer):
    """Answer of /readyz when the store is down or the worker is stopping (error: not_ready or draining)."""

    error = fields.String(required=True, validate=validate.OneOf(["not_ready", "draining"]))
    message = fields.String(required=True)
    down = fields.List(fields.String(validate=validate.OneOf(["mongodb", "redis"])), required=True)
