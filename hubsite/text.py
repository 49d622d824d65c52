"""Text from users, made safe to show in messages (plain Python, no Django).

Names, file names and config values people send end up in error messages
that are printed on terminals (the CLI, ``curl``, logs). A control character
in them (an ANSI escape sequence, a carriage return, a bidirectional
override) could repaint the screen or disguise the message, so messages show
such characters as escapes (``\\x1b``), the way Python's ``repr`` does.
"""

from __future__ import annotations

import re

# C0 and C1 control characters (Unicode category Cc) but the line break and the
# tab, which lay messages out and move no cursor back; and the characters that
# reorder the text around them without being seen (bidirectional controls).
_HIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match) -> str:
    code = ord(match[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with control characters (bar line breaks and tabs) written as escapes."""
    return _HIDDEN.sub(_escape, text)
