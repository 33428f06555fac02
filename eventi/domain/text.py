"""Text from outside that people will read: what may be stored to be shown, and how to print what was stored.

A name shown on a shopper's page or in a support person's terminal must be what it looks like: no
control characters (C0, DEL, C1: ESC and CSI drive terminals, NEL and CR break lines), no bidi
overrides, embeddings or isolates (U+202A-U+202E, U+2066-U+2069: "\u202eTXT.EXE" reads "EXE.TXT"),
no line or paragraph separators (U+2028/U+2029) and no other invisible format characters (zero-width
space, BOM, tag characters, bidi marks). The zero-width joiner and non-joiner stay allowed: emoji
sequences and Persian or Indic words need them.
"""
import unicodedata

_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
"""Control, format, lone surrogate, line separator, paragraph separator."""
_ALLOWED_FORMAT = frozenset({"\u200c", "\u200d"})
"""Zero-width non-joiner and joiner: part of how some scripts and emoji are written."""


def hidden_character(text: str) -> str | None:
    """The first character of text that may not be shown to people, or None when all may."""
    for char in text:
        if unicodedata.category(char) in _REFUSED_CATEGORIES and char not in _ALLOWED_FORMAT:
            return char
    return None


def describe(char: str) -> str:
    """A character as a message names it: U+202E."""
    return f"U+{ord(char):04X}"


def printable(text: str) -> str:
    """text with every character that str.isprintable() refuses written as its Python escape
    (ESC as \\x1b, newline as \\n, U+202E as \\u202e), so stored text cannot drive a terminal."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in text)


def printable_json(text: str) -> str:
    """A JSON text (json.dumps with ensure_ascii=False) with every unprintable character written as
    its JSON escape (\\u001b, \\u202e): still the same JSON, and safe to print."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() or char == "\n" else _json_escape(char) for char in text)


def _json_escape(char: str) -> str:
    return "".join(f"\\u{unit:04x}" for unit in _utf16_units(char))


def _utf16_units(char: str) -> list[int]:
    data = char.encode("utf-16-be", "surrogatepass")
    return [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]
