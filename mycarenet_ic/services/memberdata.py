"""MemberData (assurability consultation, seed 001 §5-9) as a use case.

In: the requester (verified certificate + what the CommonInput claims) and the SAML query already
read into a :class:`Query`. Out: the assertions of the answer as plain facts (type, facet echo,
attributes with their public ``urn:be:cin:nippin:…`` names), or an :class:`AssurabilityError`
carrying the public error catalogue's code, which the SOAP layer turns into a SAML error status.

Pharmacists (and pharmacies) get the §8 answer; other providers, hospitals and medical houses the
§9 answer. Attribute names marked "ours" in ``README.md`` were not seen in a public answer and are
named in the same style.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from mycarenet_ic.domain.assurability import (
    FACETS_BY_KIND,
    AssurabilityError,
    ContactType,
    Facet,
    InvoicingStatus,
    MemberFile,
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
from mycarenet_ic.domain.qualities import CallerIdentity, Quality
from mycarenet_ic.domain.records import Person
from mycarenet_ic.errors import AccessDenied
from mycarenet_ic.services.ports import Cobrha, MemberFiles, NationalRegister
from mycarenet_ic.services.requesters import active_organisation, check_claimed_person, checked_profession

NIPPIN = "urn:be:cin:nippin"
NAME_ID_SSIN = "urn:be:fgov:person:ssin"
NAME_ID_SSIN_MUT = "urn:be:cin:nippin:member:ssin@mut"
NAME_ID_REGNR_MUT = "urn:be:cin:nippin:careReceiver:registrationNumber@mut"
MAX_PERIODS = 5
_NAME_ID = "*:AttributeQuery/*:Subject/*:NameID"
_FACETS = "*:AttributeQuery/*:Extensions/*:Facet"
# The disciplines of a medical-house contract, as the insurers name them (Medical, Nurse, Kine).
_HOUSE_TYPES = {"doctor": "Medical", "nurse": "Nurse", "physiotherapist": "Kine"}


def _literal(value: str) -> str:
    """``value`` as an XPath 1.0 string literal (the Location of a fault is an XPath on the query)."""
    if '"' not in value:
        return f'"{value}"'
    if "'" not in value:
        return f"'{value}'"
    return "concat(" + ", '\"', ".join(f'"{part}"' for part in value.split('"')) + ")"


def facet_location(facet_id: str, dimension: str | None = None) -> str:
    """Where a facet (or one of its dimensions) is in the query, with the predicates real answers use:
    ``*:AttributeQuery/*:Extensions/*:Facet[@id="…"]/*:Dimension[@id="…"]``."""
    where = f"{_FACETS}[@id={_literal(facet_id)}]"
    return where if dimension is None else f"{where}/*:Dimension[@id={_literal(dimension)}]"


def same_party(issuer: str, nihii: str) -> bool:
    """An Issuer names the same party as a NIHII: equal, or an 8-digit (organisation) NIHII padded with
    zeros to 11 digits, the way clients fill ``Issuer Format="urn:be:cin:nippin:nihii11"``."""
    def eleven(value: str) -> str:
        return value + "000" if len(value) == 8 else value

    return bool(issuer) and eleven(issuer) == eleven(nihii)

# Requesters by certificate quality: the answer they get and the facets they may ask.
_KIND_OF = {
    Quality.DOCTOR: "doctor", Quality.NURSE: "nurse", Quality.PHYSIOTHERAPIST: "physiotherapist",
    Quality.DENTIST: "dentist", Quality.MIDWIFE: "midwife", Quality.LOGOPEDIST: "logopedist",
    Quality.ORTHOPTIST: "orthoptist", Quality.PODOLOGIST: "podologist", Quality.DIETICIAN: "dietician",
    Quality.AUDICIAN: "audician", Quality.AUDIOLOGIST: "audiologist",
    Quality.OCCUPATIONAL_THERAPIST: "occupationaltherapist",
    Quality.PHARMACIST: "pharmacist", Quality.PHARMACY: "pharmacist", Quality.HOSPITAL: "hospital",
    Quality.MEDICAL_HOUSE: "medicalhouse",
    # Seed 001 §8: the tarification offices get the answer the pharmacists get.
    Quality.TARIFICATION_OFFICE: "pharmacist",
}
_ORG_KIND = {Quality.PHARMACY: "pharmacy", Quality.HOSPITAL: "hospital", Quality.MEDICAL_HOUSE: "medicalhouse",
             Quality.TARIFICATION_OFFICE: "pharmacyinvoicingoffice"}


def _insurer_of(mutuality: str) -> str | None:
    return mutuality[0] + "00" if mutuality[:1].isdigit() else None


@dataclass(frozen=True)
class FacetRequest:
    id: str
    dimensions: tuple[tuple[str, str], ...] = ()

    def values(self, dimension: str) -> list[str]:
        return [v for d, v in self.dimensions if d == dimension]


@dataclass(frozen=True)
class Query:
    """A SAML AttributeQuery as read by the SOAP layer (nothing checked yet but its shape)."""

    id: str
    issuer_nihii: str
    name_id_format: str
    name_id: str
    start: dt.date
    end: dt.date
    facets: tuple[FacetRequest, ...]


@dataclass(frozen=True)
class Requester:
    identity: CallerIdentity
    claimed_nihii: str | None = None
    claimed_quality: str | None = None
    claimed_ssin: str | None = None


@dataclass(frozen=True)
class Attribute:
    name: str
    values: tuple[str, ...]
    type: str = "string"           # the XML Schema type of the values: string | date | boolean


@dataclass(frozen=True)
class AssertionFacts:
    type: str
    facet: FacetRequest | None
    attributes: tuple[Attribute, ...]
    # The assertion's own period (first day, first day after), when it is not the query's: a period.
    bounds: tuple[dt.date, dt.date] | None = None


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
    assertions: tuple[AssertionFacts, ...]
    warnings: tuple[Warning, ...] = ()
    audit_detail: str = ""
    # The subject as the query named it (answers echo it) and the facets asked (the technical assertion
    # echoes the first).
    name_id_format: str = NAME_ID_SSIN
    name_id: str = ""
    facets: tuple[FacetRequest, ...] = ()


def _attrs(*pairs: tuple[str, object]) -> tuple[Attribute, ...]:
    """Attributes from (name, value) pairs; None values are left out, lists become several values.
    Dates are typed ``date`` and booleans ``boolean`` (as real answers type them), the rest ``string``."""
    out = []
    for name, value in pairs:
        if value is None or value == [] or value == ():
            continue
        values = value if isinstance(value, list | tuple) else [value]
        kind = "boolean" if isinstance(values[0], bool) else "date" if isinstance(values[0], dt.date) else "string"
        out.append(Attribute(name, tuple(_text(v) for v in values), kind))
    return tuple(out)


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


@dataclass
class _Context:
    kind: str
    query: Query
    ssin: str
    file: MemberFile
    person: Person | None
    request_type: RequestType = RequestType.INFORMATION
    contact_type: ContactType = ContactType.OTHER
    today: dt.date = field(default_factory=dt.date.today)
    requester_nihii: str | None = None

    @property
    def pharmacist(self) -> bool:
        return self.kind == "pharmacist"


class MemberData:
    def __init__(self, insurers: MemberFiles, cobrha: Cobrha, national_register: NationalRegister,
                 today: Callable[[], dt.date] = dt.date.today) -> None:
        self.insurers = insurers
        self.cobrha = cobrha
        self.nr = national_register
        self.today = today

    # -- the requester ------------------------------------------------------------------------------
    def _kind(self, requester: Requester, today: dt.date) -> str:
        ident = requester.identity
        kind = _KIND_OF.get(ident.quality)
        if kind is None:
            raise AccessDenied("The caller's quality gives no access to MemberData.")
        check_claimed_person(ident, requester.claimed_ssin)
        allowed = {ident.nihii}
        if ident.quality in _ORG_KIND:
            active_organisation(self.cobrha, ident.nihii, _ORG_KIND[ident.quality], today)
        else:
            profession = checked_profession(self.cobrha, ident, today)
            allowed |= set(profession.workplaces)
        if requester.claimed_nihii and requester.claimed_nihii not in allowed:
            raise AccessDenied("The CommonInput names another care provider than the certificate.")
        return kind

    # -- the subject ---------------------------------------------------------------------------------
    def _subject(self, query: Query) -> tuple[str, MemberFile]:
        fmt, value = query.name_id_format, query.name_id.strip()
        mutuality = None
        if fmt == NAME_ID_SSIN:
            ssin = value
        elif fmt == NAME_ID_SSIN_MUT:
            ssin, _, mutuality = value.partition("@")
        elif fmt == NAME_ID_REGNR_MUT:
            registration, _, mutuality = value.partition("@")
            if not registration:
                raise AssurabilityError("EMPTY_REG_NUM", "regNrWithMut not present", _NAME_ID)
            if not mutuality:
                raise AssurabilityError("EMPTY_IO", "IO not present", _NAME_ID)
            found = self.insurers.ssin_of(mutuality, registration)
            if found is None:
                raise AssurabilityError("BO_UNKNOWN_REGNBR", "regNrWithMut unknown in IO", "/", requester_error=False,
                                        insurer=_insurer_of(mutuality))
            ssin = found
        else:
            raise AssurabilityError("INVALID_NAMEID_FORMAT", "Invalid Format attribute value for NameId",
                                    _NAME_ID + "/@Format")
        if mutuality is not None and not (len(mutuality) == 3 and mutuality.isdigit()):
            raise AssurabilityError("INVALID_IO_FORMAT", "The IO has an invalid format", _NAME_ID + "/@Format")
        if not ssin:
            raise AssurabilityError("EMPTY_INSS", "INSS not present", _NAME_ID)
        if len(ssin) != 11 or not ssin.isdigit():
            raise AssurabilityError("INVALID_INSS_FORMAT", "The inss has an invalid format (not 11 digits)", _NAME_ID)
        try:
            parse_niss(ssin)
        except InvalidIdentifier:
            raise AssurabilityError("INVALID_INSS_VALUE", "The inss is incorrect (incorrect check digit)",
                                    _NAME_ID) from None
        file = self.insurers.member_file(ssin)
        if file is None or not file.periods:
            raise AssurabilityError("UNKNOWN_NISS_ROUTING", "Inss not found on Routing algorithm", _NAME_ID,
                                    requester_error=False)
        if mutuality is not None and all(p.mutuality != mutuality for p in file.periods):
            raise AssurabilityError("BO_UNKNOWN_NISS", "Niss not known in IO", "/", requester_error=False,
                                    insurer=_insurer_of(mutuality))
        return ssin, file

    # -- the facets ----------------------------------------------------------------------------------
    def _facets(self, ctx: _Context) -> list[tuple[Facet, FacetRequest]]:
        seen: set[str] = set()
        out = []
        allowed = FACETS_BY_KIND.get(ctx.kind, frozenset())
        if not ctx.query.facets:  # the official schema wants at least one Facet: nothing can be answered
            raise AssurabilityError("NO_FACET", "No requested facet is available", "", requester_error=False)
        for req in ctx.query.facets:
            where = facet_location(req.id)
            if req.id in seen:
                raise AssurabilityError("DUPLICATED_FACET", "A facet is asked more than once", where)
            seen.add(req.id)
            try:
                facet = Facet(req.id)
            except ValueError:
                raise AssurabilityError("UNKNOWN_FACET", "A requested facet does not exist", where) from None
            if facet not in allowed:
                raise AssurabilityError("UNAUTHORIZED_FACET", "Access rights are insufficient for a requested facet",
                                        where)
            self._dimensions(ctx, facet, req)
            out.append((facet, req))
        return out

    def _dimensions(self, ctx: _Context, facet: Facet, req: FacetRequest) -> None:
        known = {Facet.INSURABILITY: {"requestType", "contactType"},
                 Facet.CARE_PATH: {"carePathType"}}.get(facet, set())
        for dim, _value in req.dimensions:
            if dim not in known:
                raise AssurabilityError("INVALID_DIMENSION_ID", "A dimension is invalid in a facet",
                                        facet_location(req.id, dim))
        if facet is Facet.INSURABILITY:
            kinds = req.values("requestType")
            request_type, contact_type = facet_location(req.id, "requestType"), facet_location(req.id, "contactType")
            if not kinds:
                raise AssurabilityError("MISSING_DIMENSION", "A mandatory dimension is missing in a facet",
                                        request_type)
            if len(kinds) > 1 or len(req.values("contactType")) > 1:
                raise AssurabilityError("DUPLICATED_DIMENSION", "A unique dimension is repeated",
                                        request_type if len(kinds) > 1 else contact_type)
            if not kinds[0]:
                raise AssurabilityError("EMPTY_REQUESTTYPE", "The requestType dimension is empty", request_type)
            try:
                ctx.request_type = RequestType(kinds[0])
            except ValueError:
                raise AssurabilityError("UNALLOWED_REQUESTTYPE",
                                        "The value of requestType is not in the list of allowed values",
                                        request_type) from None
            contact = (req.values("contactType") or ["other"])[0]
            if not contact:
                raise AssurabilityError("EMPTY_CONTACTTYPE", "The contactType dimension is empty", contact_type)
            try:
                ctx.contact_type = ContactType(contact)
            except ValueError:
                raise AssurabilityError("UNALLOWED_CONTACTTYPE",
                                        "The value of contactType is not in the list of allowed values",
                                        contact_type) from None
            if ctx.contact_type is not ContactType.OTHER and ctx.kind != "hospital":
                raise AssurabilityError("UNAUTHORIZED_CONTACTTYPE",
                                        "The value of contactType is not allowed for the requestor", contact_type)
        if facet is Facet.CARE_PATH:
            where = facet_location(req.id, "carePathType")
            for value in req.values("carePathType"):
                if not value:
                    raise AssurabilityError("EMPTY_CAREPATHTYPE", "The carePathType dimension is empty", where)
                if value not in ("diabetes", "renalinsufficiency"):
                    raise AssurabilityError("UNALLOWED_CAREPATHTYPE",
                                            "The value of carePathType is not in the list of allowed values", where)

    # -- the consultation ----------------------------------------------------------------------------
    def consult(self, requester: Requester, query: Query) -> Answer:
        today = self.today()
        kind = self._kind(requester, today)
        if not same_party(query.issuer_nihii, requester.claimed_nihii or requester.identity.nihii or ""):
            raise AssurabilityError("CROSSCHECK_ISSUER", "crosscheck attributeQuery/Issuer vs. gen(A)Sync:NIHII",
                                    "*:AttributeQuery/*:Issuer")
        ssin, file = self._subject(query)
        ctx = _Context(kind, query, ssin, file, None, today=today, requester_nihii=requester.identity.nihii)
        facets = self._facets(ctx)
        check_period(query.start, query.end, today, ctx.pharmacist)
        ctx.person = self.nr.person(ssin)
        death = ctx.person.death_date if ctx.person else None
        inside = file.periods_in(query.start, query.end)
        current = file.period_on(min(query.end, today)) or (inside[-1] if inside else None)
        insurer = current.insurer if current else file.periods[-1].insurer
        if (ctx.contact_type is ContactType.HOSPITALIZED and
                (file.hospitalisation is None or file.hospitalisation.admission_date > query.end)):
            raise AssurabilityError("MISMATCHED_CONTACTTYPE",
                                    "The value of contactType is hospitalized and member is not hospitalized",
                                    facet_location(Facet.INSURABILITY.value, "contactType"),
                                    requester_error=False, insurer=insurer)
        assertions: list[AssertionFacts] = []
        warnings: list[Warning] = []
        for facet, req in facets:
            assertions += self._assert(ctx, facet, req, warnings, death)
        if not assertions:  # every facet asked, and none has anything to say for this person and period
            warnings.append(Warning("MISSING_FACETS", "Not all the requested facets are available"))
        types = sorted({a.type.rsplit(":", 1)[-1] for a in assertions})
        detail = (f"requester={kind} why={ctx.request_type.value} contact={ctx.contact_type.value} "
                  f"period={query.start}..{query.end} facets={','.join(r.id.rsplit(':', 1)[-1] for _f, r in facets)} "
                  f"returned={','.join(types)}" + "".join(f" warning={w.code}" for w in warnings))
        return Answer(ssin, insurer, query.start, query.end, tuple(assertions), tuple(warnings), detail,
                      query.name_id_format, query.name_id.strip(), query.facets)

    def _assert(self, ctx: _Context, facet: Facet, req: FacetRequest, warnings: list[Warning],
                death: dt.date | None) -> list[AssertionFacts]:
        file, q = ctx.file, ctx.query
        if facet is Facet.INSURABILITY:
            return self._insurability(ctx, req, warnings, death)
        if facet is Facet.CHRONIC_CONDITION:
            years = years_in(file.chronic_years, q.start, q.end)
            return [AssertionFacts(f"{NIPPIN}:chronicCondition", req,
                                   _attrs((f"{NIPPIN}:chronicCondition:year", years)))]
        if facet is Facet.CARE_PATH:
            wanted = req.values("carePathType") or ["diabetes", "renalinsufficiency"]
            return [AssertionFacts(f"{NIPPIN}:carePath", req, _attrs(
                (f"{NIPPIN}:carePath:type", c.type), (f"{NIPPIN}:carePath:physician:nihii11", c.gp_nihii),
                (f"{NIPPIN}:carePath:medicalHouse:nihii11", c.medical_house_nihii),
                (f"{NIPPIN}:carePath:specialist:nihii11", c.specialist_nihii),
                (f"{NIPPIN}:carePath:rights:startDate", c.rights_start),
                (f"{NIPPIN}:carePath:contract:endDate", c.contract_end),
                (f"{NIPPIN}:carePath:rights:endDate", c.rights_end),
            )) for c in file.care_trajectories if c.type in wanted
                and c.rights_start <= q.end and (c.rights_end is None or c.rights_end >= q.start)]
        if facet is Facet.REFERENCE_PHARMACY:
            ref = file.reference_pharmacy
            if ref is None or ref.agreement_date > q.end:
                return []
            return [AssertionFacts(f"{NIPPIN}:referencePharmacy", req, _attrs(
                (f"{NIPPIN}:referencePharmacy:pharmacy:nihii8", ref.pharmacy_nihii),
                (f"{NIPPIN}:referencePharmacy:agreementDate", ref.agreement_date)))]
        if facet is Facet.GLOBAL_MEDICAL_FILE:
            gmd = file.global_medical_file
            if gmd is None or not gmd.active_on(min(q.end, ctx.today)):
                return []
            holder = self.cobrha.professional(nihii=gmd.holder_nihii)
            return [AssertionFacts(f"{NIPPIN}:globalMedicalFile", req, _attrs(
                (f"{NIPPIN}:globalMedicalFile:hcp:nihii11", gmd.holder_nihii),
                (f"{NIPPIN}:globalMedicalFile:hcp:name", holder.last_name if holder else None),
                (f"{NIPPIN}:globalMedicalFile:hcp:firstName", holder.first_name if holder else None),
                (f"{NIPPIN}:globalMedicalFile:startDate", gmd.start)))]
        if file.palliative_since is None or file.palliative_since > q.end:  # palliative status
            return []
        return [AssertionFacts(f"{NIPPIN}:palliativeStatus", req,
                               _attrs((f"{NIPPIN}:palliativeStatus:startDate", file.palliative_since)))]

    def _insurability(self, ctx: _Context, req: FacetRequest, warnings: list[Warning],
                      death: dt.date | None) -> list[AssertionFacts]:
        file, q, person = ctx.file, ctx.query, ctx.person
        base = f"{NIPPIN}:insurability"
        out = [AssertionFacts(f"{base}:patientData", req, _attrs(
            (NAME_ID_SSIN, ctx.ssin),
            (f"{NIPPIN}:careReceiver:name", person.last_name if person else None),
            (f"{NIPPIN}:careReceiver:firstName", " ".join(person.first_names) if person else None),
            (f"{NIPPIN}:careReceiver:birthDate", person.birth_date if person else None),
            (f"{NIPPIN}:careReceiver:gender", person.sex if person else None),
            (f"{NIPPIN}:careReceiver:deceasedDate", death),
        ))]
        periods = file.periods_in(q.start, q.end)
        if len(periods) > MAX_PERIODS:
            periods = periods[-MAX_PERIODS:]
            warnings.append(Warning("ONLY_FIVE_PERIODS_RETURNED",
                                    "There are more than 5 insurability periods but only five were returned"))
        # Pharmacists (§8): the status on the day of delivery, which a closed file or a death makes impossible.
        status = invoicing_status_on(file, q.start, death) if ctx.pharmacist else file.invoicing_status
        invoicing = ctx.request_type is RequestType.INVOICING and status is InvoicingStatus.POSSIBLE
        for p in reversed(periods):  # the most recent first, as real answers list them
            approval = payment_approval(file, p, q.start) if invoicing else None
            # The period's own bounds inside the query's: first day, and first day after (NotOnOrAfter).
            after = p.end + dt.timedelta(days=1) if p.end is not None else q.end
            out.append(AssertionFacts(f"{base}:period", req, _attrs(
                (f"{NIPPIN}:careReceiver:registrationNumber", p.registration_number),
                (f"{NIPPIN}:careReceiver:mutuality", p.mutuality),
                (f"{NIPPIN}:cb1", p.ct1), (f"{NIPPIN}:cb2", p.ct2),
                (f"{NIPPIN}:communicationDate", ctx.today),
                (f"{NIPPIN}:paymentApproval", approval[0] if approval else None),
                (f"{NIPPIN}:paymentApproval:checkCode", approval[1] if approval and ctx.pharmacist else None),
            ), bounds=(max(p.start, q.start), min(after, q.end))))
        on = min(q.end, ctx.today)
        now = file.period_on(q.start if ctx.pharmacist else on)
        regime = now.third_party if now else ThirdPartyRegime.NONE
        out.append(AssertionFacts(f"{base}:payment", req, _attrs(
            (f"{NIPPIN}:payment:byIO", regime is not ThirdPartyRegime.NONE),
            (f"{NIPPIN}:payment:regime", regime.value),
            (f"{NIPPIN}:payment:exceptionToBan", None if ctx.pharmacist else file.third_party_ban_exception),
            (f"{NIPPIN}:maf:year", sorted(years_in(file.maf_years, q.start, q.end), reverse=True)),
            # Hospitals (§9): a patient who qualifies for the chronic-care flat fee may be billed no
            # supplementary fees in a two-bed or common room.
            (f"{NIPPIN}:payment:chronicCareFlatFee",
             bool(years_in(file.chronic_flat_fee_years, q.start, q.end)) if ctx.kind == "hospital" else None),
        )))
        if ctx.pharmacist:
            out.append(AssertionFacts(f"{base}:status", req, _attrs(
                (f"{base}:status:code", status.value),
                (f"{base}:status:requestDate", q.start),
                (f"{base}:status:coverageEndDate", now.end if now else None),
                (f"{NIPPIN}:otherMutuality", list(file.other_mutualities)),
            )))
            return out
        situation = general_situation(file, q.start, q.end, death)
        if situation.situation is Situation.MUTATION:
            warnings.append(Warning("MUTATION", "There is a mutation during the requested period"))
        if not situation.normal:  # real answers carry the assertion only when the situation is not normal
            gs = f"{NIPPIN}:generalSituation"
            out.append(AssertionFacts(f"{base}:generalSituation", req, _attrs(
                (f"{gs}:event", situation.situation.value),
                (f"{gs}:closureReason", situation.closure_reason),
                (f"{gs}:transfer:date", situation.transfer_date),
                (f"{gs}:transfer:oldMutuality", situation.old_mutuality),
                (f"{gs}:transfer:newMutuality", situation.new_mutuality),
                (f"{gs}:transfer:affiliationDate", situation.mutation_date),
            )))
        house = file.medical_house
        if house is not None and house.start <= q.end and (house.end is None or house.end >= q.start):
            out.append(AssertionFacts(f"{NIPPIN}:medicalHouse", req, _attrs(
                (f"{NIPPIN}:medicalHouse:nihii11", house.nihii),
                (f"{NIPPIN}:medicalHouse:type", [t for d, t in _HOUSE_TYPES.items() if d in house.covers]),
                (f"{NIPPIN}:medicalHouse:start", house.start), (f"{NIPPIN}:medicalHouse:end", house.end))))
        stay = file.hospitalisation
        # Only when the care is given in another hospital than the one the patient stays in (seed §31).
        if ctx.contact_type is ContactType.HOSPITALIZED and stay is not None \
                and stay.hospital_nihii != ctx.requester_nihii:
            out.append(AssertionFacts(f"{NIPPIN}:hospitalisation", req, _attrs(
                (f"{NIPPIN}:hospitalisation:hospital:nihii11", stay.hospital_nihii),
                (f"{NIPPIN}:hospitalisation:service", stay.service),
                (f"{NIPPIN}:hospitalisation:admissionDate", stay.admission_date))))
        return out
