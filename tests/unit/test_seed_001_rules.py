"""Seed 001 rules the domain missed (issue 19, items 2, 3, 5, 9, 10), each test naming its paragraph.

Seed 001 = ../shared/seeds/001_*.txt (deliberation 11/052, MemberData and Tarification).
"""

from __future__ import annotations

import datetime as dt

import pytest

from mycarenet_ic.domain.assurability import (
    FACETS_BY_KIND,
    Facet,
    GlobalMedicalFile,
    InsurabilityPeriod,
    InvoicingStatus,
    MedicalHouse,
    MemberFile,
    invoicing_status_on,
)
from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.domain.tariff import (
    Nomenclature,
    NoTariff,
    Patient,
    Provider,
    TariffLine,
    discipline_of,
    tariff,
)
from mycarenet_ic.security.pki import create_ca, holder_name, identity_from_certificate, issue
from mycarenet_ic.stubs.scenario import ORGANISATION_TYPES, PROFESSIONS

pytestmark = pytest.mark.unit
D = dt.date
ON = D(2026, 11, 20)
TABLE = Nomenclature.load()
OPEN = InsurabilityPeriod("101", "1", D(2015, 1, 1), None, "110", "110")
CLOSED = InsurabilityPeriod("602", "2", D(2015, 1, 1), D(2026, 8, 31), "110", "110", end_reason="mutation")


def file_of(*periods: InsurabilityPeriod, **facts: object) -> MemberFile:
    return MemberFile("48031202166", periods, **facts)  # type: ignore[arg-type]


# -- item 2: seed 001 §8, "code relatif au statut (facturation possible, facturation impossible en raison d'un
#    problème individuel, ... problème avec le système)" on the date of the delivery --------------------------
@pytest.mark.parametrize("case,file,day,death,expected", [
    ("covered on the delivery date", file_of(OPEN), ON, None, InvoicingStatus.POSSIBLE),
    ("file closed before the delivery date", file_of(CLOSED), D(2026, 9, 10), None,
     InvoicingStatus.INDIVIDUAL_PROBLEM),
    ("last covered day", file_of(CLOSED), D(2026, 8, 31), None, InvoicingStatus.POSSIBLE),
    ("file opened after the delivery date", file_of(InsurabilityPeriod("101", "1", D(2026, 11, 1), None, "110", "110")),
     D(2026, 10, 20), None, InvoicingStatus.INDIVIDUAL_PROBLEM),
    ("deceased before the delivery date (period still open)", file_of(OPEN), ON, D(2026, 9, 14),
     InvoicingStatus.INDIVIDUAL_PROBLEM),
    ("died on the delivery date", file_of(OPEN), D(2026, 9, 14), D(2026, 9, 14), InvoicingStatus.POSSIBLE),
    ("a system problem stays one", file_of(CLOSED, invoicing_status=InvoicingStatus.SYSTEM_PROBLEM), ON, None,
     InvoicingStatus.SYSTEM_PROBLEM),
    ("an individual problem stays one", file_of(OPEN, invoicing_status=InvoicingStatus.INDIVIDUAL_PROBLEM), ON, None,
     InvoicingStatus.INDIVIDUAL_PROBLEM),
])
def test_seed_001_s8_status_on_the_delivery_date(case: str, file: MemberFile, day: dt.date, death: dt.date | None,
                                                 expected: InvoicingStatus) -> None:
    assert invoicing_status_on(file, day, death) is expected, case


# -- item 3: seed 001 §9, medical house: "un montant forfaitaire qui couvre les prestations réalisées par les
#    médecins, infirmiers et kinésithérapeutes de la maison médicale"; §13 "aucun tarif ... si ... la prestation
#    est couverte par le contrat" ----------------------------------------------------------------------------------
PROVIDERS = {
    "gp": Provider("11200035003", "gp", False), "specialist": Provider("12183495580", "specialist", False),
    "nurse": Provider("41211142404", "nurse", False),
    "physiotherapist": Provider("51218572528", "physiotherapist", False),
    "dentist": Provider("31222221001", "dentist", False), "midwife": Provider("41225988409", "midwife", False),
    "logopedist": Provider("68421127702", "logopedist", False),
}
HOUSE_DISCIPLINES = {"gp": "doctor", "nurse": "nurse", "physiotherapist": "physiotherapist"}


@pytest.mark.parametrize("covers", [frozenset({"doctor", "nurse", "physiotherapist"}), frozenset({"doctor"}),
                                    frozenset({"nurse", "physiotherapist"})])
def test_seed_001_s9_medical_house_covers_only_its_disciplines_for_every_code_of_the_table(covers: frozenset[str]
                                                                                           ) -> None:
    house = MedicalHouse("19001211000", D(2024, 1, 1), None, covers)
    who = Patient("39060802118", D(1939, 6, 8), file_of(OPEN, medical_house=house))
    seen = set()
    for code, item in TABLE.codes.items():
        got = tariff(TABLE, PROVIDERS[item.discipline], who, code, ON)
        covered = HOUSE_DISCIPLINES.get(item.discipline) in covers
        seen.add(item.discipline)
        if covered:
            assert isinstance(got, NoTariff) and got.error == "169", (code, item.discipline, covers)
        else:
            assert isinstance(got, TariffLine), (code, item.discipline, covers, got)
    assert {"specialist", "dentist", "midwife", "logopedist"} <= seen  # the families the rule leaves out


def test_seed_001_s9_specialist_consultation_is_priced_for_a_medical_house_subscriber() -> None:
    house = MedicalHouse("19001211000", D(2024, 1, 1), None)
    who = Patient("39060802118", D(1939, 6, 8), file_of(OPEN, medical_house=house))
    got = tariff(TABLE, PROVIDERS["specialist"], who, "102012", ON)
    assert isinstance(got, TariffLine) and (got.fee, got.patient_share) == (4340, 1200)
    ended = MedicalHouse("19001211000", D(2024, 1, 1), D(2026, 10, 31))
    after = Patient("39060802118", D(1939, 6, 8), file_of(OPEN, medical_house=ended))
    assert isinstance(tariff(TABLE, PROVIDERS["gp"], after, "101076", ON), TariffLine)  # the contract ended


# -- item 5: every profession the seeds name (seed 000 note 8, seed 001 §1, §35) ----------------------------------
def test_seed_001_s35_every_cobrha_profession_has_a_quality_with_its_cd_hcparty_code() -> None:
    by_code = {q.hcparty_code: q for q in Quality if q.hcparty_code}
    for profession, (code, _friendly) in PROFESSIONS.items():
        assert code in by_code, profession
        assert by_code[code].value == profession, profession
    for q in by_code.values():  # and every person quality CoBrHa can record is a MemberData requester
        assert q in FACETS_BY_KIND and Facet.INSURABILITY in FACETS_BY_KIND[q], q


def test_seed_001_s35_a_certificate_for_every_requester_quality() -> None:
    ca = create_ca(valid_days=1)
    for quality in (Quality.LOGOPEDIST, Quality.ORTHOPTIST, Quality.PODOLOGIST, Quality.DIETICIAN, Quality.AUDICIAN,
                    Quality.AUDIOLOGIST, Quality.OCCUPATIONAL_THERAPIST, Quality.DENTIST, Quality.MIDWIFE,
                    Quality.TARIFICATION_OFFICE):
        ssin = None if quality.is_organisation else "87041512420"
        nihii = "69880184" if quality.is_organisation else "68421127702"
        pair = issue(ca, holder_name(quality, ssin, nihii), valid_days=1)
        ident = identity_from_certificate(pair.certificate)
        assert (ident.quality, ident.ssin, ident.nihii) == (quality, ssin, nihii)


@pytest.mark.parametrize("profession,nihii,discipline,codes", [
    ("persdentist", "31222221001", "dentist", ["371571", "303166"]),
    ("persmidwife", "41225988409", "midwife", ["422096", "428735"]),
    ("perslogopedist", "68421127702", "logopedist", ["701013"]),
])
def test_seed_001_s10_dentists_midwives_and_speech_therapists_have_codes(profession: str, nihii: str,
                                                                         discipline: str, codes: list[str]) -> None:
    assert discipline_of(profession, nihii) == (discipline, False)
    provider = Provider(nihii, discipline, False)
    who = Patient("82112502158", D(1982, 11, 25), file_of(OPEN))
    for code in codes:
        assert TABLE.codes[code].discipline == discipline
        got = tariff(TABLE, provider, who, code, ON)
        assert isinstance(got, TariffLine) and got.fee > 0 and got.fee == got.insurer_amount + got.patient_share
        # and a GP may not ask for them (171), nor they for a GP's
        assert isinstance(tariff(TABLE, PROVIDERS["gp"], who, code, ON), NoTariff)
    assert isinstance(tariff(TABLE, provider, who, "101076", ON), NoTariff)


# -- item 9: seed 001 §4, §8: the tarification offices -----------------------------------------------------------
def test_seed_001_s8_tarification_office_is_an_organisation_quality_cobrha_knows() -> None:
    office = Quality.TARIFICATION_OFFICE
    assert office.is_organisation and office.hcparty_code is None
    assert office.value in ORGANISATION_TYPES
    assert office.cert_type.startswith("NIHII-")


# -- item 10: seed 001 §12: "relatives au médecin ainsi que concernant la pratique de groupe (... détenteur DMG)" --
def test_seed_001_s12_gmd_held_in_the_same_group_practice_counts_as_held_by_the_requester() -> None:
    gmd = GlobalMedicalFile("12463312003", D(2025, 1, 1))                 # Wuyts holds the GMD
    who = Patient("90060615644", D(1990, 6, 6), file_of(OPEN, global_medical_file=gmd))
    colleague = Provider("12487165003", "gp", False, frozenset({"19041296"}))  # Lambrechts, same group practice
    same = tariff(TABLE, colleague, who, "101076", ON, gmd_holder_practices=frozenset({"19041296"}))
    assert isinstance(same, TariffLine) and same.patient_share == 400 and "gmd-group-practice" in same.applied
    other = tariff(TABLE, colleague, who, "101076", ON, gmd_holder_practices=frozenset({"19999999"}))
    assert isinstance(other, TariffLine) and other.patient_share == 600
    alone = tariff(TABLE, Provider("12487165003", "gp", False), who, "101076", ON,
                   gmd_holder_practices=frozenset({"19041296"}))
    assert isinstance(alone, TariffLine) and alone.patient_share == 600
