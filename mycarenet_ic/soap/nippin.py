"""MemberData's wire vocabulary (the insurers' ``urn:be:cin:nippin:…`` names), in one place: the
subject's NameID formats, the facets' URNs, the catalogue's Location of each part of a query, and
each fact of an answer as its assertion type and its attributes (names, values, XML Schema types).

The use case (``services/memberdata.py``) speaks of facts, facets and request parts; this module
says how the public contract names them. Attribute names marked "ours" in ``README.md`` were not
seen in a public answer and are named in the same style.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from mycarenet_ic.domain.assurability import (
    AssurabilityError,
    CareTrajectory,
    Facet,
    GeneralSituation,
    Hospitalisation,
    MedicalHouse,
    ReferencePharmacy,
    RequestPart,
)
from mycarenet_ic.services.memberdata import (
    ChronicCondition,
    Facts,
    GlobalMedicalFileHolder,
    InvoicingFacts,
    PalliativeStatus,
    PatientData,
    PaymentFacts,
    PeriodFacts,
    Subject,
    SubjectKind,
)

NIPPIN = "urn:be:cin:nippin"
INSURABILITY = f"{NIPPIN}:insurability"
ISSUER_FORMAT = f"{NIPPIN}:nihii11"
CONFIRMATION_METHOD = f"{NIPPIN}:memberIdentification"
ATTRIBUTE_AUTHORITY = f"{NIPPIN}:aa"          # the Issuer of an error answer
TECHNICAL = f"{NIPPIN}:technicalAssertion"

NAME_ID_SSIN = "urn:be:fgov:person:ssin"
NAME_ID_SSIN_MUT = f"{NIPPIN}:member:ssin@mut"
NAME_ID_REGNR_MUT = f"{NIPPIN}:careReceiver:registrationNumber@mut"
_SUBJECT_KINDS = {NAME_ID_SSIN: SubjectKind.SSIN, NAME_ID_SSIN_MUT: SubjectKind.SSIN_AT_INSURER,
                  NAME_ID_REGNR_MUT: SubjectKind.REGISTRATION_AT_INSURER}

FACET_URNS = {
    Facet.INSURABILITY: INSURABILITY,
    Facet.CHRONIC_CONDITION: f"{NIPPIN}:chronicCondition",
    Facet.CARE_PATH: f"{NIPPIN}:carePath",
    Facet.REFERENCE_PHARMACY: f"{NIPPIN}:referencePharmacy",
    Facet.GLOBAL_MEDICAL_FILE: f"{NIPPIN}:globalMedicalFile",
    Facet.PALLIATIVE_STATUS: f"{NIPPIN}:palliativeStatus",
}
_FACETS = {urn: facet for facet, urn in FACET_URNS.items()}
# The disciplines of a medical-house contract, as the insurers name them (Medical, Nurse, Kine).
_HOUSE_TYPES = {"doctor": "Medical", "nurse": "Nurse", "physiotherapist": "Kine"}


def subject(name_id_format: str, value: str) -> Subject:
    """The subject a NameID names: the NISS, ``NISS@mutuality`` or ``registration number@mutuality``."""
    kind = _SUBJECT_KINDS.get(name_id_format)
    value = value.strip()
    if kind is SubjectKind.SSIN or kind is None:
        return Subject(kind, value)
    identifier, _, mutuality = value.partition("@")
    return Subject(kind, identifier, mutuality)


def facet(facet_id: str) -> Facet | None:
    """The facet a Facet ``id`` names (None: no such facet)."""
    return _FACETS.get(facet_id)


# -- where an error is: the catalogue's Location (an XPath on the query) ------------------------------------
_QUERY = "*:AttributeQuery"
_SUBJECT = f"{_QUERY}/*:Subject"
_CONFIRMATION = f"{_SUBJECT}/*:SubjectConfirmation"
_PERIOD = f"{_CONFIRMATION}/*:SubjectConfirmationData"
_LOCATIONS = {
    RequestPart.NOWHERE: "",
    RequestPart.MESSAGE: "/",
    RequestPart.QUERY: _QUERY,
    RequestPart.ATTRIBUTES: f"{_QUERY}/*:Attribute",
    RequestPart.ISSUER: f"{_QUERY}/*:Issuer",
    RequestPart.ISSUER_FORMAT: f"{_QUERY}/*:Issuer/@Format",
    RequestPart.EXTENSIONS_TYPE: f"{_QUERY}/*:Extensions/@xsi:type",
    RequestPart.SUBJECT: _SUBJECT,
    RequestPart.NAME_ID: f"{_SUBJECT}/*:NameID",
    RequestPart.NAME_ID_FORMAT: f"{_SUBJECT}/*:NameID/@Format",
    RequestPart.CONFIRMATION: _CONFIRMATION,
    RequestPart.CONFIRMATION_METHOD: f"{_CONFIRMATION}/@Method",
    RequestPart.PERIOD: _PERIOD,
    RequestPart.PERIOD_START: f"{_PERIOD}/@NotBefore",
    RequestPart.PERIOD_END: f"{_PERIOD}/@NotOnOrAfter",
}


def _literal(value: str) -> str:
    """``value`` as an XPath 1.0 string literal."""
    if '"' not in value:
        return f'"{value}"'
    if "'" not in value:
        return f"'{value}'"
    return "concat(" + ", '\"', ".join(f'"{part}"' for part in value.split('"')) + ")"


def location(error: AssurabilityError) -> str:
    """The Location of ``error``; a facet (or one of its dimensions) with the predicates real answers use:
    ``*:AttributeQuery/*:Extensions/*:Facet[@id="…"]/*:Dimension[@id="…"]``."""
    if error.part not in (RequestPart.FACET, RequestPart.FACET_DIMENSION):
        return _LOCATIONS[error.part]
    where = f"{_QUERY}/*:Extensions/*:Facet[@id={_literal(error.facet or '')}]"
    if error.part is RequestPart.FACET:
        return where
    return f"{where}/*:Dimension[@id={_literal(error.dimension or '')}]"


# -- the facts of an answer as assertions -----------------------------------------------------------------
@dataclass(frozen=True)
class Attribute:
    name: str
    values: tuple[str, ...]
    type: str = "string"           # the XML Schema type of the values: string | date | boolean


def _attrs(*pairs: tuple[str, object]) -> tuple[Attribute, ...]:
    """Attributes from (name, value) pairs; None values are left out, lists become several values.
    Dates are typed ``date`` and booleans ``boolean`` (as real answers type them), the rest ``string``."""
    out = []
    for name, value in pairs:
        if value is None:
            continue
        if isinstance(value, list | tuple):
            if not value:
                continue
            values: list[object] | tuple[object, ...] = value
        else:
            values = (value,)
        first = values[0]
        kind = "boolean" if first is True or first is False else "date" if isinstance(first, dt.date) else "string"
        out.append(Attribute(name, tuple(map(_text, values)), kind))
    return tuple(out)


def _text(value: object) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def assertion(facts: Facts) -> tuple[str, tuple[Attribute, ...]]:
    """The assertion type of ``facts`` and its attributes, in the order real answers give them."""
    n, cr = NIPPIN, f"{NIPPIN}:careReceiver"
    if isinstance(facts, PatientData):
        return f"{INSURABILITY}:patientData", _attrs(
            (NAME_ID_SSIN, facts.ssin), (f"{cr}:name", facts.last_name), (f"{cr}:firstName", facts.first_names),
            (f"{cr}:birthDate", facts.birth_date), (f"{cr}:gender", facts.sex),
            (f"{cr}:deceasedDate", facts.death_date))
    if isinstance(facts, PeriodFacts):
        return f"{INSURABILITY}:period", _attrs(
            (f"{cr}:registrationNumber", facts.registration_number), (f"{cr}:mutuality", facts.mutuality),
            (f"{n}:cb1", facts.ct1), (f"{n}:cb2", facts.ct2), (f"{n}:communicationDate", facts.communication_date),
            (f"{n}:paymentApproval", facts.payment_approval), (f"{n}:paymentApproval:checkCode", facts.check_code))
    if isinstance(facts, PaymentFacts):
        return f"{INSURABILITY}:payment", _attrs(
            (f"{n}:payment:byIO", facts.by_insurer), (f"{n}:payment:regime", facts.regime.value),
            (f"{n}:payment:exceptionToBan", facts.exception_to_ban), (f"{n}:maf:year", facts.maf_years),
            (f"{n}:payment:chronicCareFlatFee", facts.chronic_care_flat_fee))
    if isinstance(facts, InvoicingFacts):
        status = f"{INSURABILITY}:status"
        return status, _attrs(
            (f"{status}:code", facts.status.value), (f"{status}:requestDate", facts.request_date),
            (f"{status}:coverageEndDate", facts.coverage_end), (f"{n}:otherMutuality", facts.other_mutualities))
    if isinstance(facts, GeneralSituation):
        gs = f"{n}:generalSituation"
        return f"{INSURABILITY}:generalSituation", _attrs(
            (f"{gs}:event", facts.situation.value), (f"{gs}:closureReason", facts.closure_reason),
            (f"{gs}:transfer:date", facts.transfer_date), (f"{gs}:transfer:oldMutuality", facts.old_mutuality),
            (f"{gs}:transfer:newMutuality", facts.new_mutuality),
            (f"{gs}:transfer:affiliationDate", facts.mutation_date))
    if isinstance(facts, MedicalHouse):
        house = f"{n}:medicalHouse"
        return house, _attrs(
            (f"{house}:nihii11", facts.nihii),
            (f"{house}:type", [name for discipline, name in _HOUSE_TYPES.items() if discipline in facts.covers]),
            (f"{house}:start", facts.start), (f"{house}:end", facts.end))
    if isinstance(facts, Hospitalisation):
        stay = f"{n}:hospitalisation"
        return stay, _attrs((f"{stay}:hospital:nihii11", facts.hospital_nihii), (f"{stay}:service", facts.service),
                            (f"{stay}:admissionDate", facts.admission_date))
    if isinstance(facts, ChronicCondition):
        return f"{n}:chronicCondition", _attrs((f"{n}:chronicCondition:year", facts.years))
    if isinstance(facts, CareTrajectory):
        path = f"{n}:carePath"
        return path, _attrs(
            (f"{path}:type", facts.type), (f"{path}:physician:nihii11", facts.gp_nihii),
            (f"{path}:medicalHouse:nihii11", facts.medical_house_nihii),
            (f"{path}:specialist:nihii11", facts.specialist_nihii), (f"{path}:rights:startDate", facts.rights_start),
            (f"{path}:contract:endDate", facts.contract_end), (f"{path}:rights:endDate", facts.rights_end))
    if isinstance(facts, ReferencePharmacy):
        ref = f"{n}:referencePharmacy"
        return ref, _attrs((f"{ref}:pharmacy:nihii8", facts.pharmacy_nihii),
                           (f"{ref}:agreementDate", facts.agreement_date))
    if isinstance(facts, GlobalMedicalFileHolder):
        gmf = f"{n}:globalMedicalFile"
        return gmf, _attrs((f"{gmf}:hcp:nihii11", facts.nihii), (f"{gmf}:hcp:name", facts.last_name),
                           (f"{gmf}:hcp:firstName", facts.first_name), (f"{gmf}:startDate", facts.start))
    assert isinstance(facts, PalliativeStatus)
    palliative = f"{n}:palliativeStatus"
    return palliative, _attrs((f"{palliative}:startDate", facts.start))
