"""The body of a created order's answer (POST /api/orders' 201; the no-JavaScript checkout builds its redirect on it)."""
from typing import Any

from flask import url_for

from ..runtime import current_runtime


def created_body(order: dict[str, Any]) -> dict[str, Any]:
    """The 201 body: URLs absolute on PUBLIC_BASE_URL, so an app on another origin can follow them."""
    p = current_runtime()
    order_id = str(order["_id"])
    token = p.tokens.status_token(order_id)
    base = p.settings.public_base_url
    body = {
        "orderId": order_id,
        "paymentStatus": order["status"],
        "statusToken": token,
        "amount": order["amount"],
        "currency": order["currency"],
        "waitUrl": base + url_for("orders.wait_for_status", order_id=order_id, token=token),
        "statusUrl": base + url_for("orders.get_status", order_id=order_id, token=token),
    }
    if order.get("pushState"):  # PayHero may or may not have prompted the phone: the order's status decides
        body["pushState"] = order["pushState"]
    return body
