"""Making text from a run safe to print on a terminal."""

from __future__ import annotations

import re

#: CSI (``ESC [ … final``), OSC (``ESC ] … BEL|ST``), DCS/SOS/PM/APC strings, other
#: two-byte escapes, and every C0/C1 control character but tab.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"
    r"|\x1b[ -~]?"
    r"|\x9b[0-?]*[ -/]*[@-~]"
    r"|[\x00-\x08\x0a-\x1f\x7f-\x9f]"
)


def strip_escapes(text: str) -> str:
    """``text`` without terminal escape sequences and control characters (tab kept), so
    what a flow logged cannot move the cursor, retitle the window or hide lines."""
    return _ESCAPES.sub("", text)
