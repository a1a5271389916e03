"""MemberData over SOAP: the MyCareNet commons v3 envelope (Spyne models mirroring
``xsd/mycarenet-commons-*-v3.xsd``) around a SAML 2.0 AttributeQuery / Response in the Detail blob.

The blob is decoded (ContentEncoding ``none`` or ``deflate``), parsed by the hardened parser, read
into a :class:`~mycarenet_ic.services.memberdata.Query`; the answer is a ``samlp:Response`` whose
assertions are each signed by the service (enveloped XML-DSig), encoded the way the request was.
Query errors are answered as the real service does: a SAML error status with the catalogue code.
"""

from __future__ import annotations

import datetime as dt
import secrets

from lxml import etree
from spyne import ServiceBase, rpc

from mycarenet_ic.domain.assurability import AssurabilityError
from mycarenet_ic.errors import SchemaViolation
from mycarenet_ic.security.parser import ParseLimits
from mycarenet_ic.security.wssec import Signer
from mycarenet_ic.services.memberdata import (
    Answer,
    AssertionFacts,
    FacetRequest,
    MemberData,
    Query,
    Requester,
)
from mycarenet_ic.soap.commons import (
    MAX_BLOB,
    claimed_provider,
    claimed_ssin,
    commons_models,
    read_detail,
    send_response,
)
from mycarenet_ic.soap.endpoint import EndpointDeps, SoapEndpoint
from mycarenet_ic.soap.service import build_endpoint, call_of

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


COMMONS = commons_models(CORE, PROTOCOL)
SendRequestType = COMMONS.SendRequestType
SendResponseType = COMMONS.SendResponseType


# -- reading the AttributeQuery ---------------------------------------------------------------------
def _q(ns: str, local: str) -> str:
    return f"{{{ns}}}{local}"


def _day(text: str | None, code: str, message: str, where: str) -> dt.date:
    if not text:
        raise AssurabilityError(code, message, where)
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).date()
    except ValueError:
        try:
            return dt.date.fromisoformat(text[:10])
        except ValueError:
            raise AssurabilityError(code, message, where) from None


def read_query(root: etree._Element) -> Query:
    """A SAML AttributeQuery as a :class:`Query`; missing or malformed parts as catalogue errors."""
    if root.tag != _q(SAMLP, "AttributeQuery"):
        raise SchemaViolation("The Detail blob must hold a SAML 2.0 samlp:AttributeQuery.")
    aq = "*:AttributeQuery"
    if root.find(_q(SAML, "Attribute")) is not None:
        raise AssurabilityError("FORBIDDEN_ATTRIBUTES", "Attributes are not allowed in request", f"{aq}/*:Attribute")
    issuer = root.find(_q(SAML, "Issuer"))
    if issuer is None:
        raise AssurabilityError("MISSING_ISSUER_TAG", "Missing Issuer tag", aq)
    if not issuer.get("Format"):
        raise AssurabilityError("MISSING_ISSUER_FORMAT", "Missing issuer format", f"{aq}/*:Issuer")
    if issuer.get("Format") != "urn:be:cin:nippin:nihii11":
        raise AssurabilityError("INVALID_ISSUER_FORMAT", "Invalid Format attribute value for Issuer",
                                f"{aq}/*:Issuer/@Format")
    issuer_nihii = (issuer.text or "").strip()
    if not (issuer_nihii.isdigit() and len(issuer_nihii) in (8, 11)):
        raise AssurabilityError("INVALID_ISSUER_VALUE", "Invalid issuer", f"{aq}/*:Issuer")
    extensions = root.find(_q(SAMLP, "Extensions"))
    if extensions is None:
        raise AssurabilityError("MISSING_EXTENSIONS_TAG", "Missing Extensions tag", aq)
    xsi_type = extensions.get(_q(XSI, "type")) or ""
    prefix, _, local = xsi_type.rpartition(":")
    if local != "ExtensionsType" or extensions.nsmap.get(prefix or None) != EXT:
        raise AssurabilityError("MISSING_OR_BAD_EXTENSIONS_TYPE", "Bad Extensions type",
                                f"{aq}/*:Extensions/@xsi:type")
    facets = tuple(
        FacetRequest(f.get("id") or "",
                     tuple((d.get("id") or "", (d.text or "").strip()) for d in f.findall("Dimension")))
        for f in extensions.findall(_q(EXT, "Facet")))
    subject = root.find(_q(SAML, "Subject"))
    name_id = subject.find(_q(SAML, "NameID")) if subject is not None else None
    if name_id is None or subject is None:
        raise AssurabilityError("MISSING_NAMEID", "Missing NameId", f"{aq}/*:Subject")
    if not name_id.get("Format"):
        raise AssurabilityError("MISSING_NAMEID_FORMAT", "Missing Format attribute for NameId",
                                f"{aq}/*:Subject/*:NameID")
    confirmation = subject.find(_q(SAML, "SubjectConfirmation"))
    if confirmation is None:
        raise AssurabilityError("MISSING_SUBJECT_CONFIRMATION_TAG", "Missing subject confirmation tag",
                                f"{aq}/*:Subject")
    if confirmation.get("Method") != "urn:be:cin:nippin:memberIdentification":
        raise AssurabilityError("INVALID_SUBJECT_CONFIRMATION_METHOD_VALUE",
                                "Invalid subject confirmation method value",
                                f"{aq}/*:Subject/*:SubjectConfirmation/@Method")
    data = confirmation.find(_q(SAML, "SubjectConfirmationData"))
    where = f"{aq}/*:Subject/*:SubjectConfirmation/*:SubjectConfirmationData"
    if data is None:
        raise AssurabilityError("MISSING_SUBJECT_CONFIRMATION_DATA_TAG", "Missing subject confirmation Data tag",
                                f"{aq}/*:Subject/*:SubjectConfirmation")
    start = _day(data.get("NotBefore"), "EMPTY_STARTDATE", "The Start Date is missing", where + "/@NotBefore")
    end = _day(data.get("NotOnOrAfter"), "EMPTY_ENDDATE", "The End Date is missing", where + "/@NotOnOrAfter")
    return Query(root.get("ID") or "", issuer_nihii, name_id.get("Format") or "", name_id.text or "", start, end,
                 facets)


# -- writing the Response ---------------------------------------------------------------------------
# Catalogue code → (SAML sub-status, FaultCode, FaultSource); the rest: AttributeQueryError, INPUT_ERROR.
_ERRORS = {
    "CROSSCHECK_ISSUER": ("RequestError", "VALIDATION_ERROR", "MYCARENET"),
    "UNAUTHORIZED_FACET": ("AttributeQueryError", "AUTHORIZATION_ERROR", "MYCARENET"),
    "START_DATE_IN_FUTURE": ("InputError", "INPUT_ERROR", "MYCARENET"),
    "INVALID_PERIOD_FOR_SECTOR": ("InputError", "INPUT_ERROR", "MYCARENET"),
    "PERIOD_TOO_FAR_IN_PAST": ("InputError", "INPUT_ERROR", "MYCARENET"),
    "UNKNOWN_NISS_ROUTING": ("InputError", "INPUT_ERROR", "MYCARENET"),
    "BO_UNKNOWN_NISS": ("InternalError", "INPUT_ERROR", "IO"),
    "BO_UNKNOWN_REGNBR": ("InternalError", "INPUT_ERROR", "IO"),
    "MISMATCHED_CONTACTTYPE": ("AttributeQueryError", "INPUT_ERROR", "IO"),
}


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _midnight(day: dt.date) -> str:
    return f"{day.isoformat()}T00:00:00Z"


def _fault(status: etree._Element, fault_code: str, source: str, code: str, message: str, location: str | None,
           message_lang: str = "en") -> None:
    detail = etree.SubElement(status, _q(SAMLP, "StatusDetail"))
    fault = etree.SubElement(detail, "Fault", nsmap={"t": CIN_TYPES, "xsi": XSI})
    fault.set(_q(XSI, "type"), "t:FaultType")
    etree.SubElement(fault, _q(CIN_TYPES, "FaultCode")).text = fault_code
    etree.SubElement(fault, _q(CIN_TYPES, "FaultSource")).text = source
    etree.SubElement(fault, _q(CIN_TYPES, "Message"), lang=message_lang).text = message
    one = etree.SubElement(etree.SubElement(fault, _q(CIN_TYPES, "Details")), _q(CIN_TYPES, "Detail"))
    etree.SubElement(one, _q(CIN_TYPES, "DetailCode")).text = code
    etree.SubElement(one, _q(CIN_TYPES, "DetailSource")).text = source
    if location:
        etree.SubElement(one, _q(CIN_TYPES, "Location")).text = location
    etree.SubElement(one, _q(CIN_TYPES, "Message"), lang=message_lang).text = message


def _response(in_response_to: str, issuer: str) -> etree._Element:
    root = etree.Element(_q(SAMLP, "Response"), nsmap={"samlp": SAMLP, "saml": SAML})
    root.set("ID", f"_{secrets.token_hex(16)}")
    if in_response_to:
        root.set("InResponseTo", in_response_to)
    root.set("Version", "2.0")
    root.set("IssueInstant", _now())
    etree.SubElement(root, _q(SAML, "Issuer")).text = issuer
    return root


def error_response(in_response_to: str, error: AssurabilityError) -> etree._Element:
    root = _response(in_response_to, "urn:be:cin:nippin:aa")
    status = etree.SubElement(root, _q(SAMLP, "Status"))
    sub, fault_code, source = _ERRORS.get(error.code, ("AttributeQueryError", "INPUT_ERROR", "MYCARENET"))
    top = etree.SubElement(status, _q(SAMLP, "StatusCode"),
                           Value=f"{STATUS}:{'Requester' if error.requester_error else 'Responder'}")
    etree.SubElement(top, _q(SAMLP, "StatusCode"), Value=f"{CIN_STATUS}:{sub}")
    etree.SubElement(status, _q(SAMLP, "StatusMessage")).text = error.message
    _fault(status, fault_code, source, error.code, error.message, error.location)
    return root


def _assertion(facts: AssertionFacts, answer: Answer, issuer: str, signer: Signer) -> etree._Element:
    el = etree.Element(_q(SAML, "Assertion"), nsmap={"saml": SAML, "ext": EXT, "xsi": XSI, "xs": XS})
    el.set("ID", f"_{secrets.token_hex(16)}")
    el.set("IssueInstant", _now())
    el.set("Version", "2.0")
    issuer_el = etree.SubElement(el, _q(SAML, "Issuer"))
    issuer_el.text = issuer
    subject = etree.SubElement(el, _q(SAML, "Subject"))
    etree.SubElement(subject, _q(SAML, "NameID"), Format="urn:be:fgov:person:ssin").text = answer.ssin
    etree.SubElement(el, _q(SAML, "Conditions"), NotBefore=_midnight(answer.start),
                     NotOnOrAfter=_midnight(answer.end))
    advice = etree.SubElement(el, _q(SAML, "Advice"))
    advice.set(_q(XSI, "type"), "ext:AdviceType")
    etree.SubElement(advice, _q(EXT, "AssertionType")).text = facts.type
    if facts.facet is not None:
        facet = etree.SubElement(advice, _q(EXT, "Facet"), id=facts.facet.id)
        for dim, value in facts.facet.dimensions:
            etree.SubElement(facet, "Dimension", id=dim).text = value
    if facts.attributes:
        statement = etree.SubElement(el, _q(SAML, "AttributeStatement"))
        for attribute in facts.attributes:
            attr = etree.SubElement(statement, _q(SAML, "Attribute"), Name=attribute.name)
            for value in attribute.values:
                av = etree.SubElement(attr, _q(SAML, "AttributeValue"))
                av.set(_q(XSI, "type"), "xs:string")
                av.text = value
    return signer.sign_enveloped(el, after=issuer_el)


def answer_response(in_response_to: str, answer: Answer, signer: Signer) -> etree._Element:
    issuer = f"urn:be:cin:io:{answer.insurer or '000'}"
    root = _response(in_response_to, issuer)
    status = etree.SubElement(root, _q(SAMLP, "Status"))
    top = etree.SubElement(status, _q(SAMLP, "StatusCode"), Value=f"{STATUS}:Success")
    if answer.warnings:
        etree.SubElement(top, _q(SAMLP, "StatusCode"), Value=f"{CIN_STATUS}:PartialAnswer")
        first = answer.warnings[0]
        etree.SubElement(status, _q(SAMLP, "StatusMessage")).text = first.message
        _fault(status, "WARNING", "MYCARENET", first.code, first.message, None)
    for facts in answer.assertions:
        root.append(_assertion(facts, answer, issuer, signer))
    return root


# -- the service ------------------------------------------------------------------------------------
def make_service(memberdata: MemberData, signer: Signer, limits: ParseLimits) -> type[ServiceBase]:
    class MemberDataService(ServiceBase):
        @rpc(SendRequestType, _body_style="bare", _returns=SendResponseType,
             _in_message_name="MemberDataConsultationRequest", _out_message_name="MemberDataConsultationResponse")
        def memberDataConsultation(ctx, request):  # noqa: N805
            """Handles ``MemberDataConsultationRequest`` (SAML AttributeQuery in Detail)."""
            call = call_of(ctx)
            root, encoding = read_detail(request.Detail, limits)
            query_id = root.get("ID") or ""
            nihii, quality = claimed_provider(request.CommonInput)
            try:
                query = read_query(root)
                if query.name_id_format == "urn:be:fgov:person:ssin" or "@" in query.name_id:
                    call.audit.patient = query.name_id.partition("@")[0].strip() or None
                answer = memberdata.consult(
                    Requester(call.caller, nihii, quality, claimed_ssin(request.CommonInput)), query)
            except AssurabilityError as exc:
                call.audit.detail = f"refused {exc.code}"
                saml = error_response(query_id, exc)
            else:
                call.audit.patient = answer.ssin
                call.audit.detail = answer.audit_detail
                saml = answer_response(query_id, answer, signer)
            return send_response(COMMONS, request, etree.tostring(saml, encoding="UTF-8", xml_declaration=True),
                                 encoding)

    return MemberDataService


def build(memberdata: MemberData, deps: EndpointDeps) -> SoapEndpoint:
    limits = ParseLimits(max_bytes=MAX_BLOB)
    return build_endpoint("memberdata", [make_service(memberdata, deps.signer, limits)], MD,
                          "mycarenet-memberdata-v1.xsd", "mycarenet-memberdata-v1.wsdl", deps)
