"""MemberData's answer (``soap/memberdata.answer_response``), built from copies of fixed skeletons: each answer
is written as the service has always written it (the expected text below is its wire form, with the random IDs
and the instant masked), carries only its own values whatever was answered before it or beside it (in other
threads), and never changes the skeletons it copies."""

from __future__ import annotations

import base64
import datetime as dt
import re
import threading
import zlib

import pytest
from lxml import etree

from mycarenet_ic.domain.assurability import Facet, ThirdPartyRegime
from mycarenet_ic.services.memberdata import (
    Answer,
    Assertion,
    ChronicCondition,
    FacetRequest,
    PatientData,
    PaymentFacts,
    PeriodFacts,
    Warning,
)
from mycarenet_ic.soap import memberdata
from mycarenet_ic.soap.memberdata import NameId, answer_response

pytestmark = pytest.mark.unit

D = dt.date
SSIN = NameId("urn:be:fgov:person:ssin", "61110202116")
INSURABILITY = FacetRequest("urn:be:cin:nippin:insurability", Facet.INSURABILITY,
                            (("requestType", "information"), ("contactType", "other")))
CHRONIC = FacetRequest("urn:be:cin:nippin:chronicCondition", Facet.CHRONIC_CONDITION)
PATIENT = PatientData("61110202116", "D'Hondt & <Co>", "Luc", D(1961, 11, 2), "male", None)
PERIOD = PeriodFacts("12345678901", "306", "110", "110", D(2026, 1, 2), None, None, D(2026, 6, 1), D(2026, 8, 31))
PAYMENT = PaymentFacts(ThirdPartyRegime.PREFERENTIAL, True, (2025, 2024), None)
WARNINGS = (Warning("MUTATION", "There is a mutation"), Warning("ONLY_FIVE_PERIODS_RETURNED", "Only five"))
PARTIAL = Answer("61110202116", "300", D(2026, 5, 1), D(2026, 8, 31),
                 tuple(Assertion(facts, INSURABILITY) for facts in (PATIENT, PERIOD, PAYMENT)), WARNINGS)
EMPTY = Answer("61110202116", None, D(2026, 5, 1), D(2026, 8, 31), ())

ID = re.compile(r' ID="_[0-9a-f]{32}"')
INSTANT = re.compile(r' IssueInstant="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d"')
STATUS_VALUE = re.compile(r'(<saml:Attribute Name="urn:be:cin:nippin:technicalAssertion:status">\s*'
                          r'<saml:AttributeValue xsi:type="xs:string">)([^<]*)(<)')


def _assertion(kind: str, period: tuple[str, str], attributes: str, facet: str = "", name_id: str = "61110202116",
               issuer: str = "300") -> str:
    return f"""  <saml:Assertion ID="_" IssueInstant="NOW" Version="2.0">
    <saml:Issuer>urn:be:cin:io:{issuer}</saml:Issuer>
    <saml:Subject>
      <saml:NameID Format="urn:be:fgov:person:ssin">{name_id}</saml:NameID>
      <saml:SubjectConfirmation Method="urn:be:cin:nippin:memberIdentification">
        <saml:SubjectConfirmationData NotBefore="{period[0]}T00:00:00" NotOnOrAfter="{period[1]}T00:00:00"/>
      </saml:SubjectConfirmation>
    </saml:Subject>
    <saml:Advice xsi:type="ext:AdviceType">
      <ext:AssertionType>{kind}</ext:AssertionType>
{facet}    </saml:Advice>
    <saml:AttributeStatement>
{attributes}    </saml:AttributeStatement>
  </saml:Assertion>
"""


def _attributes(*pairs: tuple[str, str, str]) -> str:
    out = ""
    for name, kind, values in pairs:
        out += f'      <saml:Attribute Name="{name}">\n'
        for value in values.split("|"):
            out += f'        <saml:AttributeValue xsi:type="xs:{kind}">{value}</saml:AttributeValue>\n'
        out += "      </saml:Attribute>\n"
    return out


ECHO = """      <ext:Facet id="urn:be:cin:nippin:insurability">
        <Dimension id="requestType">information</Dimension>
        <Dimension id="contactType">other</Dimension>
      </ext:Facet>
"""
WHOLE, LATER = ("2026-05-01", "2026-08-31"), ("2026-06-01", "2026-08-31")
CR, N = "urn:be:cin:nippin:careReceiver", "urn:be:cin:nippin"
TECHNICAL = _attributes((f"{N}:technicalAssertion:status", "string", "STATUS"),
                        (f"{N}:technicalAssertion:version", "string", "sandbox-1.0"))
HEAD = ('<?xml version=\'1.0\' encoding=\'UTF-8\'?>\n<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"'
        ' xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" xmlns:ext="urn:be:cin:nippin:memberdata:saml:extension"'
        ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xs="http://www.w3.org/2001/XMLSchema" ID="_"')
PARTIAL_TEXT = HEAD + ''' InResponseTo="_q1" IssueInstant="NOW" Version="2.0">
  <saml:Issuer>urn:be:cin:io:300</saml:Issuer>
  <samlp:Status>
    <samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success">
      <samlp:StatusCode Value="urn:be:cin:nippin:SAML:status:PartialAnswer"/>
    </samlp:StatusCode>
    <samlp:StatusDetail>
      <Fault xmlns:t="urn:be:cin:types:v1" xsi:type="t:FaultType">
        <t:FaultCode>WARNING</t:FaultCode>
        <t:FaultSource>MYCARENET</t:FaultSource>
        <t:Message xml:lang="en">There is a mutation</t:Message>
        <t:Details>
          <t:Detail>
            <t:DetailCode>MUTATION</t:DetailCode>
            <t:DetailSource>MYCARENET</t:DetailSource>
            <t:Message xml:lang="en">There is a mutation</t:Message>
          </t:Detail>
          <t:Detail>
            <t:DetailCode>ONLY_FIVE_PERIODS_RETURNED</t:DetailCode>
            <t:DetailSource>IO-BE-300</t:DetailSource>
            <t:Message xml:lang="en">Only five</t:Message>
          </t:Detail>
        </t:Details>
      </Fault>
    </samlp:StatusDetail>
  </samlp:Status>
''' + _assertion(f"{N}:insurability:patientData", WHOLE, _attributes(
    ("urn:be:fgov:person:ssin", "string", "61110202116"), (f"{CR}:name", "string", "D'Hondt &amp; &lt;Co&gt;"),
    (f"{CR}:firstName", "string", "Luc"), (f"{CR}:birthDate", "date", "1961-11-02"),
    (f"{CR}:gender", "string", "male")), ECHO) + _assertion(f"{N}:insurability:period", LATER, _attributes(
        (f"{CR}:registrationNumber", "string", "12345678901"), (f"{CR}:mutuality", "string", "306"),
        (f"{N}:cb1", "string", "110"), (f"{N}:cb2", "string", "110"),
        (f"{N}:communicationDate", "date", "2026-01-02")), ECHO) + _assertion(
    f"{N}:insurability:payment", WHOLE, _attributes(
        (f"{N}:payment:byIO", "boolean", "true"), (f"{N}:payment:regime", "string", "preferential"),
        (f"{N}:payment:exceptionToBan", "boolean", "true"), (f"{N}:maf:year", "string", "2025|2024")),
    ECHO) + _assertion(f"{N}:technicalAssertion", WHOLE, TECHNICAL, ECHO) + "</samlp:Response>\n"
EMPTY_TEXT = HEAD + ''' IssueInstant="NOW" Version="2.0">
  <saml:Issuer>urn:be:cin:io:000</saml:Issuer>
  <samlp:Status>
    <samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/>
  </samlp:Status>
''' + _assertion(f"{N}:technicalAssertion", WHOLE, TECHNICAL, name_id="6", issuer="000") + "</samlp:Response>\n"


def _steps(*kinds: str) -> str:
    return "".join(f'<s:Step name="Response.assertion.{kind}.general" status="SUCCESS" location=""/>' for kind in kinds)


def _status_xml(code: str, *kinds: str) -> bytes:
    steps = _steps(*kinds)
    return ("<?xml version='1.0' encoding='UTF-8'?>\n<s:Status xmlns:s=\"urn:be:cin:nippin:memberData:support:v2\" "
            f'code="{code}" encryptionRequired="false"' + (f">{steps}</s:Status>" if steps else "/>")).encode()


def _written(root: etree._Element) -> tuple[str, bytes]:
    """The answer as written (pretty, to read), IDs and instants masked, and its technical status decoded."""
    text = etree.tostring(root, encoding="UTF-8", xml_declaration=True, pretty_print=True).decode()
    found = STATUS_VALUE.search(text)
    assert found is not None
    status = zlib.decompress(base64.b64decode(found.group(2)), -zlib.MAX_WBITS)
    text = STATUS_VALUE.sub(r"\1STATUS\3", text)
    return INSTANT.sub(' IssueInstant="NOW"', ID.sub(' ID="_"', text)), status


def _ids(root: etree._Element) -> list[str]:
    return [el.get("ID") or "" for el in root.iter() if el.get("ID") is not None]


def test_an_answer_is_written_as_the_service_writes_it() -> None:
    root = answer_response("_q1", PARTIAL, SSIN, (INSURABILITY,))
    text, status = _written(root)
    assert text == PARTIAL_TEXT
    assert status == _status_xml("WARNING", "insurability.patientData", "insurability.period",
                                 "insurability.payment")
    # the wire form is the tree without any whitespace between elements, the prefixes declared once
    flat = etree.tostring(root, encoding="UTF-8", xml_declaration=True).decode()
    assert flat.count("xmlns:saml=") == 1 and flat.count("xmlns:t=") == 1 and ">\n" not in flat.partition("?>")[2]


def test_an_answer_without_assertions_or_facet_still_closes_with_the_technical_assertion() -> None:
    text, status = _written(answer_response("", EMPTY, NameId("urn:be:fgov:person:ssin", "6"), ()))
    assert text == EMPTY_TEXT
    assert status == _status_xml("SUCCESS")


def test_every_id_is_fresh_random_and_128_bits() -> None:
    ids = [one for _ in range(20) for one in _ids(answer_response("_q1", PARTIAL, SSIN, (INSURABILITY,)))]
    assert len(ids) == 20 * 5 == len(set(ids))
    assert all(re.fullmatch(r"_[0-9a-f]{32}", one) for one in ids)


def test_an_answer_carries_nothing_of_the_one_before() -> None:
    first = answer_response("_q1", PARTIAL, SSIN, (INSURABILITY,))
    before = etree.tostring(first)
    other = Answer("48031202166", "500", D(2025, 1, 1), D(2025, 2, 1), (Assertion(ChronicCondition((2024,)), CHRONIC),))
    second = answer_response("_q2", other, NameId("urn:be:fgov:person:ssin", "48031202166"), (CHRONIC,))
    text = etree.tostring(second).decode()
    for value in ("61110202116", "io:300", "D'Hondt", "Luc", "1961-11-02", "2026-05-01", "2026-06-01", "2026-08-31",
                  "_q1", "Dimension", "requestType", "patientData", "insurability", "PartialAnswer", "MUTATION",
                  "maf:year"):
        assert value not in text, value
    assert text.count("<saml:Assertion ") == 2 and text.count("48031202166") == 2 and text.count("io:500") == 3
    assert text.count('NotBefore="2025-01-01T00:00:00" NotOnOrAfter="2025-02-01T00:00:00"') == 2
    assert text.count('<ext:Facet id="urn:be:cin:nippin:chronicCondition"/>') == 2
    assert not set(_ids(first)) & set(_ids(second))
    assert etree.tostring(first) == before  # building the second changed nothing of the first
    assert _written(first)[0] == PARTIAL_TEXT


def test_the_technical_status_is_keyed_on_the_code_and_the_types() -> None:
    kinds = ["urn:be:cin:nippin:insurability:period", "urn:be:cin:nippin:insurability:period"]
    warned = memberdata.technical_status(PARTIAL, kinds)
    fine = memberdata.technical_status(EMPTY, kinds)
    for value, code in ((warned, "WARNING"), (fine, "SUCCESS")):
        assert zlib.decompress(base64.b64decode(value), -zlib.MAX_WBITS) == _status_xml(code, "insurability.period")
    other = memberdata.technical_status(EMPTY, ["urn:be:cin:nippin:chronicCondition"])
    assert zlib.decompress(base64.b64decode(other), -zlib.MAX_WBITS) == _status_xml("SUCCESS", "chronicCondition")


def test_answers_built_side_by_side_in_threads_are_each_their_own() -> None:
    shapes = [("_q1", PARTIAL, SSIN, (INSURABILITY,), PARTIAL_TEXT),
              ("", EMPTY, NameId("urn:be:fgov:person:ssin", "6"), (), EMPTY_TEXT)]
    wrong: list[str] = []

    def work(shape: int) -> None:
        in_response_to, answer, name_id, facets, expected = shapes[shape]
        for _ in range(40):
            text, _status = _written(answer_response(in_response_to, answer, name_id, facets))
            if text != expected:
                wrong.append(text)

    threads = [threading.Thread(target=work, args=(n % 2,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not wrong, wrong[0]


def test_the_skeletons_copied_stay_as_they_were() -> None:
    answer_response("_q1", PARTIAL, SSIN, (INSURABILITY,))
    skeleton = etree.tostring(memberdata._SKELETON)
    shaped = memberdata._shaped(f"{N}:insurability:patientData", (
        ("urn:be:fgov:person:ssin", "string", 1), (f"{CR}:name", "string", 1), (f"{CR}:firstName", "string", 1),
        (f"{CR}:birthDate", "date", 1), (f"{CR}:gender", "string", 1)))
    before = etree.tostring(shaped)
    answer_response("_q1", PARTIAL, SSIN, (INSURABILITY,))
    assert etree.tostring(memberdata._SKELETON) == skeleton and etree.tostring(shaped) == before
    for value in (b"61110202116", b"Luc", b"1961-11-02", b"io:300", b"2026-", b"insurability\"", b"_q1"):
        assert value not in skeleton + before, value
    assert b'ID=""' in skeleton and before.count(b"<saml:AttributeValue ") == 5


def test_an_assertion_shaped_as_one_before_carries_only_its_own_values() -> None:
    first = answer_response("_q1", PARTIAL, SSIN, (INSURABILITY,))
    again = PatientData("48031202166", "Peeters", "Jan", D(1948, 3, 12), "female", None)  # the same attributes
    answer = Answer("48031202166", "300", D(2026, 5, 1), D(2026, 8, 31), (Assertion(again, INSURABILITY),))
    second = answer_response("_q2", answer, NameId("urn:be:fgov:person:ssin", "48031202166"), (INSURABILITY,))
    values = [av.text for av in second.iter("{urn:oasis:names:tc:SAML:2.0:assertion}AttributeValue")]
    assert values[:5] == ["48031202166", "Peeters", "Jan", "1948-03-12", "female"] and len(values) == 7
    text = etree.tostring(second).decode()
    assert "61110202116" not in text and "Hondt" not in text and "Luc" not in text and "1961" not in text
    assert _written(first)[0] == PARTIAL_TEXT


def test_each_assertion_echoes_its_own_facet_and_the_technical_one_the_first_asked() -> None:
    care_path = FacetRequest("urn:be:cin:nippin:carePath", Facet.CARE_PATH, (("carePathType", "diabetes"),))
    answer = Answer("61110202116", "300", D(2026, 5, 1), D(2026, 8, 31), (
        Assertion(PATIENT, INSURABILITY), Assertion(ChronicCondition((2025,)), CHRONIC),
        Assertion(PAYMENT, INSURABILITY)))
    root = answer_response("_q1", answer, SSIN, (care_path, INSURABILITY, CHRONIC))
    echoed = [(facet.get("id"), [(d.get("id"), d.text) for d in facet])
              for facet in root.iter("{urn:be:cin:nippin:memberdata:saml:extension}Facet")]
    ins = ("urn:be:cin:nippin:insurability", [("requestType", "information"), ("contactType", "other")])
    assert echoed == [ins, ("urn:be:cin:nippin:chronicCondition", []), ins,
                      ("urn:be:cin:nippin:carePath", [("carePathType", "diabetes")])]
