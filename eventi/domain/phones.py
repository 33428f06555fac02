"""Kenyan mobile numbers: the one pattern eventi reads them with (checkout, API, support command,
simulator, log redaction)."""
import re

PREFIX = r"(?:\+?254|0)"
"""+254, 254 or 0 before the nine digits of the subscriber number."""
MOBILE = PREFIX + r"([17][0-9]{5}([0-9]{3}))"  # [0-9]: \d also matches other scripts' digits
"""A number as written without separators; group 1 is the subscriber number (7XXXXXXXX or 1XXXXXXXX),
group 2 its last three digits (what log redaction keeps)."""
KENYAN_MOBILE = re.compile(MOBILE)
SEPARATORS = re.compile(r"[ .-]")
"""What people put between digit groups: 0712 345 678, 0712-345-678, 0712.345.678, +254 712 345 678.
ASCII space, dot and hyphen only (not \\s): a tab, newline, U+2028, U+00A0 or U+3000 is refused."""
MESSAGE = "Enter a Kenyan mobile number, like 0712 345 678."


def normalise(text: str) -> str | None:
    """The number as stored (254XXXXXXXXX), or None when text is not a Kenyan mobile number."""
    match = KENYAN_MOBILE.fullmatch(SEPARATORS.sub("", text))
    return "254" + match.group(1) if match else None


def local(phone: str) -> str:
    """A stored number (254XXXXXXXXX) as people write it: 0712 345 678."""
    digits = "0" + phone[3:] if phone.startswith("254") and len(phone) == 12 else phone
    return f"{digits[:4]} {digits[4:7]} {digits[7:]}" if len(digits) == 10 else digits
