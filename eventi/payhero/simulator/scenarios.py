"""What the simulated customer does, chosen by the last digit of the phone number."""
from dataclasses import dataclass


@dataclass(frozen=True)
class Outcome:
    name: str
    result_code: int | None = 0  # None: the push itself fails, no callback
    description: str = "The service request is processed successfully."
    callbacks: int = 1  # deliveries of the callback (0: PayHero never calls back)
    push_error: int | None = None  # HTTP status the push is answered with instead of 201
    slow: bool = False  # answer the push only after the simulator's slow delay

    @property
    def paid(self) -> bool:
        return self.result_code == 0


PAID = Outcome("paid")

BY_LAST_DIGIT = {
    "0": PAID,
    "1": Outcome("cancelled", 1032, "Request cancelled by user"),
    "2": Outcome("insufficient_funds", 1, "The balance is insufficient for the transaction."),
    "3": Outcome("timeout", 1037, "DS timeout user cannot be reached"),
    "4": Outcome("wrong_pin", 2001, "The initiator information is invalid."),
    "5": Outcome("no_callback", callbacks=0),
    "6": Outcome("duplicate", callbacks=2),
    "7": Outcome("push_refused", None, push_error=400),  # a refusal: nothing reaches the phone
    "8": PAID,
    "9": Outcome("slow_push", slow=True),
}
"""docs/payments.md's simulator table shows the same mapping."""


def for_phone(phone: str) -> Outcome:
    """The outcome for a phone number in any spelling."""
    digits = [c for c in str(phone) if c.isdigit()]
    return BY_LAST_DIGIT[digits[-1]] if digits else PAID
