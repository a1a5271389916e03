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


# -- issue 21: encodings, declarations, limits while parsing, comments -------------------------------------------
DOCTYPE = '<!DOCTYPE x [<!ENTITY % p SYSTEM "file:///etc/hostname"> %p;]>'


@pytest.mark.parametrize("codec,declared", [
    ("utf-16", "UTF-16"), ("utf-16-le", "UTF-16LE"), ("utf-16-be", "UTF-16BE"), ("utf-16-le", None),
    ("utf-32", "UTF-32"), ("utf-32-le", None), ("utf-32-be", "UTF-32BE"), ("cp037", "IBM037"), ("cp500", None),
    ("latin-1", "ISO-8859-1"),
])
def test_only_utf8_reaches_the_parser(codec: str, declared: str | None) -> None:
    decl = f'<?xml version="1.0" encoding="{declared}"?>' if declared else ""
    for text in (decl + (ENV % b"<a>x</a>").decode(), decl + DOCTYPE + (ENV % b"<a/>").decode()):
        with pytest.raises(MalformedRequest) as info:
            parse_untrusted(text.encode(codec))
        assert "UTF-8" in info.value.reason


def test_utf8_with_bom_and_declaration_is_read() -> None:
    root = parse_untrusted(b"\xef\xbb\xbf<?xml version='1.0' encoding='utf-8'?>" + ENV % "<a>é</a>".encode())
    assert root.findtext(".//a") == "é"


@pytest.mark.parametrize("declaration", [b"<!DOCTYPE x>", b'<!DOCTYPE x SYSTEM "file:///etc/passwd">',
                                         b'<!ENTITY x "y">', b"<!ELEMENT a ANY>", b"<!ATTLIST a b CDATA #IMPLIED>"])
def test_no_markup_declaration_of_any_kind(declaration: bytes) -> None:
    with pytest.raises(SecurityRejected):
        parse_untrusted(declaration + ENV % b"<a/>")


def test_comments_and_cdata_are_not_declarations() -> None:
    root = parse_untrusted(ENV % b"<a><!-- a comment --><![CDATA[<b>]]></a>")
    assert root.findtext(".//a") == "<b>"


def test_limits_are_enforced_while_parsing_not_after() -> None:
    # 250,000 elements followed by garbage: a parser that builds the whole tree first would stop at the
    # garbage (not well-formed); one that counts while parsing refuses at the limit, long before it.
    flood = ENV % (b"<b/>" * 250_000 + b"<unclosed")
    with pytest.raises(SecurityRejected) as info:
        parse_untrusted(flood, ParseLimits(max_bytes=2_000_000))
    assert "too many elements" in info.value.reason
    deep = ENV % (b"<a>" * 65 + b"<unclosed")
    with pytest.raises(SecurityRejected):
        parse_untrusted(deep)


def test_comments_are_dropped_and_the_text_around_them_joined() -> None:
    root = parse_untrusted(ENV % b"<a>4803<!-- after signing -->1202166</a>")
    a = root.find(".//a")
    assert a is not None and a.text == "48031202166" and len(a) == 0


def test_attributes_are_counted_before_libxml2_builds_a_start_tag() -> None:
    # '>' inside values does not hide attributes from the count; 32 are fine, 33 are not
    ok = ENV % (b"<a " + b" ".join(b'a%d="v>w"' % i for i in range(32)) + b"/>")
    assert parse_untrusted(ok).find(".//a") is not None
    with pytest.raises(SecurityRejected) as info:
        parse_untrusted(ENV % (b"<a " + b" ".join(b"a%d = 'v>'" % i for i in range(33)) + b"/>"))
    assert info.value.reason == "too many attributes on one element"
    # many elements with a few attributes each: the total is what counts
    with pytest.raises(SecurityRejected):
        parse_untrusted(ENV % (b'<b x="1" y="2"/>' * 20_001), ParseLimits(max_bytes=2_000_000))


def test_the_byte_count_prefilter_refuses_exactly_what_the_full_search_refuses() -> None:
    # The attribute pre-check only searches the "<"-free segments that hold more "=" than the limit. Against
    # the plain definition (the pattern over the whole document), on documents made to sit at the edges:
    # "=" in text and in values, '<' in values (malformed), quotes of both kinds, white space around "=".
    import random
    import re

    from mycarenet_ic.security import parser

    limits = ParseLimits(max_attributes_per_element=4, max_attributes_total=12)
    rng = random.Random(20261203)
    pieces = [b'a="v"', b"b = 'w'", b'c="x=y"', b"d='<'", b"=", b"e=\"1\"", b"text==", b"f\t=\n'z'"]
    for _ in range(3000):
        tags = []
        for _ in range(rng.randint(1, 6)):
            tags.append(b"<t " + b" ".join(rng.choice(pieces) for _ in range(rng.randint(0, 7))) + b">"
                        + rng.choice([b"", b"x=1", b"==="]))
        data = b"".join(tags)
        whole_per_tag = parser._too_many_attributes(4).search(data) is not None
        whole_total = len(re.findall(parser._ATTRIBUTE_VALUE, data)) > 12
        try:
            parser._check_attributes(data, limits)
            refused = None
        except SecurityRejected as exc:
            refused = exc.reason
        expected = ("too many elements or attributes" if whole_total
                    else "too many attributes on one element" if whole_per_tag else None)
        assert refused == expected, data
