"""MemberData over HTTP: signed zeep calls built from ``wsdl/`` and hand-built requests that follow
the public contract, against the running sandbox. Each answer field of seed 001 §8 (pharmacists)
and §9 (other providers) is asserted for a scenario person; query errors carry the public
catalogue's codes in the SAML status; answers validate against ``xsd/``; the assertions are not
signed (real answers' are not), the SOAP envelope around them is."""

from __future__ import annotations

import base64
import datetime as dt
import zlib
from dataclasses import dataclass
from typing import Any

import pytest
import zeep.exceptions
from lxml import etree

from mycarenet_ic import contract
from mycarenet_ic.clients.base import SignedSoapClient
from mycarenet_ic.clients.messages import attribute_query as query_xml
from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.sandbox import Sandbox
from mycarenet_ic.security.wssec import Signer
from mycarenet_ic.soap.faults import descriptive_code
from tests import support

pytestmark = pytest.mark.integration

MD = "urn:be:fgov:ehealth:mycarenet:memberdata:protocol:v1"
P3 = "urn:be:fgov:ehealth:mycarenet:commons:protocol:v3"
CORE = "urn:be:fgov:ehealth:mycarenet:commons:core:v3"
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
STATUS = "urn:oasis:names:tc:SAML:2.0:status"
EXT = "urn:be:cin:nippin:memberdata:saml:extension"
N = "urn:be:cin:nippin"
INS = f"{N}:insurability"
PHYSIO_NIHII, PHYSIO_SSIN = "51218572528", "78111302143"
HOSPITAL_NIHII, OTHER_HOSPITAL_NIHII = "71009938000", "71025477000"
MEDICAL_HOUSE_NIHII = "19001211000"
TODAY = dt.date.today()
LAST_MONTH = (TODAY - dt.timedelta(days=30), TODAY - dt.timedelta(days=1))


@dataclass
class MdAnswer:
    saml: etree._Element
    common_output: Any

    @property
    def status(self) -> list[str]:
        return [s.get("Value") or "" for s in self.saml.iter(f"{{{SAMLP}}}StatusCode")]

    @property
    def detail_code(self) -> str | None:
        return self.saml.findtext(".//{urn:be:cin:types:v1}DetailCode")

    def elements(self, kind: str) -> list[etree._Element]:
        return [a for a in self.saml.findall(f"{{{SAML}}}Assertion")
                if a.findtext(f"{{{SAML}}}Advice/{{{EXT}}}AssertionType") == kind]

    def assertions(self, kind: str) -> list[dict[str, list[str]]]:
        return [{a.get("Name"): [v.text or "" for v in a] for a in assertion.iter(f"{{{SAML}}}Attribute")}
                for assertion in self.elements(kind)]

    def bounds(self, kind: str) -> list[tuple[str | None, str | None]]:
        """Each assertion's own period: SubjectConfirmationData NotBefore / NotOnOrAfter."""
        out = []
        for assertion in self.elements(kind):
            data = assertion.find(f"{{{SAML}}}Subject/{{{SAML}}}SubjectConfirmation/{{{SAML}}}SubjectConfirmationData")
            assert data is not None
            out.append((data.get("NotBefore"), data.get("NotOnOrAfter")))
        return out

    def types(self, kind: str) -> dict[str, set[str]]:
        """Attribute name → the xsi:type of its values."""
        xsi = "{http://www.w3.org/2001/XMLSchema-instance}type"
        return {a.get("Name") or "": {v.get(xsi) or "" for v in a}
                for assertion in self.elements(kind) for a in assertion.iter(f"{{{SAML}}}Attribute")}

    def one(self, kind: str) -> dict[str, list[str]]:
        found = self.assertions(kind)
        assert len(found) == 1, (kind, [a.findtext(f".//{{{EXT}}}AssertionType") for a in self.saml])
        return found[0]


class MdClient:
    def __init__(self, box: Sandbox, quality: Quality, ssin: str | None, nihii: str | None) -> None:
        self.box, self.nihii, self.quality = box, nihii, quality
        self.holder = box.platform.pki.issue_holder(quality, ssin, nihii)
        self.client = SignedSoapClient("mycarenet-memberdata-v1.wsdl", f"{{{MD}}}MycarenetMemberDataSOAPBinding",
                                       box.urls["memberdata"], Signer(self.holder), box.platform.answer_verifier())

    def ask(self, query: bytes, encoding: str = "none", claimed: str | None = None) -> MdAnswer | dict[str, str]:
        common = {"Request": {"IsTest": True},
                  "Origin": {"Package": {"Name": {"_value_1": "tests"}, "License": {"Username": "u", "Password": "p"}},
                             "CareProvider": {"Nihii": {"Quality": self.quality.value,
                                                        "Value": {"_value_1": claimed or self.nihii}}}},
                  "InputReference": "ref-42"}
        blob = query if encoding == "none" else _deflate(query)
        try:
            answer = self.client._service.memberDataConsultation(
                **self.client.header(), CommonInput=common,
                Detail={"_value_1": blob, "ContentType": "text/xml", "ContentEncoding": encoding})
        except zeep.exceptions.Fault as exc:
            err = exc.detail[0]
            return {"kind": etree.QName(err).localname,
                    "Code": descriptive_code(err.findtext("Code") or "", err.findtext("Message") or "")}
        data = answer.Return.Detail._value_1
        if answer.Return.Detail.ContentEncoding == "deflate":
            data = zlib.decompress(data, -zlib.MAX_WBITS)
        return MdAnswer(etree.fromstring(data), answer.Return.CommonOutput)

    def consult(self, ssin: str, period: tuple[dt.date, dt.date] = LAST_MONTH, **kw: Any) -> MdAnswer:
        answer = self.ask(query_xml(self.nihii or "", ssin, *period, **kw))
        assert isinstance(answer, MdAnswer), answer
        return answer


def _deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


@pytest.fixture(scope="module")
def gp(sandbox: Sandbox) -> MdClient:
    return MdClient(sandbox, Quality.DOCTOR, support.DOCTOR_SSIN, support.DOCTOR_NIHII)


@pytest.fixture(scope="module")
def pharmacist(sandbox: Sandbox) -> MdClient:
    return MdClient(sandbox, Quality.PHARMACIST, support.PHARMACIST_SSIN, "61229665000")


@pytest.fixture(scope="module")
def hospital(sandbox: Sandbox) -> MdClient:
    return MdClient(sandbox, Quality.HOSPITAL, None, HOSPITAL_NIHII)


ALL_FACETS = [(f"{INS}", [("requestType", "invoicing"), ("contactType", "other")]),
              (f"{N}:chronicCondition", []), (f"{N}:carePath", []), (f"{N}:referencePharmacy", []),
              (f"{N}:globalMedicalFile", []), (f"{N}:palliativeStatus", [])]


# -- every scenario person -------------------------------------------------------------------------------
def test_every_scenario_person_is_answered(sandbox: Sandbox, gp: MdClient) -> None:
    files = sandbox.platform.affiliations
    schema = contract.schema("saml-protocol-2.0-subset.xsd")
    for person in sandbox.scenario.persons.values():
        file = files.member_file(person.ssin)
        answer = gp.consult(person.ssin, (TODAY - dt.timedelta(days=90), TODAY - dt.timedelta(days=1)))
        schema.assertValid(answer.saml)
        if file is None or not file.periods:  # not insured (a CPAS decision covers them): unknown to the insurers
            assert answer.detail_code == "UNKNOWN_NISS_ROUTING", person.ssin
            continue
        patient = answer.one(f"{INS}:patientData")
        assert patient["urn:be:fgov:person:ssin"] == [person.ssin]
        assert patient[f"{N}:careReceiver:name"] == [person.last_name]
        periods = answer.assertions(f"{INS}:period")
        expected = file.periods_in(TODAY - dt.timedelta(days=90), TODAY - dt.timedelta(days=1))
        assert [p[f"{N}:careReceiver:mutuality"] for p in periods] == [[p.mutuality] for p in expected], person.ssin


def test_answer_shape_unsigned_assertions_in_a_signed_envelope(gp: MdClient) -> None:
    # MdClient's zeep transport verifies the envelope's WS-Security signature (else it raises)
    answer = gp.consult(support.PATIENT_LINKED, facets=ALL_FACETS)
    contract.schema("saml-protocol-2.0-subset.xsd").assertValid(answer.saml)
    assertions = answer.saml.findall(f"{{{SAML}}}Assertion")
    assert len(assertions) >= 6
    for assertion in assertions:
        assert assertion.find("{http://www.w3.org/2000/09/xmldsig#}Signature") is None  # as real answers
        assert [etree.QName(c).localname for c in assertion] == ["Issuer", "Subject", "Advice", "AttributeStatement"]
    assert answer.saml.find(".//{http://www.w3.org/2000/09/xmldsig#}Signature") is None
    # every answer ends with the technical assertion, echoing the first facet asked
    last = assertions[-1]
    assert last.findtext(f"{{{SAML}}}Advice/{{{EXT}}}AssertionType") == f"{N}:technicalAssertion"
    assert last.find(f"{{{SAML}}}Advice/{{{EXT}}}Facet").get("id") == INS
    technical = answer.one(f"{N}:technicalAssertion")
    status = etree.fromstring(zlib.decompress(base64.b64decode(technical[f"{N}:technicalAssertion:status"][0]),
                                              -zlib.MAX_WBITS))
    assert status.tag == "{urn:be:cin:nippin:memberData:support:v2}Status" and status.get("code") == "SUCCESS"
    assert technical[f"{N}:technicalAssertion:version"][0]
    # instants without a zone, as real answers write them
    assert "Z" not in answer.saml.get("IssueInstant", "Z") and "Z" not in last.get("IssueInstant", "Z")
    assert answer.common_output.InputReference == "ref-42"


# -- §9: other providers -----------------------------------------------------------------------------------
def test_other_provider_answer_normal_situation_identity_insurability(gp: MdClient) -> None:
    answer = gp.consult(support.PATIENT_LINKED, facets=ALL_FACETS)  # Peeters
    assert answer.status == ["urn:oasis:names:tc:SAML:2.0:status:Success"]
    patient = answer.one(f"{INS}:patientData")
    assert patient[f"{N}:careReceiver:firstName"] == ["Jan Pieter"] and patient[f"{N}:careReceiver:gender"] == ["male"]
    assert patient[f"{N}:careReceiver:birthDate"] == ["1948-03-12"]
    period = answer.one(f"{INS}:period")
    assert period[f"{N}:careReceiver:mutuality"] == ["101"] and period[f"{N}:cb1"] == ["110"]
    assert period[f"{N}:cb2"] == ["110"] and period[f"{N}:communicationDate"] == [TODAY.isoformat()]
    assert len(period[f"{N}:paymentApproval"][0]) == 17  # invoicing: an approval number
    assert f"{N}:paymentApproval:checkCode" not in period  # the check code is for pharmacists
    assert not [name for name in period if name.startswith(f"{INS}:period:")]  # bounds live in the Subject
    assert answer.bounds(f"{INS}:period") == [(f"{LAST_MONTH[0]}T00:00:00", f"{LAST_MONTH[1]}T00:00:00")]
    assert answer.types(f"{INS}:period")[f"{N}:communicationDate"] == {"xs:date"}
    assert answer.types(f"{INS}:patientData")[f"{N}:careReceiver:birthDate"] == {"xs:date"}
    assert answer.assertions(f"{INS}:generalSituation") == []  # a normal situation: no assertion
    assert answer.types(f"{INS}:payment")[f"{N}:payment:byIO"] == {"xs:boolean"}
    payment = answer.one(f"{INS}:payment")
    assert payment[f"{N}:payment:byIO"] == ["false"] and payment[f"{N}:payment:exceptionToBan"] == ["false"]
    assert f"{N}:maf:year" not in payment  # his MAF year (2025) is outside the period asked
    care = answer.one(f"{N}:carePath")
    assert care[f"{N}:carePath:type"] == ["diabetes"] and care[f"{N}:carePath:physician:nihii11"] == ["11200035003"]
    assert care[f"{N}:carePath:specialist:nihii11"] == ["11203795004"]
    assert care[f"{N}:carePath:rights:startDate"] == ["2024-03-01"]
    assert care[f"{N}:carePath:contract:endDate"] == ["2028-02-29"] and care[f"{N}:carePath:rights:endDate"]
    assert answer.one(f"{N}:chronicCondition")[f"{N}:chronicCondition:year"] == [str(TODAY.year)]
    pharmacy = answer.one(f"{N}:referencePharmacy")
    assert pharmacy[f"{N}:referencePharmacy:pharmacy:nihii8"] == ["62103457"]
    assert pharmacy[f"{N}:referencePharmacy:agreementDate"] == ["2025-02-10"]
    gmd = answer.one(f"{N}:globalMedicalFile")
    assert gmd[f"{N}:globalMedicalFile:hcp:nihii11"] == ["11200035003"]
    assert gmd[f"{N}:globalMedicalFile:hcp:name"] == ["Verhoeven"]


def test_mutation_in_the_period(gp: MdClient) -> None:
    answer = gp.consult("61110202116", (dt.date(2026, 5, 1), dt.date(2026, 8, 31)))  # Maes: 101 → 319
    assert answer.status[-1] == "urn:be:cin:nippin:SAML:status:PartialAnswer" and answer.detail_code == "MUTATION"
    situation = answer.one(f"{INS}:generalSituation")
    assert situation[f"{N}:generalSituation:event"] == ["mutation"]
    assert situation[f"{N}:generalSituation:transfer:date"] == ["2026-07-01"]
    assert answer.types(f"{INS}:generalSituation")[f"{N}:generalSituation:transfer:date"] == {"xs:date"}
    assert situation[f"{N}:generalSituation:transfer:oldMutuality"] == ["101"]
    assert situation[f"{N}:generalSituation:transfer:newMutuality"] == ["319"]
    assert situation[f"{N}:generalSituation:transfer:affiliationDate"] == ["2026-07-01"]
    # each period with its own bounds, the most recent first (as real answers)
    periods = answer.assertions(f"{INS}:period")
    assert [p[f"{N}:careReceiver:mutuality"] for p in periods] == [["319"], ["101"]]
    assert answer.bounds(f"{INS}:period") == [("2026-07-01T00:00:00", "2026-08-31T00:00:00"),
                                              ("2026-05-01T00:00:00", "2026-07-01T00:00:00")]
    assert answer.bounds(f"{INS}:patientData") == [("2026-05-01T00:00:00", "2026-08-31T00:00:00")]


@pytest.mark.parametrize("ssin,period,event,reason", [
    ("70011902212", (dt.date(2026, 3, 1), dt.date(2026, 10, 1)), "severalSituations", None),  # Jacobs
    (support.DECEASED, (dt.date(2026, 9, 1), dt.date(2026, 9, 30)), "closedBefore", "death"),  # Lejeune
    ("75050502181", (dt.date(2026, 8, 1), dt.date(2026, 9, 30)), "closedBefore", "mutation"),  # Mertens
    ("83092302227", (dt.date(2026, 5, 1), dt.date(2026, 6, 30)), "closedBefore", "unknown"),  # Willems
    ("90120102180", (dt.date(2026, 9, 1), dt.date(2026, 10, 15)), "openedAfter", None),       # Claes
])
def test_global_situation(gp: MdClient, ssin: str, period: tuple[dt.date, dt.date], event: str,
                          reason: str | None) -> None:
    situation = gp.consult(ssin, period).one(f"{INS}:generalSituation")
    assert situation[f"{N}:generalSituation:event"] == [event]
    assert situation.get(f"{N}:generalSituation:closureReason") == ([reason] if reason else None)
    if event != "severalSituations":  # the date of the change: closure (death: the day of death) or opening
        assert situation[f"{N}:generalSituation:transfer:date"]


def test_closed_by_death_the_transfer_date_is_the_death_date(gp: MdClient) -> None:
    situation = gp.consult(support.DECEASED, (dt.date(2026, 9, 1), dt.date(2026, 9, 30))).one(
        f"{INS}:generalSituation")
    assert situation[f"{N}:generalSituation:transfer:date"] == ["2026-09-14"]


def test_deceased_person_has_a_death_date(gp: MdClient) -> None:
    answer = gp.consult(support.DECEASED, (dt.date(2026, 9, 1), dt.date(2026, 9, 30)))
    assert answer.one(f"{INS}:patientData")[f"{N}:careReceiver:deceasedDate"] == ["2026-09-14"]


def test_preferential_third_party_payer_and_maf(gp: MdClient) -> None:
    janssens = gp.consult("52073002225")
    assert janssens.one(f"{INS}:period")[f"{N}:cb1"] == ["111"]
    payment = janssens.one(f"{INS}:payment")
    assert payment[f"{N}:payment:byIO"] == ["true"] and payment[f"{N}:payment:regime"] == ["preferential"]
    martin = gp.consult("58032102205", (dt.date(2025, 12, 1), dt.date(2026, 1, 31)))
    assert martin.one(f"{INS}:payment")[f"{N}:maf:year"] == ["2026", "2025"]  # most recent first (§9)
    dupont = gp.consult("46010302186")
    assert dupont.one(f"{INS}:payment")[f"{N}:payment:exceptionToBan"] == ["true"]


def test_medical_house_convention_and_palliative_status(gp: MdClient) -> None:
    answer = gp.consult("39060802118", facets=ALL_FACETS)  # Wouters
    house = answer.one(f"{N}:medicalHouse")
    assert house[f"{N}:medicalHouse:nihii11"] == [MEDICAL_HOUSE_NIHII]
    assert house[f"{N}:medicalHouse:start"] == ["2024-01-01"]
    assert house[f"{N}:medicalHouse:type"] == ["Medical", "Nurse", "Kine"]
    assert answer.one(f"{N}:palliativeStatus")[f"{N}:palliativeStatus:startDate"] == ["2026-10-01"]


def test_care_path_with_medical_house(gp: MdClient) -> None:
    care = gp.consult("63070702174", facets=[(f"{N}:carePath", [("carePathType", "renalinsufficiency")])])
    path = care.one(f"{N}:carePath")
    assert path[f"{N}:carePath:type"] == ["renalinsufficiency"]
    assert path[f"{N}:carePath:medicalHouse:nihii11"] == [MEDICAL_HOUSE_NIHII]


def test_hospital_is_told_of_a_stay_in_another_hospital(sandbox: Sandbox, hospital: MdClient) -> None:
    hospitalized = [(INS, [("requestType", "information"), ("contactType", "hospitalized")])]
    days = (TODAY - dt.timedelta(days=2), TODAY - dt.timedelta(days=1))
    other = MdClient(sandbox, Quality.HOSPITAL, None, OTHER_HOSPITAL_NIHII)
    stay = other.consult("68042702242", days, facets=hospitalized).one(f"{N}:hospitalisation")  # De Smet
    assert stay[f"{N}:hospitalisation:hospital:nihii11"] == [HOSPITAL_NIHII]
    assert stay[f"{N}:hospitalisation:admissionDate"] == ["2026-11-18"]
    assert stay[f"{N}:hospitalisation:service"] == ["450"]
    # the hospital the patient stays in learns nothing it does not know (§31)
    assert hospital.consult("68042702242", days, facets=hospitalized).assertions(f"{N}:hospitalisation") == []
    # "hospitalised elsewhere" for a patient who is not: the insurer's error
    answer = hospital.ask(query_xml(HOSPITAL_NIHII, support.PATIENT_LINKED, *LAST_MONTH, facets=hospitalized))
    assert isinstance(answer, MdAnswer) and answer.detail_code == "MISMATCHED_CONTACTTYPE"
    assert answer.status[0].endswith(":Responder")


# -- §8: pharmacists ---------------------------------------------------------------------------------------
def test_pharmacist_answer(pharmacist: MdClient) -> None:
    day = TODAY - dt.timedelta(days=1)
    answer = pharmacist.consult(support.PATIENT_LINKED, (day, day), facets=[
        (INS, [("requestType", "invoicing")]), (f"{N}:referencePharmacy", []), (f"{N}:chronicCondition", []),
        (f"{N}:carePath", [("carePathType", "diabetes")])])
    status = answer.one(f"{INS}:status")
    assert status[f"{INS}:status:code"] == ["invoicingPossible"]
    assert status[f"{INS}:status:requestDate"] == [day.isoformat()]
    assert f"{INS}:status:coverageEndDate" not in status  # open-ended coverage
    period = answer.one(f"{INS}:period")
    number, check = period[f"{N}:paymentApproval"][0], period[f"{N}:paymentApproval:checkCode"][0]
    assert int(number) % 97 == int(check)
    assert period[f"{N}:careReceiver:registrationNumber"] and period[f"{N}:communicationDate"] == [TODAY.isoformat()]
    assert answer.one(f"{INS}:payment")[f"{N}:payment:regime"] == ["none"]
    assert answer.assertions(f"{INS}:generalSituation") == []  # §9 only
    assert answer.one(f"{N}:referencePharmacy")[f"{N}:referencePharmacy:pharmacy:nihii8"] == ["62103457"]
    assert answer.one(f"{N}:carePath")[f"{N}:carePath:type"] == ["diabetes"]


def test_pharmacist_double_affiliation_and_invoicing_problems(pharmacist: MdClient) -> None:
    day = (TODAY - dt.timedelta(days=1),) * 2
    dubois = pharmacist.consult("55101002131", day).one(f"{INS}:status")
    assert dubois[f"{N}:otherMutuality"] == ["509"]
    lambert = pharmacist.consult("79081502279", day, facets=[(INS, [("requestType", "invoicing")])])
    assert lambert.one(f"{INS}:status")[f"{INS}:status:code"] == ["invoicingImpossible:individualProblem"]
    assert f"{N}:paymentApproval" not in lambert.one(f"{INS}:period")
    goossens = pharmacist.consult("44021402211", day).one(f"{INS}:status")
    assert goossens[f"{INS}:status:code"] == ["invoicingImpossible:systemProblem"]
    mertens = pharmacist.consult("75050502181", (dt.date(2026, 8, 10),) * 2).one(f"{INS}:status")
    assert mertens[f"{INS}:status:coverageEndDate"] == ["2026-08-31"]
    maf = pharmacist.consult("58032102205", day).one(f"{INS}:payment")
    assert maf[f"{N}:maf:year"] == [str(TODAY.year)]


# -- subject forms and errors --------------------------------------------------------------------------------
def test_subject_by_registration_number_or_with_the_insurer(sandbox: Sandbox, gp: MdClient) -> None:
    file = sandbox.platform.affiliations.member_file(support.PATIENT_LINKED)
    assert file is not None
    reg = file.periods[0].registration_number
    by_reg = gp.consult(f"{reg}@101", name_format="urn:be:cin:nippin:careReceiver:registrationNumber@mut")
    assert by_reg.one(f"{INS}:patientData")["urn:be:fgov:person:ssin"] == [support.PATIENT_LINKED]
    named = gp.consult(f"{support.PATIENT_LINKED}@101", name_format="urn:be:cin:nippin:member:ssin@mut")
    assert named.one(f"{INS}:period")[f"{N}:careReceiver:mutuality"] == ["101"]
    wrong = gp.consult(f"{support.PATIENT_LINKED}@509", name_format="urn:be:cin:nippin:member:ssin@mut")
    assert wrong.detail_code == "BO_UNKNOWN_NISS"
    assert wrong.saml.findtext(".//{urn:be:cin:types:v1}FaultSource") == "IO-BE-500"  # the insurer named
    # every assertion names the subject the way the query did
    for answer, fmt, value in ((by_reg, "urn:be:cin:nippin:careReceiver:registrationNumber@mut", f"{reg}@101"),
                               (named, "urn:be:cin:nippin:member:ssin@mut", f"{support.PATIENT_LINKED}@101")):
        ids = [(n.get("Format"), n.text) for n in answer.saml.iter(f"{{{SAML}}}NameID")]
        assert ids and set(ids) == {(fmt, value)}


def test_a_refused_query_by_registration_number_records_no_patient(sandbox: Sandbox, gp: MdClient) -> None:
    """The audit's patient is a NISS (stored as a pseudonym): a refused query that names its subject by a
    registration number records none, neither the registration number nor something else."""
    file = sandbox.platform.affiliations.member_file(support.PATIENT_LINKED)
    assert file is not None
    reg = file.periods[0].registration_number
    fmt = "urn:be:cin:nippin:careReceiver:registrationNumber@mut"
    before = len(sandbox.platform.audit.rows(limit=1_000_000))
    unknown = gp.ask(query_xml(support.DOCTOR_NIHII, f"9{reg}@101", *LAST_MONTH, name_format=fmt))
    refused = gp.ask(query_xml(support.DOCTOR_NIHII, f"{reg}@101", *LAST_MONTH, name_format=fmt,
                               facets=[(f"{N}:whatever", [])]))
    assert isinstance(unknown, MdAnswer) and unknown.detail_code == "BO_UNKNOWN_REGNBR"
    assert isinstance(refused, MdAnswer) and refused.detail_code == "UNKNOWN_FACET"
    rows = support.service_rows_since(sandbox, "memberdata", before)
    assert [(r["patient"], r["detail"]) for r in rows] == [(None, "refused BO_UNKNOWN_REGNBR"),
                                                           (None, "refused UNKNOWN_FACET")]


@pytest.mark.parametrize("case,kw,code,top", [
    ("unknown NISS", {"subject": "85100403749"}, "UNKNOWN_NISS_ROUTING", "Responder"),
    ("NISS with a wrong check digit", {"subject": "48031202167"}, "INVALID_INSS_VALUE", "Requester"),
    ("NISS not 11 digits", {"subject": "4803120216"}, "INVALID_INSS_FORMAT", "Requester"),
    ("period in the future", {"start": TODAY + dt.timedelta(days=3), "end": TODAY + dt.timedelta(days=9)},
     "START_DATE_IN_FUTURE", "Requester"),
    ("period too long", {"start": TODAY - dt.timedelta(days=400), "end": TODAY - dt.timedelta(days=1)},
     "INVALID_PERIOD_FOR_SECTOR", "Requester"),
    ("period more than 5 years back", {"start": dt.date(2019, 1, 1), "end": dt.date(2019, 2, 1)},
     "PERIOD_TOO_FAR_IN_PAST", "Requester"),
    ("end before start", {"start": TODAY - dt.timedelta(days=3), "end": TODAY - dt.timedelta(days=9)},
     "INVALID_PERIOD", "Requester"),
    ("unknown facet", {"facets": [("urn:be:cin:nippin:whatever", [])]}, "UNKNOWN_FACET", "Requester"),
    ("facet asked twice", {"facets": [(f"{N}:chronicCondition", []), (f"{N}:chronicCondition", [])]},
     "DUPLICATED_FACET", "Requester"),
    ("requestType missing", {"facets": [(INS, [("contactType", "other")])]}, "MISSING_DIMENSION", "Requester"),
    ("requestType not allowed", {"facets": [(INS, [("requestType", "curiosity")])]}, "UNALLOWED_REQUESTTYPE",
     "Requester"),
    ("contactType hospitalized for a doctor", {"facets": [(INS, [("requestType", "information"),
                                                                 ("contactType", "hospitalized")])]},
     "UNAUTHORIZED_CONTACTTYPE", "Requester"),
    ("unknown dimension", {"facets": [(f"{N}:chronicCondition", [("colour", "blue")])]}, "INVALID_DIMENSION_ID",
     "Requester"),
    ("issuer is not the care provider", {"issuer": "11203795004"}, "CROSSCHECK_ISSUER", "Requester"),
    ("attributes in the query", {"extra": f'<saml:Attribute xmlns:saml="{SAML}" Name="x"/>'},
     "FORBIDDEN_ATTRIBUTES", "Requester"),
    ("no facet asked", {"facets": []}, "NO_FACET", "Responder"),
    ("requestType empty", {"facets": [(INS, [("requestType", "")])]}, "EMPTY_REQUESTTYPE", "Requester"),
])
def test_query_errors_carry_the_catalogue_codes(sandbox: Sandbox, gp: MdClient, case: str, kw: dict[str, Any],
                                                 code: str, top: str) -> None:
    before = len(sandbox.platform.audit.rows(limit=100_000))
    kw = dict(kw)  # the parameters are shared by both database backends
    query = query_xml(kw.pop("issuer", support.DOCTOR_NIHII), kw.pop("subject", support.PATIENT_LINKED),
                      kw.pop("start", LAST_MONTH[0]), kw.pop("end", LAST_MONTH[1]), **kw)
    answer = gp.ask(query)
    assert isinstance(answer, MdAnswer), answer
    assert answer.detail_code == code, case
    assert answer.status[0] == f"urn:oasis:names:tc:SAML:2.0:status:{top}"
    assert answer.saml.findall(f"{{{SAML}}}Assertion") == []
    contract.schema("saml-protocol-2.0-subset.xsd").assertValid(answer.saml)
    rows = sandbox.platform.audit.rows(limit=100_000)[before:]
    assert [r for r in rows if r["service"] == "memberdata"][-1]["detail"] == f"refused {code}"


def test_facet_not_allowed_for_the_quality(sandbox: Sandbox) -> None:
    physio = MdClient(sandbox, Quality.PHYSIOTHERAPIST, PHYSIO_SSIN, PHYSIO_NIHII)
    answer = physio.ask(query_xml(PHYSIO_NIHII, support.PATIENT_LINKED, *LAST_MONTH,
                                  facets=[(f"{N}:carePath", [("carePathType", "diabetes")])]))
    assert isinstance(answer, MdAnswer) and answer.detail_code == "UNAUTHORIZED_FACET"
    fault = answer.saml.find(".//{urn:be:cin:types:v1}FaultCode")
    assert fault is not None and fault.text == "AUTHORIZATION_ERROR"
    assert not isinstance(physio.consult(support.PATIENT_LINKED), dict)  # insurability: allowed


def test_pharmacist_gives_a_day_not_a_period(pharmacist: MdClient) -> None:
    answer = pharmacist.ask(query_xml("61229665000", support.PATIENT_LINKED, *LAST_MONTH))
    assert isinstance(answer, MdAnswer) and answer.detail_code == "INVALID_PERIOD_FOR_SECTOR"


def test_who_may_ask_is_checked_at_the_envelope(sandbox: Sandbox, gp: MdClient) -> None:
    before = len(sandbox.platform.audit.rows(limit=1_000_000))
    citizen = MdClient(sandbox, Quality.CITIZEN, support.PATIENT_LINKED, None)
    assert citizen.ask(query_xml("48031202166", support.PATIENT_LINKED, *LAST_MONTH)) == {
        "kind": "BusinessError", "Code": "ACCESS_DENIED"}
    expired = MdClient(sandbox, Quality.DOCTOR, "57120502143", support.EXPIRED_VISA_NIHII)
    refused = expired.ask(query_xml(support.EXPIRED_VISA_NIHII, support.PATIENT_LINKED, *LAST_MONTH))
    assert isinstance(refused, dict) and refused["Code"] == "ACCESS_DENIED"
    claimed = gp.ask(query_xml("11203795004", support.PATIENT_LINKED, *LAST_MONTH), claimed="11203795004")
    assert claimed == {"kind": "BusinessError", "Code": "ACCESS_DENIED"}
    # nothing but one DENIED row per refusal: no consultation was recorded as answered
    assert [r["outcome"] for r in support.service_rows_since(sandbox, "memberdata", before)] == ["DENIED"] * 3


def test_deflate_encoded_blob_is_answered_deflated(gp: MdClient) -> None:
    answer = gp.ask(query_xml(support.DOCTOR_NIHII, support.PATIENT_LINKED, *LAST_MONTH), encoding="deflate")
    assert isinstance(answer, MdAnswer) and answer.one(f"{INS}:patientData")


def test_hand_built_request_following_the_public_contract(sandbox: Sandbox, doctor_signer: Signer,
                                                          answer_verifier: Any) -> None:
    body = support.commons_request("MemberDataConsultationRequest", MD, 3,
                                   query_xml(support.DOCTOR_NIHII, support.PATIENT_LINKED, *LAST_MONTH),
                                   support.PATIENT_LINKED, TODAY, "hand-7")
    answer = support.post(sandbox.urls["memberdata"], support.to_bytes(support.signed(doctor_signer, body)))
    assert answer.status == 200, answer.body[:500]
    payload = answer_verifier.verify(answer.root).body[0]
    contract.schema("mycarenet-memberdata-v1.xsd").assertValid(payload)
    assert payload.tag == f"{{{MD}}}MemberDataConsultationResponse"
    detail = payload.find(f"{{{P3}}}Return/{{{P3}}}Detail")
    assert detail is not None and detail.get("ContentEncoding") == "none"
    saml = etree.fromstring(base64.b64decode(detail.text or ""))
    assert saml.get("InResponseTo", "").startswith("_") and saml.findall(f"{{{SAML}}}Assertion")
    assert payload.findtext(f"{{{P3}}}Return/{{{P3}}}CommonOutput/{{{CORE}}}InputReference") == "hand-7"


def test_consultations_are_audited_with_purpose_and_what_was_returned(sandbox: Sandbox, gp: MdClient) -> None:
    gp.consult("52073002225", facets=ALL_FACETS)
    row = [r for r in sandbox.platform.audit.rows(limit=20) if r["service"] == "memberdata"][-1]
    assert row["patient"] == sandbox.platform.pseudonymiser.pseudonym("52073002225")
    assert row["caller"] == f"doctor:{support.DOCTOR_NIHII}" and row["outcome"] == "OK"
    detail = str(row["detail"])
    assert "why=invoicing" in detail and "returned=" in detail and "patientData" in detail
    assert "52073002225" not in str(row)


def _xpath(location: str) -> str:
    """A fault Location (``*:Name`` steps, XPath 2.0 style) as XPath 1.0, to evaluate it with lxml."""
    import re

    return re.sub(r"\*:([A-Za-z]+)", r'*[local-name()="\1"]', location)


def test_error_answer_has_the_real_fault_shape(gp: MdClient) -> None:
    query = query_xml(support.DOCTOR_NIHII, support.PATIENT_LINKED, *LAST_MONTH,
                      facets=[(INS, [("requestType", "information"), ("colour", "blue")])])
    answer = gp.ask(query)
    assert isinstance(answer, MdAnswer) and answer.detail_code == "INVALID_DIMENSION_ID"
    status = answer.saml.find(f"{{{SAMLP}}}Status")
    assert status is not None and status.find(f"{{{SAMLP}}}StatusMessage") is None  # real answers have none
    t = "{urn:be:cin:types:v1}"
    fault = status.find(f"{{{SAMLP}}}StatusDetail/Fault")
    assert fault is not None
    assert [etree.QName(c).localname for c in fault] == ["FaultCode", "FaultSource", "Message", "Details"]
    assert fault.findtext(f"{t}FaultCode") == "INPUT_ERROR" and fault.findtext(f"{t}FaultSource") == "MYCARENET"
    messages = list(fault.iter(f"{t}Message"))
    assert len(messages) == 2 and all(m.get("{http://www.w3.org/XML/1998/namespace}lang") == "en" for m in messages)
    location = fault.findtext(f"{t}Details/{t}Detail/{t}Location") or ""
    assert location == f'*:AttributeQuery/*:Extensions/*:Facet[@id="{INS}"]/*:Dimension[@id="colour"]'
    found = etree.fromstring(query).xpath("/" + _xpath(location))
    assert [d.text for d in found] == ["blue"]  # the Location finds the offending element in the query
    assert fault.findtext(f"{t}Details/{t}Detail/{t}DetailSource") == "MYCARENET"


def test_unauthorized_facet_location_names_the_facet(sandbox: Sandbox) -> None:
    physio = MdClient(sandbox, Quality.PHYSIOTHERAPIST, PHYSIO_SSIN, PHYSIO_NIHII)
    answer = physio.ask(query_xml(PHYSIO_NIHII, support.PATIENT_LINKED, *LAST_MONTH, facets=[(f"{N}:carePath", [])]))
    assert isinstance(answer, MdAnswer) and answer.detail_code == "UNAUTHORIZED_FACET"
    t = "{urn:be:cin:types:v1}"
    assert answer.saml.findtext(f".//{t}Location") == f'*:AttributeQuery/*:Extensions/*:Facet[@id="{N}:carePath"]'
    assert answer.saml.findtext(f".//{t}DetailSource") == ""  # as the real answer


@pytest.mark.parametrize("not_before,accepted", [
    ("{day}T00:00:00", True), ("{day}T00:00:00Z", True), ("{day}T00:00:00.000+01:00", True),
    (" {day}T08:30:00-02:00 ", True),
    ("{day}", False), ("{day}T00:00", False), ("{day} 00:00:00", False), ("{day}T25:00:00", False),
    ("2026-02-30T00:00:00", False), ("yesterday", False), ("", False),
])
def test_not_before_must_be_an_xs_datetime(sandbox: Sandbox, gp: MdClient, not_before: str, accepted: bool) -> None:
    start, end = LAST_MONTH
    raw = query_xml(support.DOCTOR_NIHII, support.PATIENT_LINKED, start, end)
    written = not_before.format(day=start)
    query = raw.replace(f'NotBefore="{start}T00:00:00"'.encode(), f'NotBefore="{written}"'.encode())
    assert (query != raw) == (written != f"{start}T00:00:00")
    before = len(sandbox.platform.audit.rows(limit=1_000_000))
    answer = gp.ask(query)
    assert isinstance(answer, MdAnswer)
    if accepted:
        assert answer.status == [f"{STATUS}:Success"] and answer.one(f"{INS}:patientData")
        assert answer.bounds(f"{INS}:patientData") == [(f"{start}T00:00:00", f"{end}T00:00:00")]
    else:  # what production answers to a NotBefore its schema refuses: the catalogue's entry for that path
        assert answer.detail_code == "EMPTY_STARTDATE" and answer.status[0] == f"{STATUS}:Requester"
        assert answer.saml.findtext(".//{urn:be:cin:types:v1}Location") == (
            "*:AttributeQuery/*:Subject/*:SubjectConfirmation/*:SubjectConfirmationData/@NotBefore")
        rows = support.service_rows_since(sandbox, "memberdata", before)
        assert [r["detail"] for r in rows] == ["refused EMPTY_STARTDATE"]


def test_no_facet_and_missing_facets(gp: MdClient) -> None:
    none = gp.ask(query_xml(support.DOCTOR_NIHII, support.PATIENT_LINKED, *LAST_MONTH, facets=[]))
    assert isinstance(none, MdAnswer) and none.detail_code == "NO_FACET"
    assert none.status == [f"{STATUS}:Responder", "urn:be:cin:nippin:SAML:status:InternalError"]
    assert none.saml.findtext(".//{urn:be:cin:types:v1}FaultCode") == "GENERIC_ERROR"
    # Peeters is not palliative: the only facet asked has nothing to say
    empty = gp.consult(support.PATIENT_LINKED, facets=[(f"{N}:palliativeStatus", [])])
    assert empty.status == [f"{STATUS}:Success", "urn:be:cin:nippin:SAML:status:PartialAnswer"]
    assert empty.detail_code == "MISSING_FACETS"
    assert [a.findtext(f".//{{{EXT}}}AssertionType") for a in empty.saml.findall(f"{{{SAML}}}Assertion")] == [
        f"{N}:technicalAssertion"]


def test_pharmacy_issuer_padded_to_eleven_digits_is_the_same_party(sandbox: Sandbox) -> None:
    pharmacy = MdClient(sandbox, Quality.PHARMACY, None, support.PHARMACY_NIHII)
    day = (TODAY - dt.timedelta(days=1),) * 2
    for issuer in (support.PHARMACY_NIHII, support.PHARMACY_NIHII + "000"):
        answer = pharmacy.ask(query_xml(issuer, support.PATIENT_LINKED, *day))
        assert isinstance(answer, MdAnswer) and answer.detail_code is None, issuer
        assert answer.one(f"{INS}:patientData")
    for other in ("63507779000", support.PHARMACY_NIHII + "001", "00" + support.PHARMACY_NIHII + "0"):
        refused = pharmacy.ask(query_xml(other, support.PATIENT_LINKED, *day))
        assert isinstance(refused, MdAnswer) and refused.detail_code == "CROSSCHECK_ISSUER", other
