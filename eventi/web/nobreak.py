"""Words a line must never break inside: "M-Pesa" wraps as "M-" / "Pesa" at its hyphen on a narrow phone.

`keep_whole` is base.html's `nobreak` filter, around every page's main block: each "M-Pesa" in the page's text
goes in a `white-space: nowrap` span. static/js/nobreak.js does the same for what scripts write later.
"""
import re

from markupsafe import Markup

WORD = "M-Pesa"
_KEPT = f'<span class="nowrap">{WORD}</span>'
_TAG = re.compile(r"(<[^>]*>)")  # escaped values hold no raw "<" or ">": every "<...>" is markup


def keep_whole(html: str) -> Markup:
    """Rendered HTML with each "M-Pesa" in its text (not in tags or attributes) in a white-space: nowrap span."""
    parts, tag = _TAG.split(html), ""
    for i, part in enumerate(parts):
        if part.startswith("<"):
            tag = part
        elif WORD in part and "nowrap" not in tag:  # a template's own nowrap element keeps it whole already
            parts[i] = part.replace(WORD, _KEPT)
    return Markup("".join(parts))
