"""Example values the routes' declarations show in the OpenAPI document (tests/test_openapi.py loads each
request example with the schema that validates requests, and sends some to the running API)."""
from typing import Any

from .. import schemas
from ..domain import reasons as outcomes

ORDER_ID = "6751a3f2c9e77b0012ab34cd"
STATUS_TOKEN = "3f1c9a7e5b2d4f6081a3c5e7f9b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7"
UPDATED_AT = "2026-11-28T05:12:09.481Z"
BASE_URL = "https://tickets.example.co.ke"
IDEMPOTENCY_KEY = "9f6c1d3e2b7a4c58a0e1f2d3c4b5a697"

REFERENCE = ORDER_ID[-8:].upper()
PROMPT_EXPIRES_AT = "2026-11-28T05:13:09.481Z"
PENDING = {"orderId": ORDER_ID, "reference": REFERENCE, "paymentStatus": "pending", "amount": 1500,
           "eventId": "demo", "eventName": "Nairobi Jazz Night", "ticketTypeId": "regular", "ticketTypeName": "Regular",
           "quantity": 1, "currency": "KES", "updatedAt": UPDATED_AT, "promptExpiresAt": PROMPT_EXPIRES_AT}
UNCERTAIN = {**PENDING, "pushState": "uncertain"}
SETTLED = {key: value for key, value in PENDING.items() if key != "promptExpiresAt"}
COMPLETED = {**SETTLED, "paymentStatus": "completed", "mpesaReceipt": "TKS2P0X9QH"}
CANCELLED = {**SETTLED, "paymentStatus": "cancelled", "failureReason": "Request cancelled by user",
             "reason": "cancelled_by_user", "reasonText": outcomes.CANCELLED.text}
FAILED = {**SETTLED, "paymentStatus": "failed", "failureReason": "The initiator information is invalid.",
          "reason": "wrong_pin", "reasonText": outcomes.BY_RESULT_CODE[2001].text}
REFUND_NEEDED = {**SETTLED, "paymentStatus": "refund_needed", "mpesaReceipt": "TKS2P0X9QH",
                 "reason": outcomes.REFUND_NEEDED_REASON.code, "reasonText": outcomes.REFUND_NEEDED_REASON.text}

EVENT_ID_PARAM: dict[str, Any] = {
    "in": "path", "name": "event_id", "required": True, "example": "demo",
    "description": "The event's id (a slug), as loaded by `flask --app wsgi events load`.",
    "schema": {"type": "string", "pattern": schemas.EVENT_ID.pattern},
}

ORDER_BODIES = {
    "local": {"eventId": "demo", "ticketTypeId": "regular", "quantity": 1, "phone": "0712345678",
              "email": "wanjiru@example.com", "name": "Wanjiru Kamau"},
    "international": {"eventId": "demo", "ticketTypeId": "vip", "quantity": 2, "phone": "+254112345678",
                      "email": "otieno@example.co.ke"},
}

CREATED = {"orderId": ORDER_ID, "paymentStatus": "pending", "statusToken": STATUS_TOKEN, "amount": 1500, "currency": "KES",
           "waitUrl": f"{BASE_URL}/api/orders/{ORDER_ID}/wait?token={STATUS_TOKEN}",
           "statusUrl": f"{BASE_URL}/api/orders/{ORDER_ID}?token={STATUS_TOKEN}"}
CREATED_UNCERTAIN = {**CREATED, "pushState": "uncertain"}

CALLBACK_BODIES = {
    "v2 success": {"status": True, "response": {
        "Amount": 1500, "CheckoutRequestID": "ws_CO_28112026051209481712345678",
        "ExternalReference": ORDER_ID, "MerchantRequestID": "c4d8-4f1b-9e2a-77a1b2c3d4e5",
        "MpesaReceiptNumber": "TKS2P0X9QH", "Phone": "+254712345678", "ResultCode": 0,
        "ResultDesc": "The service request is processed successfully.", "Status": "Success"}},
    "v2 cancelled": {"status": False, "response": {
        "Amount": 1500, "CheckoutRequestID": "ws_CO_28112026051209481712345678",
        "ExternalReference": ORDER_ID, "MpesaReceiptNumber": "", "ResultCode": 1032,
        "ResultDesc": "Request cancelled by user", "Status": "Cancelled"}},
    "flat success": {"status": "success", "external_reference": ORDER_ID, "amount": 1500,
                     "provider_reference": "TKS2P0X9QH", "reference": "E8UWT7CLUW",
                     "message": "Payment successful", "success": True},
}

EVENT = {"id": "demo", "name": "Nairobi Jazz Night", "startsAt": "2030-12-12T16:00:00.000Z",
         "venue": "Kenya National Theatre, Nairobi", "currency": "KES", "soldOut": False, "ticketTypes": [
             {"id": "regular", "name": "Regular", "price": 1500, "maxPerOrder": 10, "left": 412, "soldOut": False},
             {"id": "vip", "name": "VIP", "price": 4000, "maxPerOrder": 4, "left": 0, "soldOut": True}]}
SOLD_OUT_EVENT = {"id": "acoustic-sunday", "name": "Acoustic Sunday", "startsAt": "2030-12-14T13:00:00.000Z",
                  "venue": "Alliance Française, Nairobi", "currency": "KES", "soldOut": True, "ticketTypes": [
                      {"id": "regular", "name": "Regular", "price": 800, "maxPerOrder": 6, "left": 0, "soldOut": True}]}

C2B_TOKEN = "c2b-7Hq2vN9xLk4pW8zR3mT6yB1cF5dJ0sAe"
C2B_BODIES = {
    "paybill payment": {"TransactionType": "Pay Bill", "TransID": "TKS2P0X9QH", "TransTime": "20261128081209",
                        "TransAmount": "1500.00", "BusinessShortCode": "600100", "BillRefNumber": "48210937",
                        "InvoiceNumber": "", "OrgAccountBalance": "", "ThirdPartyTransID": "",
                        "MSISDN": "2547 ***** 678", "FirstName": "Wanjiru"},
}
