"""MemberData fidelity (issue 11): official-shape requests, sent over HTTP to the running sandbox, must get
the answer shapes production gives for the same situation.

Nothing here comes from the service's code: the requests are raw XML written from the public element
names (commons v3 envelope, SAML 2.0 AttributeQuery with the CIN extension), and the answers are
validated against schemas written for this suite (``tests/fidelity/xsd/memberdata-*.xsd``), not
against ``xsd/``. The expectations are data: what real acceptance answers (public, ehealth-pyconnector
``tests/data/faked``) carry per assertion type — attribute names and their ``xsi:type`` —, their status
paths and fault fields, and for each README MemberData scenario which assertion types come back.
Attributes the sandbox adds where no real answer shows one (README: "ours") are listed apart, so that
an attribute that is neither real nor documented fails.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.sandbox import Sandbox
from mycarenet_ic.security.wssec import MemoryReplayCache, Signer, Verifier
from tests import support

pytestmark = pytest.mark.integration

SCHEMA = etree.XMLSchema(etree.parse(str(Path(__file__).parent / "xsd" / "memberdata-saml-protocol.xsd")))
MD = "urn:be:fgov:ehealth:mycarenet:memberdata:protocol:v1"
P3 = "urn:be:fgov:ehealth:mycarenet:commons:protocol:v3"
C3 = "urn:be:fgov:ehealth:mycarenet:commons:core:v3"
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
EXT = "urn:be:cin:nippin:memberdata:saml:extension"
CIN = "urn:be:cin:types:v1"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
ST = "urn:oasis:names:tc:SAML:2.0:status"
SUB = "urn:be:cin:nippin:SAML:status"
N = "urn:be:cin:nippin"
INS = f"{N}:insurability"
SSIN_FORMAT = "urn:be:fgov:person:ssin"

# -- what real answers carry, per assertion type: attribute name → xsi:type ---------------------------------
REAL: dict[str, dict[str, str]] = {
    f"{INS}:patientData": {SSIN_FORMAT: "xs:string", f"{N}:careReceiver:name": "xs:string",
                           f"{N}:careReceiver:firstName": "xs:string", f"{N}:careReceiver:birthDate": "xs:date",
                           f"{N}:careReceiver:gender": "xs:string", f"{N}:careReceiver:deceasedDate": "xs:date"},
    f"{INS}:period": {f"{N}:careReceiver:registrationNumber": "xs:string", f"{N}:careReceiver:mutuality": "xs:string",
                      f"{N}:cb1": "xs:string", f"{N}:cb2": "xs:string", f"{N}:communicationDate": "xs:date",
                      f"{N}:paymentApproval": "xs:string"},
    f"{INS}:payment": {f"{N}:payment:byIO": "xs:boolean"},
    f"{INS}:generalSituation": {f"{N}:generalSituation:event": "xs:string",
                                f"{N}:generalSituation:transfer:date": "xs:date"},
    f"{N}:hospitalisation": {f"{N}:hospitalisation:hospital:nihii11": "xs:string",
                             f"{N}:hospitalisation:service": "xs:string",
                             f"{N}:hospitalisation:admissionDate": "xs:date"},
    f"{N}:medicalHouse": {f"{N}:medicalHouse:nihii11": "xs:string", f"{N}:medicalHouse:type": "xs:string",
                          f"{N}:medicalHouse:start": "xs:date"},
    f"{N}:globalMedicalFile": {f"{N}:globalMedicalFile:hcp:nihii11": "xs:string",
                               f"{N}:globalMedicalFile:hcp:name": "xs:string",
                               f"{N}:globalMedicalFile:hcp:firstName": "xs:string"},
    f"{N}:palliativeStatus": {f"{N}:palliativeStatus:startDate": "xs:date"},
    f"{N}:technicalAssertion": {f"{N}:technicalAssertion:status": "xs:string",
                                f"{N}:technicalAssertion:version": "xs:string"},
}
# What every real answer of that type carried.
ALWAYS: dict[str, set[str]] = {
    f"{INS}:patientData": {SSIN_FORMAT, f"{N}:careReceiver:name", f"{N}:careReceiver:firstName",
                           f"{N}:careReceiver:birthDate", f"{N}:careReceiver:gender"},
    f"{INS}:period": {f"{N}:careReceiver:registrationNumber", f"{N}:careReceiver:mutuality", f"{N}:cb1",
                      f"{N}:cb2", f"{N}:communicationDate"},
    f"{INS}:payment": {f"{N}:payment:byIO"},
    f"{INS}:generalSituation": {f"{N}:generalSituation:event"},
    f"{N}:technicalAssertion": {f"{N}:technicalAssertion:status", f"{N}:technicalAssertion:version"},
}
# The sandbox's own, where no real answer shows one (README "ours"): name → xsi:type.
OURS: dict[str, dict[str, str]] = {
    f"{INS}:period": {f"{N}:paymentApproval:checkCode": "xs:string"},
    f"{INS}:payment": {f"{N}:payment:regime": "xs:string", f"{N}:payment:exceptionToBan": "xs:boolean",
                       f"{N}:maf:year": "xs:string", f"{N}:payment:chronicCareFlatFee": "xs:boolean"},
    f"{INS}:status": {f"{INS}:status:code": "xs:string", f"{INS}:status:requestDate": "xs:date",
                      f"{INS}:status:coverageEndDate": "xs:date", f"{N}:otherMutuality": "xs:string"},
    f"{INS}:generalSituation": {f"{N}:generalSituation:closureReason": "xs:string",
                                f"{N}:generalSituation:transfer:oldMutuality": "xs:string",
                                f"{N}:generalSituation:transfer:newMutuality": "xs:string",
                                f"{N}:generalSituation:transfer:affiliationDate": "xs:date"},
    f"{N}:medicalHouse": {f"{N}:medicalHouse:end": "xs:date"},
    f"{N}:carePath": {f"{N}:carePath:type": "xs:string", f"{N}:carePath:physician:nihii11": "xs:string",
                      f"{N}:carePath:medicalHouse:nihii11": "xs:string",
                      f"{N}:carePath:specialist:nihii11": "xs:string", f"{N}:carePath:rights:startDate": "xs:date",
                      f"{N}:carePath:contract:endDate": "xs:date", f"{N}:carePath:rights:endDate": "xs:date"},
    f"{N}:chronicCondition": {f"{N}:chronicCondition:year": "xs:string"},
    f"{N}:referencePharmacy": {f"{N}:referencePharmacy:pharmacy:nihii8": "xs:string",
                               f"{N}:referencePharmacy:agreementDate": "xs:date"},
    f"{N}:globalMedicalFile": {f"{N}:globalMedicalFile:startDate": "xs:date"},
}

# -- requesters (demo scenario) ----------------------------------------------------------------------------
DOCTOR = (Quality.DOCTOR, support.DOCTOR_SSIN, support.DOCTOR_NIHII)
PHARMACIST = (Quality.PHARMACIST, support.PHARMACIST_SSIN, "61229665000")
HOSPITAL = (Quality.HOSPITAL, None, "71025477000")       # AZ Sandbox Gent (De Smet stays in UZ Leuven)
PHYSIO = (Quality.PHYSIOTHERAPIST, "78111302143", "51218572528")

TODAY = dt.date.today()
YESTERDAY = TODAY - dt.timedelta(days=1)
MONTH = (TODAY - dt.timedelta(days=30), YESTERDAY)
INFORMATION = [(INS, [("requestType", "information"), ("contactType", "other")])]


def attribute_query(issuer: str, name_format: str, name_id: str, not_before: str, not_on_or_after: str,
                    facets: list[tuple[str, list[tuple[str, str]]]]) -> bytes:
    """A SAML 2.0 AttributeQuery with the CIN extension, written from the public element names."""
    facet_xml = "".join(f'<ext:Facet id="{fid}">' + "".join(f'<Dimension id="{d}">{v}</Dimension>' for d, v in dims)
                        + "</ext:Facet>" for fid, dims in facets)
    now = dt.datetime.now().replace(microsecond=0).isoformat()
    return (f'<samlp:AttributeQuery xmlns:samlp="{SAMLP}" xmlns:saml="{SAML}" xmlns:ext="{EXT}" '
            f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" ID="_{secrets.token_hex(12)}" Version="2.0" '
            f'IssueInstant="{now}"><saml:Issuer Format="urn:be:cin:nippin:nihii11">{issuer}</saml:Issuer>'
            f'<samlp:Extensions xsi:type="ext:ExtensionsType">{facet_xml}</samlp:Extensions>'
            f'<saml:Subject><saml:NameID Format="{name_format}">{name_id}</saml:NameID>'
            '<saml:SubjectConfirmation Method="urn:be:cin:nippin:memberIdentification">'
            f'<saml:SubjectConfirmationData NotBefore="{not_before}" NotOnOrAfter="{not_on_or_after}"/>'
            "</saml:SubjectConfirmation></saml:Subject></samlp:AttributeQuery>").encode()


def consultation(blob: bytes, quality: Quality, ssin: str | None, nihii: str, patient: str) -> str:
    """``MemberDataConsultationRequest`` (commons protocol v3 types), written from the public names."""
    person = f"<c:PhysicalPerson><c:Ssin>{ssin}</c:Ssin></c:PhysicalPerson>" if ssin else ""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    return (f'<md:MemberDataConsultationRequest xmlns:md="{MD}" xmlns:p="{P3}" xmlns:c="{C3}" '
            f'Id="_{secrets.token_hex(8)}" IssueInstant="{now}"><p:CommonInput>'
            "<c:Request><c:IsTest>true</c:IsTest></c:Request><c:Origin><c:Package><c:Name>fidelity</c:Name>"
            "<c:License><c:Username>u</c:Username><c:Password>p</c:Password></c:License></c:Package>"
            f"<c:CareProvider><c:Nihii><c:Quality>{quality.value}</c:Quality><c:Value>{nihii}</c:Value></c:Nihii>"
            f"{person}</c:CareProvider></c:Origin><c:InputReference>fid-1</c:InputReference></p:CommonInput>"
            f"<p:Routing><c:CareReceiver><c:Ssin>{patient}</c:Ssin></c:CareReceiver>"
            f"<c:ReferenceDate>{TODAY}</c:ReferenceDate></p:Routing>"
            f'<p:Detail ContentType="text/xml" ContentEncoding="none">{base64.b64encode(blob).decode()}</p:Detail>'
            "</md:MemberDataConsultationRequest>")


@dataclass(frozen=True)
class Case:
    """One situation: the query, and what production answers for the same situation."""

    name: str
    who: tuple[Quality, str | None, str]
    subject: str
    period: tuple[dt.date, dt.date] = MONTH
    facets: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=lambda: INFORMATION)
    status: tuple[str, ...] = (f"{ST}:Success",)
    types: dict[str, int] = field(default_factory=dict)      # assertion type → how many (technical added)
    values: dict[str, dict[str, list[str]]] = field(default_factory=dict)   # checked attribute values
    absent: dict[str, set[str]] = field(default_factory=dict)   # attributes that must not be there
    name_format: str = SSIN_FORMAT
    warning: str | None = None


BASIC = {f"{INS}:patientData": 1, f"{INS}:period": 1, f"{INS}:payment": 1}   # a normal situation
CLOSED = {f"{INS}:patientData": 1, f"{INS}:payment": 1, f"{INS}:generalSituation": 1}
PHARMACIST_BASIC = {**BASIC, f"{INS}:status": 1}
PHARMACY_DAY = (YESTERDAY, YESTERDAY)
GS_EVENT = f"{N}:generalSituation:event"

CASES = [
    Case("normal situation (Peeters)", DOCTOR, "48031202166", types=BASIC),
    Case("by registration number (Peeters)", DOCTOR, "REG@101", types=BASIC,
         name_format="urn:be:cin:nippin:careReceiver:registrationNumber@mut"),
    Case("invoicing gets a payment approval (Peeters)", DOCTOR, "48031202166", types=BASIC,
         facets=[(INS, [("requestType", "invoicing"), ("contactType", "other")])],
         absent={f"{INS}:period": {f"{N}:paymentApproval:checkCode"}}),
    Case("preferential, third-party payer (Janssens)", DOCTOR, "52073002225", types=BASIC,
         values={f"{INS}:payment": {f"{N}:payment:byIO": ["true"]}}),
    Case("mutation 101 to 319 (Maes)", DOCTOR, "61110202116", (dt.date(2026, 5, 1), dt.date(2026, 8, 31)),
         status=(f"{ST}:Success", f"{SUB}:PartialAnswer"), warning="MUTATION",
         types={**BASIC, f"{INS}:period": 2, f"{INS}:generalSituation": 1},
         values={f"{INS}:generalSituation": {GS_EVENT: ["mutation"],
                                             f"{N}:generalSituation:transfer:date": ["2026-07-01"]}}),
    Case("several situations (Jacobs)", DOCTOR, "70011902212", (dt.date(2026, 3, 1), dt.date(2026, 10, 1)),
         types={**BASIC, f"{INS}:period": 3, f"{INS}:generalSituation": 1},
         values={f"{INS}:generalSituation": {GS_EVENT: ["severalSituations"]}}),
    Case("closed before: death (Lejeune)", DOCTOR, support.DECEASED, (dt.date(2026, 10, 1), dt.date(2026, 10, 31)),
         types=CLOSED, values={f"{INS}:generalSituation": {GS_EVENT: ["closedBefore"],
                                                            f"{N}:generalSituation:transfer:date": ["2026-09-14"]},
                               f"{INS}:patientData": {f"{N}:careReceiver:deceasedDate": ["2026-09-14"]}}),
    Case("closed before: mutation (Mertens)", DOCTOR, "75050502181", (dt.date(2026, 9, 1), dt.date(2026, 9, 30)),
         types=CLOSED, values={f"{INS}:generalSituation": {GS_EVENT: ["closedBefore"]}}),
    Case("closed before: unknown (Willems)", DOCTOR, "83092302227", (dt.date(2026, 6, 1), dt.date(2026, 6, 30)),
         types=CLOSED, values={f"{INS}:generalSituation": {GS_EVENT: ["closedBefore"]}}),
    Case("opened after (Claes)", DOCTOR, "90120102180", (dt.date(2026, 9, 1), dt.date(2026, 10, 15)),
         types=CLOSED,
         values={f"{INS}:generalSituation": {GS_EVENT: ["openedAfter"]}}),
    Case("pharmacist: double affiliation (Dubois)", PHARMACIST, "55101002131", PHARMACY_DAY, types=PHARMACIST_BASIC),
    Case("pharmacist: invoicing impossible (Lambert)", PHARMACIST, "79081502279", PHARMACY_DAY,
         facets=[(INS, [("requestType", "invoicing")])], types=PHARMACIST_BASIC,
         absent={f"{INS}:period": {f"{N}:paymentApproval"}}),
    Case("pharmacist: system problem (Goossens)", PHARMACIST, "44021402211", PHARMACY_DAY, types=PHARMACIST_BASIC),
    Case("medical house and palliative status (Wouters)", DOCTOR, "39060802118",
         facets=[*INFORMATION, (f"{N}:palliativeStatus", [])],
         types={**BASIC, f"{N}:medicalHouse": 1, f"{N}:palliativeStatus": 1},
         values={f"{N}:medicalHouse": {f"{N}:medicalHouse:type": ["Medical", "Nurse", "Kine"]}}),
    Case("hospitalised in another hospital (De Smet)", HOSPITAL, "68042702242", (YESTERDAY, YESTERDAY),
         facets=[(INS, [("requestType", "information"), ("contactType", "hospitalized")])],
         types={**BASIC, f"{N}:hospitalisation": 1},
         values={f"{N}:hospitalisation": {f"{N}:hospitalisation:hospital:nihii11": ["71009938000"]}}),
    Case("exception to the third-party-payer ban (Dupont)", DOCTOR, "46010302186", types=BASIC),
    Case("MAF years (Martin)", DOCTOR, "58032102205", (dt.date(2025, 12, 1), dt.date(2026, 1, 31)), types=BASIC),
    Case("care path with a medical house (Simon)", DOCTOR, "63070702174",
         facets=[(f"{N}:carePath", [("carePathType", "renalinsufficiency")])], types={f"{N}:carePath": 1}),
    Case("global medical file (Vermeulen)", DOCTOR, "12040302104", facets=[(f"{N}:globalMedicalFile", [])],
         types={f"{N}:globalMedicalFile": 1}),
]


@dataclass(frozen=True)
class ErrorCase:
    name: str
    who: tuple[Quality, str | None, str]
    subject: str
    facets: list[tuple[str, list[tuple[str, str]]]]
    status: tuple[str, str]
    fault: dict[str, str]        # FaultCode, FaultSource, DetailCode, DetailSource, Location (as real answers)
    not_before: str | None = None


REQUESTER = f"{ST}:Requester"
AQ_ERROR = (REQUESTER, f"{SUB}:AttributeQueryError")
FACETS = "*:AttributeQuery/*:Extensions/*:Facet"
ERRORS = [
    ErrorCase("NISS not 11 digits", DOCTOR, "4803120216", INFORMATION, AQ_ERROR,
              {"FaultCode": "INPUT_ERROR", "FaultSource": "MYCARENET", "DetailCode": "INVALID_INSS_FORMAT",
               "DetailSource": "MYCARENET", "Location": "*:AttributeQuery/*:Subject/*:NameID"}),
    ErrorCase("unknown facet", DOCTOR, "48031202166", [(f"{N}:someWeirdFacet", [])], AQ_ERROR,
              {"FaultCode": "INPUT_ERROR", "FaultSource": "MYCARENET", "DetailCode": "UNKNOWN_FACET",
               "DetailSource": "MYCARENET", "Location": f'{FACETS}[@id="{N}:someWeirdFacet"]'}),
    ErrorCase("unknown facet before a good one", DOCTOR, "48031202166", [(f"{N}:someWeirdFacet", []), *INFORMATION],
              AQ_ERROR, {"DetailCode": "UNKNOWN_FACET", "Location": f'{FACETS}[@id="{N}:someWeirdFacet"]'}),
    ErrorCase("unknown dimension", DOCTOR, "48031202166", [(INS, [("loremipsem", "loremipsem")])], AQ_ERROR,
              {"FaultCode": "INPUT_ERROR", "DetailCode": "INVALID_DIMENSION_ID",
               "Location": f'{FACETS}[@id="{INS}"]/*:Dimension[@id="loremipsem"]'}),
    ErrorCase("requestType not allowed", DOCTOR, "48031202166", [(INS, [("requestType", "loremipsem")])], AQ_ERROR,
              {"DetailCode": "UNALLOWED_REQUESTTYPE",
               "Location": f'{FACETS}[@id="{INS}"]/*:Dimension[@id="requestType"]'}),
    ErrorCase("care path for a physiotherapist", PHYSIO, "48031202166", [(f"{N}:carePath", [])], AQ_ERROR,
              {"FaultCode": "AUTHORIZATION_ERROR", "FaultSource": "MYCARENET", "DetailCode": "UNAUTHORIZED_FACET",
               "DetailSource": "", "Location": f'{FACETS}[@id="{N}:carePath"]'}),
    ErrorCase("unknown to the insurers", DOCTOR, "85100403749", INFORMATION, (f"{ST}:Responder", f"{SUB}:InputError"),
              {"FaultCode": "INPUT_ERROR", "FaultSource": "MYCARENET", "DetailCode": "UNKNOWN_NISS_ROUTING"}),
    ErrorCase("NotBefore a date, not an xs:dateTime", DOCTOR, "48031202166", INFORMATION, AQ_ERROR,
              {"FaultCode": "INPUT_ERROR", "DetailCode": "EMPTY_STARTDATE", "Location":
               "*:AttributeQuery/*:Subject/*:SubjectConfirmation/*:SubjectConfirmationData/@NotBefore"},
              not_before=f"{MONTH[0]}"),
]


@pytest.fixture(scope="module")
def verifier(sandbox: Sandbox) -> Verifier:
    return Verifier(sandbox.platform.trust, MemoryReplayCache())


@pytest.fixture(scope="module")
def signers(sandbox: Sandbox) -> dict[tuple[Any, ...], Signer]:
    return {who: Signer(sandbox.platform.pki.issue_holder(*who)) for who in (DOCTOR, PHARMACIST, HOSPITAL, PHYSIO)}


def _ask(sandbox: Sandbox, signers: dict[tuple[Any, ...], Signer], verifier: Verifier,
         who: tuple[Quality, str | None, str], query: bytes, patient: str) -> etree._Element:
    body = consultation(query, *who, patient)
    answer = support.post(sandbox.urls["memberdata"], support.to_bytes(support.signed(signers[who], body)))
    assert answer.status == 200 and answer.root is not None, answer.body[:300]
    payload = verifier.verify(answer.root).body[0]  # the envelope is signed by the service
    detail = payload.find(f"{{{P3}}}Return/{{{P3}}}Detail")
    assert detail is not None and detail.get("ContentEncoding") == "none"
    saml = etree.fromstring(base64.b64decode(detail.text or ""))
    assert SCHEMA.validate(saml), SCHEMA.error_log
    return saml


def _status(saml: etree._Element) -> tuple[str, ...]:
    return tuple(s.get("Value") or "" for s in saml.iter(f"{{{SAMLP}}}StatusCode"))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_answers_have_the_shape_of_real_answers(sandbox: Sandbox, signers: dict[tuple[Any, ...], Signer],
                                                verifier: Verifier, case: Case) -> None:
    subject = case.subject
    if subject.startswith("REG@"):
        file = sandbox.platform.affiliations.member_file("48031202166")
        assert file is not None
        subject = f"{file.periods[0].registration_number}@{subject[4:]}"
    start, end = case.period
    query = attribute_query(who_issuer(case.who), case.name_format, subject, f"{start}T00:00:00",
                            f"{end}T00:00:00", case.facets)
    saml = _ask(sandbox, signers, verifier, case.who, query, "48031202166")
    assert saml.findtext(f"{{{SAML}}}Issuer", "")[:-3] == "urn:be:cin:io:" and saml.findtext(
        f"{{{SAML}}}Issuer", "")[-3:] in {"100", "200", "300", "400", "500", "600", "900"}
    assert _status(saml) == case.status
    status = saml.find(f"{{{SAMLP}}}Status")
    assert status is not None and status.find(f"{{{SAMLP}}}StatusMessage") is None
    if case.warning:
        assert saml.findtext(f".//{{{CIN}}}DetailCode") == case.warning
        assert saml.findtext(f".//{{{CIN}}}FaultCode") == "WARNING"
    assertions = saml.findall(f"{{{SAML}}}Assertion")
    kinds = [a.findtext(f"{{{SAML}}}Advice/{{{EXT}}}AssertionType") for a in assertions]
    assert Counter(kinds) == Counter({**case.types, f"{N}:technicalAssertion": 1}), kinds
    assert kinds[-1] == f"{N}:technicalAssertion"
    asked = [fid for fid, _dims in case.facets]
    for assertion, kind in zip(assertions, kinds, strict=True):
        name_id = assertion.find(f"{{{SAML}}}Subject/{{{SAML}}}NameID")
        assert name_id is not None and (name_id.get("Format"), name_id.text) == (case.name_format, subject)
        data = assertion.find(f"{{{SAML}}}Subject/{{{SAML}}}SubjectConfirmation/{{{SAML}}}SubjectConfirmationData")
        assert data is not None and data.getparent().get("Method") == "urn:be:cin:nippin:memberIdentification"
        not_before, not_after = data.get("NotBefore") or "", data.get("NotOnOrAfter") or ""
        assert f"{start}T00:00:00" <= not_before <= not_after <= f"{end}T00:00:00"  # inside the query's period
        assert not_before < not_after or start == end
        assert assertion.find(f"{{{SAML}}}Advice/{{{EXT}}}Facet").get("id") in asked
        attributes: dict[str, list[str]] = {}
        for attribute in assertion.iter(f"{{{SAML}}}Attribute"):
            name = attribute.get("Name") or ""
            xsi = {v.get(XSI_TYPE) for v in attribute}
            known = REAL.get(kind or "", {}).get(name) or OURS.get(kind or "", {}).get(name)
            assert known is not None, f"{kind} carries {name}: neither in real answers nor documented as ours"
            assert xsi == {known}, (kind, name, xsi)
            attributes[name] = [v.text or "" for v in attribute]
        assert ALWAYS.get(kind or "", set()) <= set(attributes), (kind, set(attributes))
        for name, expected in case.values.get(kind or "", {}).items():
            assert attributes.get(name) == expected, (kind, name, attributes.get(name))
        assert not (case.absent.get(kind or "", set()) & set(attributes)), kind
        if kind == f"{INS}:period":
            assert attributes[f"{N}:communicationDate"] == [TODAY.isoformat()]  # the day of the query
            invoicing = ("requestType", "invoicing") in dict(case.facets).get(INS, [])
            if invoicing and case.who is DOCTOR:
                assert attributes[f"{N}:paymentApproval"]


def who_issuer(who: tuple[Quality, str | None, str]) -> str:
    return who[2]


@pytest.mark.parametrize("case", ERRORS, ids=[c.name for c in ERRORS])
def test_errors_have_the_shape_of_real_errors(sandbox: Sandbox, signers: dict[tuple[Any, ...], Signer],
                                              verifier: Verifier, case: ErrorCase) -> None:
    not_before = case.not_before or f"{MONTH[0]}T00:00:00"
    query = attribute_query(who_issuer(case.who), SSIN_FORMAT, case.subject, not_before, f"{MONTH[1]}T00:00:00",
                            case.facets)
    saml = _ask(sandbox, signers, verifier, case.who, query, "48031202166")
    assert saml.findtext(f"{{{SAML}}}Issuer") == "urn:be:cin:nippin:aa"
    assert _status(saml) == case.status
    assert saml.findall(f"{{{SAML}}}Assertion") == []
    status = saml.find(f"{{{SAMLP}}}Status")
    assert status is not None and status.find(f"{{{SAMLP}}}StatusMessage") is None
    fault = status.find(f"{{{SAMLP}}}StatusDetail/Fault")
    assert fault is not None and fault.get(XSI_TYPE, "").endswith(":FaultType")
    detail = fault.find(f"{{{CIN}}}Details/{{{CIN}}}Detail")
    assert detail is not None
    got = {"FaultCode": fault.findtext(f"{{{CIN}}}FaultCode"), "FaultSource": fault.findtext(f"{{{CIN}}}FaultSource"),
           **{k: detail.findtext(f"{{{CIN}}}{k}") or "" for k in ("DetailCode", "DetailSource", "Location")}}
    assert {k: got[k] for k in case.fault} == case.fault
    assert all(m.get(XML_LANG) for m in fault.iter(f"{{{CIN}}}Message"))


def test_the_fidelity_schema_refuses_what_real_answers_do_not_carry() -> None:
    """The suite's schemas can fail: a signature or Conditions in an assertion, a date typed as a string
    that is not one, a fault without its Message, are refused."""
    good = (f'<samlp:Response xmlns:samlp="{SAMLP}" xmlns:saml="{SAML}" xmlns:ext="{EXT}" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xs="http://www.w3.org/2001/XMLSchema" '
            'ID="_r" Version="2.0" IssueInstant="2026-01-07T08:24:04"><saml:Issuer>urn:be:cin:io:100</saml:Issuer>'
            f'<samlp:Status><samlp:StatusCode Value="{ST}:Success"/></samlp:Status>'
            '<saml:Assertion ID="_a" IssueInstant="2026-01-07T08:24:04" Version="2.0">'
            "<saml:Issuer>urn:be:cin:io:100</saml:Issuer>SIGNATURE<saml:Subject>"
            f'<saml:NameID Format="{SSIN_FORMAT}">48031202166</saml:NameID>'
            '<saml:SubjectConfirmation Method="urn:be:cin:nippin:memberIdentification">'
            '<saml:SubjectConfirmationData NotBefore="2025-12-31T00:00:00" NotOnOrAfter="2026-01-07T00:00:00"/>'
            '</saml:SubjectConfirmation></saml:Subject>CONDITIONS<saml:Advice xsi:type="ext:AdviceType">'
            f'<ext:AssertionType>{N}:palliativeStatus</ext:AssertionType><ext:Facet id="{N}:palliativeStatus"/>'
            f'</saml:Advice><saml:AttributeStatement><saml:Attribute Name="{N}:palliativeStatus:startDate">'
            '<saml:AttributeValue xsi:type="xs:date">DATE</saml:AttributeValue></saml:Attribute>'
            "</saml:AttributeStatement></saml:Assertion></samlp:Response>")

    def valid(**parts: str) -> bool:
        text = good
        for key, default in (("SIGNATURE", ""), ("CONDITIONS", ""), ("DATE", "2020-01-01")):
            text = text.replace(key, parts.get(key.lower(), default))
        return bool(SCHEMA.validate(etree.fromstring(text.encode())))

    assert valid()
    assert not valid(signature='<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"/>')
    assert not valid(conditions='<saml:Conditions NotBefore="2025-12-31T00:00:00Z"/>')
    assert not valid(date="2020-01-01T00:00:00Z")
    fault = (f'<samlp:Response xmlns:samlp="{SAMLP}" xmlns:saml="{SAML}" ID="_e" Version="2.0" '
             'IssueInstant="2026-01-07T08:24:04"><saml:Issuer>urn:be:cin:nippin:aa</saml:Issuer><samlp:Status>'
             f'<samlp:StatusCode Value="{ST}:Requester"/><samlp:StatusDetail><Fault xmlns:t="{CIN}" '
             'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="t:FaultType">'
             "<t:FaultCode>INPUT_ERROR</t:FaultCode><t:FaultSource>MYCARENET</t:FaultSource>MESSAGE<t:Details/>"
             "</Fault></samlp:StatusDetail></samlp:Status></samlp:Response>")
    assert SCHEMA.validate(etree.fromstring(fault.replace("MESSAGE", '<t:Message xml:lang="en">x</t:Message>')
                                            .encode()))
    assert not SCHEMA.validate(etree.fromstring(fault.replace("MESSAGE", "").encode()))
