"""MemberData (assurability consultation, seed 001 §5-9) as a use case.

In: the requester (verified certificate + what the CommonInput claims) and the query already read
into a :class:`Query` (the subject, the period, the facets asked). Out: an :class:`Answer`, the
assertions of the answer as typed facts (patient data, insurability periods, payment, …), or an
:class:`~mycarenet_ic.domain.assurability.AssurabilityError` carrying the public error catalogue's
code and the part of the query it is about. The SOAP layer (``soap/memberdata.py``) reads the SAML
query and writes the facts under their public ``urn:be:cin:nippin:…`` names; no wire name is here.

Pharmacists (and pharmacies) get the §8 answer; other providers, hospitals and medical houses the
§9 answer.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable
from dataclasses import dataclass

from mycarenet_ic.domain.assurability import (
    ANSWERED_AS,
    FACETS_BY_KIND,
    AssurabilityError,
    CareTrajectory,
    ContactType,
    Facet,
    GeneralSituation,
    Hospitalisation,
    InvoicingStatus,
    MedicalHouse,
    MemberFile,
    ReferencePharmacy,
    RequestPart,
    RequestType,
    Situation,
    ThirdPartyRegime,
    check_period,
    general_situation,
    invoicing_status_on,
    payment_approval,
    years_in,
)
from mycarenet_ic.domain.identifiers import InvalidIdentifier, parse_niss
from mycarenet_ic.domain.qualities import Quality, RequesterKind
from mycarenet_ic.domain.records import Person
from mycarenet_ic.errors import AccessDenied
from mycarenet_ic.services.ports import Cobrha, MemberFiles, NationalRegister
from mycarenet_ic.services.requesters import Requester, active_organisation, checked_profession

MAX_PERIODS = 5
# The dimensions each facet takes (any other is INVALID_DIMENSION_ID), by the ids queries give them.
REQUEST_TYPE, CONTACT_TYPE, CARE_PATH_TYPE = "requestType", "contactType", "carePathType"
_DIMENSIONS = {Facet.INSURABILITY: {REQUEST_TYPE, CONTACT_TYPE}, Facet.CARE_PATH: {CARE_PATH_TYPE}}
CARE_PATH_TYPES = ("diabetes", "renalinsufficiency")


def same_party(issuer: str, nihii: str) -> bool:
    """An Issuer names the same party as a NIHII: equal, or an 8-digit (organisation) NIHII padded with
    zeros to 11 digits, the way clients write an organisation's NIHII in 11 digits."""
    def eleven(value: str) -> str:
        return value + "000" if len(value) == 8 else value

    return bool(issuer) and eleven(issuer) == eleven(nihii)

def _insurer_of(mutuality: str) -> str | None:
    return mutuality[0] + "00" if mutuality[:1].isdigit() else None


# -- the query ------------------------------------------------------------------------------------------
class SubjectKind(enum.Enum):
    """How a query names its subject."""

    SSIN = "ssin"                                          # the NISS
    SSIN_AT_INSURER = "ssin at insurer"                    # the NISS and the member's mutuality
    REGISTRATION_AT_INSURER = "registration at insurer"    # the mutuality's registration number and the mutuality


@dataclass(frozen=True)
class Subject:
    """The subject as the query names it: ``kind`` is None for a form the service does not know;
    ``mutuality`` is given with the ``…_AT_INSURER`` kinds (perhaps empty)."""

    kind: SubjectKind | None
    id: str
    mutuality: str | None = None

    @property
    def ssin(self) -> str | None:
        """The NISS the query names, when it names the subject by its NISS (not checked yet)."""
        return self.id if self.kind in (SubjectKind.SSIN, SubjectKind.SSIN_AT_INSURER) and self.id else None


@dataclass(frozen=True)
class FacetRequest:
    """A facet asked: its ``id`` as the query gave it, the :class:`Facet` it names (None: no such
    facet) and its dimensions as (id, value) pairs."""

    id: str
    facet: Facet | None
    dimensions: tuple[tuple[str, str], ...] = ()

    def values(self, dimension: str) -> list[str]:
        return [v for d, v in self.dimensions if d == dimension]


@dataclass(frozen=True)
class Query:
    """A query as read by the SOAP layer (nothing checked yet but its shape)."""

    issuer_nihii: str
    subject: Subject
    start: dt.date
    end: dt.date
    facets: tuple[FacetRequest, ...]


# -- the answer: one fact per assertion -----------------------------------------------------------------
@dataclass(frozen=True)
class PatientData:
    ssin: str
    last_name: str | None
    first_names: str | None
    birth_date: dt.date | None
    sex: str | None
    death_date: dt.date | None


@dataclass(frozen=True)
class PeriodFacts:
    """One insurability period, with its own bounds inside the query's (first day, first day after)."""

    registration_number: str
    mutuality: str
    ct1: str
    ct2: str
    communication_date: dt.date
    payment_approval: str | None
    check_code: str | None
    start: dt.date
    after: dt.date


@dataclass(frozen=True)
class PaymentFacts:
    regime: ThirdPartyRegime
    exception_to_ban: bool | None        # not told to pharmacists
    maf_years: tuple[int, ...]           # the most recent first
    # Hospitals (§9): a patient who qualifies for the chronic-care flat fee may be billed no
    # supplementary fees in a two-bed or common room.
    chronic_care_flat_fee: bool | None

    @property
    def by_insurer(self) -> bool:
        return self.regime is not ThirdPartyRegime.NONE


@dataclass(frozen=True)
class InvoicingFacts:
    """Pharmacists (§8): the status on the day of delivery."""

    status: InvoicingStatus
    request_date: dt.date
    coverage_end: dt.date | None
    other_mutualities: tuple[str, ...]


@dataclass(frozen=True)
class ChronicCondition:
    years: tuple[int, ...]


@dataclass(frozen=True)
class GlobalMedicalFileHolder:
    nihii: str
    last_name: str | None
    first_name: str | None
    start: dt.date


@dataclass(frozen=True)
class PalliativeStatus:
    start: dt.date


Facts = (PatientData | PeriodFacts | PaymentFacts | InvoicingFacts | GeneralSituation | MedicalHouse
         | Hospitalisation | ChronicCondition | CareTrajectory | ReferencePharmacy | GlobalMedicalFileHolder
         | PalliativeStatus)
# What the audit calls each (the answer's assertion types).
_RETURNED: dict[type, str] = {
    PatientData: "patientData", PeriodFacts: "period", PaymentFacts: "payment", InvoicingFacts: "status",
    GeneralSituation: "generalSituation", MedicalHouse: "medicalHouse", Hospitalisation: "hospitalisation",
    ChronicCondition: "chronicCondition", CareTrajectory: "carePath", ReferencePharmacy: "referencePharmacy",
    GlobalMedicalFileHolder: "globalMedicalFile", PalliativeStatus: "palliativeStatus",
}


@dataclass(frozen=True)
class Assertion:
    facts: Facts
    facet: FacetRequest          # the facet it answers (echoed)


@dataclass(frozen=True)
class Warning:
    code: str
    message: str


@dataclass(frozen=True)
class Answer:
    ssin: str
    insurer: str | None
    start: dt.date
    end: dt.date
    assertions: tuple[Assertion, ...]
    warnings: tuple[Warning, ...] = ()
    audit_detail: str = ""


@dataclass(frozen=True)
class _Asked:
    """What a checked query asks: who asks (their kind and NIHII), why, in what contact, for which
    period, judged on which day."""

    kind: Quality
    requester_nihii: str | None
    request_type: RequestType
    contact_type: ContactType
    start: dt.date
    end: dt.date
    today: dt.date

    @property
    def pharmacist(self) -> bool:
        return self.kind is Quality.PHARMACIST


class MemberData:
    def __init__(self, insurers: MemberFiles, cobrha: Cobrha, national_register: NationalRegister,
                 today: Callable[[], dt.date] = dt.date.today) -> None:
        self.insurers = insurers
        self.cobrha = cobrha
        self.nr = national_register
        self.today = today

    # -- the requester ------------------------------------------------------------------------------
    def _kind(self, requester: Requester, today: dt.date) -> Quality:
        """The kind of requester the answer is for (a pharmacy is answered as a pharmacist is), once CoBrHa
        knows the caller as the certificate or token says and the claim names no one else."""
        ident = requester.identity
        kind = ANSWERED_AS.get(ident.quality, ident.quality)
        if kind not in FACETS_BY_KIND:
            raise AccessDenied("The caller's quality gives no access to MemberData.")
        if ident.quality.kind is RequesterKind.ORGANISATION:
            requester.check_claim({ident.nihii})
            active_organisation(self.cobrha, ident.nihii, ident.quality.organisation_type, today)
        else:
            requester.check_claim({ident.nihii, *checked_profession(self.cobrha, ident, today).workplaces})
        return kind

    # -- the subject ---------------------------------------------------------------------------------
    def _subject(self, subject: Subject) -> tuple[str, MemberFile]:
        mutuality = subject.mutuality
        if subject.kind is SubjectKind.REGISTRATION_AT_INSURER:
            if not subject.id:
                raise AssurabilityError("EMPTY_REG_NUM", "regNrWithMut not present", RequestPart.NAME_ID)
            if not mutuality:
                raise AssurabilityError("EMPTY_IO", "IO not present", RequestPart.NAME_ID)
            found = self.insurers.ssin_of(mutuality, subject.id)
            if found is None:
                raise AssurabilityError("BO_UNKNOWN_REGNBR", "regNrWithMut unknown in IO", RequestPart.MESSAGE,
                                        requester_error=False, insurer=_insurer_of(mutuality))
            ssin = found
        elif subject.kind is None:
            raise AssurabilityError("INVALID_NAMEID_FORMAT", "Invalid Format attribute value for NameId",
                                    RequestPart.NAME_ID_FORMAT)
        else:
            ssin = subject.id
        if mutuality is not None and not (len(mutuality) == 3 and mutuality.isdigit()):
            raise AssurabilityError("INVALID_IO_FORMAT", "The IO has an invalid format", RequestPart.NAME_ID_FORMAT)
        if not ssin:
            raise AssurabilityError("EMPTY_INSS", "INSS not present", RequestPart.NAME_ID)
        if len(ssin) != 11 or not ssin.isdigit():
            raise AssurabilityError("INVALID_INSS_FORMAT", "The inss has an invalid format (not 11 digits)",
                                    RequestPart.NAME_ID)
        try:
            parse_niss(ssin)
        except InvalidIdentifier:
            raise AssurabilityError("INVALID_INSS_VALUE", "The inss is incorrect (incorrect check digit)",
                                    RequestPart.NAME_ID) from None
        file = self.insurers.member_file(ssin)
        if file is None or not file.periods:
            raise AssurabilityError("UNKNOWN_NISS_ROUTING", "Inss not found on Routing algorithm", RequestPart.NAME_ID,
                                    requester_error=False)
        if mutuality is not None and all(p.mutuality != mutuality for p in file.periods):
            raise AssurabilityError("BO_UNKNOWN_NISS", "Niss not known in IO", RequestPart.MESSAGE,
                                    requester_error=False, insurer=_insurer_of(mutuality))
        return ssin, file

    # -- the facets ----------------------------------------------------------------------------------
    @staticmethod
    def _facets(kind: Quality, requests: tuple[FacetRequest, ...]
                ) -> tuple[list[tuple[Facet, FacetRequest]], RequestType, ContactType]:
        """The facets asked (checked), and why and in what contact (the insurability facet's dimensions)."""
        seen: set[str] = set()
        out = []
        why, contact = RequestType.INFORMATION, ContactType.OTHER
        allowed = FACETS_BY_KIND.get(kind, frozenset())
        if not requests:  # the official schema wants at least one Facet: nothing can be answered
            raise AssurabilityError("NO_FACET", "No requested facet is available", RequestPart.NOWHERE,
                                    requester_error=False)
        for req in requests:
            if req.id in seen:
                raise AssurabilityError("DUPLICATED_FACET", "A facet is asked more than once", RequestPart.FACET,
                                        facet=req.id)
            seen.add(req.id)
            facet = req.facet
            if facet is None:
                raise AssurabilityError("UNKNOWN_FACET", "A requested facet does not exist", RequestPart.FACET,
                                        facet=req.id)
            if facet not in allowed:
                raise AssurabilityError("UNAUTHORIZED_FACET", "Access rights are insufficient for a requested facet",
                                        RequestPart.FACET, facet=req.id)
            for dim, _value in req.dimensions:
                if dim not in _DIMENSIONS.get(facet, set()):
                    raise _dimension_error("INVALID_DIMENSION_ID", "A dimension is invalid in a facet", req, dim)
            if facet is Facet.INSURABILITY:
                why, contact = _insurability_dimensions(kind, req)
            if facet is Facet.CARE_PATH:
                _check_care_paths(req)
            out.append((facet, req))
        return out, why, contact

    # -- the consultation ----------------------------------------------------------------------------
    def consult(self, requester: Requester, query: Query) -> Answer:
        today = self.today()
        kind = self._kind(requester, today)
        if not same_party(query.issuer_nihii, requester.claim.nihii or requester.identity.nihii or ""):
            raise AssurabilityError("CROSSCHECK_ISSUER", "crosscheck attributeQuery/Issuer vs. gen(A)Sync:NIHII",
                                    RequestPart.ISSUER)
        ssin, file = self._subject(query.subject)
        facets, why, contact = self._facets(kind, query.facets)
        asked = _Asked(kind, requester.identity.nihii, why, contact, query.start, query.end, today)
        check_period(query.start, query.end, today, asked.pharmacist)
        person = self.nr.person(ssin)
        inside = file.periods_in(query.start, query.end)
        current = file.period_on(min(query.end, today)) or (inside[-1] if inside else None)
        insurer = current.insurer if current else file.periods[-1].insurer
        if (contact is ContactType.HOSPITALIZED and
                (file.hospitalisation is None or file.hospitalisation.admission_date > query.end)):
            where = next(req.id for facet, req in facets if facet is Facet.INSURABILITY)
            raise AssurabilityError("MISMATCHED_CONTACTTYPE",
                                    "The value of contactType is hospitalized and member is not hospitalized",
                                    RequestPart.FACET_DIMENSION, requester_error=False, insurer=insurer,
                                    facet=where, dimension=CONTACT_TYPE)
        assertions: list[Assertion] = []
        warnings: list[Warning] = []
        for facet, req in facets:
            if facet is Facet.INSURABILITY:
                found, said = self._insurability(asked, ssin, file, person)
                warnings += said
            else:
                found = self._other(asked, facet, req, file)
            assertions += [Assertion(facts, req) for facts in found]
        if not assertions:  # every facet asked, and none has anything to say for this person and period
            warnings.append(Warning("MISSING_FACETS", "Not all the requested facets are available"))
        returned = sorted({_RETURNED[type(a.facts)] for a in assertions})
        detail = (f"requester={kind.value} why={why.value} contact={contact.value} "
                  f"period={query.start}..{query.end} facets={','.join(f.value for f, _r in facets)} "
                  f"returned={','.join(returned)}" + "".join(f" warning={w.code}" for w in warnings))
        return Answer(ssin, insurer, query.start, query.end, tuple(assertions), tuple(warnings), detail)

    def _other(self, asked: _Asked, facet: Facet, req: FacetRequest, file: MemberFile) -> list[Facts]:
        """What a facet other than insurability says of ``file`` over the period asked."""
        start, end = asked.start, asked.end
        if facet is Facet.CHRONIC_CONDITION:
            return [ChronicCondition(tuple(years_in(file.chronic_years, start, end)))]
        if facet is Facet.CARE_PATH:
            wanted = req.values(CARE_PATH_TYPE) or list(CARE_PATH_TYPES)
            return [c for c in file.care_trajectories if c.type in wanted
                    and c.rights_start <= end and (c.rights_end is None or c.rights_end >= start)]
        if facet is Facet.REFERENCE_PHARMACY:
            ref = file.reference_pharmacy
            return [] if ref is None or ref.agreement_date > end else [ref]
        if facet is Facet.GLOBAL_MEDICAL_FILE:
            gmd = file.global_medical_file
            if gmd is None or not gmd.active_on(min(end, asked.today)):
                return []
            holder = self.cobrha.professional(nihii=gmd.holder_nihii)
            return [GlobalMedicalFileHolder(gmd.holder_nihii, holder.last_name if holder else None,
                                            holder.first_name if holder else None, gmd.start)]
        if file.palliative_since is None or file.palliative_since > end:  # palliative status
            return []
        return [PalliativeStatus(file.palliative_since)]

    def _insurability(self, asked: _Asked, ssin: str, file: MemberFile, person: Person | None
                      ) -> tuple[list[Facts], list[Warning]]:
        start, end, today = asked.start, asked.end, asked.today
        death = person.death_date if person else None
        warnings: list[Warning] = []
        out: list[Facts] = [PatientData(
            ssin, person.last_name if person else None, " ".join(person.first_names) if person else None,
            person.birth_date if person else None, person.sex if person else None, death)]
        periods = file.periods_in(start, end)
        if len(periods) > MAX_PERIODS:
            periods = periods[-MAX_PERIODS:]
            warnings.append(Warning("ONLY_FIVE_PERIODS_RETURNED",
                                    "There are more than 5 insurability periods but only five were returned"))
        # Pharmacists (§8): the status on the day of delivery, which a closed file or a death makes impossible.
        status = invoicing_status_on(file, start, death) if asked.pharmacist else file.invoicing_status
        invoicing = asked.request_type is RequestType.INVOICING and status is InvoicingStatus.POSSIBLE
        for p in reversed(periods):  # the most recent first, as real answers list them
            approval = payment_approval(file, p, start) if invoicing else None
            # The period's own bounds inside the query's: first day, and first day after (NotOnOrAfter).
            after = p.end + dt.timedelta(days=1) if p.end is not None else end
            out.append(PeriodFacts(p.registration_number, p.mutuality, p.ct1, p.ct2, today,
                                   approval[0] if approval else None,
                                   approval[1] if approval and asked.pharmacist else None,
                                   max(p.start, start), min(after, end)))
        now = file.period_on(start if asked.pharmacist else min(end, today))
        out.append(PaymentFacts(
            now.third_party if now else ThirdPartyRegime.NONE,
            None if asked.pharmacist else file.third_party_ban_exception,
            tuple(sorted(years_in(file.maf_years, start, end), reverse=True)),
            bool(years_in(file.chronic_flat_fee_years, start, end)) if asked.kind is Quality.HOSPITAL else None))
        if asked.pharmacist:
            out.append(InvoicingFacts(status, start, now.end if now else None, file.other_mutualities))
            return out, warnings
        situation = general_situation(file, start, end, death)
        if situation.situation is Situation.MUTATION:
            warnings.append(Warning("MUTATION", "There is a mutation during the requested period"))
        if not situation.normal:  # real answers carry the assertion only when the situation is not normal
            out.append(situation)
        house = file.medical_house
        if house is not None and house.start <= end and (house.end is None or house.end >= start):
            out.append(house)
        stay = file.hospitalisation
        # Only when the care is given in another hospital than the one the patient stays in (seed §31).
        if asked.contact_type is ContactType.HOSPITALIZED and stay is not None \
                and stay.hospital_nihii != asked.requester_nihii:
            out.append(stay)
        return out, warnings


def _dimension_error(code: str, message: str, req: FacetRequest, dimension: str) -> AssurabilityError:
    return AssurabilityError(code, message, RequestPart.FACET_DIMENSION, facet=req.id, dimension=dimension)


def _insurability_dimensions(kind: Quality, req: FacetRequest) -> tuple[RequestType, ContactType]:
    """The insurability facet's requestType (mandatory, once) and contactType (at most once, ``other``
    by default; hospitals only may give another)."""
    kinds, contacts = req.values(REQUEST_TYPE), req.values(CONTACT_TYPE)
    if not kinds:
        raise _dimension_error("MISSING_DIMENSION", "A mandatory dimension is missing in a facet", req, REQUEST_TYPE)
    if len(kinds) > 1 or len(contacts) > 1:
        raise _dimension_error("DUPLICATED_DIMENSION", "A unique dimension is repeated", req,
                               REQUEST_TYPE if len(kinds) > 1 else CONTACT_TYPE)
    if not kinds[0]:
        raise _dimension_error("EMPTY_REQUESTTYPE", "The requestType dimension is empty", req, REQUEST_TYPE)
    try:
        why = RequestType(kinds[0])
    except ValueError:
        raise _dimension_error("UNALLOWED_REQUESTTYPE", "The value of requestType is not in the list of allowed values",
                               req, REQUEST_TYPE) from None
    contact_value = (contacts or ["other"])[0]
    if not contact_value:
        raise _dimension_error("EMPTY_CONTACTTYPE", "The contactType dimension is empty", req, CONTACT_TYPE)
    try:
        contact = ContactType(contact_value)
    except ValueError:
        raise _dimension_error("UNALLOWED_CONTACTTYPE",
                               "The value of contactType is not in the list of allowed values", req,
                               CONTACT_TYPE) from None
    if contact is not ContactType.OTHER and kind is not Quality.HOSPITAL:
        raise _dimension_error("UNAUTHORIZED_CONTACTTYPE", "The value of contactType is not allowed for the requestor",
                               req, CONTACT_TYPE)
    return why, contact


def _check_care_paths(req: FacetRequest) -> None:
    for value in req.values(CARE_PATH_TYPE):
        if not value:
            raise _dimension_error("EMPTY_CAREPATHTYPE", "The carePathType dimension is empty", req, CARE_PATH_TYPE)
        if value not in CARE_PATH_TYPES:
            raise _dimension_error("UNALLOWED_CAREPATHTYPE",
                                   "The value of carePathType is not in the list of allowed values", req,
                                   CARE_PATH_TYPE)
