"""What one exchange says, as flat facts a scenario's matcher compares: who asked (quality), which
operation, what the request carried (patient, facets, codes, …) and what the answer said (fault code, SAML
status, tariff errors, …). Read from the raw request and answer bytes, whether recorded by the inspector or
sent by ``conformance run``, through the hardened parser only (stored bytes are anyone's)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from lxml import etree

from mycarenet_ic import ns
from mycarenet_ic.errors import MycarenetError
from mycarenet_ic.security.parser import ParseLimits, parse_untrusted
from mycarenet_ic.soap.commons import MAX_BLOB, decode_blob
from mycarenet_ic.soap.faults import descriptive_code

# The qualities a person signs in with when no profession is certified (PSI staff by an STS token, or the
# simple mode's psi-staff certificate; patients): the Integrated Care scenarios call them "person".
PERSON_QUALITIES = frozenset({"citizen", "psi-staff"})
NAME_FORMATS = {"urn:be:fgov:person:ssin": "ssin", "urn:be:cin:nippin:member:ssin@mut": "ssin@mut",
                "urn:be:cin:nippin:careReceiver:registrationNumber@mut": "regnr@mut"}


def local(el: etree._Element) -> str:
    return etree.QName(el).localname


def child(el: etree._Element | None, *path: str) -> etree._Element | None:
    """The first descendant along ``path`` by local names (namespaces as sent)."""
    for name in path:
        if el is None:
            return None
        el = next((c for c in el if isinstance(c.tag, str) and local(c) == name), None)
    return el


def text(el: etree._Element | None, *path: str) -> str | None:
    found = child(el, *path)
    return None if found is None else (found.text or "").strip()


def parse(data: bytes) -> etree._Element | None:
    if not data:
        return None
    try:
        return parse_untrusted(data, ParseLimits(max_bytes=max(len(data), 1)))
    except Exception:  # noqa: BLE001 - what the hardened parser refuses has no facts
        return None


def payload(envelope: etree._Element | None) -> etree._Element | None:
    """The SOAP Body's first element."""
    body = None if envelope is None else envelope.find(f"{{{ns.SOAP11_ENV}}}Body")
    return None if body is None or not len(body) else body[0]


def blob(parent: etree._Element | None) -> etree._Element | None:
    """The commons ``Detail`` under ``parent`` decoded (base64, deflate) and parsed, or None."""
    detail = child(parent, "Detail")
    if detail is None:
        return None
    try:
        raw = base64.b64decode("".join((detail.text or "").split()), validate=True)
        data = decode_blob(SimpleNamespace(value=[raw], ContentEncoding=detail.get("ContentEncoding"),
                                           ContentEncryption=detail.get("ContentEncryption")))
        return parse_untrusted(data, ParseLimits(max_bytes=MAX_BLOB))
    except (binascii.Error, MycarenetError, ValueError):
        return None
    except Exception:  # noqa: BLE001 - an undecodable blob has no facts
        return None


@dataclass
class Facts:
    """One exchange's facts: ``values`` is what matchers compare (``service``, ``operation``, ``quality``,
    ``role``, ``code`` and the service's own); the parsed parts stay for the deviation checks."""

    values: dict[str, Any]
    envelope: etree._Element | None = None
    request: etree._Element | None = None
    request_blob: etree._Element | None = None
    answer: etree._Element | None = None
    answer_blob: etree._Element | None = None
    notes: list[str] = field(default_factory=list)

    def __getitem__(self, key: str) -> Any:
        return self.values.get(key)


def fault_code(answer_envelope: etree._Element | None) -> str | None:
    """Our own code of a SOAP fault answer (the bracketed code after the SOA one), None for no fault."""
    body = payload(answer_envelope)
    if body is None or local(body) != "Fault":
        return None
    detail = child(body, "detail")
    err = detail[0] if detail is not None and len(detail) else None
    if err is None:
        return text(body, "faultcode") or "FAULT"
    return descriptive_code(text(err, "Code") or "", text(err, "Message") or "")


def facts_of(service: str, quality: str, request: bytes, answer: bytes, caller_ssin: str | None = None) -> Facts:
    """The facts of one exchange of ``service`` by a caller of ``quality`` (``caller_ssin``: the caller's
    NISS when known, to tell a patient asking about themselves)."""
    envelope, answer_envelope = parse(request), parse(answer)
    body, reply = payload(envelope), payload(answer_envelope)
    code = fault_code(answer_envelope)
    values: dict[str, Any] = {
        "service": service, "quality": quality, "role": "person" if quality in PERSON_QUALITIES else quality,
        "operation": local(body) if body is not None else None, "code": code,
        "answered": reply is not None and code is None}
    facts = Facts(values, envelope, body, answer=reply)
    if body is None:
        return facts
    if service == "integrated-care":
        _integrated_care(facts, caller_ssin)
    elif service == "memberdata":
        _memberdata(facts)
    elif service in ("tarification", "mediprima"):
        _tarification(facts)
    return facts


def _integrated_care(facts: Facts, caller_ssin: str | None) -> None:
    body, v = facts.request, facts.values
    assert body is not None
    patient = text(body, "Patient", "Ssin")
    v.update(patient=patient, project=text(body, "Project"), status=text(body, "Status"),
             consent=text(body, "Consent", "Agreement"), consent_date=text(body, "Consent", "Date"),
             changes=frozenset(n for n in ("Status", "StartDate", "EndDate", "Consent") if child(body, n) is not None
                               and local(body) == "ModifyInclusionRequest"),
             self=caller_ssin is not None and patient == caller_ssin)


def _period_days(data: etree._Element | None) -> int | None:
    def day(raw: str | None) -> dt.date | None:
        try:
            return dt.date.fromisoformat((raw or "").strip()[:10])
        except ValueError:
            return None
    start, end = day(data.get("NotBefore")) if data is not None else None, \
        day(data.get("NotOnOrAfter")) if data is not None else None
    return (end - start).days if start and end else None


def _memberdata(facts: Facts) -> None:
    v = facts.values
    query = facts.request_blob = blob(facts.request)
    if query is not None:
        name = child(query, "Subject", "NameID")
        extensions = child(query, "Extensions")
        facets = {f.get("id") or "": {d.get("id") or "": (d.text or "").strip() for d in f if isinstance(d.tag, str)}
                  for f in (extensions if extensions is not None else []) if isinstance(f.tag, str)}
        insurability = facets.get("urn:be:cin:nippin:insurability", {})
        v.update(name_format=NAME_FORMATS.get(name.get("Format") or "", name.get("Format")) if name is not None
                 else None, subject=(name.text or "").strip() if name is not None else None,
                 issuer=text(query, "Issuer"), facets=frozenset(facets),
                 request_type=insurability.get("requestType"), contact_type=insurability.get("contactType"),
                 care_path_type=facets.get("urn:be:cin:nippin:carePath", {}).get("carePathType"),
                 period_days=_period_days(child(query, "Subject", "SubjectConfirmation", "SubjectConfirmationData")))
    saml = facts.answer_blob = blob(child(facts.answer, "Return"))
    if saml is not None:
        statuses = [s.get("Value") or "" for s in saml.iter("{*}StatusCode")]
        v.update(status=statuses[0].rpartition(":")[2] if statuses else None,
                 substatus=statuses[1].rpartition(":")[2] if len(statuses) > 1 else None,
                 detail_code=next((d.text for d in saml.iter("{*}DetailCode")), None),
                 assertions=frozenset((a.findtext("{*}Advice/{*}AssertionType") or "").rpartition("nippin:")[2]
                                      for a in saml.iter("{*}Assertion")))


def _tarification(facts: Facts) -> None:
    v = facts.values
    kmehr = facts.request_blob = blob(facts.request)
    if kmehr is not None:
        transaction = child(kmehr, "select", "transaction")
        items: dict[str, list[str]] = {}
        for item in transaction if transaction is not None else []:
            if not isinstance(item.tag, str) or local(item) != "item":
                continue
            content = child(item, "content")
            value = next((c for c in content.iter() if isinstance(c.tag, str) and local(c) in ("cd", "date", "id")
                          and c is not content), None) if content is not None else None
            items.setdefault(text(item, "cd") or "", []).append((value.text or "").strip() if value is not None
                                                                 else "")
        v.update(transaction=text(transaction, "cd"), patient=text(kmehr, "select", "patient", "id"),
                 codes=tuple(items.get("claim", [])), justification=next(iter(items.get("justification", [])), None),
                 gmd_manager=next(iter(items.get("gmdmanager", [])), None))
    answer = facts.answer_blob = blob(child(facts.answer, "Return"))
    if answer is not None:
        priced = {}
        for tx in answer.iter("{*}transaction"):
            kinds = {text(i, "cd"): i for i in tx if isinstance(i.tag, str) and local(i) == "item"}
            claim = kinds.get("claim")
            code = next((c.text for c in claim.iter("{*}cd") if c.getparent() is not None
                         and local(c.getparent()) == "content"), None) if claim is not None else None
            share = kinds.get("patientfee")
            priced[code or ""] = text(share, "cost", "decimal") if share is not None else None
        v.update(errors=tuple(text(e, "cd") or "" for e in answer.iter("{*}error")),
                 complete=text(answer, "acknowledge", "iscomplete"), priced=frozenset(priced),
                 patient_fees=priced)
