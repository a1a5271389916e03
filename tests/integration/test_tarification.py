"""Tarification and Mediprima over HTTP: signed zeep calls built from ``wsdl/`` with a KMEHR request in the
Detail blob, for the scenario's patients (ordinary, preferential, GMD with/without, medical house,
palliative, child, care trajectory, CPAS); errors with the public catalogue's codes; answers valid
against ``xsd/``; every consultation audited. (The official-shape checks against schemas written apart from
``xsd/`` are in ``tests/fidelity/test_tarification_fidelity.py``.)"""

from __future__ import annotations

import base64
import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
import zeep.exceptions
from lxml import etree

from mycarenet_ic import contract
from mycarenet_ic.clients.base import SignedSoapClient
from mycarenet_ic.clients.messages import tariff_request as kmehr_request
from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.sandbox import Sandbox
from mycarenet_ic.security.wssec import Signer
from mycarenet_ic.soap.faults import descriptive_code
from mycarenet_ic.soap.tarification import answer_of
from tests import support

pytestmark = pytest.mark.integration

TAR = "urn:be:fgov:ehealth:mycarenet:tarification:protocol:v1"
P2 = "urn:be:fgov:ehealth:mycarenet:commons:protocol:v2"
CORE2 = "urn:be:fgov:ehealth:mycarenet:commons:core:v2"
MP = "http://www.ehealth.fgov.be/messageservices/protocol/v1"
MC = "http://www.ehealth.fgov.be/messageservices/core/v1"
K = "http://www.ehealth.fgov.be/standards/kmehr/schema/v1"
ACCREDITED_GP = ("80060102221", "11203795004")  # Coppens
NURSE = ("86021702227", "41211142404")           # De Backer
SPECIALIST = ("70051208689", "12183495580")      # Claessens, internal medicine
POPESCU, DIALLO = "92080304510", "99012106236"   # CPAS Namur (share covered), CPAS Gent (AMU)
DAY = dt.date.today() - dt.timedelta(days=2)


class TariffClient:
    def __init__(self, box: Sandbox, who: tuple[str, str | None], quality: Quality = Quality.DOCTOR,
                 service: str = "tarification") -> None:
        self.ssin, self.nihii = who
        self.service = service
        wsdl = ("mycarenet-mediprima-tarification-v1.wsdl" if service == "mediprima"
                else "mycarenet-tarification-v1.wsdl")
        holder = box.platform.pki.issue_holder(quality, self.ssin, self.nihii)
        self.client = SignedSoapClient(wsdl, f"{{{TAR}}}MycarenetTarificationSOAPBinding", box.urls[service],
                                       Signer(holder), box.platform.answer_verifier())

    def send(self, blob: bytes, encoding: str = "none") -> etree._Element | dict[str, str]:
        common = {"Request": {"IsTest": True},
                  "Origin": {"Package": {"Name": {"_value_1": "tests"}, "License": {"Username": "u", "Password": "p"}},
                             "CareProvider": {"Nihii": {"Quality": "doctor", "Value": {"_value_1": self.nihii}},
                                              "PhysicalPerson": {"Ssin": {"_value_1": self.ssin}}}},
                  "InputReference": "tar-1"}
        if encoding == "deflate":
            import zlib

            packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
            blob = packer.compress(blob) + packer.flush()
        try:
            answer = self.client._service.tarificationConsultation(
                **self.client.header(), CommonInput=common,
                Routing={"CareReceiver": {"Ssin": "00000000000"}, "ReferenceDate": DAY},
                Detail={"_value_1": blob, "ContentType": "text/xml", "ContentEncoding": encoding})
        except zeep.exceptions.Fault as exc:
            err = exc.detail[0]
            return {"kind": etree.QName(err).localname,
                    "Code": descriptive_code(err.findtext("Code") or "", err.findtext("Message") or "")}
        root = answer_of(answer.Return.Detail)
        contract.schema("messageservices-protocol-v1.xsd").assertValid(root)
        return root

    def ask(self, patient: str, codes: list[str], day: dt.date = DAY, **kw: Any) -> etree._Element:
        assert self.nihii is not None, "a request is authored by a provider: a NIHII (a citizen only sends)"
        tx = "tariffmediprima" if self.service == "mediprima" else "tariff"
        root = self.send(kmehr_request(self.nihii, self.ssin, patient, day, codes, transaction=tx, **kw))
        assert isinstance(root, etree._Element), root
        return root


def errors(root: etree._Element) -> list[str]:
    return [e.findtext(f"{{{K}}}cd") or "" for e in root.iter(f"{{{MC}}}error")]


def lines(root: etree._Element) -> dict[str, dict[str, str]]:
    """code → {item kind: value} of every transaction in the answer."""
    out = {}
    for tx in root.iter(f"{{{K}}}transaction"):
        values: dict[str, str] = {}
        for item in tx.findall(f"{{{K}}}item"):
            kind = item.findtext(f"{{{K}}}cd") or ""
            cost = item.findtext(f"{{{K}}}cost/{{{K}}}decimal")
            content = item.find(f"{{{K}}}content")
            if cost is not None:
                values[kind] = cost
            elif content is not None and len(content):
                values[kind] = content[0].text or ""
        out[values["claim"]] = values
    return out


def euros(text: str) -> int:
    return int(Decimal(text) * 100)


@pytest.fixture(scope="module")
def gp(sandbox: Sandbox) -> TariffClient:
    return TariffClient(sandbox, (support.DOCTOR_SSIN, support.DOCTOR_NIHII))


# -- one scenario patient per case ---------------------------------------------------------------------------
@pytest.mark.parametrize("case,who,patient,codes,kw,expected", [
    # expected: code → (fee, insurer, patient share) in cents, as the engine's table says
    ("ordinary, no GMD", "gp", support.PATIENT_UNLINKED, ["101076", "103132"], {},
     {"101076": (3049, 2449, 600), "103132": (4457, 3262, 1195)}),
    ("preferential (BIM)", "gp", "52073002225", ["101076"], {}, {"101076": (3049, 2899, 150)}),
    ("GMD held by the GP", "gp", "61110202116", ["101076"], {}, {"101076": (3049, 2649, 400)}),
    ("GMD held by another GP, named", "accredited", "61110202116", ["101076"],
     {"gmd_manager": support.DOCTOR_NIHII}, {"101076": (3179, 2779, 400)}),
    ("care trajectory", "gp", support.PATIENT_LINKED, ["101076"], {}, {"101076": (3049, 3049, 0)}),
    ("palliative", "gp", "58032102205", ["103132"], {}, {"103132": (4457, 4457, 0)}),
    ("child", "gp", "16082102260", ["101076"], {}, {"101076": (3049, 2899, 150)}),
    ("specialist", "specialist", support.PATIENT_UNLINKED, ["102012"], {}, {"102012": (4340, 3140, 1200)}),
    ("nurse", "nurse", support.PATIENT_UNLINKED, ["425110", "794253"], {},
     {"425110": (760, 570, 190), "794253": (2813, 2813, 0)}),
])
def test_tariff_for_scenario_patients(sandbox: Sandbox, gp: TariffClient, case: str, who: str, patient: str,
                                      codes: list[str], kw: dict[str, Any],
                                      expected: dict[str, tuple[int, int, int]]) -> None:
    client = {"gp": gp, "accredited": TariffClient(sandbox, ACCREDITED_GP),
              "specialist": TariffClient(sandbox, SPECIALIST),
              "nurse": TariffClient(sandbox, NURSE, Quality.NURSE)}[who]
    root = client.ask(patient, codes, **kw)
    assert errors(root) == [], case
    assert root.findtext(f"{{{MC}}}acknowledge/{{{MC}}}iscomplete") == "true"
    got = {code: (euros(v["fee"]), euros(v["reimbursement"]), euros(v["patientfee"]))
           for code, v in lines(root).items()}
    assert got == expected, case
    person = sandbox.scenario.person(patient)
    assert person is not None
    assert root.findtext(f".//{{{K}}}patient/{{{K}}}familyname") == person.last_name
    status = root.find(f".//{{{K}}}patient/{{{K}}}insurancystatus")
    assert status is not None and status.findtext(f"{{{K}}}cg1") in ("110", "111")


def test_third_party_payment_justification_and_approval(gp: TariffClient) -> None:
    # 2: the provider justifies third-party payment: answered back, with the insurer's approval
    root = gp.ask(support.PATIENT_UNLINKED, ["101076"], justification="2")
    line = lines(root)["101076"]
    assert line["justification"] == "2" and line["financialcontract"].startswith("101")
    # nothing asked: 3 when the insurer commits to pay by right (preferential), 9 when it does not
    preferential = lines(gp.ask("52073002225", ["101076"]))["101076"]
    assert preferential["justification"] == "3" and preferential["financialcontract"]
    plain = lines(gp.ask(support.PATIENT_UNLINKED, ["101076"]))["101076"]
    assert plain["justification"] == "9" and "financialcontract" not in plain


def test_g_notion_is_answered_back(sandbox: Sandbox) -> None:
    root = TariffClient(sandbox, ACCREDITED_GP).ask("61110202116", ["101076"], justification="7",
                                                     gmd_manager=support.DOCTOR_NIHII)
    assert errors(root) == []
    line = lines(root)["101076"]
    assert line["justification"] == "7" and euros(line["patientfee"]) == 400


def test_medical_house_subscriber_gets_no_tariff_for_covered_acts(sandbox: Sandbox, gp: TariffClient) -> None:
    root = gp.ask("39060802118", ["101076", "102771"])  # Wouters, medical house for doctor/nurse/physio
    assert errors(root) == ["169", "169"]
    assert root.findtext(f"{{{MC}}}acknowledge/{{{MC}}}iscomplete") == "false"
    assert lines(root) == {}
    assert root.find(f"{{{MC}}}kmehrmessage") is None  # no folder without a transaction (the schema's rule)


def test_one_refused_code_leaves_the_others_priced(gp: TariffClient) -> None:
    root = gp.ask(support.PATIENT_UNLINKED, ["101076", "999999"])
    assert errors(root) == ["130"]
    assert set(lines(root)) == {"101076"}
    assert root.findtext(f".//{{{K}}}patient/{{{K}}}familyname") == "Desmet"


@pytest.mark.parametrize("case,patient,codes,day,kw,code", [
    ("NISS check digit", "48031202167", ["101076"], DAY, {}, "112"),
    ("NISS format", "4803120216", ["101076"], DAY, {}, "111"),
    ("patient unknown to the insurers", "85100403749", ["101076"], DAY, {}, "120"),
    ("patient not in order", "79081502279", ["101076"], DAY, {}, "170"),
    ("date in the future", support.PATIENT_UNLINKED, ["101076"], dt.date.today() + dt.timedelta(days=1), {}, "146"),
    ("date more than two months back", support.PATIENT_UNLINKED, ["101076"],
     dt.date.today() - dt.timedelta(days=70), {}, "166"),
    ("code of another discipline", support.PATIENT_UNLINKED, ["560011"], DAY, {}, "171"),
    ("unknown code", support.PATIENT_UNLINKED, ["999999"], DAY, {}, "130"),
    ("code format", support.PATIENT_UNLINKED, ["1010"], DAY, {}, "111"),
    ("justification not numeric", support.PATIENT_UNLINKED, ["101076"], DAY, {"justification": "friendship"}, "111"),
    ("justification not allowed", support.PATIENT_UNLINKED, ["101076"], DAY, {"justification": "5"}, "130"),
    ("answer-only justification", support.PATIENT_UNLINKED, ["101076"], DAY, {"justification": "9"}, "130"),
    ("GMD manager is not the holder", "61110202116", ["101076"], DAY, {"gmd_manager": "11203795004"}, "167"),
    ("GMD manager is the author", "61110202116", ["101076"], DAY, {"gmd_manager": support.DOCTOR_NIHII}, "174"),
])
def test_errors_carry_the_catalogue_codes(sandbox: Sandbox, gp: TariffClient, case: str, patient: str,
                                          codes: list[str], day: dt.date, kw: dict[str, Any], code: str) -> None:
    root = gp.ask(patient, codes, day, **kw)
    assert errors(root) == [code], case
    assert root.findtext(f"{{{MC}}}acknowledge/{{{MC}}}iscomplete") == "false"
    row = [r for r in sandbox.platform.audit.rows(limit=10) if r["service"] == "tarification"][-1]
    assert code in str(row["detail"])


def test_only_providers_in_cobrha_with_a_valid_visa(sandbox: Sandbox) -> None:
    """An author the insurers refuse (no valid VISA: 140) gets a normal answer with the catalogue's error, as
    production does; a caller who is no care provider at all is refused by the platform (a fault)."""
    before = len(sandbox.platform.audit.rows(limit=1_000_000))
    expired = TariffClient(sandbox, ("57120502143", support.EXPIRED_VISA_NIHII))
    answer = expired.send(kmehr_request(support.EXPIRED_VISA_NIHII, "57120502143", support.PATIENT_UNLINKED, DAY,
                                        ["101076"]))
    assert isinstance(answer, etree._Element), answer
    assert errors(answer) == ["140"] and lines(answer) == {}
    assert answer.findtext(f"{{{MC}}}acknowledge/{{{MC}}}iscomplete") == "false"
    citizen = TariffClient(sandbox, (support.PATIENT_LINKED, None), Quality.CITIZEN)
    answer = citizen.send(kmehr_request(support.DOCTOR_NIHII, support.PATIENT_LINKED, support.PATIENT_UNLINKED, DAY,
                                        ["101076"]))
    assert answer == {"kind": "BusinessError", "Code": "ACCESS_DENIED"}
    rows = support.service_rows_since(sandbox, "tarification", before)
    assert [r["outcome"] for r in rows] == ["DENIED"] * 2
    assert "140" in str(rows[0]["detail"])


def test_a_request_that_is_not_kmehr_is_a_schema_error(gp: TariffClient) -> None:
    assert gp.send(b"<hello/>") == {"kind": "BusinessError", "Code": "INVALID_REQUEST"}
    assert gp.send(kmehr_request(support.DOCTOR_NIHII, support.DOCTOR_SSIN, support.PATIENT_UNLINKED, DAY,
                                 ["101076"], transaction="gmd")) == {"kind": "BusinessError", "Code": "INVALID_REQUEST"}


def test_deflate_encoded_request(gp: TariffClient) -> None:
    root = gp.send(kmehr_request(support.DOCTOR_NIHII, support.DOCTOR_SSIN, support.PATIENT_UNLINKED, DAY,
                                 ["101076"]), encoding="deflate")
    assert isinstance(root, etree._Element) and lines(root)["101076"]["fee"] == "30.49"


def test_consultations_are_audited(sandbox: Sandbox, gp: TariffClient) -> None:
    gp.ask("52073002225", ["101076"])
    row = [r for r in sandbox.platform.audit.rows(limit=10) if r["service"] == "tarification"][-1]
    assert row["patient"] == sandbox.platform.pseudonymiser.pseudonym("52073002225")
    assert row["caller"] == f"doctor:{support.DOCTOR_NIHII}" and "101076:3049/150[preferential]" in str(row["detail"])


# -- Mediprima ----------------------------------------------------------------------------------------------------
def test_mediprima_cpas_decisions(sandbox: Sandbox) -> None:
    client = TariffClient(sandbox, (support.DOCTOR_SSIN, support.DOCTOR_NIHII), service="mediprima")
    covered = client.ask(POPESCU, ["101076"])
    line = lines(covered)["101076"]
    # fee 30.49 = SPP Social Integration 24.49 + CPAS 6.00 + patient 0.00
    assert (line["fee"], line["reimbursement-fpssi"], line["reimbursement-pswc"], line["patientfee"]) == (
        "30.49", "24.49", "6.00", "0.00")
    assert line["umc"] == "false" and line["financialcontract"].startswith("MP")
    assert line["pswc"] == "0212345668"  # the CPAS of the decision, by its enterprise number
    response = covered.find(f"{{{MC}}}response")
    assert response is not None and response.get("version") is None
    assert response.findtext(f"{{{MC}}}request/{{{MC}}}id", "").startswith(support.DOCTOR_NIHII)  # echoed
    amu = lines(client.ask(DIALLO, ["101076"]))["101076"]
    assert (amu["reimbursement-pswc"], amu["patientfee"], amu["umc"]) == ("0.00", "6.00", "true")
    insured = client.ask(support.PATIENT_UNLINKED, ["101076"])  # no CPAS decision
    assert errors(insured) == ["170"]
    ordinary = TariffClient(sandbox, (support.DOCTOR_SSIN, support.DOCTOR_NIHII)).ask(POPESCU, ["101076"])
    assert errors(ordinary) == ["120"]  # not insured: the ordinary tariff service does not know them
    # the mediprima address only serves tariffmediprima, the tarification address only tariff
    assert client.send(kmehr_request(support.DOCTOR_NIHII, support.DOCTOR_SSIN, POPESCU, DAY, ["101076"])) == {
        "kind": "BusinessError", "Code": "INVALID_REQUEST"}


def test_hand_built_request_following_the_public_contract(sandbox: Sandbox, doctor_signer: Signer,
                                                          answer_verifier: Any) -> None:
    body = support.commons_request("TarificationConsultationRequest", TAR, 2,
                                   kmehr_request(support.DOCTOR_NIHII, support.DOCTOR_SSIN, support.PATIENT_UNLINKED,
                                                 DAY, ["101076"]), support.PATIENT_UNLINKED, DAY, "hand-t")
    answer = support.post(sandbox.urls["tarification"], support.to_bytes(support.signed(doctor_signer, body)))
    assert answer.status == 200, answer.body[:500]
    payload = answer_verifier.verify(answer.root).body[0]
    contract.schema("mycarenet-tarification-v1.xsd").assertValid(payload)
    detail = payload.find(f"{{{P2}}}Return/{{{P2}}}Detail")
    assert detail is not None
    root = etree.fromstring(base64.b64decode(detail.text or ""))
    contract.schema("messageservices-protocol-v1.xsd").assertValid(root)
    assert lines(root)["101076"]["patientfee"] == "6.00"
