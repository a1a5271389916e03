"""Seed 002's home-nurse incentive premium, one table per rule, each naming its paragraph; amounts worked by hand.

Seed 002 = ../shared/seeds/002_*.txt (deliberation 21/082): 1 September–30 November 2020, billing accepted by
31 January 2021, 739 patient contacts = 1 FTE, salaried FTE deducted, at most 985 euros gross.
"""

from __future__ import annotations

import copy
import datetime as dt
from decimal import Decimal
from fractions import Fraction as F
from typing import Any

import pytest

from mycarenet_ic.domain.nurse_premium import (
    BilledService,
    BillingArticle,
    HomeNursingActivity,
    IndependentActivity,
    ProviderStatus,
    Refusal,
    accepted_in_time,
    account_deadline,
    activity_from_dict,
    fte_due,
    gross_amount,
    in_period,
    is_premium_code,
    patient_contacts,
    premiums,
    refusal,
    theoretical_fte,
)
from mycarenet_ic.stubs.scenario import DEMO_FILE, Scenario, ScenarioError

pytestmark = pytest.mark.unit
D = dt.date
ART8, REHAB, OTHER = BillingArticle.ARTICLE_8, BillingArticle.REHABILITATION, BillingArticle.OTHER
NURSE, OTHER_NURSE = "41211142404", "41214805404"
A, B = "48031202166", "52073002225"
MAIN, COMPLEMENTARY, NONE = IndependentActivity.MAIN, IndependentActivity.COMPLEMENTARY, IndependentActivity.NONE
PUBLISHED = D(2021, 4, 1)  # deadline for the account: 2021-04-21
ACCEPTED = D(2020, 12, 15)


def service(day: dt.date, patient: str = A, code: str = "425110", article: BillingArticle = ART8,
            dispenser: str = NURSE, accepted: dt.date = ACCEPTED) -> BilledService:
    return BilledService(dispenser, patient, day, code, article, accepted)


def every_day(patient: str, first: dt.date, days: int, dispenser: str = NURSE) -> list[BilledService]:
    return [service(first + dt.timedelta(days=n), patient, dispenser=dispenser) for n in range(days)]


# -- §9/§18: "article 8 de la nomenclature ou ... éducation au diabète (794253, 794334, 794415, 794430, 794452,
#    794312)" -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("code,article,counts", [
    ("425110", ART8, True),     # any article 8 home-nursing code
    ("424336", ART8, True),
    *[(code, REHAB, True) for code in ("794253", "794334", "794415", "794430", "794452", "794312")],
    ("794231", REHAB, False),   # rehabilitation, but not one of the six diabetes-education codes
    ("794253", OTHER, False),   # one of the six numbers billed under another article
    ("422096", OTHER, False),   # a midwife's article 9 code
])
def test_s9_article_8_and_the_six_diabetes_education_codes(code: str, article: BillingArticle,
                                                           counts: bool) -> None:
    assert is_premium_code(code, article) is counts


# -- §6 and footnote 4: "entre le 1er septembre et le 30 novembre 2020" ------------------------------------------
@pytest.mark.parametrize("day,inside", [(D(2020, 8, 31), False), (D(2020, 9, 1), True), (D(2020, 10, 15), True),
                                        (D(2020, 11, 30), True), (D(2020, 12, 1), False), (D(2021, 9, 1), False)])
def test_s6_the_period_from_1_september_to_30_november_2020(day: dt.date, inside: bool) -> None:
    assert in_period(day) is inside


# -- §6: "données de facturations introduites et acceptées au 31 janvier 2021" ---------------------------------
@pytest.mark.parametrize("accepted,counts", [(D(2020, 12, 1), True), (D(2021, 1, 31), True),
                                             (D(2021, 2, 1), False)])
def test_s6_billing_accepted_by_31_january_2021(accepted: dt.date, counts: bool) -> None:
    assert accepted_in_time(service(D(2020, 10, 1), accepted=accepted)) is counts


# -- §6: patients × days with at least one contact, on the person named as dispenser --------------------------
@pytest.mark.parametrize("case,services,expected", [
    ("nothing billed", [], (0, 0)),
    # two services to A on one day (hygiene care + diabetes education) are one contact
    ("one patient, one day, two codes", [service(D(2020, 9, 1)), service(D(2020, 9, 1), code="794253",
                                                                         article=REHAB)], (1, 1)),
    # A on day 1, B on day 2: 2 patient-days (the pairs, not 2 patients × 2 days = 4)
    ("two patients on different days", [service(D(2020, 9, 1)), service(D(2020, 9, 2), B)], (2, 2)),
    ("two patients the same day", [service(D(2020, 9, 1)), service(D(2020, 9, 1), B)], (2, 2)),
    # 50 days of A + 30 of B = 80
    ("patient-days summed", every_day(A, D(2020, 9, 1), 50) + every_day(B, D(2020, 10, 1), 30), (2, 80)),
    ("another dispenser's services are not this nurse's", every_day(A, D(2020, 9, 1), 10, OTHER_NURSE), (0, 0)),
    # only the 1 September service counts: 31 August and 1 December are outside, the 2 September one was
    # accepted on 1 February 2021, the 3 September one is rehabilitation outside the six codes
    ("what does not count", [service(D(2020, 8, 31)), service(D(2020, 9, 1)), service(D(2020, 12, 1)),
                             service(D(2020, 9, 2), B, accepted=D(2021, 2, 1)),
                             service(D(2020, 9, 3), B, code="794231", article=REHAB)], (1, 1)),
])
def test_s6_patient_contacts(case: str, services: list[BilledService], expected: tuple[int, int]) -> None:
    assert patient_contacts(services, NURSE) == expected, case


# -- §6: "un minimum de 739 contacts patients correspond à 1 EPT" ------------------------------------------------
@pytest.mark.parametrize("contacts,fte", [(0, F(0)), (100, F(100, 739)), (738, F(738, 739)), (739, F(1)),
                                          (740, F(1)), (2000, F(1))])
def test_s6_739_patient_contacts_are_one_fte(contacts: int, fte: F) -> None:
    assert theoretical_fte(contacts) == fte


# -- §6: "L'EPT théorique est diminué de l'ETP en tant que salarié ... la différence (positive) est alors versée"
@pytest.mark.parametrize("theoretical,salaried,due", [
    (F(1), F(0), F(1)),
    # 370/739 − 1/4 = (1480 − 739)/2956 = 741/2956
    (F(370, 739), F(1, 4), F(741, 2956)),
    (F(500, 739), F(4, 5), F(0)),   # 0.6766 − 0.8 < 0: nothing, never a negative amount
    (F(1, 2), F(1, 2), F(0)),
])
def test_s6_salaried_fte_deducted_positive_difference(theoretical: F, salaried: F, due: F) -> None:
    assert fte_due(theoretical, salaried) == due


# -- §16: "20 jours pour enregistrer un numéro de compte" from the royal decree's publication --------------------
@pytest.mark.parametrize("published,deadline", [(D(2021, 4, 1), D(2021, 4, 21)), (D(2021, 4, 20), D(2021, 5, 10))])
def test_s16_twenty_days_for_the_bank_account(published: dt.date, deadline: dt.date) -> None:
    assert account_deadline(published) == deadline


# -- §6 (independent, INASTI) and §7 (a bank account registered in time) ----------------------------------------
@pytest.mark.parametrize("independent,account,expected", [
    (MAIN, D(2021, 4, 10), None),
    (COMPLEMENTARY, D(2021, 4, 10), None),
    (NONE, D(2021, 4, 10), Refusal.NOT_INDEPENDENT),   # a salaried nurse only: the Maribel funds' business
    (MAIN, None, Refusal.NO_ACCOUNT),
    (MAIN, D(2021, 4, 21), None),                      # the 20th day still counts
    (MAIN, D(2021, 4, 22), Refusal.ACCOUNT_TOO_LATE),
])
def test_s6_s7_who_is_entitled(independent: IndependentActivity, account: dt.date | None,
                               expected: Refusal | None) -> None:
    assert refusal(ProviderStatus(NURSE, independent, F(0), account), PUBLISHED) is expected


# -- §7: "Le montant de la prime est de maximum 985 euros (montant brut)" ----------------------------------------
@pytest.mark.parametrize("due,gross", [
    (F(1), "985.00"),
    (F(2), "985.00"),                 # never over the maximum
    (F(0), "0.00"),
    (F(100, 739), "133.29"),          # 985 × 100 / 739 = 98 500 / 739 = 133.2882… → 133.29
    (F(741, 2956), "246.92"),         # 985 × 741 / 2956 = 729 885 / 2956 = 246.9164… → 246.92
    (F(1, 197000), "0.01"),           # 985 / 197 000 = 0.005 exactly: half up → 0.01
    (F(1, 2), "492.50"),              # 985 / 2
])
def test_s7_at_most_985_euros_gross(due: F, gross: str) -> None:
    assert gross_amount(due) == Decimal(gross)


# -- every rule together, per provider ---------------------------------------------------------------------------
FULL_PERIOD = 91  # 30 + 31 + 30 days


@pytest.mark.parametrize("case,status,services,contacts,gross,refused", [
    # 9 patients × 91 days = 819 ≥ 739: 1 FTE → 985.00 (the cap)
    ("over the cap", ProviderStatus(NURSE, MAIN, F(0), D(2021, 4, 10)),
     [s for n in range(9) for s in every_day(f"patient-{n}", D(2020, 9, 1), FULL_PERIOD)], 819, "985.00", None),
    # 100 contacts: 985 × 100/739 = 133.29
    ("under 739", ProviderStatus(NURSE, MAIN, F(0), D(2021, 4, 2)),
     every_day(A, D(2020, 9, 1), 50) + every_day(B, D(2020, 10, 1), 50), 100, "133.29", None),
    # double status: 370 contacts, 0.25 FTE salaried: 985 × (370/739 − 1/4) = 246.92
    ("double status", ProviderStatus(NURSE, COMPLEMENTARY, F(1, 4), D(2021, 4, 21)),
     [s for n in range(4) for s in every_day(f"patient-{n}", D(2020, 9, 1), FULL_PERIOD)]
     + every_day(A, D(2020, 9, 1), 6), 370, "246.92", None),
    # 500 contacts = 0.6766 FTE, 0.8 salaried: entitled, nothing due
    ("salaried FTE over the activity", ProviderStatus(NURSE, COMPLEMENTARY, F(4, 5), D(2021, 4, 12)),
     [s for n in range(5) for s in every_day(f"patient-{n}", D(2020, 9, 1), FULL_PERIOD)]
     + every_day(A, D(2020, 9, 1), 45), 500, "0.00", None),
    ("not independent", ProviderStatus(NURSE, NONE, F(1), D(2021, 4, 8)),
     every_day(A, D(2020, 9, 1), 30), 30, "0.00", Refusal.NOT_INDEPENDENT),
    # 739 contacts would be 985.00, but the account came a day late
    ("account too late", ProviderStatus(NURSE, MAIN, F(0), D(2021, 4, 22)),
     [s for n in range(8) for s in every_day(f"patient-{n}", D(2020, 9, 1), FULL_PERIOD)]
     + every_day(A, D(2020, 9, 1), 11), 739, "0.00", Refusal.ACCOUNT_TOO_LATE),
])
def test_every_rule_for_one_provider(case: str, status: ProviderStatus, services: list[BilledService],
                                     contacts: int, gross: str, refused: Refusal | None) -> None:
    [result] = premiums(HomeNursingActivity(PUBLISHED, (status,), tuple(services)))
    assert (result.patient_contacts, result.gross, result.refusal) == (contacts, Decimal(gross), refused), case


def test_s10_a_dispenser_nobody_reported_a_status_of_is_listed_and_not_independent() -> None:
    activity = HomeNursingActivity(PUBLISHED, (), tuple(every_day(A, D(2020, 9, 1), 10, OTHER_NURSE)))
    [result] = premiums(activity)
    assert (result.nihii, result.patient_contacts, result.refusal, result.gross) == (
        OTHER_NURSE, 10, Refusal.NOT_INDEPENDENT, Decimal("0.00"))
    assert premiums(activity, nihii=NURSE) == []


# -- the scenario's part -----------------------------------------------------------------------------------------
def _demo() -> dict[str, Any]:
    return Scenario.load(DEMO_FILE).to_dict()


def test_the_demo_part_exercises_each_rule() -> None:
    """The demo's six nurses, worked by hand in the demo's comments (README "Home-nurse premium")."""
    results = {p.nihii: (p.patient_contacts, p.gross, p.refusal)
               for p in premiums(activity_from_dict(_demo()["home_nursing"]))}
    assert results == {
        "41211142404": (819, Decimal("985.00"), None),        # 9 × 91: over 739, the cap
        "41214805404": (370, Decimal("246.92"), None),        # 4 × 91 + 6, 0.25 FTE salaried
        "41231829404": (100, Decimal("133.29"), None),        # 50 + 50; the rest of its lines do not count
        "41240737404": (500, Decimal("0.00"), None),          # 5 × 91 + 45 = 0.6766 FTE < 0.8 salaried
        "41251922404": (300, Decimal("0.00"), Refusal.NOT_INDEPENDENT),
        "41262612404": (739, Decimal("0.00"), Refusal.ACCOUNT_TOO_LATE),
    }


@pytest.mark.parametrize("change,message", [
    (lambda p: p["billed_services"][0].update(dispenser="41225988409"), "41225988409 is no scenario nurse"),
    (lambda p: p["billed_services"][0].update(patient="84091415489"), None),  # a person (a nurse) may be a patient
    (lambda p: p["billed_services"][0].update(patient="01010100126"), "has no person record"),
    (lambda p: p["billed_services"][0].update(dispenser="41211143404"), "check digits"),
    (lambda p: p["billed_services"][0].update(days=["2020-11-30/2020-09-01"]), "must run forward"),
    (lambda p: p["billed_services"][0].update(days=["2020-01-01/2021-12-31"]), "at most 366 days"),
    (lambda p: p["billed_services"][0].update(days=[]), "non-empty list"),
    (lambda p: p["billed_services"][0].update(code="42511"), "must be 6 digits"),
    (lambda p: p["billed_services"][0].update(article="art9"), "art9"),
    (lambda p: p["billed_services"][0].pop("accepted"), "incomplete scenario record"),
    (lambda p: p["providers"][0].update(salaried_fte="1.5"), "between 0 and 1"),
    (lambda p: p["providers"][0].update(salaried_fte=0.5), "decimal text"),
    (lambda p: p["providers"][0].update(independent="yes"), "yes"),
    (lambda p: p["providers"].append(dict(p["providers"][0])), "listed twice"),
    (lambda p: p.update(decree_published="2021-02-30"), "decree_published"),
    (lambda p: p.update(providers={}), "list of records"),
])
def test_the_scenario_part_is_checked_on_load(change: Any, message: str | None) -> None:
    data = copy.deepcopy(_demo())
    change(data["home_nursing"])
    if message is None:
        Scenario(data)
        return
    with pytest.raises(ScenarioError, match=message):
        Scenario(data)
