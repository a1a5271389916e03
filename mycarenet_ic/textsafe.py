"""Text from outside (HTTP headers, stored rows, scenario data) made safe to show on a terminal.

A terminal obeys what it is sent: an ESC starts a control sequence (clear the screen, change colours,
rewrite the title, on some terminals even answer back as if typed), CR and backspace overwrite what
was shown, a C1 byte such as U+009B is a one-character ESC ``[``, and the Unicode bidi overrides make
the text read in another order than it is stored. :func:`printable` shows each of these as a visible
escape instead, so that what an attacker managed to store is seen, not obeyed; :func:`printable_json`
does the same for JSON output, keeping it valid JSON.

Pure functions with no dependencies: the audit log may sanitise what it stores with them too.
"""

from __future__ import annotations

import json
from typing import Any

# Code points that are escaped, with why:
_CONTROLS = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]  # C0 (incl. ESC, CR, LF, TAB, BEL, BS), DEL, C1
_BIDI = [0x061C, 0x200E, 0x200F,  # the bidi marks (ALM, LRM, RLM)
         *range(0x202A, 0x202F),  # LRE, RLE, PDF, LRO, RLO: embeddings and overrides
         *range(0x2066, 0x206A)]  # LRI, RLI, FSI, PDI: isolates
_LINE_BREAKS = [0x2028, 0x2029]  # line and paragraph separators: one field stays on one line
_SURROGATES = range(0xD800, 0xE000)  # lone surrogates (undecodable bytes) cannot even be encoded for output

_SHORT = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}


def _escape(cp: int) -> str:
    if cp in _SHORT:
        return _SHORT[cp]
    return f"\\x{cp:02x}" if cp <= 0xFF else f"\\u{cp:04x}"


_TABLE: dict[int, str] = {cp: _escape(cp) for cp in [*_CONTROLS, *_BIDI, *_LINE_BREAKS, *_SURROGATES]}
# A raw newline in ``json.dumps`` output is its indentation (newlines in strings come out as ``\n``).
_JSON_TABLE: dict[int, str] = {cp: f"\\u{cp:04x}" for cp in _TABLE if cp != 0x0A}

UNSAFE: frozenset[str] = frozenset(map(chr, _TABLE))
"""Every character :func:`printable` replaces."""


def printable(text: str) -> str:
    """``text`` with every character that a terminal would obey shown as a visible escape.

    C0 controls, DEL and C1 controls become ``\\xNN`` (``\\x1b`` for ESC), except tab, newline and
    carriage return, which become ``\\t``, ``\\n`` and ``\\r``; the bidi embeddings, overrides,
    isolates and marks, the line and paragraph separators and lone surrogates become ``\\uNNNN``
    (``\\u202e``). Everything else, accented letters included, is kept as it is.

    The result is one line with nothing a terminal would interpret. A backslash already in the text
    is kept too, so the function is idempotent (``printable(printable(t)) == printable(t)``): text
    sanitised when it was stored is shown unchanged. It is meant for people to read, not to be undone.
    """
    return text.translate(_TABLE)


def printable_json(value: Any, indent: int | None = 1) -> str:
    """``value`` as JSON, non-ASCII letters kept readable, every character of :data:`UNSAFE` escaped.

    ``json.dumps`` already escapes the C0 controls; this also escapes DEL, C1 controls, the bidi
    characters, the line separators and lone surrogates, as JSON ``\\uNNNN`` escapes. Those
    characters can only stand inside JSON strings, so the result is still valid JSON for the same value.
    """
    return json.dumps(value, indent=indent, ensure_ascii=False).translate(_JSON_TABLE)
