"""Seed 001 rules of MemberData and Tarification over HTTP (issue 19, items 2, 3, 5, 8, 9, 10), against the
demo scenario; each test names its paragraph of seed 001 (../shared/seeds/001_*.txt)."""

from __future__ import annotations

import datetime as dt
import io
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from lxml import etree

from mycarenet_ic.cli import main as cli
from mycarenet_ic.clients.messages import attribute_query as query_xml
from mycarenet_ic.clients.messages import tariff_request as kmehr_request
from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.sandbox import Sandbox
from tests import support
from tests.integration.test_memberdata import INS, MdAnswer, MdClient, N
from tests.integration.test_tarification import DAY, MC, MP, TariffClient, errors, euros, lines

pytestmark = pytest.mark.integration

SPEECH_THERAPIST = ("87041512420", "68421127702")   # Vandamme Els
DENTIST = ("84073102285", "31222221001")
MIDWIFE = ("89090602281", "41225988409")
SPECIALIST = ("70051208689", "12183495580")         # Claessens, internal medicine
WUYTS = ("79100324833", "12463312003")              # GP, group practice De Vaart, holds Hermans's GMD
LAMBRECHTS = ("81022013708", "12487165003")         # GP, group practice De Vaart
HERMANS = "90060615644"
WOUTERS = "39060802118"                             # medical house 19001211000 (Medical, Nurse, Kine)
TARIFICATION_OFFICE = "69880184"                    # Tarificatiedienst Farmaco
YESTERDAY = dt.date.today() - dt.timedelta(days=1)


def status_code(answer: MdAnswer) -> list[str]:
    return answer.one(f"{INS}:status")[f"{INS}:status:code"]


# -- item 2: seed 001 §8, the status (facturation possible / impossible: problème individuel / système) --------------
@pytest.fixture(scope="module")
def pharmacist(sandbox: Sandbox) -> MdClient:
    return MdClient(sandbox, Quality.PHARMACIST, support.PHARMACIST_SSIN, "61229665000")


@pytest.mark.parametrize("case,ssin,day", [
    ("file closed on 2026-08-31 (Mertens)", "75050502181", dt.date(2026, 9, 10)),
    ("deceased on 2026-09-14 (Lejeune)", "36122402201", dt.date(2026, 9, 20)),
])
def test_seed_001_s8_member_not_covered_on_the_delivery_date_cannot_be_invoiced(pharmacist: MdClient, case: str,
                                                                                 ssin: str, day: dt.date) -> None:
    answer = pharmacist.consult(ssin, (day, day), facets=[(INS, [("requestType", "invoicing")])])
    assert status_code(answer) == ["invoicingImpossible:individualProblem"], case
    assert all(f"{N}:paymentApproval" not in p for p in answer.assertions(f"{INS}:period")), case
    # the same member, on a day still covered, can be invoiced
    covered = pharmacist.consult(ssin, (dt.date(2026, 8, 10),) * 2, facets=[(INS, [("requestType", "invoicing")])])
    assert status_code(covered) == ["invoicingPossible"], case
    assert covered.one(f"{INS}:period")[f"{N}:paymentApproval"], case


# -- item 3: seed 001 §9 (medical house: doctors, nurses, physiotherapists of the house) and §13 -------------------
def test_seed_001_s13_medical_house_subscription_covers_no_specialist_nor_dentist(sandbox: Sandbox) -> None:
    specialist = TariffClient(sandbox, SPECIALIST).ask(WOUTERS, ["102012"])
    assert errors(specialist) == []
    assert euros(lines(specialist)["102012"]["fee"]) == 4340
    dentist = TariffClient(sandbox, DENTIST, Quality.DENTIST).ask(WOUTERS, ["303166"])
    assert errors(dentist) == [] and set(lines(dentist)) == {"303166"}
    gp = TariffClient(sandbox, (support.DOCTOR_SSIN, support.DOCTOR_NIHII)).ask(WOUTERS, ["101076"])
    assert errors(gp) == ["169"]  # the house's own discipline: still no tariff


# -- item 5: every profession the seeds name (speech therapists, dentists, midwives, ...) ---------------------------
@pytest.mark.parametrize("who,quality,codes", [
    (SPEECH_THERAPIST, Quality.LOGOPEDIST, {"701013": (4275, 750)}),
    (DENTIST, Quality.DENTIST, {"371571": (3145, 0), "303166": (2160, 540)}),
    (MIDWIFE, Quality.MIDWIFE, {"422096": (3386, 0), "428735": (4010, 0)}),
])
def test_seed_001_s10_speech_therapists_dentists_and_midwives_get_a_tariff(sandbox: Sandbox, who: tuple[str, str],
                                                                           quality: Quality,
                                                                           codes: dict[str, tuple[int, int]]) -> None:
    root = TariffClient(sandbox, who, quality).ask(support.PATIENT_UNLINKED, list(codes))
    assert errors(root) == [], quality
    got = {code: (euros(v["fee"]), euros(v["patientfee"])) for code, v in lines(root).items()}
    assert got == codes


def test_seed_001_s6_speech_therapist_consults_assurability(sandbox: Sandbox) -> None:
    speech = MdClient(sandbox, Quality.LOGOPEDIST, *SPEECH_THERAPIST)
    answer = speech.consult(support.PATIENT_LINKED)
    assert answer.status == ["urn:oasis:names:tc:SAML:2.0:status:Success"]
    assert answer.one(f"{INS}:patientData")["urn:be:fgov:person:ssin"] == [support.PATIENT_LINKED]
    refused = speech.ask(query_xml(SPEECH_THERAPIST[1], support.PATIENT_LINKED, YESTERDAY, YESTERDAY,
                                   facets=[(f"{N}:carePath", [])]))
    assert isinstance(refused, MdAnswer) and refused.detail_code == "UNAUTHORIZED_FACET"


@pytest.mark.parametrize("quality", ["logopedist", "orthoptist", "podologist", "dietician", "audician",
                                     "audiologist", "occupationaltherapist", "pharmacyinvoicingoffice"])
def test_seed_001_s35_certificate_for_every_requester_quality(tmp_path: Path, quality: str) -> None:
    ident = ["--nihii", TARIFICATION_OFFICE] if quality == "pharmacyinvoicingoffice" else \
        ["--ssin", SPEECH_THERAPIST[0], "--nihii", SPEECH_THERAPIST[1]]
    out = io.StringIO()
    with redirect_stdout(out):
        code = cli(["certs", "issue", "--data-dir", str(tmp_path / "data"), "--quality", quality, *ident,
                    "--with-quality", "--out", str(tmp_path / "out")])
    assert code == 0 and f"QUALITY={quality}" in out.getvalue()


# -- item 8: seed 001 §17-18, Mediprima: reference and version of the message, the date of each line ---------------
def test_seed_001_s18_mediprima_lines_carry_their_date_and_the_answer_the_message_version(sandbox: Sandbox) -> None:
    client = TariffClient(sandbox, (support.DOCTOR_SSIN, support.DOCTOR_NIHII), service="mediprima")
    request = etree.fromstring(kmehr_request(support.DOCTOR_NIHII, support.DOCTOR_SSIN, "92080304510", DAY,
                                             ["101076", "103132"], transaction="tariffmediprima"))
    request.set("messageProtocoleSchemaVersion", "1.18")  # as the public client sends it
    root = client.send(etree.tostring(request))
    assert isinstance(root, etree._Element), root
    assert root.tag == f"{{{MP}}}RetrieveTransactionResponse"
    assert root.get("messageProtocoleSchemaVersion") == "1.18"
    reference = request.findtext(f"{{{MC}}}request/{{{MC}}}id")
    assert reference and root.findtext(f"{{{MC}}}response/{{{MC}}}request/{{{MC}}}id") == reference
    got = lines(root)
    assert set(got) == {"101076", "103132"}
    assert all(line["encounterdatetime"] == DAY.isoformat() for line in got.values())


# -- item 9: seed 001 §4, §8: the tarification offices, answered as pharmacists are ---------------------------------
def test_seed_001_s8_tarification_office_gets_the_pharmacists_answer(sandbox: Sandbox) -> None:
    office = MdClient(sandbox, Quality.TARIFICATION_OFFICE, None, TARIFICATION_OFFICE)
    answer = office.consult(support.PATIENT_LINKED, (YESTERDAY, YESTERDAY),
                            facets=[(INS, [("requestType", "invoicing")])])
    assert answer.status == ["urn:oasis:names:tc:SAML:2.0:status:Success"]
    assert status_code(answer) == ["invoicingPossible"]
    period = answer.one(f"{INS}:period")
    assert int(period[f"{N}:paymentApproval"][0]) % 97 == int(period[f"{N}:paymentApproval:checkCode"][0])
    assert answer.assertions(f"{INS}:generalSituation") == []
    # an office certificate for what CoBrHa knows as a pharmacy is no tarification office
    impostor = MdClient(sandbox, Quality.TARIFICATION_OFFICE, None, support.PHARMACY_NIHII)
    assert impostor.ask(query_xml(support.PHARMACY_NIHII, support.PATIENT_LINKED, YESTERDAY, YESTERDAY)) == {
        "kind": "BusinessError", "Code": "ACCESS_DENIED"}


# -- item 10: seed 001 §9 (chronic-care flat fee, told to hospitals) and §12 (group practice) ------------------------
def test_seed_001_s9_hospitals_are_told_of_the_chronic_care_flat_fee(sandbox: Sandbox) -> None:
    hospital = MdClient(sandbox, Quality.HOSPITAL, None, "71025477000")
    days = (dt.date.today() - dt.timedelta(days=10), YESTERDAY)
    hospitalized = [(INS, [("requestType", "information"), ("contactType", "hospitalized")])]
    de_smet = hospital.consult("68042702242", days, facets=hospitalized).one(f"{INS}:payment")
    assert de_smet[f"{N}:payment:chronicCareFlatFee"] == ["true"]
    peeters = hospital.consult(support.PATIENT_LINKED, days).one(f"{INS}:payment")
    assert peeters[f"{N}:payment:chronicCareFlatFee"] == ["false"]
    gp = MdClient(sandbox, Quality.DOCTOR, support.DOCTOR_SSIN, support.DOCTOR_NIHII)
    assert f"{N}:payment:chronicCareFlatFee" not in gp.consult("68042702242", days).one(f"{INS}:payment")


@pytest.mark.parametrize("who,share", [(WUYTS, 400), (LAMBRECHTS, 400),
                                       ((support.DOCTOR_SSIN, support.DOCTOR_NIHII), 600)])
def test_seed_001_s12_gmd_held_in_the_same_group_practice(sandbox: Sandbox, who: tuple[str, str], share: int) -> None:
    root = TariffClient(sandbox, who).ask(HERMANS, ["101076"])
    assert errors(root) == []
    assert euros(lines(root)["101076"]["patientfee"]) == share
