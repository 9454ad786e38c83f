"""Text from an untrusted source (a sandboxed program, a model) made safe to store and to print.

Whatever crosses from generated code to the trusted side (an exception's message in a verdict's
detail, a judge's last line of output) is arbitrary: lone surrogates that UTF-8 cannot encode
(DuckDB then refuses the row and the terminal the print), terminal escape sequences, carriage
returns that overwrite what was printed, bidirectional overrides that reorder it, and any length.
`printable` keeps every other character as it is and writes these as visible escapes, then bounds
the length, so the result is valid UTF-8, one reading on every terminal, and at most `limit` long.
"""

from __future__ import annotations

import re

# C0 controls but tab and newline, DEL and C1, zero-width and bidirectional formatting characters,
# line/paragraph separators, the BOM, and surrogates (only lone ones can be in a str)
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff]")


def _escape(m: re.Match) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def printable(text: str, limit: int | None = None) -> str:
    """`text` with unsafe characters escaped (`\\x1b`, `\\ud800`), cut to `limit` characters."""
    out = _UNSAFE.sub(_escape, text if type(text) is str else str(text))
    if limit is not None and len(out) > limit:
        out = out[:max(0, limit - 1)] + "…"
    return out


def storable(text: str | None) -> str | None:
    """`text` as valid UTF-8 (lone surrogates as `\\udxxx` escapes), every other character as is: what a
    database column or a file can hold. For text that is only stored; `printable` for text that is shown."""
    if text is None or type(text) is not str:
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
