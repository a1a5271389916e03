"""The one-off incentive premium for independent home nurses (seed 002, deliberation 21/082 of 23 April 2021).

Seed 002 = ../shared/seeds/002_*.txt (French; it wins over this summary). The premium compensates the extra
efforts of the second COVID-19 wave. For each care provider named as the dispenser on the billing data:

1. billed services count when they are article 8 home nursing (royal decree of 14 September 1984) or one of
   the six diabetes-education codes of the rehabilitation nomenclature (royal decree of 10 January 1991)
   (§4, §9, §18), delivered between 1 September and 30 November 2020 (§6, footnotes 4 and 5), on billing data
   introduced and accepted by 31 January 2021 (§6);
2. "patient contacts" = the (patient, day) pairs of that period with at least one such service (§6);
3. the activity becomes a theoretical full-time equivalent: 739 patient contacts or more are 1 FTE, fewer
   a share of it (§6);
4. the FTE as an employee (the contract's hours in the period, from the Maribel Social funds) is deducted;
   the positive difference is paid (§6);
5. only to an independent (main or complementary activity in the period, from INASTI) (§6) who registered a
   bank account in the INAMI web application in time: 20 days from the royal decree's publication (§7, §16);
6. at most 985 euros gross (§7): 985 euros for 1 FTE due, the share of it for less.

Not here: the medical houses' employees (§8): the Maribel Social funds pay them without INAMI. The seed
sets no minimum activity beyond these rules, lists no article 8 codes (the billing data says under which
article a service was billed) and sets no rounding: the sandbox rounds the exact amount once, to the cent,
half up. The royal decree's publication date is not in the seed either: the scenario gives it.

Stdlib only; amounts are :class:`~decimal.Decimal` euros with two decimals, FTEs exact fractions.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from mycarenet_ic.domain.identifiers import parse_nihii, parse_niss

# Seed 002 §9 and §18 (the same list twice), the rehabilitation nomenclature's diabetes-education codes:
# "(794253, 794334, 794415, 794430, 794452, 794312)".
DIABETES_EDUCATION_CODES = frozenset({"794253", "794334", "794415", "794430", "794452", "794312"})


class BillingArticle(enum.Enum):
    """Under which nomenclature a service was billed (the CIN's billing data says it)."""

    ARTICLE_8 = "art8"                  # home nursing, royal decree of 14 September 1984, article 8
    REHABILITATION = "rehabilitation"   # royal decree of 10 January 1991 (diabetes education among others)
    OTHER = "other"                     # any other article (a midwife's article 9, say)


class IndependentActivity(enum.Enum):
    """What INASTI says of the provider's independent activity in the period (§6, §16)."""

    MAIN = "main"
    COMPLEMENTARY = "complementary"
    NONE = "none"


class Refusal(enum.Enum):
    """Why a provider gets no premium at all."""

    NOT_INDEPENDENT = "not independent in the period (INASTI)"
    NO_ACCOUNT = "no bank account registered in the INAMI web application"
    ACCOUNT_TOO_LATE = "bank account registered after the deadline"


@dataclass(frozen=True)
class PremiumRound:
    """The premium's figures, one round per reference year (seed 002 sets one: the second wave of 2020)."""

    year: int
    period_start: dt.date
    period_end: dt.date
    billing_accepted_by: dt.date
    contacts_per_fte: int
    max_gross: Decimal
    account_days: int


# Seed 002 §6 (period, acceptance date, 739 contacts), §7 (985 euros gross), §16 (20 days for the account).
SECOND_WAVE_2020 = PremiumRound(2020, dt.date(2020, 9, 1), dt.date(2020, 11, 30), dt.date(2021, 1, 31), 739,
                                Decimal("985.00"), 20)
ROUNDS = {SECOND_WAVE_2020.year: SECOND_WAVE_2020}


@dataclass(frozen=True)
class BilledService:
    """One billed service: the provider named as dispenser, the patient, the day, the code and its article,
    and the day the insurer accepted the billing."""

    dispenser: str
    patient: str
    day: dt.date
    code: str
    article: BillingArticle
    accepted: dt.date


@dataclass(frozen=True)
class ProviderStatus:
    """What INAMI crosses for one provider (§16): INASTI's status, the Maribel funds' salaried FTE, the
    account registration date in the INAMI web application (None: none registered)."""

    nihii: str
    independent: IndependentActivity = IndependentActivity.NONE
    salaried_fte: Fraction = Fraction(0)
    account_registered: dt.date | None = None


@dataclass(frozen=True)
class HomeNursingActivity:
    """The data INAMI crosses: the royal decree's publication, the providers' status, the billed services."""

    decree_published: dt.date
    providers: tuple[ProviderStatus, ...]
    services: tuple[BilledService, ...]


@dataclass(frozen=True)
class ProviderPremium:
    """One provider's computation, every step kept for the report."""

    nihii: str
    patients: int
    patient_contacts: int
    theoretical_fte: Fraction
    salaried_fte: Fraction
    fte_due: Fraction
    independent: IndependentActivity
    account_registered: dt.date | None
    refusal: Refusal | None
    gross: Decimal


# -- the rules, one function each ------------------------------------------------------------------------------
def is_premium_code(code: str, article: BillingArticle) -> bool:
    """§9/§18: "les prestations qui ont été facturées conformément à l'article 8 de la nomenclature ou à la
    nomenclature de la rééducation dans le cadre de l'éducation au diabète (794253, 794334, 794415, 794430,
    794452, 794312)": every article 8 service, and of the rehabilitation nomenclature only those six codes."""
    if article is BillingArticle.ARTICLE_8:
        return True
    return article is BillingArticle.REHABILITATION and code in DIABETES_EDUCATION_CODES


def in_period(day: dt.date, rules: PremiumRound = SECOND_WAVE_2020) -> bool:
    """§6: contacts "enregistrés par le praticien entre le 1er septembre et le 30 novembre 2020"; footnotes 4
    and 5: "uniquement les prestations ... au cours de la période allant du 1er septembre au 30 novembre 2020"
    (both days included)."""
    return rules.period_start <= day <= rules.period_end


def accepted_in_time(service: BilledService, rules: PremiumRound = SECOND_WAVE_2020) -> bool:
    """§6: "Le CIN calculera le nombre de contacts patients sur la base des données de facturations introduites
    et acceptées au 31 janvier 2021" (accepted on that day still counts)."""
    return service.accepted <= rules.billing_accepted_by


def counts(service: BilledService, rules: PremiumRound = SECOND_WAVE_2020) -> bool:
    """A service that counts towards the patient contacts: its code (§9), its day (§6) and its billing (§6)."""
    return (is_premium_code(service.code, service.article) and in_period(service.day, rules)
            and accepted_in_time(service, rules))


def patient_contacts(services: Iterable[BilledService], nihii: str,
                     rules: PremiumRound = SECOND_WAVE_2020) -> tuple[int, int]:
    """§6: "Ce nombre est calculé en multipliant le nombre de patients par le nombre de jours ... pendant
    laquelle il y a eu au moins un contact avec ces patients par le dispensateur de soins concerné" and "Le
    calcul est effectué sur base de la personne concernée qui est indiquée sur les données de facturation en
    tant que dispensateur": the distinct (patient, day) pairs of the services ``nihii`` is the dispenser of
    (several services to one patient on one day are one contact). Returns (patients, patient contacts)."""
    pairs = {(s.patient, s.day) for s in services if s.dispenser == nihii and counts(s, rules)}
    return len({patient for patient, _ in pairs}), len(pairs)


def theoretical_fte(contacts: int, rules: PremiumRound = SECOND_WAVE_2020) -> Fraction:
    """§6: "le niveau d'activité ... est converti en un équivalent temps plein théorique (EPT), où un minimum de
    739 contacts patients correspond à 1 EPT": 739 contacts or more are 1 FTE, fewer that share of it."""
    return Fraction(min(max(contacts, 0), rules.contacts_per_fte), rules.contacts_per_fte)


def fte_due(theoretical: Fraction, salaried: Fraction) -> Fraction:
    """§6: "L'EPT théorique est diminué de l'ETP en tant que salarié ... la différence (positive) est alors
    versée": the theoretical FTE minus the salaried FTE, never below nil."""
    return max(theoretical - salaried, Fraction(0))


def account_deadline(decree_published: dt.date, rules: PremiumRound = SECOND_WAVE_2020) -> dt.date:
    """§16: "A partir de la publication de l'arrêté royal précité, les dispensateurs de soins concernés
    disposeront de 20 jours pour enregistrer un numéro de compte dans l'application web de l'INAMI" (calendar
    days, the 20th day included)."""
    return decree_published + dt.timedelta(days=rules.account_days)


def refusal(status: ProviderStatus, decree_published: dt.date,
            rules: PremiumRound = SECOND_WAVE_2020) -> Refusal | None:
    """Who is entitled. §6: "S'il s'agit d'une activité indépendante (à titre principal/complémentaire), la
    différence (positive) est alors versée" (INASTI says it); §7: "les dispensateurs de soins indépendants ne
    pourront bénéficier d'une intervention financière que s'ils ont enregistré un numéro de compte dans
    l'application web de l'INAMI au plus tard à une date qui sera postérieure à la publication de l'arrêté
    royal" (that date: :func:`account_deadline`). None: entitled."""
    if status.independent is IndependentActivity.NONE:
        return Refusal.NOT_INDEPENDENT
    if status.account_registered is None:
        return Refusal.NO_ACCOUNT
    if status.account_registered > account_deadline(decree_published, rules):
        return Refusal.ACCOUNT_TOO_LATE
    return None


def gross_amount(due: Fraction, rules: PremiumRound = SECOND_WAVE_2020) -> Decimal:
    """§7: "Le montant de la prime est de maximum 985 euros (montant brut)": 985 euros times the FTE due, at
    most 985; rounded once to the cent, half up (the seed sets no rounding)."""
    return half_up(min(Fraction(rules.max_gross) * max(due, Fraction(0)), Fraction(rules.max_gross)), 2)


def half_up(value: Fraction, places: int) -> Decimal:
    """A non-negative exact value rounded to ``places`` decimals, half up (amounts, and FTEs as reported)."""
    scale = 10 ** places
    units = (value.numerator * scale * 2 + value.denominator) // (2 * value.denominator)
    return Decimal(units).scaleb(-places)


def provider_premium(status: ProviderStatus, services: Iterable[BilledService], decree_published: dt.date,
                     rules: PremiumRound = SECOND_WAVE_2020) -> ProviderPremium:
    """Every rule for one provider: contacts, FTE, deduction, entitlement, amount."""
    patients, contacts = patient_contacts(services, status.nihii, rules)
    theoretical = theoretical_fte(contacts, rules)
    due = fte_due(theoretical, status.salaried_fte)
    refused = refusal(status, decree_published, rules)
    gross = Decimal("0.00") if refused else gross_amount(due, rules)
    return ProviderPremium(status.nihii, patients, contacts, theoretical, status.salaried_fte, due,
                           status.independent, status.account_registered, refused, gross)


def premiums(activity: HomeNursingActivity, rules: PremiumRound = SECOND_WAVE_2020,
             nihii: str | None = None) -> list[ProviderPremium]:
    """Every provider of the billing data or of the status data (§10: the CIN's complete list), by NIHII; one
    provider's alone with ``nihii``. A dispenser nobody reported a status of is not independent (§6)."""
    known = {p.nihii: p for p in activity.providers}
    everyone = sorted(set(known) | {s.dispenser for s in activity.services})
    return [provider_premium(known.get(n, ProviderStatus(n)), activity.services, activity.decree_published, rules)
            for n in everyone if nihii is None or n == nihii]


# -- reading the data (the scenario's "home_nursing" part) -------------------------------------------------------
MAX_RANGE_DAYS = 366  # one record's day range: a bound on what one line of data can expand to


def _date(value: Any, what: str) -> dt.date:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be an ISO date")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{what} must be an ISO date, not {value!r}") from None


def _days(value: Any, what: str) -> list[dt.date]:
    """ISO dates, or ISO 8601 intervals ``START/END`` for every day from START to END."""
    if not isinstance(value, list) or not value:
        raise ValueError(f"{what}: days must be a non-empty list")
    days: list[dt.date] = []
    for item in value:
        start, _, end = item.partition("/") if isinstance(item, str) else (item, "", "")
        first = _date(start, f"{what}: day")
        last = _date(end, f"{what}: day") if end else first
        if not 0 <= (last - first).days < MAX_RANGE_DAYS:
            raise ValueError(f"{what}: the range {item} must run forward, at most {MAX_RANGE_DAYS} days")
        days.extend(first + dt.timedelta(days=n) for n in range((last - first).days + 1))
    return days


def _fte(value: Any, what: str) -> Fraction:
    try:
        fte = Fraction(Decimal(value)) if isinstance(value, str) else None
    except (InvalidOperation, ValueError):
        fte = None
    if fte is None or not 0 <= fte <= 1:
        raise ValueError(f"{what}: salaried_fte must be a decimal text between 0 and 1")
    return fte


def _records(part: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    records = part.get(key, [])
    if not isinstance(records, list) or not all(isinstance(r, Mapping) for r in records):
        raise ValueError(f"home_nursing: {key} must be a list of records")
    return records


def activity_from_dict(part: Any) -> HomeNursingActivity:
    """The scenario's ``home_nursing`` part, checked: identifiers, dates, articles, FTEs (ValueError says what).

    ``{"decree_published": DATE, "providers": [{"nihii", "independent": main|complementary|none,
    "salaried_fte": "0.5", "account_registered": DATE|null}], "billed_services": [{"dispenser": NIHII,
    "patient": NISS, "article": art8|rehabilitation|other, "code": "425110", "days": [DATE or START/END, …],
    "accepted": DATE}]}``
    """
    if not isinstance(part, Mapping):
        raise ValueError("home_nursing must be a record")
    published = _date(part.get("decree_published"), "home_nursing: decree_published")
    providers: list[ProviderStatus] = []
    for rec in _records(part, "providers"):
        nihii = parse_nihii(rec["nihii"], person=True).value
        providers.append(ProviderStatus(
            nihii, IndependentActivity(rec.get("independent", "none")), _fte(rec.get("salaried_fte", "0"), nihii),
            _date(rec["account_registered"], f"{nihii}: account_registered") if rec.get("account_registered")
            else None))
    if len({p.nihii for p in providers}) != len(providers):
        raise ValueError("home_nursing: a provider is listed twice")
    services: list[BilledService] = []
    for rec in _records(part, "billed_services"):
        dispenser = parse_nihii(rec["dispenser"], person=True).value
        patient = parse_niss(rec["patient"]).value
        code = rec["code"]
        if not (isinstance(code, str) and len(code) == 6 and code.isascii() and code.isdigit()):
            raise ValueError(f"home_nursing: service code {code!r} must be 6 digits")
        article = BillingArticle(rec["article"])
        accepted = _date(rec["accepted"], f"{dispenser}: accepted")
        services.extend(BilledService(dispenser, patient, day, code, article, accepted)
                        for day in _days(rec["days"], f"{dispenser} for {patient}"))
    return HomeNursingActivity(published, tuple(providers), tuple(services))
