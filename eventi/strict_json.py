"""Strict JSON for request bodies: UTF-8 only, no lone surrogates, no NaN, bounded nesting.

The standard library's json accepts more than RFC 8259 does, and each extra reached a 500:
bytes are decoded with "surrogatepass" (raw ED A0 80 becomes a lone surrogate), a "\\ud800"
escape yields one too (MongoDB, HMAC and the JSON answer then fail to encode it), and a body
of 2,000 "[" overflows the parser's recursion (RecursionError, not ValueError).
"""
import json
import re
from typing import Any, NoReturn

MAX_DEPTH = 32
"""Deepest nesting of arrays and objects accepted. Real bodies have 1 (orders) or 2 (PayHero)."""

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
"""A JSON string, or an unclosed one up to the end (the text is then no JSON anyway). Taking the
unclosed tail in one match keeps the search linear: a search that failed there would start again at
each escaped quote inside it, and 32,000 of them (a 64 KB body) took 11 s."""
_OPENERS_CLOSERS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))


class InvalidJson(ValueError):
    """The body is not JSON we accept; the message says why, in a sentence for the caller."""


def loads(data: bytes) -> Any:
    """Parse a request body (bytes) or raise InvalidJson."""
    try:
        text = data.decode("utf-8")  # strict: invalid sequences and encoded surrogates are errors
    except UnicodeDecodeError:
        raise InvalidJson("The body is not valid UTF-8.") from None
    depth = nesting_depth(data)
    if depth is None:  # checked before json.loads: 2,000 unclosed "[" would overflow it too
        raise InvalidJson("The body is not valid JSON.")
    if depth > MAX_DEPTH:
        raise InvalidJson(f"The body nests arrays or objects deeper than {MAX_DEPTH} levels.")
    try:
        value = _DECODER.decode(text)
    except ValueError:
        raise InvalidJson("The body is not valid JSON.") from None
    if "\\u" not in text:  # strict UTF-8 let no surrogate through: only an escape can make one
        return value
    try:  # the only way left to a lone surrogate is a \\uD800-\\uDFFF escape without its pair
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidJson("The body holds a lone UTF-16 surrogate escape (\\ud800-\\udfff).") from None
    return value


def nesting_depth(data: bytes) -> int | None:
    """How deep arrays and objects nest in a JSON text (counting stops past MAX_DEPTH), without parsing
    it; None when its brackets do not balance, so it cannot be JSON.

    Strings are removed (they may hold brackets), the rest is cut down to its brackets, and each
    round removes every innermost pair: the rounds needed are the depth. Each round is one C-speed
    bytes.replace, so a 64 KB body costs at most MAX_DEPTH + 1 passes, never a Python loop per byte.
    """
    brackets = _STRING.sub(b"", data).translate(_OPENERS_CLOSERS, _NOT_BRACKETS)
    depth = 0
    while brackets and depth <= MAX_DEPTH:
        shorter = brackets.replace(b"[]", b"")
        if len(shorter) == len(brackets):
            return None
        brackets, depth = shorter, depth + 1
    return depth


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
"""One decoder for every body (json.loads with an argument builds a new one per call)."""
