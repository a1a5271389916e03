"""MemberData over SOAP: the MyCareNet commons v3 envelope (``xsd/mycarenet-commons-*-v3.xsd``, read and
written as XML: ``soap/commons.py``) around a SAML 2.0 AttributeQuery / Response in the Detail blob.

The blob is decoded (ContentEncoding ``none`` or ``deflate``), parsed by the hardened parser, read
into a :class:`~mycarenet_ic.services.memberdata.Query`; the answer is a ``samlp:Response`` shaped as
real acceptance answers are: one unsigned ``saml:Assertion`` per assertion type (the SOAP envelope
around it is signed), each with the subject as asked, its own period in ``SubjectConfirmationData``,
an ``Advice`` naming its type and echoing the facet, typed attribute values, and a closing
``urn:be:cin:nippin:technicalAssertion``; encoded the way the request was. Query errors are answered
as the real service does: a SAML error status with the public catalogue's codes (MemberDataErrors).
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import os
import re
import secrets
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from lxml import etree

from mycarenet_ic import ns
from mycarenet_ic.domain.assurability import AssurabilityError, RequestPart
from mycarenet_ic.errors import SchemaViolation
from mycarenet_ic.security.parser import ParseLimits
from mycarenet_ic.services.memberdata import (
    Answer,
    FacetRequest,
    MemberData,
    PeriodFacts,
    Query,
    Warning,
)
from mycarenet_ic.soap import nippin, sealed
from mycarenet_ic.soap.commons import MAX_BLOB, read_detail, read_request, response_element
from mycarenet_ic.soap.endpoint import Call, EndpointDeps, SoapEndpoint
from mycarenet_ic.soap.nippin import TECHNICAL, Attribute
from mycarenet_ic.soap.service import build_element_endpoint, requester

MD = "urn:be:fgov:ehealth:mycarenet:memberdata:protocol:v1"
CORE = "urn:be:fgov:ehealth:mycarenet:commons:core:v3"
PROTOCOL = "urn:be:fgov:ehealth:mycarenet:commons:protocol:v3"
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
EXT = "urn:be:cin:nippin:memberdata:saml:extension"
CIN_TYPES = "urn:be:cin:types:v1"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XS = "http://www.w3.org/2001/XMLSchema"
STATUS = "urn:oasis:names:tc:SAML:2.0:status"
CIN_STATUS = "urn:be:cin:nippin:SAML:status"
SUPPORT = "urn:be:cin:nippin:memberData:support:v2"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
TECHNICAL_VERSION = "sandbox-1.0"


# -- reading the AttributeQuery ---------------------------------------------------------------------
@dataclass(frozen=True)
class NameId:
    """The subject as the query named it (every assertion of the answer names it the same way)."""

    format: str
    value: str


def _q(ns: str, local: str) -> str:
    return f"{{{ns}}}{local}"


# xs:dateTime (XML Schema 1.0): [-]yyyy-mm-ddThh:mm:ss[.s+][Z|(+|-)hh:mm]; surrounding blanks collapse.
_DATETIME = re.compile(r"(-?)(\d{4,})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-](\d\d):(\d\d))?",
                       re.ASCII)


def xs_datetime_day(text: str) -> dt.date | None:
    """The calendar day of an ``xs:dateTime`` as written (its zone, if any, is not applied), or None
    when ``text`` is not an ``xs:dateTime``: a date alone, a missing time, a 30 February, an hour 25…
    Years past 9999 or before 1 are clamped to what a date holds."""
    m = _DATETIME.fullmatch(text.strip(" \t\r\n"))
    if m is None:
        return None
    sign, year_text, month, day, hour, minute, second, fraction, zone, zh, zm = m.groups()
    if (len(year_text) > 4 and year_text[0] == "0") or int(year_text) == 0:
        return None
    if zone not in (None, "Z") and (int(zh) > 14 or int(zm) > 59 or (int(zh) == 14 and int(zm) != 0)):
        return None
    h, mi, sec = int(hour), int(minute), int(second)
    end_of_day = h == 24 and mi == 0 and sec == 0 and not (fraction or ".0").strip(".0")
    if (h > 23 and not end_of_day) or mi > 59 or sec > 59:
        return None
    year = int(year_text) * (-1 if sign else 1)
    try:
        dt.date(2000, int(month), int(day))  # month and day, whatever the year (29 February checked below)
        if year > 9999:
            return dt.date.max
        if year < 1:
            return dt.date.min
        found = dt.date(year, int(month), int(day))
    except ValueError:
        return None
    return found + dt.timedelta(days=1) if end_of_day and found < dt.date.max else found


def _day(text: str | None, code: str, message: str, where: RequestPart) -> dt.date:
    # The official schema types NotBefore/NotOnOrAfter xs:dateTime; the catalogue answers any error on
    # that attribute with its EMPTY_STARTDATE / EMPTY_ENDDATE entry (its path, no message filter).
    day = xs_datetime_day(text) if text else None
    if day is None:
        raise AssurabilityError(code, message, where)
    return day


def read_query(root: etree._Element) -> tuple[Query, NameId]:
    """A SAML AttributeQuery as a :class:`Query` (and its NameID, which answers echo); missing or
    malformed parts as catalogue errors."""
    if root.tag != _q(SAMLP, "AttributeQuery"):
        raise SchemaViolation("The Detail blob must hold a SAML 2.0 samlp:AttributeQuery.")
    if root.find(_q(SAML, "Attribute")) is not None:
        raise AssurabilityError("FORBIDDEN_ATTRIBUTES", "Attributes are not allowed in request", RequestPart.ATTRIBUTES)
    issuer = root.find(_q(SAML, "Issuer"))
    if issuer is None:
        raise AssurabilityError("MISSING_ISSUER_TAG", "Missing Issuer tag", RequestPart.QUERY)
    if not issuer.get("Format"):
        raise AssurabilityError("MISSING_ISSUER_FORMAT", "Missing issuer format", RequestPart.ISSUER)
    if issuer.get("Format") != nippin.ISSUER_FORMAT:
        raise AssurabilityError("INVALID_ISSUER_FORMAT", "Invalid Format attribute value for Issuer",
                                RequestPart.ISSUER_FORMAT)
    issuer_nihii = (issuer.text or "").strip()
    if not (issuer_nihii.isascii() and issuer_nihii.isdigit() and len(issuer_nihii) in (8, 11)):
        raise AssurabilityError("INVALID_ISSUER_VALUE", "Invalid issuer", RequestPart.ISSUER)
    extensions = root.find(_q(SAMLP, "Extensions"))
    if extensions is None:
        raise AssurabilityError("MISSING_EXTENSIONS_TAG", "Missing Extensions tag", RequestPart.QUERY)
    xsi_type = extensions.get(_q(XSI, "type")) or ""
    prefix, _, local = xsi_type.rpartition(":")
    if local != "ExtensionsType" or extensions.nsmap.get(prefix or None) != EXT:
        raise AssurabilityError("MISSING_OR_BAD_EXTENSIONS_TYPE", "Bad Extensions type", RequestPart.EXTENSIONS_TYPE)
    facets = tuple(
        FacetRequest(f.get("id") or "", nippin.facet(f.get("id") or ""),
                     tuple((d.get("id") or "", (d.text or "").strip()) for d in f.findall("Dimension")))
        for f in extensions.findall(_q(EXT, "Facet")))
    subject = root.find(_q(SAML, "Subject"))
    name_id = subject.find(_q(SAML, "NameID")) if subject is not None else None
    if name_id is None or subject is None:
        raise AssurabilityError("MISSING_NAMEID", "Missing NameId", RequestPart.SUBJECT)
    if not name_id.get("Format"):
        raise AssurabilityError("MISSING_NAMEID_FORMAT", "Missing Format attribute for NameId", RequestPart.NAME_ID)
    confirmation = subject.find(_q(SAML, "SubjectConfirmation"))
    if confirmation is None:
        raise AssurabilityError("MISSING_SUBJECT_CONFIRMATION_TAG", "Missing subject confirmation tag",
                                RequestPart.SUBJECT)
    if confirmation.get("Method") != nippin.CONFIRMATION_METHOD:
        raise AssurabilityError("INVALID_SUBJECT_CONFIRMATION_METHOD_VALUE",
                                "Invalid subject confirmation method value", RequestPart.CONFIRMATION_METHOD)
    data = confirmation.find(_q(SAML, "SubjectConfirmationData"))
    if data is None:
        raise AssurabilityError("MISSING_SUBJECT_CONFIRMATION_DATA_TAG", "Missing subject confirmation Data tag",
                                RequestPart.CONFIRMATION)
    start = _day(data.get("NotBefore"), "EMPTY_STARTDATE", "The Start Date is missing", RequestPart.PERIOD_START)
    end = _day(data.get("NotOnOrAfter"), "EMPTY_ENDDATE", "The End Date is missing", RequestPart.PERIOD_END)
    echo = NameId(name_id.get("Format") or "", (name_id.text or "").strip())
    return Query(issuer_nihii, nippin.subject(echo.format, echo.value), start, end, facets), echo


# -- writing the Response ---------------------------------------------------------------------------
# MemberDataErrors (the public catalogue): code → (status, sub-status, FaultCode, FaultSource); "IO" is
# the answering insurer, "IO-BE-<union>". Codes not listed: Requester, AttributeQueryError, INPUT_ERROR,
# MYCARENET (the catalogue's entry for every other query error).
_CATALOGUE = {
    "CROSSCHECK_ISSUER": ("Requester", "RequestError", "VALIDATION_ERROR", "MYCARENET"),
    "UNAUTHORIZED_FACET": ("Requester", "AttributeQueryError", "AUTHORIZATION_ERROR", "MYCARENET"),
    "START_DATE_IN_FUTURE": ("Requester", "InputError", "INPUT_ERROR", "MYCARENET"),
    "INVALID_PERIOD_FOR_SECTOR": ("Requester", "InputError", "INPUT_ERROR", "MYCARENET"),
    "PERIOD_TOO_FAR_IN_PAST": ("Requester", "InputError", "INPUT_ERROR", "MYCARENET"),
    "UNKNOWN_NISS_ROUTING": ("Responder", "InputError", "INPUT_ERROR", "MYCARENET"),
    "NO_FACET": ("Responder", "InternalError", "GENERIC_ERROR", "MYCARENET"),
    "BO_UNKNOWN_NISS": ("Responder", "InternalError", "INPUT_ERROR", "IO"),
    "BO_UNKNOWN_REGNBR": ("Responder", "InternalError", "INPUT_ERROR", "IO"),
    "MISMATCHED_CONTACTTYPE": ("Responder", "AttributeQueryError", "INPUT_ERROR", "IO"),
    "MUTATION": ("Success", "PartialAnswer", "WARNING", "MYCARENET"),
    "MISSING_FACETS": ("Success", "PartialAnswer", "WARNING", "MYCARENET"),
    "ONLY_FIVE_PERIODS_RETURNED": ("Success", "PartialAnswer", "WARNING", "IO"),
}
# A real UNAUTHORIZED_FACET answer leaves DetailSource empty; the others repeat the FaultSource.
_NO_DETAIL_SOURCE = frozenset({"UNAUTHORIZED_FACET"})
# Where a real answer words a message differently from the catalogue, the real answer's words.
_REAL_MESSAGE = {"INVALID_INSS_FORMAT": "The INSS has an invalid format (not 11 digits)"}


# Clark names of the answer, once (not an f-string per element per answer).
_RESPONSE, _ISSUER, _STATUS = _q(SAMLP, "Response"), _q(SAML, "Issuer"), _q(SAMLP, "Status")
_STATUS_CODE, _FACET, _ASSERTION = _q(SAMLP, "StatusCode"), _q(EXT, "Facet"), _q(SAML, "Assertion")
_ATTRIBUTE_STATEMENT, _XSI_TYPE = _q(SAML, "AttributeStatement"), _q(XSI, "type")
_ATTRIBUTE, _ATTRIBUTE_VALUE = _q(SAML, "Attribute"), _q(SAML, "AttributeValue")
_STEP, _STATUS_DETAIL = _q(SUPPORT, "Step"), _q(SAMLP, "StatusDetail")
# A fault's elements (urn:be:cin:types:v1), by local name.
_T = {local: _q(CIN_TYPES, local) for local in ("FaultCode", "FaultSource", "Message", "Details", "Detail",
                                               "DetailCode", "DetailSource", "Location")}
_ANSWER_NSMAP: dict[str | None, str] = {"samlp": SAMLP, "saml": SAML, "ext": EXT, "xsi": XSI, "xs": XS}


def _now() -> str:
    """Real answers write instants without a zone."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _midnight(day: dt.date) -> str:
    return f"{day.isoformat()}T00:00:00"


def _source(source: str, insurer: str | None) -> str:
    return f"IO-BE-{insurer or '000'}" if source == "IO" else source


def _fault(status: etree._Element, fault_code: str, source: str, message: str,
           details: list[tuple[str, str, str | None, str]]) -> None:
    """``StatusDetail/Fault`` (``urn:be:cin:types:v1`` FaultType): FaultCode, FaultSource, Message,
    Details/Detail (DetailCode, DetailSource, Location?, Message), messages with ``xml:lang``."""
    detail = etree.SubElement(status, _STATUS_DETAIL)
    fault = etree.SubElement(detail, "Fault", nsmap={"t": CIN_TYPES, "xsi": XSI})
    fault.set(_XSI_TYPE, "t:FaultType")
    etree.SubElement(fault, _T["FaultCode"]).text = fault_code
    etree.SubElement(fault, _T["FaultSource"]).text = source
    etree.SubElement(fault, _T["Message"], {XML_LANG: "en"}).text = message
    all_details = etree.SubElement(fault, _T["Details"])
    for code, detail_source, location, text in details:
        one = etree.SubElement(all_details, _T["Detail"])
        etree.SubElement(one, _T["DetailCode"]).text = code
        etree.SubElement(one, _T["DetailSource"]).text = detail_source
        if location:
            etree.SubElement(one, _T["Location"]).text = location
        etree.SubElement(one, _T["Message"], {XML_LANG: "en"}).text = text


def _response(in_response_to: str, issuer: str, nsmap: dict[str | None, str],
              response_id: str | None = None) -> etree._Element:
    root = etree.Element(_RESPONSE, nsmap=nsmap)
    root.set("ID", response_id or f"_{secrets.token_hex(16)}")
    if in_response_to:
        root.set("InResponseTo", in_response_to)
    root.set("IssueInstant", _now())
    root.set("Version", "2.0")
    etree.SubElement(root, _ISSUER).text = issuer
    return root


def error_response(in_response_to: str, error: AssurabilityError) -> etree._Element:
    root = _response(in_response_to, nippin.ATTRIBUTE_AUTHORITY, {"samlp": SAMLP, "saml": SAML})
    status = etree.SubElement(root, _q(SAMLP, "Status"))
    default = ("Requester" if error.requester_error else "Responder", "AttributeQueryError", "INPUT_ERROR",
               "MYCARENET")
    top, sub, fault_code, source = _CATALOGUE.get(error.code, default)
    source = _source(source, error.insurer)
    code = etree.SubElement(status, _q(SAMLP, "StatusCode"), Value=f"{STATUS}:{top}")
    etree.SubElement(code, _q(SAMLP, "StatusCode"), Value=f"{CIN_STATUS}:{sub}")
    message = _REAL_MESSAGE.get(error.code, error.message)
    detail_source = "" if error.code in _NO_DETAIL_SOURCE else source
    _fault(status, fault_code, source, message, [(error.code, detail_source, nippin.location(error), message)])
    return root


def _skeleton() -> etree._Element:
    """The fixed part of every assertion (values left empty, attributes in their order), inside a Response
    declaring the answer's prefixes: a copy of it (lxml's, deep, at C speed) is what :func:`_shaped` completes;
    appended to an answer, a copy's namespace declarations are the answer's own and go."""
    holder = etree.Element(_RESPONSE, nsmap=_ANSWER_NSMAP)
    el = etree.SubElement(holder, _ASSERTION, ID="", IssueInstant="", Version="2.0")
    etree.SubElement(el, _ISSUER)
    subject = etree.SubElement(el, _q(SAML, "Subject"))
    etree.SubElement(subject, _q(SAML, "NameID"), Format="")
    confirmation = etree.SubElement(subject, _q(SAML, "SubjectConfirmation"), Method=nippin.CONFIRMATION_METHOD)
    etree.SubElement(confirmation, _q(SAML, "SubjectConfirmationData"), NotBefore="", NotOnOrAfter="")
    advice = etree.SubElement(el, _q(SAML, "Advice"))
    advice.set(_XSI_TYPE, "ext:AdviceType")
    etree.SubElement(advice, _q(EXT, "AssertionType"))
    return el


_SKELETON = _skeleton()
# lxml's copy of an element is a deep one, its subtree whole (``copy.deepcopy`` without the memo's cost).
_copy = etree._Element.__copy__


def _ids(count: int) -> list[str]:
    """``count`` fresh IDs, each ``_`` and 128 random bits (the OS's, as :func:`secrets.token_hex`), in
    one read."""
    pool = os.urandom(16 * count).hex()
    return [f"_{pool[i:i + 32]}" for i in range(0, 32 * count, 32)]


def _echo(facet: FacetRequest) -> etree._Element:
    """The Advice's echo of ``facet``."""
    echoed = etree.Element(_FACET, id=facet.id, nsmap={"ext": EXT})
    for dim, value in facet.dimensions:
        etree.SubElement(echoed, "Dimension", id=dim).text = value
    return echoed


# An assertion's attributes as a skeleton is shaped: (name, XML Schema type, how many values) of each.
_Shape = tuple[tuple[str, str, int], ...]


@functools.lru_cache(maxsize=1024)
def _shaped(kind: str, shape: _Shape) -> etree._Element:
    """The skeleton of an assertion of type ``kind`` whose attributes are shaped ``shape`` (the values left
    empty): what is written of it alike in every answer. Few shapes are answered (each type's attributes,
    a value left out or a list's length), each made once."""
    el = _copy(_SKELETON)
    el[2][0].text = kind
    if shape:
        statement = etree.SubElement(el, _ATTRIBUTE_STATEMENT)
        for name, type_, count in shape:
            attr = etree.SubElement(statement, _ATTRIBUTE, Name=name)
            for _ in range(count):
                etree.SubElement(attr, _ATTRIBUTE_VALUE).set(_XSI_TYPE, f"xs:{type_}")
    return el


def _assertion(parent: etree._Element, assertion_id: str, now: str, issuer: str, name_id: NameId, kind: str,
               echoed: etree._Element | None, attributes: tuple[Attribute, ...], period: tuple[str, str]) -> None:
    """One ``saml:Assertion`` under ``parent``: a copy of its skeleton (:func:`_shaped`) with
    ``assertion_id``, the instant ``now``, ``issuer``, the subject as asked, ``period`` (first day, first
    day after, written) in its SubjectConfirmationData, an Advice naming its type ``kind`` and echoing the
    facet (a copy of ``echoed``), its attributes' values. The copy joins the answer before it is filled in
    (its namespaces are then settled once)."""
    el = _copy(_shaped(kind, tuple((a.name, a.type, len(a.values)) for a in attributes)))
    parent.append(el)
    el.set("ID", assertion_id)
    el.set("IssueInstant", now)
    issuer_el, subject, advice = el[0], el[1], el[2]
    issuer_el.text = issuer
    written_id, confirmation = subject
    written_id.set("Format", name_id.format)
    written_id.text = name_id.value
    data = confirmation[0]
    data.set("NotBefore", period[0])
    data.set("NotOnOrAfter", period[1])
    if echoed is not None:
        advice.append(_copy(echoed))
    if attributes:
        values = [value for attribute in attributes for value in attribute.values]
        for av, value in zip(el[3].iter(_ATTRIBUTE_VALUE), values, strict=True):
            av.text = value


@functools.lru_cache(maxsize=256)
def _technical_status(warning: bool, kinds: tuple[str, ...]) -> str:
    status = etree.Element(_q(SUPPORT, "Status"), nsmap={"s": SUPPORT},
                           code="WARNING" if warning else "SUCCESS", encryptionRequired="false")
    for kind in kinds:
        step = kind.removeprefix(f"{nippin.NIPPIN}:").replace(":", ".")
        etree.SubElement(status, _STEP, name=f"Response.assertion.{step}.general", status="SUCCESS", location="")
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    raw = etree.tostring(status, encoding="UTF-8", xml_declaration=True)
    return base64.b64encode(packer.compress(raw) + packer.flush()).decode()


def technical_status(answer: Answer, kinds: list[str]) -> str:
    """The ``technicalAssertion:status`` value: as in real answers, a raw-deflated, base64 ``Status`` of
    ``urn:be:cin:nippin:memberData:support:v2`` (its code, and one ``Step`` per assertion type
    answered, ``kinds``). What the steps are called is the sandbox's own: clients treat the value as opaque.
    It depends on nothing else, so it is made once per (code, types answered)."""
    return _technical_status(bool(answer.warnings), tuple(dict.fromkeys(kinds)))


def _warnings(status: etree._Element, warnings: tuple[Warning, ...], insurer: str | None) -> None:
    details: list[tuple[str, str, str | None, str]] = []
    for warning in warnings:
        source = _source(_CATALOGUE.get(warning.code, ("", "", "", "MYCARENET"))[3], insurer)
        details.append((warning.code, source, None, warning.message))
    _fault(status, "WARNING", details[0][1], warnings[0].message, details)


def answer_response(in_response_to: str, answer: Answer, name_id: NameId,
                    facets: tuple[FacetRequest, ...]) -> etree._Element:
    """The answer to a query naming its subject ``name_id`` and asking ``facets`` (the technical
    assertion echoes the first)."""
    issuer = f"urn:be:cin:io:{answer.insurer or '000'}"
    *assertion_ids, technical_id, response_id = _ids(len(answer.assertions) + 2)
    root = _response(in_response_to, issuer, _ANSWER_NSMAP, response_id)
    status = etree.SubElement(root, _STATUS)
    top = etree.SubElement(status, _STATUS_CODE, Value=f"{STATUS}:Success")
    if answer.warnings:
        etree.SubElement(top, _STATUS_CODE, Value=f"{CIN_STATUS}:PartialAnswer")
        _warnings(status, answer.warnings, answer.insurer)
    now = root.get("IssueInstant") or _now()
    whole = (_midnight(answer.start), _midnight(answer.end))
    echoes: dict[int, etree._Element] = {}  # by the facet asked (the same object answers every assertion of it)

    def echo(facet: FacetRequest | None) -> etree._Element | None:
        if facet is None:
            return None
        echoed = echoes.get(id(facet))
        if echoed is None:
            echoed = echoes[id(facet)] = _echo(facet)
        return echoed

    kinds = []
    for assertion_id, one in zip(assertion_ids, answer.assertions, strict=True):
        kind, attributes = nippin.assertion(one.facts)
        kinds.append(kind)
        facts = one.facts
        period = (_midnight(facts.start), _midnight(facts.after)) if isinstance(facts, PeriodFacts) else whole
        _assertion(root, assertion_id, now, issuer, name_id, kind, echo(one.facet), attributes, period)
    technical = (Attribute(f"{TECHNICAL}:status", (technical_status(answer, kinds),)),
                 Attribute(f"{TECHNICAL}:version", (TECHNICAL_VERSION,)))
    _assertion(root, technical_id, now, issuer, name_id, TECHNICAL, echo(facets[0] if facets else None),
               technical, whole)
    return root


# -- the service ------------------------------------------------------------------------------------
CONSULTATION_RESPONSE = _q(MD, "MemberDataConsultationResponse")
# The answer's prefixes, as the service has always written them (its Spyne days: soap11env, tns).
ENVELOPE_PREFIXES: dict[str | None, str] = {"soap11env": ns.SOAP11_ENV, "tns": MD}


def make_handler(memberdata: MemberData, limits: ParseLimits,
                 etee: sealed.Etee | None = None) -> Callable[[etree._Element, Call], etree._Element]:
    def consultation(payload: etree._Element, call: Call) -> etree._Element:
        """Answers a validated ``MemberDataConsultationRequest`` (SAML AttributeQuery in Detail)."""
        request = read_request(payload, CORE, PROTOCOL)
        detail, reply_to = sealed.open_detail(etee, request.detail, call)  # a sealed (ETEE) blob opened
        root, encoding = read_detail(detail, limits)
        query_id = root.get("ID") or ""
        try:
            query, name_id = read_query(root)
            # Only a NISS is a patient for the audit (a registration number is not recorded).
            call.audit.patient = query.subject.ssin
            answer = memberdata.consult(requester(call, request.claim), query)
        except AssurabilityError as exc:
            call.audit.detail = f"refused {exc.code}"
            saml = error_response(query_id, exc)
        else:
            call.audit.patient = answer.ssin
            call.audit.detail = answer.audit_detail
            saml = answer_response(query_id, answer, name_id, query.facets)
        body = etree.tostring(saml, encoding="UTF-8", xml_declaration=True)
        blob = sealed.answer_blob(etee, body, encoding, reply_to)
        return response_element(CONSULTATION_RESPONSE, CORE, PROTOCOL, request, blob)

    return consultation


def build(memberdata: MemberData, deps: EndpointDeps, etee: sealed.Etee | None = None) -> SoapEndpoint:
    limits = ParseLimits(max_bytes=MAX_BLOB)
    return build_element_endpoint("memberdata", make_handler(memberdata, limits, etee), "mycarenet-memberdata-v1.xsd",
                                  "mycarenet-memberdata-v1.wsdl", deps, prefixes=ENVELOPE_PREFIXES)
