"""The tariff engine, table-driven: each modifier with its amounts worked out by hand, then properties.

Amounts are euro cents. The table is the checked-in nomenclature (domain/data/nomenclature.json):
101076 GP consultation fee 3049 (+130 accredited), shares ordinary 600 / preferential 150, with GMD
400 / 100, free on a care trajectory; 103132 GP home visit fee 4457, shares 1195 / 300, GMD 895 / 200,
free when palliative; 425110 nurse hygiene care fee 760, shares 190 / 0, free when palliative.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mycarenet_ic.domain.assurability import (
    CareTrajectory,
    CpasDecision,
    GlobalMedicalFile,
    Hospitalisation,
    InsurabilityPeriod,
    MedicalHouse,
    MemberFile,
)
from mycarenet_ic.domain.tariff import (
    Justification,
    MediprimaLine,
    Nomenclature,
    NoTariff,
    Patient,
    Provider,
    TariffLine,
    discipline_of,
    mediprima_tariff,
    tariff,
)

pytestmark = pytest.mark.unit
D = dt.date
ON = D(2026, 11, 20)
TABLE = Nomenclature.load()
GP = Provider("11200035003", "gp", accredited=False)
ACCREDITED_GP = Provider("11203795004", "gp", accredited=True)
NURSE = Provider("41211142404", "nurse", accredited=False)
ORDINARY = InsurabilityPeriod("101", "1", D(2015, 1, 1), None, "110", "110")
BIM = InsurabilityPeriod("216", "2", D(2015, 1, 1), None, "111", "111")
ADULT = D(1970, 1, 1)


def patient(period: InsurabilityPeriod = ORDINARY, birth: dt.date = ADULT, **facts: object) -> Patient:
    return Patient("48031202166", birth, MemberFile("48031202166", (period,), **facts))  # type: ignore[arg-type]


def line(provider: Provider, who: Patient, code: str, **kw: object) -> TariffLine:
    got = tariff(TABLE, provider, who, code, ON, **kw)  # type: ignore[arg-type]
    assert isinstance(got, TariffLine), got
    assert got.fee == got.insurer_amount + got.patient_share
    return got


GMD_VERHOEVEN = GlobalMedicalFile("11200035003", D(2024, 1, 1))
DIABETES = CareTrajectory("diabetes", "11200035003", None, None, D(2025, 1, 1), None, None)

CASES = [
    # (name, provider, patient, code, kw, fee, insurer, share, applied)
    # ordinary patient, GP consultation: fee 3049, share 600, insurer 3049 - 600 = 2449
    ("ordinary", GP, patient(), "101076", {}, 3049, 2449, 600, ()),
    # preferential (CT 111): share 150, insurer 3049 - 150 = 2899
    ("preferential", GP, patient(BIM), "101076", {}, 3049, 2899, 150, ("preferential",)),
    # accredited GP: fee 3049 + 130 = 3179, share unchanged 600, insurer 2579
    ("accredited", ACCREDITED_GP, patient(), "101076", {}, 3179, 2579, 600, ("accredited",)),
    # GMD held by the requesting GP: share 400, insurer 3049 - 400 = 2649
    ("gmd holder", GP, patient(global_medical_file=GMD_VERHOEVEN), "101076", {}, 3049, 2649, 400, ("gmd",)),
    # GMD held by someone else and not named: no reduction (600)
    ("gmd elsewhere", ACCREDITED_GP, patient(global_medical_file=GMD_VERHOEVEN), "101076", {}, 3179, 2579, 600,
     ("accredited",)),
    # ... named as gmdmanager ("G" notion): 400, fee with supplement 3179, insurer 2779
    ("gmd named", ACCREDITED_GP, patient(global_medical_file=GMD_VERHOEVEN), "101076",
     {"gmd_manager": "11200035003"}, 3179, 2779, 400, ("gmd", "accredited")),
    # preferential + GMD: 100, insurer 2949
    ("preferential gmd", GP, patient(BIM, global_medical_file=GMD_VERHOEVEN), "101076", {}, 3049, 2949, 100,
     ("preferential", "gmd")),
    # care trajectory: consultation free, insurer pays the whole 3049
    ("care path", GP, patient(care_trajectories=(DIABETES,)), "101076", {}, 3049, 3049, 0, ("care-path",)),
    # ... but not the home visit (103132 is not care_path_free): 1195
    ("care path, visit", GP, patient(care_trajectories=(DIABETES,)), "103132", {}, 4457, 3262, 1195, ()),
    # palliative: home visit free (4457 to the insurer); nurse hygiene care free (760)
    ("palliative visit", GP, patient(palliative_since=D(2026, 9, 1)), "103132", {}, 4457, 4457, 0, ("palliative",)),
    ("palliative nurse", NURSE, patient(palliative_since=D(2026, 9, 1)), "425110", {}, 760, 760, 0, ("palliative",)),
    # palliative status starting after the act: no effect (190)
    ("palliative later", NURSE, patient(palliative_since=D(2026, 12, 1)), "425110", {}, 760, 570, 190, ()),
    # child under 12: preferential share 150 though the regime is ordinary
    ("child", GP, patient(birth=D(2016, 8, 21)), "101076", {}, 3049, 2899, 150, ("child",)),
    # 12th birthday passed: ordinary again
    ("no longer a child", GP, patient(birth=D(2014, 11, 20)), "101076", {}, 3049, 2449, 600, ()),
    # GMD record: fully reimbursed, share 0
    ("gmd management", GP, patient(), "102771", {}, 3412, 3412, 0, ()),
]


@pytest.mark.parametrize("name,provider,who,code,kw,fee,insurer,share,applied", CASES, ids=[c[0] for c in CASES])
def test_modifier(name: str, provider: Provider, who: Patient, code: str, kw: dict[str, object], fee: int,
                  insurer: int, share: int, applied: tuple[str, ...]) -> None:
    got = line(provider, who, code, **kw)
    assert (got.fee, got.insurer_amount, got.patient_share) == (fee, insurer, share)
    assert set(got.applied) == set(applied)


def test_justification_gives_a_payment_approval_and_leaves_amounts_alone() -> None:
    plain = line(GP, patient(), "101076")
    assert plain.justification is Justification.NO_PAYMENT_COMMITMENT and plain.payment_approval is None
    asked = line(GP, patient(), "101076", justification=Justification.THIRD_PARTY_REQUESTED)
    assert asked.justification is Justification.THIRD_PARTY_REQUESTED and asked.payment_approval
    assert (asked.fee, asked.patient_share) == (plain.fee, plain.patient_share)
    # chronic-condition status in the year of the act, and preferential patients: the insurer commits by right
    for who in (patient(chronic_years=(2026,)), patient(BIM)):
        got = line(GP, who, "101076")
        assert got.justification is Justification.PAYMENT_COMMITMENT and got.payment_approval
    # the G notion is answered back; it gives no approval by itself
    g = line(ACCREDITED_GP, patient(global_medical_file=GMD_VERHOEVEN), "101076", justification=Justification.G_NOTION,
             gmd_manager="11200035003")
    assert g.justification is Justification.G_NOTION and g.payment_approval is None and g.patient_share == 400
    g_bim = line(ACCREDITED_GP, patient(BIM), "101076", justification=Justification.G_NOTION)
    assert g_bim.justification is Justification.G_NOTION and g_bim.payment_approval


def test_hospitalisation_and_maf_are_ignored() -> None:
    """Seed 001 §13: the tariff ignores hospitalisation, cumulation, maxima and MAF."""
    stay = Hospitalisation("71009938", D(2026, 11, 18), "C")
    busy = line(GP, patient(hospitalisation=stay, maf_years=(2025, 2026)), "101076")
    plain = line(GP, patient(), "101076")
    assert (busy.fee, busy.insurer_amount, busy.patient_share) == (plain.fee, plain.insurer_amount,
                                                                    plain.patient_share) == (3049, 2449, 600)


def test_no_tariff_for_a_medical_house_subscriber_on_a_covered_act() -> None:
    house = MedicalHouse("19001211", D(2024, 1, 1), None, frozenset({"doctor", "nurse"}))
    who = patient(medical_house=house)
    for provider, code in ((GP, "101076"), (NURSE, "425110")):
        got = tariff(TABLE, provider, who, code, ON)
        assert isinstance(got, NoTariff) and got.error == "169"
    physio = tariff(TABLE, Provider("51218572528", "physiotherapist", False), who, "560011", ON)
    assert isinstance(physio, TariffLine)  # physiotherapy is not in this subscription
    ended = patient(medical_house=replace(house, end=D(2026, 6, 30)))
    assert isinstance(tariff(TABLE, GP, ended, "101076", ON), TariffLine)


def test_codes_of_another_discipline_or_unknown() -> None:
    got = tariff(TABLE, NURSE, patient(), "101076", ON)
    assert isinstance(got, NoTariff) and got.error == "171"
    unknown = tariff(TABLE, GP, patient(), "999999", ON)
    assert isinstance(unknown, NoTariff) and unknown.error == "130"


def test_discipline_from_profession_and_qualification() -> None:
    assert discipline_of("persphysician", "11200035003") == ("gp", False)
    assert discipline_of("persphysician", "11203795004") == ("gp", True)
    assert discipline_of("persphysician", "12183495580") == ("specialist", False)
    assert discipline_of("persnurse", "41211142404") == ("nurse", True)  # qualification 404 ends in 4


def test_mediprima_lines() -> None:
    provider = GP
    full = CpasDecision("0212345625", "CPAS-1", D(2026, 6, 1), D(2027, 5, 31), True, False)
    got = mediprima_tariff(TABLE, provider, full, "92080304510", "101076", ON)
    # SPP pays what the insurance would (3049 - 600 = 2449), the CPAS the share (600), the patient 0
    assert isinstance(got, MediprimaLine)
    assert (got.fee, got.spp_amount, got.cpas_amount, got.patient_share) == (3049, 2449, 600, 0)
    assert not got.amu_certificate_needed and got.approval.startswith("MP261120")
    amu = replace(full, patient_share_by_cpas=False, urgent_medical_aid=True)
    got = mediprima_tariff(TABLE, provider, amu, "92080304510", "101076", ON)
    assert isinstance(got, MediprimaLine)
    assert (got.spp_amount, got.cpas_amount, got.patient_share, got.amu_certificate_needed) == (2449, 0, 600, True)
    outside = mediprima_tariff(TABLE, provider, replace(full, end=D(2026, 10, 31)), "92080304510", "101076", ON)
    assert isinstance(outside, NoTariff) and outside.error == "170"


# -- properties over every code, patient and provider -----------------------------------------------------
patients = st.builds(
    lambda bim, birth, gmd, path, palliative, chronic: patient(
        BIM if bim else ORDINARY, birth, global_medical_file=GMD_VERHOEVEN if gmd else None,
        care_trajectories=(DIABETES,) if path else (), palliative_since=D(2026, 1, 1) if palliative else None,
        chronic_years=(2026,) if chronic else ()),
    st.booleans(), st.dates(D(1930, 1, 1), D(2026, 11, 1)), st.booleans(), st.booleans(), st.booleans(),
    st.booleans())
providers = st.sampled_from([GP, ACCREDITED_GP, NURSE, Provider("51218572528", "physiotherapist", False),
                             Provider("12183495580", "specialist", False)])


@given(patients, providers, st.sampled_from(sorted(TABLE.codes)), st.sampled_from([None, *Justification]))
def test_amounts_add_up_and_are_never_negative(who: Patient, provider: Provider, code: str,
                                               justification: Justification | None) -> None:
    got = tariff(TABLE, provider, who, code, ON, justification)
    if isinstance(got, NoTariff):
        assert got.error == "171" and TABLE.codes[code].discipline != provider.discipline
        return
    assert got.fee == got.insurer_amount + got.patient_share
    assert min(got.fee, got.insurer_amount, got.patient_share) >= 0
    # what was asked is answered back; otherwise 3 exactly when there is an approval
    if justification is not None:
        assert got.justification is justification
    else:
        assert (got.justification is Justification.PAYMENT_COMMITMENT) == (got.payment_approval is not None)


@given(patients, providers, st.sampled_from(sorted(TABLE.codes)))
def test_preferential_share_is_never_above_the_ordinary_share(who: Patient, provider: Provider, code: str) -> None:
    ordinary = tariff(TABLE, provider, replace(who, file=replace(who.file, periods=(ORDINARY,))), code, ON)
    preferential = tariff(TABLE, provider, replace(who, file=replace(who.file, periods=(BIM,))), code, ON)
    if isinstance(ordinary, TariffLine) and isinstance(preferential, TariffLine):
        assert preferential.patient_share <= ordinary.patient_share
        assert preferential.fee == ordinary.fee


def test_the_table_refuses_inconsistent_amounts() -> None:
    bad = {"codes": [{"code": "101076", "label": "x", "discipline": "gp", "fee": 100, "accredited_supplement": 0,
                      "ordinary_share": 50, "preferential_share": 60, "gmd_ordinary_share": None,
                      "gmd_preferential_share": None, "care_path_free": False, "palliative_free": False}]}
    with pytest.raises(ValueError, match="preferential"):
        Nomenclature.load(bad)
