"""Text shown on a terminal: every control character, C1 byte and bidi override becomes a visible escape;
ordinary text, accented letters included, stays as it is."""

from __future__ import annotations

import json
import re
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mycarenet_ic.textsafe import UNSAFE, printable, printable_json

pytestmark = pytest.mark.unit

C0 = [chr(c) for c in range(0x20)]
C1 = [chr(c) for c in range(0x80, 0xA0)]
BIDI = [chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))]


@pytest.mark.parametrize(("text", "shown"), [
    ("\x1b[2J\x1b[31mred", "\\x1b[2J\\x1b[31mred"),
    ("bell\x07", "bell\\x07"),
    ("over\rwritten", "over\\rwritten"),
    ("back\x08space", "back\\x08space"),
    ("del\x7f", "del\\x7f"),
    ("csi\x9b2J", "csi\\x9b2J"),
    ("nel\x85", "nel\\x85"),
    ("two\nlines\tand a tab", "two\\nlines\\tand a tab"),
    ("abc\u202edcba", "abc\\u202edcba"),
    ("\u2066isolate\u2069", "\\u2066isolate\\u2069"),
    ("line\u2028separator", "line\\u2028separator"),
    ("bytes \udcff that did not decode", "bytes \\udcff that did not decode"),
    ("NUL\x00", "NUL\\x00"),
])
def test_what_a_terminal_would_obey_is_shown_escaped(text: str, shown: str) -> None:
    assert printable(text) == shown


@pytest.mark.parametrize("char", C0 + ["\x7f"] + C1 + BIDI + ["\u2028", "\u2029", "\ud800", "\udfff"])
def test_every_listed_character_is_escaped(char: str) -> None:
    out = printable(char)
    assert char not in out and out.startswith("\\") and out.isascii() and out.isprintable()


@pytest.mark.parametrize("text", ["", "plain ASCII: 0-9 a-z !?#[]{}", "Müller, Hélène, Ærøskøbing, Łódź",
                                  "日本語", "emoji \U0001f600", "a\\x1b is already visible", "urn:be:fgov:ehealth"])
def test_ordinary_text_is_kept(text: str) -> None:
    assert printable(text) == text


@given(st.text())
def test_the_result_is_one_line_with_nothing_a_terminal_obeys(text: str) -> None:
    out = printable(text)
    assert not (set(out) & UNSAFE)
    assert len(out.splitlines()) <= 1
    assert all(unicodedata.category(c) not in ("Cc", "Cs") for c in out)
    out.encode("utf-8")  # no lone surrogate left: printing cannot fail


@given(st.text())
def test_printable_is_idempotent(text: str) -> None:
    assert printable(printable(text)) == printable(text)


@given(st.text().filter(lambda t: "\\" not in t))
def test_only_the_unsafe_characters_change(text: str) -> None:
    without_escapes = re.sub(r"\\(x[0-9a-f]{2}|u[0-9a-f]{4}|[tnr])", "", printable(text))
    assert without_escapes == "".join(c for c in text if c not in UNSAFE)


def test_escapes_do_not_collide_with_the_characters_after_them() -> None:
    # "\x1b" followed by "b" is not read as "\x1bb": escapes of C0/C1 have exactly two hex digits.
    assert printable("\x1bb") == "\\x1bb" and printable("\x01\x02") == "\\x01\\x02"


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
                    max_leaves=10))
def test_printable_json_is_the_same_value_as_valid_json_with_nothing_a_terminal_obeys(value: object) -> None:
    out = printable_json(value)
    assert json.loads(out) == value
    assert not (set(out) & (UNSAFE - {"\n"}))
    out.encode("utf-8")


def test_printable_json_keeps_letters_readable_and_its_indentation() -> None:
    assert printable_json({"name": "Müller\u202e\x9b"}) == '{\n "name": "Müller\\u202e\\u009b"\n}'
