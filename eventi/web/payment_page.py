"""What the payment page shows for one order at one moment: its state, title, prompt timings and masked phone.

Pure (no Flask): pages.py renders status.html from it. The prompt timings are sent to the page as seconds
left, counted from when it loads, so a phone whose clock is off still counts down right.
"""
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..domain.models import OrderStatus

WAITING, UNHEARD, SUCCESS, FAILURE, REFUND = "waiting", "unheard", "success", "failure", "refund"
"""The page's states: the prompt may still be answered; it expired (or the wait gave up) with no answer;
paid; failed or cancelled; paid after the order had failed, its tickets gone (refund_needed: we refund)."""

TITLES = {WAITING: "Approve on your phone", UNHEARD: "Waiting for M-Pesa", SUCCESS: "Paid",
          FAILURE: "Payment not completed", REFUND: "Refund due"}
CANCELLED_TITLE = "Payment cancelled"
"""Tab titles ("… · eventi"); static/js/status.js uses the same words as the state changes."""

REFRESH_WAITING_SECONDS = 5
REFRESH_UNHEARD_SECONDS = 15
"""Without JavaScript a pending page reloads itself this often (<noscript> meta refresh)."""


@dataclass(frozen=True)
class PaymentView:
    state: str
    title: str
    refresh_seconds: int | None  # None once final: no reload
    prompt_left: int | None  # seconds the prompt can still be answered; None when no push went out
    help_after: int  # seconds from now until "Didn't get a prompt?" shows (0: at once)
    masked_phone: str


def payment_view(order: dict[str, Any], now: datetime, help_seconds: int) -> PaymentView:
    """The view of a stored order at now; help shows help_seconds after the push."""
    status = OrderStatus(order["status"])
    expires, pushed = order.get("promptExpiresAt"), order.get("pushedAt")
    prompt_left = None if expires is None or status.final else max(0, math.ceil((expires - now).total_seconds()))
    help_at = (pushed or now) + timedelta(seconds=help_seconds)
    help_after = max(0, math.ceil((help_at - now).total_seconds()))
    if status is OrderStatus.COMPLETED:
        state = SUCCESS
    elif status is OrderStatus.REFUND_NEEDED:
        state = REFUND
    elif status.final:
        state = FAILURE
    else:
        state = UNHEARD if prompt_left == 0 else WAITING
    title = CANCELLED_TITLE if status is OrderStatus.CANCELLED else TITLES[state]
    refresh = None if status.final else (REFRESH_UNHEARD_SECONDS if state == UNHEARD else REFRESH_WAITING_SECONDS)
    return PaymentView(state, title, refresh, prompt_left, help_after, mask_phone(order.get("phone", "")))


CRON_SWEEP_SECONDS = 300
"""With EVENTI_RECONCILE_INTERVAL_SECONDS 0 reconcile runs from a cron (`flask reconcile`) whose cadence the
server cannot know: the page listens this long past the give-up age for that sweep."""


def listen_left(order: dict[str, Any], now: datetime, give_up_seconds: int, sweep_seconds: int) -> int | None:
    """Seconds from now for which a pending order can still change by itself: the prompt's life, then until
    reconcile gives up on it (EVENTI_RECONCILE_GIVE_UP_SECONDS after the push) and one sweep more. None once final.

    Past it the order is settled by reconcile, or kept pending because PayHero gives no answer (then only
    support settles it): the page stops listening and says so."""
    if OrderStatus(order["status"]).final:
        return None
    start: datetime = order.get("pushedAt") or order["createdAt"]
    until: datetime = max(order.get("promptExpiresAt") or start, start + timedelta(seconds=give_up_seconds))
    until += timedelta(seconds=sweep_seconds or CRON_SWEEP_SECONDS)
    return max(0, math.ceil((until - now).total_seconds()))


def mask_phone(phone: str) -> str:
    """254712345010 -> "07•• ••• 010": enough to recognise one's number, not enough to give it away."""
    local = "0" + phone[3:] if phone.startswith("254") and len(phone) == 12 else phone
    if len(local) != 10:
        return "your phone"
    return f"{local[:2]}•• ••• {local[-3:]}"


def countdown_text(seconds: int) -> str:
    """45 -> "0:45" (static/js/status.js writes the same)."""
    return f"{seconds // 60}:{seconds % 60:02d}"
