"""The one hardened XML parser of the layer.

Every piece of XML that comes from outside goes through :func:`parse_untrusted`:

1. **UTF-8 only**, decided on the bytes before libxml2 sees them: a UTF-16/UTF-32 byte-order mark, a
   NUL byte (UTF-16 and UTF-32 text always has some), bytes that are not strict UTF-8 (EBCDIC, Latin-1)
   or an XML declaration naming another encoding are refused; the parser is then told the encoding,
   so it never switches on what the document says.
2. **No markup declaration at all** (``<!DOCTYPE``, ``<!ENTITY``, ``<!ELEMENT``, ``<!ATTLIST``): on
   UTF-8 bytes the check is exact, so no DTD, internal subset, external subset or parameter entity
   ever reaches libxml2, and nothing is opened. A resolver that refuses every URL stands behind it.
3. **Limits while parsing**: the document is fed to a pull parser in chunks and the element count,
   depth and attributes are counted as the elements arrive, so an oversized tree is refused before
   it is built (memory stays bounded by the limits, not by what was sent). libxml2 builds a whole
   start tag before anyone sees it, so attributes are also counted on the bytes first: an attribute
   value cannot contain ``<``, so the values of one start tag lie between two ``<``.
4. **Comments are dropped** at parse time and the text around them merged, so what the business
   code reads is what an exclusive-c14n signature covers (it excludes comments); processing
   instructions are refused.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from lxml import etree

from mycarenet_ic.config import Settings
from mycarenet_ic.errors import MalformedRequest, SecurityRejected


@dataclass(frozen=True)
class ParseLimits:
    max_bytes: int = Settings.max_body_bytes
    max_depth: int = 64
    max_elements: int = 20_000
    max_attributes_per_element: int = 32
    max_attributes_total: int = 40_000


DEFAULT_LIMITS = ParseLimits()
_CHUNK = 16_384
_UTF8_BOM = b"\xef\xbb\xbf"
_OTHER_BOMS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00")
# "<!" that opens anything but a comment or a CDATA section: a markup declaration.
_DECLARATION = re.compile(rb"<!(?!--|\[CDATA\[)")
_ATTRIBUTE_VALUE = rb"=[ \t\r\n]*(?:\"[^\"<]*\"|'[^'<]*')"
_XML_DECL = re.compile(rb"^<\?xml[ \t\r\n][^>]*?\bencoding[ \t\r\n]*=[ \t\r\n]*[\"']([A-Za-z0-9._-]*)[\"']")


class _RefuseAll(etree.Resolver):
    """Never loads anything: records that something was asked, and hands back nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = False

    def resolve(self, system_url: str, public_id: str, context: Any) -> Any:
        self.asked = True
        return self.resolve_empty(context)


def _new_parser() -> tuple[etree.XMLPullParser, _RefuseAll]:
    parser = etree.XMLPullParser(
        events=("start", "end", "pi"),
        encoding="utf-8",
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
        remove_comments=True,
        remove_pis=False,
        collect_ids=False,
    )
    refuse = _RefuseAll()
    parser.resolvers.add(refuse)
    return parser, refuse


@functools.cache
def _too_many_attributes(n: int) -> re.Pattern[bytes]:
    """More than ``n`` attribute values with no ``<`` between them: one start tag with too many."""
    return re.compile(rb"(?:" + _ATTRIBUTE_VALUE + rb"[^<=]*){%d}" % (n + 1))


def _check_attributes(data: bytes, limits: ParseLimits) -> None:
    # Every attribute value starts with "=" and holds no "<": a document with no more "=" than a limit cannot
    # pass it, and one start tag's values all lie in one "<"-free segment. Only what could pass a limit is
    # searched (the per-tag pattern costs ~70 µs per KiB on the whole document; byte counts are C-speed).
    equals = data.count(b"=")
    if equals > limits.max_attributes_total and len(re.findall(_ATTRIBUTE_VALUE, data)) > limits.max_attributes_total:
        raise SecurityRejected("too many elements or attributes")
    n = limits.max_attributes_per_element
    if equals > n and any(segment.count(b"=") > n and _too_many_attributes(n).search(segment)
                          for segment in data.split(b"<")):
        raise SecurityRejected("too many attributes on one element")


def check_utf8_without_declarations(data: bytes) -> bytes:
    """The document without its UTF-8 byte-order mark, if it is strict UTF-8 with no markup declaration."""
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM):]
    elif data.startswith(_OTHER_BOMS) or b"\x00" in data:
        raise MalformedRequest(reason="only UTF-8 is accepted (UTF-16/UTF-32 refused)")
    try:
        data.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        raise MalformedRequest(reason="only UTF-8 is accepted (bytes are not UTF-8)") from None
    decl = _XML_DECL.match(data.lstrip(b" \t\r\n"))
    if decl is not None and decl.group(1).lower() not in (b"utf-8", b"utf8"):
        raise MalformedRequest(reason="only UTF-8 is accepted (declaration names another encoding)")
    if _DECLARATION.search(data):
        raise SecurityRejected("DTD or markup declaration")
    return data


def parse_untrusted(data: bytes, limits: ParseLimits = DEFAULT_LIMITS) -> etree._Element:
    """Parse bytes from outside into an element tree, or raise.

    Raises :class:`SecurityRejected` for DTDs, entities, processing instructions and limits,
    :class:`MalformedRequest` for anything that is not well-formed UTF-8 XML.
    """
    if len(data) > limits.max_bytes:
        raise SecurityRejected("document over the size cap")
    data = check_utf8_without_declarations(data)
    _check_attributes(data, limits)
    parser, refuse = _new_parser()
    counter = _Counter(limits)
    try:
        for start in range(0, len(data), _CHUNK):
            parser.feed(data[start:start + _CHUNK])
            counter.take(parser.read_events())
        root = parser.close()
        counter.take(parser.read_events())
    except etree.XMLSyntaxError as exc:
        counter.take(parser.read_events())  # what was built before the error may already be over a limit
        raise MalformedRequest(reason=f"not well-formed: {exc.msg}") from None
    if refuse.asked:
        raise SecurityRejected("the document asked for an external resource")
    tree = root.getroottree()
    if tree.docinfo.internalDTD is not None or tree.docinfo.doctype:
        raise SecurityRejected("DTD present")
    for sibling in (*root.itersiblings(preceding=True), *root.itersiblings()):
        if isinstance(sibling, etree._ProcessingInstruction):
            raise SecurityRejected("processing instruction")
    return root


class _Counter:
    """Counts what the pull parser has built so far and refuses as soon as a limit is passed."""

    def __init__(self, limits: ParseLimits) -> None:
        self.limits = limits
        self.depth = 0
        self.elements = 0
        self.attributes = 0

    def take(self, events: Any) -> None:
        limits = self.limits
        for event, node in events:
            if event == "end":
                self.depth -= 1
                continue
            if event == "pi":
                raise SecurityRejected("processing instruction")
            if isinstance(node, etree._Entity):
                raise SecurityRejected("entity reference")
            self.depth += 1
            self.elements += 1
            n_attr = len(node.attrib)
            self.attributes += n_attr
            if self.depth > limits.max_depth:
                raise SecurityRejected("nesting too deep")
            if n_attr > limits.max_attributes_per_element:
                raise SecurityRejected("too many attributes on one element")
            if self.elements > limits.max_elements or self.attributes > limits.max_attributes_total:
                raise SecurityRejected("too many elements or attributes")
