"""Integrated Care: inclusions of patients in integrated-care projects (PSI), and who may do what.

Rules (seed 000, restated in DOMAIN.md §1):

- an inclusion names a project (PSI NIHII), a status ``principal`` | ``information``,
  a declared start date and, once excluded, a declared end date, and the patient's
  consent (agree | refuse) with its registration date;
- the start takes effect on the 1st of the month after the declared start date; the
  end takes effect on the last day of the month after the declared exclusion date
  (annex, data 7 and 8); both declared and effective dates are kept;
- only one project can be ``principal`` at a time (annex, data 9): two principal
  inclusions of a patient may not have overlapping effective periods;
- consent (agree or refuse) and its registration date are part of every declaration (§11.1);
  a refusal is registered with its date like an agreement (annex, data 1 and 2);
- a death closes every inclusion still open at the date of death (§9), and once a death is known
  nothing may leave an inclusion open past it;
- a stopped project (CoBrHa: no longer active, with an end date) closes its open inclusions at
  its end date;
- each inclusion carries the NISS of the person who last operated on it (annex, data 10).

The access policy (§10-§13) is :func:`decide`: one table of who may run which
operation, on which project, with or without a therapeutic link.
"""

from __future__ import annotations

import calendar
import datetime as dt
import enum
from dataclasses import dataclass, replace


class Status(enum.Enum):
    PRINCIPAL = "principal"
    INFORMATION = "information"


class Consent(enum.Enum):
    AGREE = "agree"
    REFUSE = "refuse"


class Closure(enum.Enum):
    """Why the platform itself closed an inclusion (its end is then that day, not the month after)."""

    DEATH = "death"                        # the National Register's mutation service (§9)
    PROJECT_STOPPED = "project-stopped"    # the PSI's end date in CoBrHa


class InclusionRuleError(ValueError):
    """A request that breaks an inclusion rule; ``code`` names the rule for the client."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def first_of_next_month(day: dt.date) -> dt.date:
    """Effective start: the 1st of the month after ``day``."""
    return dt.date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def end_of_next_month(day: dt.date) -> dt.date:
    """Effective end: the last day (30th or 31st, 28/29 in February) of the month after ``day``."""
    nxt = first_of_next_month(day)
    return dt.date(nxt.year, nxt.month, calendar.monthrange(nxt.year, nxt.month)[1])


@dataclass(frozen=True)
class Inclusion:
    """One inclusion of a patient in a project. ``patient`` is whatever key the store uses."""

    id: str
    patient: str
    project: str
    status: Status
    declared_start: dt.date
    consent: Consent | None = None
    consent_date: dt.date | None = None
    declared_end: dt.date | None = None
    # Set when the platform closed the inclusion (death, stopped project): the end is that day itself.
    closure: Closure | None = None
    provider_nihii: str | None = None
    version: int = 1
    # NISS of the person who made the last declaration or modification (annex, data 10); None when
    # no person did (demo data). The platform's own closures do not change it.
    operator: str | None = None

    @property
    def closed_by_death(self) -> bool:
        return self.closure is Closure.DEATH

    @property
    def start(self) -> dt.date:
        return first_of_next_month(self.declared_start)

    @property
    def end(self) -> dt.date | None:
        if self.declared_end is None:
            return None
        if self.closure is not None:
            return self.declared_end
        return end_of_next_month(self.declared_end)

    def open_on(self, day: dt.date) -> bool:
        """Still running on ``day`` (not ended before it)."""
        return self.end is None or day <= self.end

    def overlaps(self, other: Inclusion) -> bool:
        """Effective periods share at least one day (an open end runs for ever)."""
        far = dt.date.max
        return self.start <= (other.end or far) and other.start <= (self.end or far)


def check_dates(declared_start: dt.date, declared_end: dt.date | None, consent: Consent | None,
                consent_date: dt.date | None, today: dt.date) -> None:
    if declared_end is not None and declared_end < declared_start:
        raise InclusionRuleError("END_BEFORE_START", "The end date of an inclusion cannot precede its start date.")
    if (consent is None) != (consent_date is None):
        raise InclusionRuleError("CONSENT_INCOMPLETE",
                                 "A consent (agree or refuse) and its registration date go together.")
    if consent_date is not None and consent_date > today:
        raise InclusionRuleError("CONSENT_DATE_IN_FUTURE", "The consent registration date cannot be in the future.")


def check_consent(consent: Consent | None, consent_date: dt.date | None, required: bool) -> None:
    """The consent (agree or refuse) and its registration date go together; a declaration needs them.

    Seed 000 §11.1 lists "date" and "accord ou refus sur le consentement" among a declaration's fields;
    a refusal is registered like an agreement, with its date (annex, data 1 and 2: "la date
    d'enregistrement de l'accord ou du refus"). A modification may leave the consent out, never half
    of it. The fault names what is missing.
    """
    missing = [name for name, value in (("Consent/Agreement", consent), ("Consent/Date", consent_date))
               if value is None]
    if len(missing) == 2:
        if not required:
            return
        missing = ["Consent"]
    if missing:
        raise InclusionRuleError(
            "CONSENT_INCOMPLETE",
            f"The request lacks {missing[0]}: the patient's consent (agree or refuse) and the date it was "
            "registered go together" + (" and a declaration needs both (seed 000 §11.1)." if required else "."))


def check_no_conflict(candidate: Inclusion, others: list[Inclusion]) -> None:
    """Refuse a second principal inclusion, or a second inclusion in the same project, for one period."""
    for other in others:
        if other.id == candidate.id or not candidate.overlaps(other):
            continue
        if other.project == candidate.project:
            raise InclusionRuleError(
                "ALREADY_INCLUDED", "The patient is already included in this project for an overlapping period.")
        if candidate.status is Status.PRINCIPAL and other.status is Status.PRINCIPAL:
            # Never name the other project: PSI staff may not learn which one it is.
            raise InclusionRuleError(
                "PRINCIPAL_EXISTS",
                "The patient already has a principal inclusion in another integrated-care project for this "
                "period; only one project can be principal at a time. Declare this one as 'information'.")


def runs_past(inclusion: Inclusion, day: dt.date) -> bool:
    """Open, or ending after ``day``."""
    return inclusion.end is None or inclusion.end > day


def close_at(inclusion: Inclusion, day: dt.date, closure: Closure) -> Inclusion | None:
    """The inclusion closed at ``day`` if it runs past it; None if it already ends on or before ``day``.

    Used for a death and for a stopped project: both end the inclusion on that day itself. Applying it
    twice changes nothing the second time.
    """
    if not runs_past(inclusion, day):
        return None
    return replace(inclusion, declared_end=day, closure=closure, version=inclusion.version + 1)


def close_at_death(inclusion: Inclusion, death: dt.date) -> Inclusion | None:
    """The inclusion closed at ``death`` if it ran past it; None if nothing changes."""
    return close_at(inclusion, death, Closure.DEATH)


@dataclass(frozen=True)
class Limit:
    """A day no inclusion of the patient (death) or of the project (stopped PSI) may run past."""

    day: dt.date
    closure: Closure

    @property
    def code(self) -> str:
        return "PATIENT_DECEASED" if self.closure is Closure.DEATH else "PROJECT_STOPPED"

    def refusal(self, inclusion: Inclusion) -> InclusionRuleError:
        what = (f"the patient died on {self.day}" if self.closure is Closure.DEATH
                else f"the integrated-care project stopped on {self.day}")
        return InclusionRuleError(
            self.code, f"The inclusion cannot run past {self.day}: {what}. The exclusion asked for would end it "
            f"on {inclusion.end}; it stays closed on {self.day}.")


def within_limits(updated: Inclusion, limits: list[Limit], end_asked: bool) -> Inclusion:
    """``updated`` kept within ``limits`` (earliest first).

    A change that asks for an end past a limit is refused (the limit's code); any other change of an
    inclusion that still runs past a limit closes it there, so no change leaves it open past a death
    or a project's end.
    """
    for limit in sorted(limits, key=lambda x: x.day):
        if not runs_past(updated, limit.day):
            continue
        if end_asked:
            raise limit.refusal(updated)
        closed = close_at(updated, limit.day, limit.closure)
        assert closed is not None
        updated = replace(closed, version=updated.version)
    return updated


# -- who may do what ------------------------------------------------------------------------------

class Role(enum.Enum):
    PROVIDER = "provider"              # doctor, nurse, physiotherapist, … in CoBrHa with a valid VISA
    PHARMACIST = "pharmacist"          # works in a pharmacy; the link checked is the pharmacy's
    PSI_ADMINISTRATIVE = "psi-administrative"
    PSI_COORDINATOR = "psi-coordinator"
    PATIENT = "patient"


class Operation(enum.Enum):
    DECLARE = "declare"
    CONSULT = "consult"
    MODIFY = "modify"
    LIST = "list"


class Field(enum.Enum):
    STATUS = "status"
    START = "start"
    END = "end"
    CONSENT = "consent"


MODIFIABLE: dict[Role, frozenset[Field]] = {
    Role.PROVIDER: frozenset(Field),
    Role.PHARMACIST: frozenset(Field),
    Role.PSI_ADMINISTRATIVE: frozenset({Field.START, Field.CONSENT}),
    Role.PSI_COORDINATOR: frozenset(),
    Role.PATIENT: frozenset({Field.CONSENT}),
}


class Verdict(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"          # an explicit refusal: the caller may not do this
    CONCEAL = "conceal"    # answered exactly like "not found" (another PSI's patient), audited as DENIED


@dataclass(frozen=True)
class Actor:
    """The caller as the access policy sees it."""

    role: Role
    ssin: str | None = None
    nihii: str | None = None
    # Projects the caller acts for (PSI staff), from the role registry.
    projects: frozenset[str] = frozenset()
    # The pharmacy whose therapeutic links count (pharmacists).
    pharmacy: str | None = None


@dataclass(frozen=True)
class Target:
    """What the operation is about, as far as the policy needs to know."""

    patient_ssin: str | None = None
    project: str | None = None
    has_link: bool = False
    # The patient has an inclusion in one of the caller's projects.
    in_own_project: bool = False
    fields: frozenset[Field] = frozenset()


def decide(actor: Actor, operation: Operation, target: Target) -> Verdict:
    """The access policy of seed 000 §10-§13 as one function."""
    role = actor.role
    if operation is Operation.DECLARE:
        if role in (Role.PROVIDER, Role.PHARMACIST):
            return Verdict.ALLOW  # §11.1: no therapeutic link needed to declare
        if role is Role.PSI_ADMINISTRATIVE:
            return Verdict.ALLOW if target.project in actor.projects else Verdict.DENY
        return Verdict.DENY
    if operation is Operation.LIST:
        if role is Role.PSI_COORDINATOR and target.project in actor.projects:
            return Verdict.ALLOW
        return Verdict.DENY
    # consult and modify
    if operation is Operation.MODIFY and not target.fields <= MODIFIABLE[role]:
        return Verdict.DENY
    if role in (Role.PROVIDER, Role.PHARMACIST):
        return Verdict.ALLOW if target.has_link else Verdict.DENY
    if role in (Role.PSI_ADMINISTRATIVE, Role.PSI_COORDINATOR):
        if operation is Operation.MODIFY and role is Role.PSI_COORDINATOR:
            return Verdict.DENY
        return Verdict.ALLOW if target.in_own_project else Verdict.CONCEAL
    if role is Role.PATIENT:
        return Verdict.ALLOW if target.patient_ssin is not None and target.patient_ssin == actor.ssin \
            else Verdict.DENY
    return Verdict.DENY
