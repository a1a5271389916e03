"""The one hardened XML parser of the layer.

No DTD (internal or external), no entity, no processing instruction, no
network, and caps on depth, element count and attributes per element. Every
piece of XML that comes from outside goes through :func:`parse_untrusted`.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from mycarenet_ic.errors import MalformedRequest, SecurityRejected


@dataclass(frozen=True)
class ParseLimits:
    max_bytes: int = 1_048_576
    max_depth: int = 64
    max_elements: int = 20_000
    max_attributes_per_element: int = 32
    max_attributes_total: int = 40_000


DEFAULT_LIMITS = ParseLimits()


def _new_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
        collect_ids=False,
    )


def parse_untrusted(data: bytes, limits: ParseLimits = DEFAULT_LIMITS) -> etree._Element:
    """Parse bytes from outside into an element tree, or raise.

    Raises :class:`SecurityRejected` for DTDs, entities, processing instructions
    and limits, :class:`MalformedRequest` for anything that is not well-formed
    UTF-8 XML.
    """
    if len(data) > limits.max_bytes:
        raise SecurityRejected("document over the size cap")
    # A DOCTYPE is refused before libxml2 sees it, so no entity is ever declared.
    head = data[:4096].lstrip()
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise SecurityRejected("DTD or entity declaration")
    if head.startswith(b"<?xml"):
        end = head.find(b"?>")
        decl = head[: end if end > 0 else 200].lower()
        if b"encoding" in decl and b"utf-8" not in decl:
            raise MalformedRequest(reason="only UTF-8 is accepted")
    try:
        root = etree.fromstring(data, parser=_new_parser())
    except etree.XMLSyntaxError as exc:
        raise MalformedRequest(reason=f"not well-formed: {exc.msg}") from None
    tree = root.getroottree()
    if tree.docinfo.internalDTD is not None or tree.docinfo.doctype:
        raise SecurityRejected("DTD present")
    _check_limits(root, limits)
    return root


def _check_limits(root: etree._Element, limits: ParseLimits) -> None:
    # Siblings of the root (PIs before or after it) are part of the document too.
    for sibling in list(root.itersiblings(preceding=True)) + list(root.itersiblings()):
        if isinstance(sibling, etree._ProcessingInstruction):
            raise SecurityRejected("processing instruction")
    elements = 0
    attributes = 0
    # iter() yields comments, processing instructions and entity references too.
    for node in root.iter():
        if isinstance(node, etree._ProcessingInstruction):
            raise SecurityRejected("processing instruction")
        if isinstance(node, etree._Entity):
            raise SecurityRejected("entity reference")
        if isinstance(node, etree._Comment):
            continue
        elements += 1
        n_attr = len(node.attrib)
        attributes += n_attr
        if n_attr > limits.max_attributes_per_element:
            raise SecurityRejected("too many attributes on one element")
        if elements > limits.max_elements or attributes > limits.max_attributes_total:
            raise SecurityRejected("too many elements or attributes")
    # Depth: walk up from the deepest leaves is costly; iterate with an explicit stack.
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limits.max_depth:
            raise SecurityRejected("nesting too deep")
        stack.extend((child, depth + 1) for child in node if isinstance(child.tag, str))
