"""Making a sample exchange stable: what changes from one run to the next (ids, instants, signatures,
certificates) becomes a named placeholder, the same value the same placeholder within one sample (so an
answer's ``InResponseTo`` still shows which request ``Id`` it answers); the business content stays as sent
and answered. Calendar days stay too: they move with the calendar, and :func:`comparable` ignores them when
a fresh run is checked against the committed files."""

from __future__ import annotations

import base64
import datetime as dt
import re
import secrets

from lxml import etree

ID_ATTRIBUTES = {"Id", "ID", "AssertionID", "InResponseTo"}
INSTANT_ATTRIBUTES = {"IssueInstant"}
# element local name -> its placeholder, or a kind of numbered placeholder ("reference#": {{reference1}}…)
ELEMENTS: dict[str, str] = {
    "Created": "{{now}}", "Expires": "{{expires}}", "DigestValue": "{{digest}}",
    "SignatureValue": "{{signature}}", "BinarySecurityToken": "{{certificate}}", "X509Certificate": "{{certificate}}",
    "InputReference": "reference#", "OutputReference": "output#", "InclusionId": "inclusion#", "time": "{{time}}",
    "recorddatetime": "{{now}}",
}
PLACEHOLDER = re.compile(r"\{\{([a-z]+)([0-9]*)\}\}")


def _local(name: str) -> str:
    return name.rpartition("}")[2]


class Normaliser:
    """One sample's placeholders (request, answer and their blobs share them)."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], str] = {}

    def id(self, value: str, kind: str = "id") -> str:
        """``value``'s placeholder: ``{{id1}}``, ``{{id2}}``… in order of appearance (``kind`` instead of id)."""
        if PLACEHOLDER.fullmatch(value):
            return value
        if (kind, value) not in self.values:
            self.values[(kind, value)] = f"{{{{{kind}{sum(k == kind for k, _ in self.values) + 1}}}}}"
        return self.values[(kind, value)]

    def element(self, root: etree._Element) -> etree._Element:
        """``root`` with its volatile values replaced (in place; returned)."""
        for el in root.iter():
            if not isinstance(el.tag, str):
                continue
            for name, value in el.attrib.items():
                local = _local(name)
                if local in ID_ATTRIBUTES:
                    el.set(name, self.id(value))
                elif local in INSTANT_ATTRIBUTES:
                    el.set(name, "{{now}}")
                elif local == "URI" and value.startswith("#"):
                    el.set(name, "#" + self.id(value[1:]))
                elif local == "Value" and _local(el.tag) == "KeyIdentifier":
                    el.set(name, self.id(value))
            local = _local(el.tag)
            approval = _approval(el)
            if approval is not None and el.text:
                el.text = self.id(el.text, approval)
            elif local == "id" and el.get("S") == "ID-KMEHR" and el.text and "." in el.text:
                # a message's KMEHR id, "<author>.<timestamp…>": the author stays
                head, _, tail = el.text.partition(".")
                el.text = f"{head}.{self.id(tail, 'stamp')}"
            elif local in ELEMENTS and el.text and el.text.strip():
                placeholder = ELEMENTS[local]
                el.text = self.id(el.text.strip(), placeholder[:-1]) if placeholder.endswith("#") else placeholder
        return root


def _approval(el: etree._Element) -> str | None:
    """The kind of placeholder of a payment approval (its number is made from the day it is given), if ``el``
    holds one: the tariff's KMEHR ``financialcontract`` id, MemberData's ``paymentApproval`` attribute."""
    if _local(el.tag) == "id" and el.get("SL") == "MYCARENET-PAYMENT-APPROVAL":
        return "approval"
    parent = el.getparent()
    if _local(el.tag) == "AttributeValue" and parent is not None:
        name = parent.get("Name", "")
        if name.endswith(":paymentApproval"):
            return "approval"
        if name.endswith(":paymentApproval:checkCode"):
            return "check"
    return None


def pretty(root: etree._Element) -> bytes:
    """Indented UTF-8 with a declaration, ending in a newline."""
    etree.indent(root, space="  ")
    return etree.tostring(root, encoding="UTF-8", xml_declaration=True) + b"\n"


def parse(data: bytes) -> etree._Element:
    parser = etree.XMLParser(remove_blank_text=True, resolve_entities=False, no_network=True, load_dtd=False)
    return etree.fromstring(data, parser=parser)


def detail_of(root: etree._Element) -> etree._Element | None:
    """The commons ``Detail`` holding a base64 business blob, if the message has one."""
    for el in root.iter():
        if isinstance(el.tag, str) and _local(el.tag) == "Detail" and el.text and el.text.strip():
            return el
    return None


def decode(detail: etree._Element) -> bytes:
    return base64.b64decode("".join((detail.text or "").split()))


def encode(blob: bytes) -> str:
    return base64.b64encode(blob).decode()


DAY = re.compile(rb"\b\d{4}-\d{2}-\d{2}(?=\b|T)")
CLOCK = re.compile(rb"\b\d{2}:\d{2}:\d{2}\b")


def comparable(data: bytes) -> bytes:
    """What a check compares: the file with its calendar days and times of day masked (they move with the
    calendar), and a commons ``Detail``'s base64 replaced by a mark (its decoded blob is a file of its own)."""
    if data.lstrip().startswith(b"<"):
        try:
            root = parse(data)
        except etree.XMLSyntaxError:
            root = None
        if root is not None:
            detail = detail_of(root)
            if detail is not None:
                detail.text = "{{blob}}"
            data = pretty(root)
    return CLOCK.sub(b"hh:mm:ss", DAY.sub(b"YYYY-MM-DD", data))


def fill(request: bytes, given: dict[str, str] | None = None, now: dt.datetime | None = None) -> bytes:
    """A sample request with its placeholders filled in, inside the Detail's blob too: ``{{now}}`` the
    instant, ``{{time}}`` the time of day, each ``{{idN}}``, ``{{referenceN}}`` and ``{{stampN}}`` a fresh
    value; ``given`` names the others (``inclusion1``: an InclusionId) or overrides these."""
    moment = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    values: dict[str, str] = dict(given or {})

    def value(match: re.Match[str]) -> str:
        name = match.group(1) + match.group(2)
        if name not in values:
            kind = match.group(1)
            if kind == "now":
                values[name] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
            elif kind == "time":
                values[name] = moment.strftime("%H:%M:%S")
            elif kind == "stamp":
                values[name] = moment.strftime("%Y%m%d%H%M%S") + f"{secrets.randbelow(10**6):06d}"
            elif kind in ("id", "reference"):
                values[name] = f"_{secrets.token_hex(16)}" if kind == "id" else f"ref-{secrets.token_hex(6)}"
            else:
                raise ValueError(f"{match.group(0)}: give its value (--set {name}=VALUE)")
        return values[name]

    def substitute(text: str) -> str:
        return PLACEHOLDER.sub(value, text)

    root = parse(request)
    detail = detail_of(root)
    if detail is not None:
        detail.text = encode(substitute(decode(detail).decode()).encode())
    return substitute(etree.tostring(root, encoding="unicode")).encode()
