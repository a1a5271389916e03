"""The MyCareNet commons' in-message references: ``Ref`` and ``ValueRef``.

The commons core types let an element refer to another one of the same document instead of repeating
it: an element with ``Ref="#id"`` (``SelfRefType``: ``Package``, ``Nihii``, ``PhysicalPerson``,
``Organization``, …) stands for the element of the same name whose ``Id`` is ``id``, and a
``ValueRefString`` with ``ValueRef`` takes the text of the element its XPointer selects. MyCareNet
substitutes them before it reads the message; so does the sandbox, before the schema is checked and
the service reads the body. XPointer is supported in the forms clients write: the bare name
``#id``, ``#xpointer(id('id'))``, and that followed by a child path (``#xpointer(id('pp')/Ssin)``).
A reference that names nothing, names an element of another name, or goes round in a circle is the
client's error.
"""

from __future__ import annotations

import copy
import re

from lxml import etree

from mycarenet_ic import ns
from mycarenet_ic.errors import MalformedRequest

_COMMONS_CORE = re.compile(rf"^{re.escape(ns.COMMONS_CORE_PREFIX)}\d+$")
_NAME = r"[A-Za-z_][\w.-]*"
# "#id", or "#xpointer(id('id'))" with an optional child path: "#xpointer(id('pp')/Ssin)".
_POINTER = re.compile(rf"^#(?:xpointer\(id\(['\"]({_NAME})['\"]\)((?:/(?:{_NAME}:)?{_NAME})*)\)|({_NAME}))$")
_MAX_DEPTH = 8
# The body and what is below it with an Id, and with a Ref or ValueRef (found in C: a Python walk of every
# element was most of this step's cost).
_WITH_ID = etree.XPath("descendant-or-self::*[@Id]")
_REFERRING = etree.XPath("descendant-or-self::*[@Ref or @ValueRef]")


def _is_commons(el: etree._Element) -> bool:
    return isinstance(el.tag, str) and bool(_COMMONS_CORE.match(etree.QName(el).namespace or ""))


def _target(pointer: str, ids: dict[str, etree._Element]) -> etree._Element | None:
    """The element an XPointer of the two supported forms selects, or None."""
    match = _POINTER.match(pointer.strip())
    if match is None:
        raise MalformedRequest("A Ref or ValueRef must be an XPointer to an Id of the same message.",
                               reason=f"unsupported XPointer {pointer[:64]!r}")
    node = ids.get(match.group(1) or match.group(3))
    for step in (match.group(2) or "").split("/")[1:]:
        local = step.rpartition(":")[2]
        node = next((c for c in node if isinstance(c.tag, str) and etree.QName(c).localname == local), None) \
            if node is not None else None
    return node


def _wrong(reason: str) -> MalformedRequest:
    return MalformedRequest("A Ref or ValueRef names no element of the same kind in the message.", reason=reason)


def substitute_references(body: etree._Element) -> int:
    """Replace every commons ``Ref``/``ValueRef`` under ``body`` by what it names; return how many."""
    ids = {el.get("Id"): el for el in _WITH_ID(body) if el.get("Id")}
    done = 0

    def resolve(el: etree._Element, depth: int) -> None:
        nonlocal done
        if depth > _MAX_DEPTH:
            raise _wrong("references nest too deep or go round in a circle")
        ref, value_ref = el.get("Ref"), el.get("ValueRef")
        if ref is not None:
            target = _target(ref, ids)
            if target is None or target.tag != el.tag or target is el or el in target.iterancestors():
                raise _wrong(f"Ref {ref[:64]!r} on {etree.QName(el).localname}")
            resolve(target, depth + 1)
            for child in list(el):
                el.remove(child)
            el.text = target.text
            for child in target:
                twin = copy.deepcopy(child)
                for inner in twin.iter():
                    if isinstance(inner.tag, str):
                        inner.attrib.pop("Id", None)  # one Id, one element: the copy is not the original
                el.append(twin)
            del el.attrib["Ref"]
            done += 1
        if value_ref is not None:
            target = _target(value_ref, ids)
            if target is None or target is el or len(target):
                raise _wrong(f"ValueRef {value_ref[:64]!r} on {etree.QName(el).localname}")
            resolve(target, depth + 1)
            el.text = target.text
            del el.attrib["ValueRef"]
            done += 1

    referring = [e for e in _REFERRING(body) if _is_commons(e)]
    for el in referring:
        resolve(el, 0)
    return done
