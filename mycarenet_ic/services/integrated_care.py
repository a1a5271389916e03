"""Integrated Care use cases: declare, consult, modify inclusions, list a project's patients.

Each use case: validate identifiers → resolve who the caller is (CoBrHa, role registry) →
ask the access policy (``domain.inclusions.decide``) with the facts it needs (therapeutic
link from the AttributeAuthority, own project or not) → apply the inclusion rules inside the
store's per-patient lock → an answer that is stored with the request Id, so a retry gets the
first answer and changes nothing.

Two limits no change may cross (seed 000 §9): the patient's death as the National Register knows it,
and the end date of a project CoBrHa shows as stopped. A stopped project's open inclusions are closed
at its end the first time a request reads them (``_close_stopped``), before any rule is checked, so
they no longer block a principal inclusion elsewhere.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from mycarenet_ic.domain.identifiers import InvalidIdentifier, parse_nihii, parse_niss
from mycarenet_ic.domain.inclusions import (
    Actor,
    Closure,
    Consent,
    Field,
    Inclusion,
    InclusionRuleError,
    Limit,
    Operation,
    Role,
    Status,
    Target,
    Verdict,
    check_consent,
    check_dates,
    check_no_conflict,
    decide,
    first_of_next_month,
    within_limits,
)
from mycarenet_ic.domain.qualities import Quality, RequesterKind
from mycarenet_ic.domain.records import Person
from mycarenet_ic.errors import (
    AccessDenied,
    BusinessRuleViolation,
    ConcealedNotFound,
    InvalidIdentifierError,
    NotFound,
)
from mycarenet_ic.services.ports import (
    AttributeAuthority,
    ChangeFn,
    Cobrha,
    InclusionStore,
    NationalRegister,
    WriteOutcome,
)
from mycarenet_ic.services.requesters import Requester, active_organisation, checked_profession

NO_INCLUSION = "No inclusion was found for this patient."


# -- commands and results ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Declaration:
    patient_ssin: str
    project: str
    status: Status
    start: dt.date
    consent: Consent | None = None
    consent_date: dt.date | None = None


@dataclass(frozen=True)
class Modification:
    patient_ssin: str
    inclusion_id: str
    status: Status | None = None
    start: dt.date | None = None
    end: dt.date | None = None
    consent: Consent | None = None
    consent_date: dt.date | None = None

    @property
    def fields(self) -> frozenset[Field]:
        given = {Field.STATUS: self.status, Field.START: self.start, Field.END: self.end,
                 Field.CONSENT: self.consent or self.consent_date}
        return frozenset(f for f, v in given.items() if v is not None)


@dataclass(frozen=True)
class Consultation:
    patient: Person | None
    patient_ssin: str
    inclusions: list[Inclusion]
    principal_elsewhere: bool | None
    audit_detail: str


@dataclass(frozen=True)
class ProjectPatient:
    ssin: str
    person: Person | None
    inclusion: Inclusion


@dataclass(frozen=True)
class ProjectPage:
    total: int
    patients: list[ProjectPatient]
    more: bool
    audit_detail: str = ""


@dataclass
class _Resolved:
    actors: list[Actor] = field(default_factory=list)
    link_type: str | None = None      # CD-HCPARTY code whose link with the patient counts
    link_holder: str | None = None    # NIHII of the provider or of the pharmacy
    provider_nihii: str | None = None


def _hash(*parts: object) -> str:
    return hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).hexdigest()


def _niss(value: str) -> str:
    try:
        return parse_niss(value).value
    except InvalidIdentifier as exc:
        raise InvalidIdentifierError(f"The patient's NISS is not valid: {exc.reason}.") from None


def _project_nihii(value: str) -> str:
    try:
        return parse_nihii(value, person=False).value
    except InvalidIdentifier as exc:
        raise InvalidIdentifierError(f"The project's NIHII is not valid: {exc.reason}.") from None


def _rule(exc: InclusionRuleError) -> BusinessRuleViolation:
    return BusinessRuleViolation(exc.message, code=exc.code)


class IntegratedCare:
    def __init__(self, store: InclusionStore, attribute_authority: AttributeAuthority, cobrha: Cobrha,
                 national_register: NationalRegister, today: Callable[[], dt.date] = dt.date.today) -> None:
        self.store = store
        self.aa = attribute_authority
        self.cobrha = cobrha
        self.nr = national_register
        self.today = today

    # -- who is calling ------------------------------------------------------------------------------
    def _resolve(self, caller: Requester) -> _Resolved:
        """Who ``caller`` is to the access policy: the actors of their identity, only those of the roles
        they chose to act in (``caller.acting_as``) if they chose."""
        resolved = self._resolve_identity(caller)
        if caller.acting_as is not None:
            resolved.actors = [actor for actor in resolved.actors if actor.role in caller.acting_as]
            if not resolved.actors:
                raise AccessDenied("The caller has no role in Integrated Care in the profile they signed in with.")
        return resolved

    def _resolve_identity(self, caller: Requester) -> _Resolved:
        ident, today = caller.identity, self.today()
        kind = ident.quality.kind
        if kind in (RequesterKind.CARE_PROVIDER, RequesterKind.PHARMACIST):
            return self._resolve_professional(caller, today)
        if ident.quality is Quality.PHARMACY:
            caller.check_claim({ident.nihii})
            active_organisation(self.cobrha, ident.nihii, Quality.PHARMACY.organisation_type, today, "pharmacy")
            return _Resolved([Actor(Role.PHARMACIST, nihii=ident.nihii, pharmacy=ident.nihii)], "orgpharmacy",
                             ident.nihii)
        if ident.quality is Quality.INTEGRATED_CARE_PROJECT and ident.nihii:
            caller.check_claim({ident.nihii})
            projects = frozenset({ident.nihii})
            return _Resolved([Actor(Role.PSI_ADMINISTRATIVE, nihii=ident.nihii, projects=projects),
                              Actor(Role.PSI_COORDINATOR, nihii=ident.nihii, projects=projects)])
        if kind in (RequesterKind.PSI_STAFF, RequesterKind.CITIZEN) and ident.ssin:
            # A person: staff of the PSIs whose roles the AttributeAuthority gives (CSAM), and, unless the
            # certificate says "PSI staff" only, a patient of their own file. An STS token certifies no
            # PSI role: its holder is a person, and the roles decide.
            roles = self.aa.roles(ident.ssin)
            by_role = {
                Role.PSI_ADMINISTRATIVE: frozenset(r.organisation_nihii for r in roles if r.role == "administrative"),
                Role.PSI_COORDINATOR: frozenset(r.organisation_nihii for r in roles if r.role == "coordinator"),
            }
            actors = [Actor(role, ssin=ident.ssin, projects=projects) for role, projects in by_role.items() if projects]
            if kind is RequesterKind.CITIZEN:
                actors.append(Actor(Role.PATIENT, ssin=ident.ssin))
            if not actors:
                raise AccessDenied("The caller has no role in an integrated-care project.")
            caller.check_claim(set().union(*by_role.values()))
            return _Resolved(actors)
        raise AccessDenied("The caller's quality gives no access to Integrated Care.")

    def _resolve_professional(self, caller: Requester, today: dt.date) -> _Resolved:
        ident, claimed = caller.identity, caller.claim.nihii
        profession = checked_profession(self.cobrha, ident, today)
        if ident.quality is not Quality.PHARMACIST:
            caller.check_claim({ident.nihii})
            return _Resolved([Actor(Role.PROVIDER, ssin=ident.ssin, nihii=ident.nihii)], profession.code,
                             ident.nihii, ident.nihii)
        # A pharmacist acts for the pharmacy they work in: the claimed one, else the first active one.
        caller.check_claim({ident.nihii, *profession.workplaces})
        candidates = [w for w in profession.workplaces if not claimed or w == claimed]
        for nihii in candidates or profession.workplaces:
            org = self.cobrha.organisation(nihii=nihii)
            if org is not None and org.type == Quality.PHARMACY.organisation_type and org.active_on(today):
                return _Resolved([Actor(Role.PHARMACIST, ssin=ident.ssin, nihii=ident.nihii, pharmacy=nihii)],
                                 "orgpharmacy", nihii, ident.nihii)
        raise AccessDenied("The pharmacist works in no pharmacy that is known and active in CoBrHa.")

    def _has_link(self, resolved: _Resolved, patient_ssin: str) -> bool:
        if resolved.link_type is None or resolved.link_holder is None:
            return False
        link = self.aa.therapeutic_link(patient_ssin, resolved.link_holder, resolved.link_type, self.today())
        return link is not None

    def _verdict(self, resolved: _Resolved, operation: Operation, target_of: Callable[[Actor], Target]) -> Verdict:
        verdicts = {decide(actor, operation, target_of(actor)) for actor in resolved.actors}
        for best in (Verdict.ALLOW, Verdict.CONCEAL):
            if best in verdicts:
                return best
        return Verdict.DENY

    def _person(self, ssin: str) -> Person:
        person = self.nr.person(ssin)
        if person is None:
            raise NotFound("The patient is not known in the National Register.")
        if person.replaced_by:
            raise BusinessRuleViolation("This NISS was replaced; use the patient's current NISS.",
                                        code="SSIN_REPLACED")
        return person

    # -- declare ---------------------------------------------------------------------------------------
    def declare(self, caller: Requester, request_id: str, cmd: Declaration) -> WriteOutcome:
        ssin, project = _niss(cmd.patient_ssin), _project_nihii(cmd.project)
        resolved = self._resolve(caller)
        verdict = self._verdict(resolved, Operation.DECLARE, lambda _a: Target(patient_ssin=ssin, project=project))
        if verdict is not Verdict.ALLOW:
            raise AccessDenied("The caller may not declare an inclusion in this project.")
        request_hash = _hash("declare", ssin, project, cmd.status.value, cmd.start, cmd.consent, cmd.consent_date)
        first = self.store.replayed(caller.identity.holder, request_id, request_hash)
        if first is not None:
            return first
        today = self.today()
        org = self.cobrha.organisation(nihii=project)
        if org is None or org.type != "psi" or not org.active_on(today):
            raise BusinessRuleViolation("The integrated-care project is not known and active in CoBrHa.",
                                        code="UNKNOWN_PROJECT")
        try:
            check_consent(cmd.consent, cmd.consent_date, required=True)
        except InclusionRuleError as exc:
            raise _rule(exc) from None
        person = self._person(ssin)
        death = person.death_date
        if death is not None and first_of_next_month(cmd.start) > death:
            raise BusinessRuleViolation(
                f"The patient died on {death}, before the inclusion would take effect "
                f"({first_of_next_month(cmd.start)}).", code="PATIENT_DECEASED")
        try:
            check_dates(cmd.start, None, cmd.consent, cmd.consent_date, today)
        except InclusionRuleError as exc:
            raise _rule(exc) from None
        candidate = Inclusion(id="", patient="", project=project, status=cmd.status, declared_start=cmd.start,
                              consent=cmd.consent, consent_date=cmd.consent_date,
                              provider_nihii=resolved.provider_nihii)
        # Seed 000 §9: a known death closes the inclusion at once (a late declaration for the months
        # before the death is still billable), never left open for the mutation feed that came already.
        limits = [Limit(death, Closure.DEATH)] if death is not None else []
        candidate = within_limits(candidate, limits, end_asked=False)
        self._close_stopped({i.project for i in self.store.inclusions_of(ssin)}, today)

        def change(current: list[Inclusion]) -> tuple[Inclusion, str]:
            check_no_conflict(candidate, current)
            return candidate, "declaration"

        return self._write(caller, request_id, ssin, "declare", request_hash, change)

    # -- consult ---------------------------------------------------------------------------------------
    def consult(self, caller: Requester, patient_ssin: str) -> Consultation:
        ssin = _niss(patient_ssin)
        resolved = self._resolve(caller)
        inclusions = self.store.inclusions_of(ssin)
        has_link = self._has_link(resolved, ssin) if resolved.link_type else False

        def target(actor: Actor) -> Target:
            return Target(patient_ssin=ssin, has_link=has_link,
                          in_own_project=any(i.project in actor.projects for i in inclusions))

        verdict = self._verdict(resolved, Operation.CONSULT, target)
        if verdict is Verdict.DENY:
            raise AccessDenied("The caller may not consult this patient's inclusions"
                               + (" (no therapeutic relationship)." if resolved.link_type else "."))
        if verdict is Verdict.CONCEAL:
            raise ConcealedNotFound(NO_INCLUSION, reason="patient of another project")
        # Only for a caller who may see them: a refused request makes the platform write nothing.
        if self._close_stopped({i.project for i in inclusions}, self.today()):
            inclusions = self.store.inclusions_of(ssin)
        staff_projects = frozenset().union(*(a.projects for a in resolved.actors))
        principal_elsewhere: bool | None = None
        visible = inclusions
        if staff_projects:
            visible = [i for i in inclusions if i.project in staff_projects]
            today = self.today()
            principal_elsewhere = any(i.status is Status.PRINCIPAL and i.open_on(today)
                                      for i in inclusions if i.project not in staff_projects)
        if not visible:
            raise NotFound(NO_INCLUSION)
        person = self.nr.person(ssin)
        return Consultation(person, ssin, sorted(visible, key=lambda i: (i.declared_start, i.id)),
                            principal_elsewhere,
                            f"inclusions={len(visible)} " + " ".join(f"{i.id}@{i.project}" for i in visible)
                            + ("" if principal_elsewhere is None else f" principal-elsewhere={principal_elsewhere}"))

    # -- modify ----------------------------------------------------------------------------------------
    def modify(self, caller: Requester, request_id: str, cmd: Modification) -> WriteOutcome:
        ssin = _niss(cmd.patient_ssin)
        fields = cmd.fields
        if not fields:
            raise BusinessRuleViolation("The modification changes nothing.", code="NOTHING_TO_CHANGE")
        resolved = self._resolve(caller)
        try:
            check_consent(cmd.consent, cmd.consent_date, required=False)
        except InclusionRuleError as exc:
            raise _rule(exc) from None
        inclusion = self.store.get(cmd.inclusion_id)
        if inclusion is None or not self.store.belongs_to(inclusion, ssin):
            # Decide first on what the caller may change at all, so a refusal does not depend on the data.
            if self._verdict(resolved, Operation.MODIFY, lambda _a: Target(
                    patient_ssin=ssin, has_link=True, in_own_project=True, fields=fields)) is Verdict.DENY:
                raise AccessDenied("The caller may not make this modification.")
            raise NotFound(NO_INCLUSION)
        has_link = self._has_link(resolved, ssin) if resolved.link_type else False
        verdict = self._verdict(resolved, Operation.MODIFY, lambda actor: Target(
            patient_ssin=ssin, has_link=has_link, in_own_project=inclusion.project in actor.projects, fields=fields))
        if verdict is Verdict.DENY:
            raise AccessDenied("The caller may not make this modification"
                               + (" (no therapeutic relationship)." if resolved.link_type and not has_link else "."))
        if verdict is Verdict.CONCEAL:
            raise ConcealedNotFound(NO_INCLUSION, reason="inclusion of another project")
        request_hash = _hash("modify", ssin, cmd.inclusion_id, cmd.status, cmd.start, cmd.end, cmd.consent,
                             cmd.consent_date)
        first = self.store.replayed(caller.identity.holder, request_id, request_hash)
        if first is not None:
            return first
        today = self.today()
        limits = self._limits(ssin, inclusion.project, today)

        def change(current: list[Inclusion]) -> tuple[Inclusion, str]:
            now = next((i for i in current if i.id == cmd.inclusion_id), None)
            if now is None:
                raise NotFound(NO_INCLUSION)
            updated = replace(
                now,
                status=cmd.status or now.status,
                declared_start=cmd.start or now.declared_start,
                declared_end=cmd.end if cmd.end is not None else now.declared_end,
                # An exclusion asked for replaces the platform's closure, within the limits below.
                closure=None if cmd.end is not None else now.closure,
                consent=cmd.consent or now.consent,
                consent_date=cmd.consent_date or now.consent_date,
                version=now.version + 1,
            )
            check_dates(updated.declared_start, updated.declared_end, updated.consent, updated.consent_date, today)
            updated = within_limits(updated, limits, end_asked=cmd.end is not None)
            check_no_conflict(updated, current)
            return updated, "modification"

        return self._write(caller, request_id, ssin, "modify", request_hash, change)

    def _limits(self, ssin: str, project: str, today: dt.date) -> list[Limit]:
        """The days an inclusion of this patient in this project may not run past."""
        limits = []
        person = self.nr.person(ssin)
        if person is not None and person.death_date is not None:
            limits.append(Limit(person.death_date, Closure.DEATH))
        stopped = self._stopped_on(project, today)
        if stopped is not None:
            self._close_stopped({project}, today)
            limits.append(Limit(stopped, Closure.PROJECT_STOPPED))
        return limits

    def _stopped_on(self, project: str, today: dt.date) -> dt.date | None:
        """The end date of a project CoBrHa shows as stopped (its end passed); None while it runs."""
        org = self.cobrha.organisation(nihii=project)
        if org is None or org.type != "psi" or org.active_to is None or org.active_to >= today:
            return None
        return org.active_to

    def _close_stopped(self, projects: set[str], today: dt.date) -> int:
        """Close the open inclusions of every stopped project among ``projects`` at its end date."""
        closed = 0
        for project in sorted(projects):
            stopped = self._stopped_on(project, today)
            if stopped is not None:
                closed += self.store.close_project(project, stopped,
                                                   f"project {project} ended on {stopped} (CoBrHa)")
        return closed

    def close_stopped_projects(self, projects: set[str]) -> int:
        """The same closure for any projects (a sweep over all of them, outside a request)."""
        return self._close_stopped(projects, self.today())

    def _write(self, caller: Requester, request_id: str, ssin: str, operation: str, request_hash: str,
               change: ChangeFn) -> WriteOutcome:
        """Run ``change`` inside the store's per-patient transaction; a broken rule is a business error."""
        def guarded(current: list[Inclusion]) -> tuple[Inclusion, str]:
            try:
                return change(current)
            except InclusionRuleError as exc:
                raise _rule(exc) from None

        return self.store.write(ssin=ssin, sender=caller.identity.holder, request_id=request_id, operation=operation,
                                request_hash=request_hash, operator=caller.identity.ssin, change=guarded,
                                audit=caller.audit)

    # -- list ------------------------------------------------------------------------------------------
    def list_patients(self, caller: Requester, project: str, offset: int = 0, limit: int = 20) -> ProjectPage:
        project = _project_nihii(project)
        resolved = self._resolve(caller)
        if self._verdict(resolved, Operation.LIST, lambda _a: Target(project=project)) is not Verdict.ALLOW:
            raise AccessDenied("Only a coordinator of this project may list its patients.")
        limit = max(1, min(limit, 50))
        self._close_stopped({project}, self.today())
        rows, total = self.store.project_page(project, self.today(), offset, limit)
        patients = [ProjectPatient(ssin, self.nr.person(ssin), inclusion) for ssin, inclusion in rows]
        return ProjectPage(total, patients, offset + len(rows) < total,
                           f"project={project} offset={offset} returned={len(rows)} total={total} "
                           + " ".join(i.id for _s, i in rows))
