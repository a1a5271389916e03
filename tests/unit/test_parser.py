"""The hardened parser refuses what it must, and reads no file while doing so."""

from __future__ import annotations

import pytest

from mycarenet_ic.errors import MalformedRequest, SecurityRejected
from mycarenet_ic.security.parser import ParseLimits, parse_untrusted

pytestmark = pytest.mark.unit

ENV = b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>%s</s:Body></s:Envelope>'


def test_plain_envelope_parses() -> None:
    root = parse_untrusted(ENV % b"<a>x</a>")
    assert root.tag.endswith("Envelope")


def test_external_entity_is_refused_and_no_file_is_read(tmp_path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    doc = (f'<!DOCTYPE x [<!ENTITY e SYSTEM "file://{secret}">]>'.encode() + ENV % b"<a>&e;</a>")
    with pytest.raises(SecurityRejected) as info:
        parse_untrusted(doc)
    assert "TOP-SECRET" not in str(info.value) and "TOP-SECRET" not in info.value.reason


def test_billion_laughs_is_refused() -> None:
    lol = b'<!DOCTYPE l [<!ENTITY a "lol">' + b"".join(
        b'<!ENTITY %s "%s">' % (chr(98 + i).encode(), (b"&" + chr(97 + i).encode() + b";") * 10) for i in range(9)
    ) + b"]>"
    with pytest.raises(SecurityRejected):
        parse_untrusted(lol + ENV % b"<a>&j;</a>")


def test_processing_instruction_is_refused() -> None:
    with pytest.raises(SecurityRejected):
        parse_untrusted(ENV % b"<a><?evil x?></a>")
    with pytest.raises(SecurityRejected):
        parse_untrusted(b"<?xml-stylesheet href='x'?>" + ENV % b"<a/>")


def test_deep_nesting_is_refused() -> None:
    with pytest.raises((SecurityRejected, MalformedRequest)):
        parse_untrusted(ENV % (b"<a>" * 10_000 + b"</a>" * 10_000))
    with pytest.raises(SecurityRejected):
        parse_untrusted(ENV % (b"<a>" * 100 + b"</a>" * 100))


def test_many_attributes_are_refused() -> None:
    attrs = b" ".join(b'a%d="1"' % i for i in range(100_000))
    with pytest.raises(SecurityRejected):
        parse_untrusted(ENV % (b"<a " + attrs + b"/>"), ParseLimits(max_bytes=2_000_000))


def test_size_cap() -> None:
    with pytest.raises(SecurityRejected):
        parse_untrusted(ENV % (b"<a>" + b"x" * 2_000_000 + b"</a>"))


def test_invalid_utf8_and_other_encodings_are_refused() -> None:
    with pytest.raises(MalformedRequest):
        parse_untrusted(ENV % b"<a>\xff\xfe</a>")
    with pytest.raises(MalformedRequest):
        parse_untrusted(b'<?xml version="1.0" encoding="ISO-8859-1"?>' + ENV % b"<a>\xe9</a>")
