"""Tarification and Mediprima as production answers a client generated from the official contracts (issue 11,
items 1-8).

Every request here is a raw XML string written from the public element names (message services 1.2, KMEHR
1.19, MyCareNet commons v2, MyCareNetTarification_v1.wsdl), with the prefixes a JAXB client uses (ns2 core,
ns3 KMEHR) and not with the sandbox's client code; it is checked against the reference schemas of
``tests/fidelity/xsd/`` before it is sent, and every answer after. Those schemas are written apart from the
services' ``xsd/``, so that a drift of the services' own schemas shows here. The expected amounts are the
README's scenario table; the error codes and the paths their XPath must lead to are the public catalogue's
(ConsultTarifErrors): each ``url`` is evaluated, as clients do, on the request that was sent, must select
exactly the offending node, and that node's path, computed the way a public client computes it, must be the
catalogue's path for the code.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from lxml import etree

from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.sandbox import Sandbox
from mycarenet_ic.security.wssec import Signer
from mycarenet_ic.stubs.scenario import DEMO_FILE
from tests import support

pytestmark = pytest.mark.integration

XSD = Path(__file__).parent / "xsd"
BLOB_SCHEMA = etree.XMLSchema(etree.parse(str(XSD / "messageservices-protocol.xsd")))
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
TAR = "urn:be:fgov:ehealth:mycarenet:tarification:protocol:v1"
ACTION = f"{TAR}:TarificationConsult"
P2 = "urn:be:fgov:ehealth:mycarenet:commons:protocol:v2"
C2 = "urn:be:fgov:ehealth:mycarenet:commons:core:v2"
MP = "http://www.ehealth.fgov.be/messageservices/protocol/v1"
MC = "http://www.ehealth.fgov.be/messageservices/core/v1"
K = "http://www.ehealth.fgov.be/standards/kmehr/schema/v1"
NS = {"mp": MP, "mc": MC, "k": K}
DAY = dt.date.today() - dt.timedelta(days=2)

# KMEHR 1.19 code lists (cd-1_19): the values an answer may carry in the schemes whose S is not fixed.
CD_ITEM_MYCARENET = {"fee", "financialcontract", "patientfee", "payment", "reimbursement", "refusal", "patientpaid",
                     "supplement", "paymentreceivingparty", "internship", "documentidentity", "invoicingnumber",
                     "reimbursement-fpssi", "reimbursement-pswc", "umc", "mediprimanumber", "pswc"}
CD_ITEM_TARIFF = {"claim", "encounterdatetime", "justification", "gmdmanager", "encountertype", "requestor",
                  "encounternumber"}
CD_TRANSACTION_MYCARENET = {"gmd", "gmdclosure", "gmdextension", "tariff", "tariffmediprima", "cga", "cgd", "mea"}

# The callers (certificate quality, SSIN, NIHII, CD-HCPARTY) of the README's scenario table.
CALLERS = {
    "gp": (Quality.DOCTOR, "74030902123", "11200035003", "persphysician"),             # Verhoeven
    "accredited": (Quality.DOCTOR, "80060102221", "11203795004", "persphysician"),     # Coppens
    "specialist": (Quality.DOCTOR, "70051208689", "12183495580", "persphysician"),     # Claessens
    "nurse": (Quality.NURSE, "86021702227", "41211142404", "persnurse"),               # De Backer
    "expired": (Quality.DOCTOR, "57120502143", "11207458003", "persphysician"),        # Moreau, VISA ended
    "unknown": (Quality.DOCTOR, "85100403749", "11999096003", "persphysician"),        # not in CoBrHa
}
DESMET, JANSSENS, MAES, PEETERS = "82112502158", "52073002225", "61110202116", "48031202166"
MARTIN, CHILD, WOUTERS, LAMBERT = "58032102205", "16082102260", "39060802118", "79081502279"
POPESCU, DIALLO = "92080304510", "99012106236"

# Catalogue paths (ConsultTarifErrors; its "Request" is spelt here as the node is named, "request").
PATIENT_ID = "/RetrieveTransactionRequest/select/patient/id"
AUTHOR_ID = "/RetrieveTransactionRequest/request/author/hcparty/id"
CLAIM_CD = "/RetrieveTransactionRequest/select/transaction[tariff]/item[claim]/content/cd[CD-NIHDI]"
JUSTIFICATION_CD = ("/RetrieveTransactionRequest/select/transaction[tariff]/item[justification]/content"
                    "/cd[CD-MYCARENET-JUSTIFICATION]")
MEMBERSHIP_NUMBER = "/RetrieveTransactionRequest/select/patient/insurancymembership/membership"


# -- requests, written from the public element names -------------------------------------------------------
def _patient_by_id(ssin: str) -> str:
    return f'<ns2:patient><ns2:id S="ID-PATIENT" SV="1.0">{ssin}</ns2:id></ns2:patient>'


def _patient_by_membership(sex: str, mutuality: str, number: str) -> str:
    return (f'<ns2:patient><ns2:sex><ns3:cd S="CD-SEX" SV="1.1">{sex}</ns3:cd></ns2:sex>'
            f'<ns2:insurancymembership><ns3:id S="ID-INSURANCE" SV="1.0">{mutuality}</ns3:id>'
            f"<ns3:membership>{number}</ns3:membership></ns2:insurancymembership></ns2:patient>")


def _item(n: int, kind: str, content: str) -> str:
    return (f'<ns2:item><ns3:id S="ID-KMEHR" SV="1.0">{n}</ns3:id><ns3:cd S="CD-ITEM" SV="1.0">{kind}</ns3:cd>'
            f"<ns3:content>{content}</ns3:content></ns2:item>")


def retrieve_transaction_request(caller: str, patient: str, codes: list[str], day: dt.date = DAY,
                                 justification: str | None = None, gmd_manager: str | None = None,
                                 transaction: str = "tariff") -> bytes:
    """A RetrieveTransactionRequest as the public clients marshal it."""
    _quality, ssin, nihii, hcparty = CALLERS[caller]
    now = dt.datetime.now().replace(microsecond=0)
    author = (f'<ns3:hcparty><ns3:id S="ID-HCPARTY" SV="1.0">{nihii}</ns3:id><ns3:id S="INSS" SV="1.0">{ssin}</ns3:id>'
              f'<ns3:cd S="CD-HCPARTY" SV="1.3">{hcparty}</ns3:cd><ns3:firstname>Test</ns3:firstname>'
              "<ns3:familyname>Fidelity</ns3:familyname></ns3:hcparty>")
    n = 1
    items = [_item(n, "encounterdatetime", f"<ns3:date>{day}</ns3:date>")]
    for code in codes:
        n += 1
        items.append(_item(n, "claim", f'<ns3:cd S="CD-NIHDI" SV="1.0">{code}</ns3:cd>'))
    if justification is not None:
        n += 1
        items.append(_item(n, "justification",
                           f'<ns3:cd S="CD-MYCARENET-JUSTIFICATION" SV="1.0">{justification}</ns3:cd>'))
    if gmd_manager is not None:
        n += 1
        items.append(_item(n, "gmdmanager", f'<ns3:hcparty><ns3:id S="ID-HCPARTY" SV="1.0">{gmd_manager}</ns3:id>'
                                             '<ns3:cd S="CD-HCPARTY" SV="1.3">persphysician</ns3:cd></ns3:hcparty>'))
    return (f'<RetrieveTransactionRequest xmlns="{MP}" xmlns:ns2="{MC}" xmlns:ns3="{K}">'
            f'<ns2:request><ns2:id S="ID-KMEHR" SV="1.0">{nihii}.{now:%Y%d%H%M%S}{secrets.randbelow(100):02d}</ns2:id>'
            f"<ns2:author>{author}</ns2:author><ns2:date>{now.date()}</ns2:date><ns2:time>{now:%H:%M:%S}</ns2:time>"
            f"</ns2:request><ns2:select>{patient}<ns2:transaction>"
            f'<ns2:cd S="CD-TRANSACTION-MYCARENET" SV="1.1">{transaction}</ns2:cd>'
            f"<ns2:author>{author}</ns2:author>{''.join(items)}</ns2:transaction></ns2:select>"
            "</RetrieveTransactionRequest>").encode()


def tarification_consultation_request(caller: str, blob: bytes, patient: str, day: dt.date = DAY,
                                      namespace: str = TAR) -> str:
    """The commons v2 TarificationConsultationRequest around ``blob`` (MyCareNetTarification_v1.wsdl)."""
    quality, ssin, nihii, _hcparty = CALLERS[caller]
    return (f'<tar:TarificationConsultationRequest xmlns:tar="{namespace}" xmlns:p="{P2}" xmlns:c="{C2}" '
            f'Id="_{secrets.token_hex(8)}" IssueInstant="{support.now().replace(microsecond=0).isoformat()}">'
            "<p:CommonInput><c:Request><c:IsTest>true</c:IsTest></c:Request><c:Origin><c:Package>"
            "<c:Name>fidelity</c:Name><c:License><c:Username>u</c:Username><c:Password>p</c:Password></c:License>"
            f"</c:Package><c:CareProvider><c:Nihii><c:Quality>{quality.value}</c:Quality><c:Value>{nihii}</c:Value>"
            f"</c:Nihii><c:PhysicalPerson><c:Ssin>{ssin}</c:Ssin></c:PhysicalPerson></c:CareProvider></c:Origin>"
            "<c:InputReference>fidelity-1</c:InputReference></p:CommonInput>"
            f"<p:Routing><c:CareReceiver><c:Ssin>{patient}</c:Ssin></c:CareReceiver>"
            f"<c:ReferenceDate>{day}</c:ReferenceDate></p:Routing>"
            f'<p:Detail ContentEncoding="none" ContentType="text/xml">{base64.b64encode(blob).decode()}</p:Detail>'
            "</tar:TarificationConsultationRequest>")


def send(box: Sandbox, service: str, caller: str, blob: bytes, patient: str,
         namespace: str = TAR) -> requests.Response:
    quality, ssin, nihii, _hcparty = CALLERS[caller]
    signer = Signer(box.platform.pki.issue_holder(quality, ssin, nihii))
    body = support.to_bytes(support.signed(signer, tarification_consultation_request(caller, blob, patient,
                                                                                     namespace=namespace)))
    return requests.post(box.urls[service], data=body, timeout=30,
                         headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{ACTION}"'})


def answer_blob(resp: requests.Response) -> etree._Element:
    """The RetrieveTransactionResponse of a TarificationConsultationResponse, checked against the reference."""
    assert resp.status_code == 200, resp.content[:800]
    envelope = etree.fromstring(resp.content)
    payload = envelope.find(f"{{{SOAP}}}Body")[0]
    assert payload.tag == f"{{{TAR}}}TarificationConsultationResponse"
    detail = payload.find(f"{{{P2}}}Return/{{{P2}}}Detail")
    assert detail is not None and detail.get("ContentType") == "text/xml"
    data = base64.b64decode(detail.text or "")
    if (detail.get("ContentEncoding") or "deflate") == "deflate":
        data = zlib.decompress(data, -zlib.MAX_WBITS)
    blob = etree.fromstring(data)
    BLOB_SCHEMA.assertValid(blob)
    _check_code_values(blob)
    return blob


def _check_code_values(blob: etree._Element) -> None:
    """What the schema cannot say: values of the schemes with a free S, and no attribute of our own."""
    assert blob.find("mc:response", NS) is not None and blob.find("mc:response", NS).get("version") is None
    for cd in blob.iterfind(".//k:item/k:cd", NS):
        allowed = {"CD-ITEM-MYCARENET": CD_ITEM_MYCARENET, "CD-ITEM": CD_ITEM_TARIFF}[cd.get("S", "")]
        assert cd.text in allowed, etree.tostring(cd)
    for cd in blob.iterfind(".//k:transaction/k:cd", NS):
        assert cd.get("S") == "CD-TRANSACTION-MYCARENET" and cd.text in CD_TRANSACTION_MYCARENET
    for error in blob.iterfind("mc:acknowledge/mc:error", NS):
        assert [cd.get("S") for cd in error.iterfind("k:cd", NS)] == ["CD-ERROR"]
        assert error.find("k:description", NS).get("L")
    for unit in blob.iterfind(".//k:cost/k:unit/k:cd", NS):
        assert (unit.get("S"), unit.text) == ("CD-CURRENCY", "eur")


# -- what a client does with an error's url --------------------------------------------------------------------
def catalogue_path(node: etree._Element) -> str:
    """The path of ``node`` as public clients compute it to find the catalogue's entry: local names, with the
    transaction's and item's code and a cd's scheme in brackets."""
    steps = []
    for el in [node, *node.iterancestors()]:
        name = etree.QName(el).localname
        if name == "transaction":
            kind = el.findtext("mc:cd[@S='CD-TRANSACTION-MYCARENET']", namespaces=NS)
            name = f"transaction[{kind}]"
        elif name == "item":
            kinds = [cd.text for cd in el.iterfind("k:cd", NS) if cd.get("S") in ("CD-ITEM", "CD-ITEM-MYCARENET")]
            name = f"item[{kinds[0] if kinds else ''}]"
        elif name == "cd":
            name = f"cd[{el.get('SL') or el.get('S')}]"
        steps.append(name)
    return "/" + "/".join(reversed(steps))


def _infoset(el: etree._Element | None) -> object:
    """Names (namespace + local name), attributes, text and children, whatever the prefixes."""
    assert el is not None
    return (el.tag, sorted(el.attrib.items()), (el.text or "").strip(), [_infoset(c) for c in el])


def errors_of(blob: etree._Element) -> list[tuple[str, str]]:
    return [(e.findtext("k:cd", namespaces=NS) or "", e.findtext("k:url", namespaces=NS) or "")
            for e in blob.iterfind("mc:acknowledge/mc:error", NS)]


def lines_of(blob: etree._Element) -> dict[str, dict[str, str]]:
    """code → {item kind: amount, content id or code, boolean} of each transaction of the answer."""
    out = {}
    for tx in blob.iterfind("mc:kmehrmessage/k:folder/k:transaction", NS):
        values: dict[str, str] = {}
        for item in tx.iterfind("k:item", NS):
            kind = item.findtext("k:cd", namespaces=NS) or ""
            cost = item.findtext("k:cost/k:decimal", namespaces=NS)
            content = item.find("k:content", NS)
            if cost is not None:
                values[kind] = cost
            elif content is not None and len(content):
                values[kind] = content[0].text or ""
        out[values.pop("claim")] = values
    return out


# -- the table -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    service: str
    caller: str
    patient: str
    codes: list[str]
    lines: dict[str, dict[str, str]] = field(default_factory=dict)
    # (code, catalogue path, the offending node as an XPath on the request with the mc/k prefixes)
    errors: list[tuple[str, str, str]] = field(default_factory=list)
    justification: str | None = None
    gmd_manager: str | None = None
    membership: tuple[str, str, str] | None = None     # sex, mutuality, number instead of the NISS
    day: dt.date = DAY


def _amounts(fee: str, insurer: str, patient: str, justification: str) -> dict[str, str]:
    return {"fee": fee, "reimbursement": insurer, "patientfee": patient, "justification": justification}


def _affiliation(ssin: str) -> tuple[str, str, str]:
    """(sex, mutuality, membership number) of ``ssin`` in the demo scenario (the insurers' data)."""
    data = json.loads(Path(DEMO_FILE).read_text(encoding="utf-8"))
    period = next(r for r in data["insurer_affiliations"] if r["ssin"] == ssin and not r.get("end"))
    sex = next(p["sex"] for p in data["persons"] if p["ssin"] == ssin)
    return sex, period["mutuality"], period["registration_number"]


CLAIM_NODE = "mc:select/mc:transaction/mc:item[k:cd='claim'][{n}]/k:content/k:cd[@S='CD-NIHDI']"
PATIENT_NODE = "mc:select/mc:patient/mc:id"
AUTHOR_NODE = "mc:request/mc:author/k:hcparty/k:id[@S='ID-HCPARTY']"
SEX, MUTUALITY, NUMBER = _affiliation(DESMET)
OTHER_SEX = "female" if SEX == "male" else "male"
CASES: dict[str, Case] = {
    # README: who shows what (101076 GP consultation unless said)
    "ordinary": Case("tarification", "gp", DESMET, ["101076", "103132"], {
        "101076": _amounts("30.49", "24.49", "6.00", "9"), "103132": _amounts("44.57", "32.62", "11.95", "9")}),
    "preferential": Case("tarification", "gp", JANSSENS, ["101076"], {
        "101076": {**_amounts("30.49", "28.99", "1.50", "3"), "financialcontract": "*"}}),
    "GMD with": Case("tarification", "gp", MAES, ["101076"], {"101076": _amounts("30.49", "26.49", "4.00", "9")}),
    "GMD other GP (G notion)": Case("tarification", "accredited", MAES, ["101076"], {
        "101076": _amounts("31.79", "27.79", "4.00", "7")}, justification="7", gmd_manager="11200035003"),
    "care trajectory": Case("tarification", "gp", PEETERS, ["101076"], {
        "101076": {**_amounts("30.49", "30.49", "0.00", "3"), "financialcontract": "*"}}),
    "palliative": Case("tarification", "gp", MARTIN, ["103132"], {"103132": _amounts("44.57", "44.57", "0.00", "9")}),
    "child": Case("tarification", "gp", CHILD, ["101076"], {"101076": _amounts("30.49", "28.99", "1.50", "9")}),
    "medical house": Case("tarification", "gp", WOUTERS, ["101076"],
                          errors=[("169", CLAIM_CD, CLAIM_NODE.format(n=1))]),
    "specialist": Case("tarification", "specialist", DESMET, ["102012"], {
        "102012": _amounts("43.40", "31.40", "12.00", "9")}),
    "nurse": Case("tarification", "nurse", DESMET, ["425110", "794253"], {
        "425110": _amounts("7.60", "5.70", "1.90", "9"), "794253": _amounts("28.13", "28.13", "0.00", "9")}),
    "not in order": Case("tarification", "gp", LAMBERT, ["101076"], errors=[("170", PATIENT_ID, PATIENT_NODE)]),
    "CPAS, share covered": Case("mediprima", "gp", POPESCU, ["101076"], {"101076": {
        "fee": "30.49", "reimbursement-fpssi": "24.49", "reimbursement-pswc": "6.00", "patientfee": "0.00",
        "umc": "false", "financialcontract": "*", "pswc": "*", "encounterdatetime": str(DAY)}}),
    "CPAS, urgent medical aid": Case("mediprima", "gp", DIALLO, ["101076"], {"101076": {
        "fee": "30.49", "reimbursement-fpssi": "24.49", "reimbursement-pswc": "0.00", "patientfee": "6.00",
        "umc": "true", "financialcontract": "*", "pswc": "*", "encounterdatetime": str(DAY)}}),
    # the patient by sex + insurer membership instead of the NISS
    "patient by insurancymembership": Case("tarification", "gp", DESMET, ["101076"], {
        "101076": _amounts("30.49", "24.49", "6.00", "9")}, membership=(SEX, MUTUALITY, NUMBER)),
    "membership unknown": Case("tarification", "gp", DESMET, ["101076"], membership=(SEX, MUTUALITY, "999999999999"),
                               errors=[("122", MEMBERSHIP_NUMBER, "mc:select/mc:patient/mc:insurancymembership/"
                                                                   "k:membership")]),
    "membership with the wrong sex": Case("tarification", "gp", DESMET, ["101076"],
                                          membership=(OTHER_SEX, MUTUALITY, NUMBER),
                                          errors=[("158", "/RetrieveTransactionRequest/select/patient",
                                                   "mc:select/mc:patient")]),
    # authors the insurers refuse: a normal answer with the catalogue's errors, no tariff
    "author without a valid VISA": Case("tarification", "expired", DESMET, ["101076"],
                                        errors=[("140", AUTHOR_ID, AUTHOR_NODE)]),
    "author unknown": Case("tarification", "unknown", DESMET, ["101076"], errors=[("141", AUTHOR_ID, AUTHOR_NODE)]),
    # a refused code leaves the others priced
    "one code refused": Case("tarification", "gp", DESMET, ["101076", "999999"], {
        "101076": _amounts("30.49", "24.49", "6.00", "9")}, errors=[("130", CLAIM_CD, CLAIM_NODE.format(n=2))]),
    # numeric justification, sent and answered back
    "justification 2": Case("tarification", "gp", DESMET, ["101076"], {
        "101076": {**_amounts("30.49", "24.49", "6.00", "2"), "financialcontract": "*"}}, justification="2"),
    "justification not allowed": Case("tarification", "gp", DESMET, ["101076"], justification="5", errors=[
        ("130", JUSTIFICATION_CD, "mc:select/mc:transaction/mc:item[k:cd='justification']/k:content/k:cd")]),
    "NISS check digit": Case("tarification", "gp", "82112502159", ["101076"],
                             errors=[("112", PATIENT_ID, PATIENT_NODE)]),
    "date more than two months back": Case(
        "tarification", "gp", DESMET, ["101076"], day=dt.date.today() - dt.timedelta(days=70), errors=[(
            "166", "/RetrieveTransactionRequest/select/transaction[tariff]/item[encounterdatetime]/content/date",
            "mc:select/mc:transaction/mc:item[k:cd='encounterdatetime']/k:content/k:date")]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_official_shape_request_gets_the_production_answer(sandbox: Sandbox, name: str) -> None:
    case = CASES[name]
    patient = (_patient_by_membership(*case.membership) if case.membership else _patient_by_id(case.patient))
    blob = retrieve_transaction_request(case.caller, patient, case.codes, case.day, case.justification,
                                        case.gmd_manager,
                                        "tariffmediprima" if case.service == "mediprima" else "tariff")
    sent = etree.fromstring(blob)
    BLOB_SCHEMA.assertValid(sent)  # the table itself is official-shaped
    answer = answer_blob(send(sandbox, case.service, case.caller, blob, case.patient))

    # the request is echoed as sent
    echoed = answer.find("mc:response/mc:request", NS)
    assert echoed is not None
    assert _infoset(echoed) == _infoset(sent.find("mc:request", NS))

    # errors: the catalogue's codes, each url selecting exactly the offending node of the request sent
    got = errors_of(answer)
    assert [code for code, _url in got] == [code for code, _path, _node in case.errors]
    for (code, url), (_code, path, node) in zip(got, case.errors, strict=True):
        selected = sent.xpath(url)  # as clients do: no namespace context
        expected = sent.xpath(node, namespaces=NS)
        assert isinstance(selected, list) and len(selected) == 1 and len(expected) == 1, (code, url)
        assert selected[0] is expected[0], (code, url)
        assert catalogue_path(selected[0]) == path, (code, url)
    assert answer.findtext("mc:acknowledge/mc:iscomplete", namespaces=NS) == ("false" if case.errors else "true")

    # the tariff per code; a folder only when something is priced
    lines = lines_of(answer)
    assert set(lines) == set(case.lines)
    for code, expected_values in case.lines.items():
        for kind, value in expected_values.items():
            assert kind in lines[code], (code, kind)
            assert value == "*" and lines[code][kind] or lines[code][kind] == value, (code, kind, lines[code])
    if case.lines:
        _check_patient(answer, case)
    else:
        assert answer.find("mc:kmehrmessage", NS) is None


def _check_patient(answer: etree._Element, case: Case) -> None:
    message = answer.find("mc:kmehrmessage", NS)
    assert message is not None
    header = message.find("k:header", NS)
    assert header is not None and header.findtext("k:standard/k:cd", namespaces=NS)
    recipient_ids = [i.text for i in header.iterfind("k:recipient/k:hcparty/k:id", NS)]
    assert CALLERS[case.caller][2] in recipient_ids
    patient = message.find("k:folder/k:patient", NS)
    assert patient is not None
    assert patient.findtext("k:id[@S='ID-PATIENT']", namespaces=NS) == case.patient
    status = patient.find("k:insurancystatus", NS)
    if case.service == "mediprima":
        assert status is None  # people a CPAS decision covers are not insured
        return
    assert status is not None
    insurer = status.find("k:id", NS)
    assert insurer is not None and insurer.get("S") == "ID-INSURANCE" and insurer.text and len(insurer.text) == 3
    assert status.findtext("k:cg1", namespaces=NS) and status.findtext("k:cg2", namespaces=NS)


# -- the contract's names and addresses ----------------------------------------------------------------------
@pytest.mark.parametrize("service", ["tarification", "mediprima"])
def test_served_wsdl_has_the_official_names(sandbox: Sandbox, service: str) -> None:
    wsdl = etree.fromstring(requests.get(sandbox.urls[service] + "?wsdl", timeout=10).content)
    w = "{http://schemas.xmlsoap.org/wsdl/}"
    assert wsdl.get("targetNamespace") == TAR
    assert [p.get("name") for p in wsdl.iter(f"{w}portType")] == ["MycarenetTarificationPortType"]
    assert [b.get("name") for b in wsdl.iter(f"{w}binding")] == ["MycarenetTarificationSOAPBinding"]
    assert [(s.get("name"), p.get("name")) for s in wsdl.iter(f"{w}service") for p in s.iter(f"{w}port")] == [
        ("MycarenetTarificationService", "MycarenetTarifationServiceSOAP11")]
    actions = [o.get("soapAction") for o in wsdl.iter("{http://schemas.xmlsoap.org/wsdl/soap/}operation")]
    assert actions == [ACTION]


def _fault_code(resp: requests.Response) -> str:
    assert resp.status_code == 500, resp.content[:500]
    detail = etree.fromstring(resp.content).find(f"{{{SOAP}}}Body/{{{SOAP}}}Fault/detail")
    assert detail is not None and len(detail) == 1
    return detail[0].findtext("Code") or ""


def test_shapes_production_refuses_are_refused(sandbox: Sandbox) -> None:
    """What the sandbox once accepted and production does not: the message-services children in the protocol
    namespace, the sandbox's own Mediprima namespace, and justification words."""
    official = retrieve_transaction_request("gp", _patient_by_id(DESMET), ["101076"])
    protocol_children = official.replace(b"<ns2:request>", b"<request>").replace(b"</ns2:request>", b"</request>")
    assert not BLOB_SCHEMA.validate(etree.fromstring(protocol_children))
    refused = send(sandbox, "tarification", "gp", protocol_children, DESMET)
    assert _fault_code(refused) == "SOA-03006"  # not valid against the message-services schema
    invented = send(sandbox, "mediprima", "gp", retrieve_transaction_request(
        "gp", _patient_by_id(POPESCU), ["101076"], transaction="tariffmediprima"), POPESCU,
        namespace="urn:be:fgov:ehealth:mycarenet:mediprima:tarification:protocol:v1")
    assert _fault_code(invented) == "SOA-03005"  # no operation takes that element
    words = answer_blob(send(sandbox, "tarification", "gp", retrieve_transaction_request(
        "gp", _patient_by_id(DESMET), ["101076"], justification="financialsituation"), DESMET))
    assert [code for code, _url in errors_of(words)] == ["111"]
    assert lines_of(words) == {}
