"""Assurability ("MemberData", seed 001 §5-9): what the insurers know of a member over a period.

A :class:`MemberFile` is the insurers' file of one person: insurability periods (insurer,
registration number, CT1/CT2, third-party-payer regime, payment approval), other insurers on a
double or triple affiliation, MAF years, care trajectories, chronic-condition years, reference
pharmacy, medical-house convention, hospitalisation, and so on. The functions here turn a file,
a requested period and the requester's kind into the facts of the answer; no I/O.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
from dataclasses import dataclass

from mycarenet_ic.domain.qualities import Quality

# Seed 001 §8/§9 and the public error catalogue: how far back and how long a query may go.
MAX_YEARS_BACK = 5
MAX_PERIOD_DAYS = 366


class RequestType(enum.Enum):
    INFORMATION = "information"
    INVOICING = "invoicing"


class ContactType(enum.Enum):
    """Hospitals: ambulatory care, day hospitalisation, or care for a patient hospitalised elsewhere."""

    OTHER = "other"
    HOSPITALIZED = "hospitalized"                       # in the public contract: hospitalised elsewhere
    DAY_HOSPITALIZATION = "dayhospitalization"          # ours: the seed names it, no public value seen


class InvoicingStatus(enum.Enum):
    POSSIBLE = "invoicingPossible"
    INDIVIDUAL_PROBLEM = "invoicingImpossible:individualProblem"
    SYSTEM_PROBLEM = "invoicingImpossible:systemProblem"


class ThirdPartyRegime(enum.Enum):
    NONE = "none"
    NON_PREFERENTIAL = "nonPreferential"
    PREFERENTIAL = "preferential"


class Situation(enum.Enum):
    NORMAL = "normal"
    MUTATION = "mutation"
    SEVERAL = "severalSituations"
    CLOSED = "closedBefore"
    OPENED_AFTER = "openedAfter"


class Facet(enum.Enum):
    """What a query may ask about a member (the wire names each facet by a URN; the SOAP layer maps them)."""

    INSURABILITY = "insurability"
    CHRONIC_CONDITION = "chronicCondition"
    CARE_PATH = "carePath"
    REFERENCE_PHARMACY = "referencePharmacy"
    GLOBAL_MEDICAL_FILE = "globalMedicalFile"
    PALLIATIVE_STATUS = "palliativeStatus"


# Which requester may ask which facet (UNAUTHORIZED_FACET otherwise). The public contract refuses
# some facets by profession (e.g. carePath for a physiotherapist); this table is the sandbox's.
_ALL = frozenset(Facet)
FACETS_BY_KIND: dict[Quality, frozenset[Facet]] = {
    Quality.DOCTOR: _ALL,
    Quality.MEDICAL_HOUSE: _ALL,
    Quality.HOSPITAL: _ALL,
    Quality.PHARMACIST: frozenset({Facet.INSURABILITY, Facet.CHRONIC_CONDITION, Facet.CARE_PATH,
                                   Facet.REFERENCE_PHARMACY}),
    Quality.NURSE: frozenset({Facet.INSURABILITY, Facet.CHRONIC_CONDITION, Facet.PALLIATIVE_STATUS}),
    Quality.MIDWIFE: frozenset({Facet.INSURABILITY}),
    Quality.PHYSIOTHERAPIST: frozenset({Facet.INSURABILITY, Facet.CHRONIC_CONDITION}),
    Quality.DENTIST: frozenset({Facet.INSURABILITY}),
    Quality.LOGOPEDIST: frozenset({Facet.INSURABILITY}),
    # the other care providers the seeds name (seed 000 note 8; seed 001 §35: every provider of the law's art. 2 n)
    **{q: frozenset({Facet.INSURABILITY}) for q in (Quality.ORTHOPTIST, Quality.PODOLOGIST, Quality.DIETICIAN,
                                                    Quality.AUDICIAN, Quality.AUDIOLOGIST,
                                                    Quality.OCCUPATIONAL_THERAPIST)},
}
# Organisations answered as a kind of provider is: a pharmacy and a tarification office as a pharmacist
# (seed 001 §8); every other requester as itself.
ANSWERED_AS = {Quality.PHARMACY: Quality.PHARMACIST, Quality.TARIFICATION_OFFICE: Quality.PHARMACIST}


class RequestPart(enum.Enum):
    """The parts of a query an error can name; the SOAP layer knows where each is on the wire (the
    catalogue's Location). A facet or one of its dimensions is named with its id as the query gave it."""

    NOWHERE = "nowhere"                          # the catalogue gives no Location
    MESSAGE = "message"                          # the query as a whole, from the root
    QUERY = "query"
    ATTRIBUTES = "attributes"                    # attributes asked in the query itself
    ISSUER = "issuer"
    ISSUER_FORMAT = "issuer format"
    EXTENSIONS_TYPE = "extensions type"
    FACET = "facet"
    FACET_DIMENSION = "facet dimension"
    SUBJECT = "subject"
    NAME_ID = "name id"
    NAME_ID_FORMAT = "name id format"
    CONFIRMATION = "subject confirmation"
    CONFIRMATION_METHOD = "subject confirmation method"
    PERIOD = "period"
    PERIOD_START = "period start"
    PERIOD_END = "period end"


class AssurabilityError(ValueError):
    """A request the insurers answer with an error status; ``code`` is the public catalogue's code,
    ``part`` the part of the query it is about (with ``facet`` and ``dimension``, the ids the query
    gave, for a facet or a dimension)."""

    def __init__(self, code: str, message: str, part: RequestPart, requester_error: bool = True,
                 insurer: str | None = None, facet: str | None = None, dimension: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.part = part
        self.facet = facet
        self.dimension = dimension
        self.requester_error = requester_error
        self.insurer = insurer            # the insurer union that refuses, for the insurers' own errors


@dataclass(frozen=True)
class InsurabilityPeriod:
    mutuality: str
    registration_number: str
    start: dt.date
    end: dt.date | None
    ct1: str
    ct2: str
    third_party: ThirdPartyRegime = ThirdPartyRegime.NONE
    # Why the period ended: "death" | "mutation" | "unknown" (None while it runs).
    end_reason: str | None = None

    @property
    def insurer(self) -> str:
        return self.mutuality[0] + "00"

    @property
    def preferential(self) -> bool:
        """Last digit 1 of CT1/CT2: preferential reimbursement (BIM)."""
        return self.ct1.endswith("1") or self.ct2.endswith("1")

    def overlaps(self, start: dt.date, end: dt.date) -> bool:
        return self.start <= end and (self.end is None or self.end >= start)

    def covers(self, day: dt.date) -> bool:
        return self.start <= day and (self.end is None or day <= self.end)


@dataclass(frozen=True)
class CareTrajectory:
    type: str                      # "diabetes" | "renalinsufficiency"
    gp_nihii: str | None
    medical_house_nihii: str | None
    specialist_nihii: str | None
    rights_start: dt.date
    contract_end: dt.date | None
    rights_end: dt.date | None


@dataclass(frozen=True)
class ReferencePharmacy:
    pharmacy_nihii: str
    agreement_date: dt.date


@dataclass(frozen=True)
class MedicalHouse:
    nihii: str
    start: dt.date
    end: dt.date | None
    # Disciplines the subscription covers: any of "doctor", "nurse", "physiotherapist".
    covers: frozenset[str] = frozenset({"doctor", "nurse", "physiotherapist"})

    def active_on(self, day: dt.date) -> bool:
        return self.start <= day and (self.end is None or day <= self.end)


@dataclass(frozen=True)
class Hospitalisation:
    hospital_nihii: str
    admission_date: dt.date
    service: str
    discharge_date: dt.date | None = None


@dataclass(frozen=True)
class GlobalMedicalFile:
    holder_nihii: str
    start: dt.date
    end: dt.date | None = None

    def active_on(self, day: dt.date) -> bool:
        return self.start <= day and (self.end is None or day <= self.end)


@dataclass(frozen=True)
class CpasDecision:
    cpas: str                      # the CPAS (public social-welfare centre), by its enterprise number
    decision: str                  # decision reference
    start: dt.date
    end: dt.date
    patient_share_by_cpas: bool    # the CPAS also pays the personal share
    urgent_medical_aid: bool       # AMU: an urgent-medical-aid certificate is needed

    def covers(self, day: dt.date) -> bool:
        return self.start <= day <= self.end


@dataclass(frozen=True)
class MemberFile:
    ssin: str
    periods: tuple[InsurabilityPeriod, ...]
    other_mutualities: tuple[str, ...] = ()
    maf_years: tuple[int, ...] = ()
    chronic_years: tuple[int, ...] = ()
    care_trajectories: tuple[CareTrajectory, ...] = ()
    reference_pharmacy: ReferencePharmacy | None = None
    medical_house: MedicalHouse | None = None
    hospitalisation: Hospitalisation | None = None
    third_party_ban_exception: bool = False
    invoicing_status: InvoicingStatus = InvoicingStatus.POSSIBLE
    global_medical_file: GlobalMedicalFile | None = None
    palliative_since: dt.date | None = None
    cpas: CpasDecision | None = None
    # Years the member qualifies for the chronic-care flat fee ("forfait de soins aux malades chroniques"):
    # hospitals may then bill no supplementary fees for a two-bed or common room (seed 001 §9).
    chronic_flat_fee_years: tuple[int, ...] = ()

    def period_on(self, day: dt.date) -> InsurabilityPeriod | None:
        return next((p for p in self.periods if p.covers(day)), None)

    def periods_in(self, start: dt.date, end: dt.date) -> list[InsurabilityPeriod]:
        return sorted((p for p in self.periods if p.overlaps(start, end)), key=lambda p: p.start)


@dataclass(frozen=True)
class GeneralSituation:
    situation: Situation
    closure_reason: str | None = None          # death | mutation | unknown (file closed)
    mutation_date: dt.date | None = None
    old_mutuality: str | None = None
    new_mutuality: str | None = None
    closure_date: dt.date | None = None        # the day of death, else the first day no longer covered
    opening_date: dt.date | None = None        # the first day covered, when the file opens after the period

    @property
    def normal(self) -> bool:
        return self.situation is Situation.NORMAL

    @property
    def transfer_date(self) -> dt.date | None:
        """The date of the change the situation names (real answers: the death date for a file closed
        by death, the mutation date for a mutation)."""
        return self.mutation_date or self.closure_date or self.opening_date


def general_situation(file: MemberFile, start: dt.date, end: dt.date,
                      death: dt.date | None = None) -> GeneralSituation:
    """The person's global situation over ``start``..``end`` (seed 001 §9)."""
    inside = file.periods_in(start, end)
    if not inside:
        later = sorted(p.start for p in file.periods if p.start > end)
        if later:
            return GeneralSituation(Situation.OPENED_AFTER, opening_date=later[0])
        last = max(file.periods, key=lambda p: p.start, default=None)
        return _closed(death, end, last)
    last = inside[-1]
    if last.end is not None and last.end < end:
        return _closed(death, end, last)
    insurers = [p.mutuality for p in inside]
    moves = [n for n in range(1, len(inside)) if insurers[n] != insurers[n - 1]]
    if not moves:  # one insurer throughout (CT changes only): real answers call that normal
        return GeneralSituation(Situation.NORMAL)
    if len(inside) == 2:  # exactly one change, and it is a change of insurer
        return GeneralSituation(Situation.MUTATION, mutation_date=inside[1].start, old_mutuality=insurers[0],
                                new_mutuality=insurers[1])
    return GeneralSituation(Situation.SEVERAL)


def _closed(death: dt.date | None, end: dt.date, last: InsurabilityPeriod | None) -> GeneralSituation:
    if death is not None and death <= end:
        return GeneralSituation(Situation.CLOSED, closure_reason="death", closure_date=death)
    closed_on = last.end + dt.timedelta(days=1) if last is not None and last.end is not None else None
    return GeneralSituation(Situation.CLOSED, closure_reason=(last.end_reason if last else None) or "unknown",
                            closure_date=closed_on)


def invoicing_status_on(file: MemberFile, day: dt.date, death: dt.date | None = None) -> InvoicingStatus:
    """The §8 status for a delivery on ``day`` (seed 001 §8: invoicing possible, impossible for an individual
    problem, impossible for a system problem). A member the insurers do not cover that day (no period: the
    file closed before it, or opens after it) or who died before it cannot be invoiced: an individual
    problem, whatever the file says otherwise; a system problem stays one."""
    if file.invoicing_status is InvoicingStatus.SYSTEM_PROBLEM:
        return file.invoicing_status
    if file.period_on(day) is None or (death is not None and death < day):
        return InvoicingStatus.INDIVIDUAL_PROBLEM
    return file.invoicing_status


def years_in(years: tuple[int, ...], start: dt.date, end: dt.date) -> list[int]:
    return sorted(y for y in years if start.year <= y <= end.year)


def check_period(start: dt.date, end: dt.date, today: dt.date, pharmacist: bool) -> None:
    """The requested period, as the public error catalogue judges it."""
    if end < start:
        raise AssurabilityError("INVALID_PERIOD", "The End Date is before start Date", RequestPart.PERIOD_END)
    if start > today:
        raise AssurabilityError("START_DATE_IN_FUTURE", "The Start Date is in the future", RequestPart.PERIOD_START)
    if start < today.replace(year=today.year - MAX_YEARS_BACK, day=min(today.day, 28)):
        raise AssurabilityError("PERIOD_TOO_FAR_IN_PAST", "Request more than 5 years in the past", RequestPart.PERIOD)
    # Pharmacists give a date of request/delivery, not a period (seed §6).
    longest = 1 if pharmacist else MAX_PERIOD_DAYS
    if (end - start).days > longest:
        raise AssurabilityError("INVALID_PERIOD_FOR_SECTOR", "Invalid Period for sector", RequestPart.PERIOD)


def payment_approval(file: MemberFile, period: InsurabilityPeriod, day: dt.date) -> tuple[str, str]:
    """The payment-commitment approval number and its check code for an invoicing request.

    Deterministic per member, insurer and day, so that the insurer can verify it later.
    """
    seed = f"{file.ssin}|{period.mutuality}|{period.registration_number}|{day.isoformat()}".encode()
    digest = hashlib.sha256(seed).hexdigest()
    number = f"{period.mutuality}{day:%y%m%d}{int(digest[:10], 16) % 10**8:08d}"
    return number, f"{int(number) % 97:02d}"
