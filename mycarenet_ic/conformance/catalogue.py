"""The acceptance scenarios, per service, as data (the one place): what the client must send, what it gets
back and how it must handle it; ``expect`` is the scenario's matcher (criteria on an exchange's facts, see
:mod:`~mycarenet_ic.conformance.facts`); ``run`` is what ``conformance run`` sends to exercise it (callers
and patients of the demo scenario, ``stubs/scenarios/demo.json``).

Criteria: a tuple is "one of", a frozenset "contains all of", :data:`ANY` "present", :data:`EMPTY` "an empty
collection", anything else equality.
Taken from the README's tables, DOMAIN.md and the integration tests of each service."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mycarenet_ic.conformance.facts import Facts


class _Any:
    def __repr__(self) -> str:
        return "ANY"


ANY: Any = _Any()


class _Empty:
    def __repr__(self) -> str:
        return "EMPTY"


EMPTY: Any = _Empty()  # an empty collection


@dataclass(frozen=True)
class Caller:
    """One signer of the demo scenario: its quality, NISS and NIHII (as ``certs issue`` takes them)."""

    quality: str
    ssin: str | None
    nihii: str | None


CALLERS: dict[str, Caller] = {
    "gp": Caller("doctor", "74030902123", "11200035003"),                 # Verhoeven, GP, valid VISA
    "accredited-gp": Caller("doctor", "80060102221", "11203795004"),      # Coppens, accredited GP
    "group-gp": Caller("doctor", "81022013708", "12487165003"),           # Lambrechts, group practice
    "specialist": Caller("doctor", "70051208689", "12183495580"),         # Claessens, internal medicine
    "expired-gp": Caller("doctor", "57120502143", "11207458003"),         # Moreau, VISA ended
    "nurse": Caller("nurse", "86021702227", "41211142404"),               # De Backer
    "physiotherapist": Caller("physiotherapist", "78111302143", "51218572528"),
    "dentist": Caller("dentist", "84073102285", "31222221001"),
    "midwife": Caller("midwife", "89090602281", "41225988409"),
    "logopedist": Caller("logopedist", "87041512420", "68421127702"),     # Vandamme
    "pharmacist": Caller("pharmacist", "69012702143", "61229665000"),     # Geerts, in pharmacy 62103457
    "pharmacy": Caller("pharmacy", None, "62103457"),
    "hospital": Caller("hospital", None, "71009938000"),                  # UZ Sandbox Leuven
    "other-hospital": Caller("hospital", None, "71025477000"),            # AZ Sandbox Gent
    "psi-administrative": Caller("psi-staff", "81041102219", None),       # of PSI Leuven 91000153
    "psi-coordinator": Caller("psi-staff", "73080202153", None),          # of PSI Leuven
    "patient": Caller("citizen", "48031202166", None),                    # Peeters
}

IC, MD, TAR, MP = "integrated-care", "memberdata", "tarification", "mediprima"
IC_OPERATIONS = {"declare": "DeclareInclusionRequest", "consult": "ConsultInclusionsRequest",
                 "modify": "ModifyInclusionRequest", "list": "ListProjectPatientsRequest"}
OPERATIONS = {MD: "MemberDataConsultationRequest", TAR: "TarificationConsultationRequest",
              MP: "TarificationConsultationRequest"}
N = "urn:be:cin:nippin"
INS = f"{N}:insurability"
PEETERS, DESMET, MAES, JANSSENS = "48031202166", "82112502158", "61110202116", "52073002225"
RENARD = "72061602183"  # in no project
LEUVEN, NAMUR, GENT = "91000153", "91000252", "91000351"


@dataclass(frozen=True)
class Scenario:
    id: str
    service: str
    operation: str
    title: str
    send: str
    answer: str
    handle: str
    expect: Mapping[str, Any]
    run: Mapping[str, Any] = field(default_factory=dict)
    # deviations the scenario makes on purpose (an error case the schema refuses): not held against it
    deliberate: frozenset[str] = frozenset()

    @property
    def caller(self) -> Caller:
        return CALLERS[self.run["as"]]

    def matches(self, facts: Facts) -> bool:
        """Whether the exchange these facts describe exercises this scenario."""
        if facts["service"] != self.service or facts["operation"] != self.operation:
            return False
        return all(_holds(facts[key], wanted) for key, wanted in self.expect.items())

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "service": self.service, "operation": self.operation, "title": self.title,
                "send": self.send, "answer": self.answer, "handle": self.handle,
                "caller": vars(self.caller) if "as" in self.run else None}


def _holds(value: Any, wanted: Any) -> bool:
    if wanted is ANY:
        return value is not None
    if wanted is EMPTY:
        return value is not None and not value
    if isinstance(wanted, tuple):
        return value in wanted
    if isinstance(wanted, frozenset):
        return isinstance(value, (set, frozenset, tuple, list)) and wanted <= set(value)
    return bool(value == wanted)


# -- Integrated Care ----------------------------------------------------------------------------------------
def _ic(key: str, op: str, title: str, send: str, answer: str, handle: str, expect: dict[str, Any],
        run: dict[str, Any]) -> Scenario:
    return Scenario(f"ic.{key}", IC, IC_OPERATIONS[op], title, send, answer, handle, expect, {"op": op, **run})


_OK = "a signed answer with CommonOutput (InputReference echoed)"
_REFUSED = "a BusinessError fault (signed), nothing changed"
_AGREE = {"Consent": ("agree", 0)}


def _role_scenarios() -> list[Scenario]:
    out = []
    for role, caller, who in (("doctor", "gp", "a GP with a valid VISA"),
                              ("pharmacist", "pharmacist", "a pharmacist (the pharmacy's link)")):
        out += [
            _ic(f"{role}.declare", "declare", f"{who} declares an inclusion",
                "DeclareInclusionRequest: patient NISS, PSI NIHII, status, start date, Consent (Agreement, Date)",
                _OK + " holding the inclusion (InclusionId, effective start on the 1st of the next month)",
                "keep the InclusionId; show the effective start date, not the declared one",
                {"role": role, "answered": True},
                {"as": caller, "patient": "46010302186" if role == "doctor" else "58032102205", "project": NAMUR,
                 "status": "information", "consent": ("agree", 0)}),
            _ic(f"{role}.consult", "consult", f"{who} consults a linked patient's inclusions",
                "ConsultInclusionsRequest: the patient's NISS (a therapeutic link is needed)",
                _OK + " listing the inclusions with the patient's name and birth date from the National Register",
                "show them; never store the name or birth date", {"role": role, "answered": True},
                {"as": caller, "patient": PEETERS}),
            _ic(f"{role}.modify", "modify", f"{who} modifies an inclusion",
                "ModifyInclusionRequest: patient, InclusionId, only the elements that change",
                _OK + " with the inclusion as it now is (its Version incremented)",
                "replace the shown inclusion by the answer's", {"role": role, "answered": True},
                {"as": caller, "patient": PEETERS, "inclusion": LEUVEN, "changes": _AGREE}),
        ]
    out += [
        _ic("psi-administrative.declare", "declare", "a PSI's administrative declares in their own PSI",
            "DeclareInclusionRequest signed as the person (STS token of a citizen; the role comes from the "
            "AttributeAuthority)", _OK, "keep the InclusionId",
            {"role": "person", "answered": True},
            {"as": "psi-administrative", "patient": "63070702174", "project": LEUVEN, "status": "information",
             "consent": ("agree", 0)}),
        _ic("psi-staff.consult", "consult", "PSI staff consult a patient of their PSI",
            "ConsultInclusionsRequest for a patient of their own PSI",
            _OK + ": their PSI's inclusions, and PrincipalInclusionElsewhere without naming the other PSI",
            "show that a principal inclusion exists elsewhere, never guess which PSI",
            {"role": "person", "self": False, "answered": True}, {"as": "psi-administrative", "patient": PEETERS}),
        _ic("psi-administrative.modify", "modify", "a PSI's administrative changes start or consent",
            "ModifyInclusionRequest with StartDate and/or Consent only", _OK, "replace the shown inclusion",
            {"role": "person", "self": False, "answered": True},
            {"as": "psi-administrative", "patient": PEETERS, "inclusion": LEUVEN, "changes": _AGREE}),
        _ic("psi-coordinator.list", "list", "a PSI coordinator lists the project's patients, a page at a time",
            "ListProjectPatientsRequest: project, Offset, MaxResults (at most 50)",
            _OK + " with one page of patients and the total", "ask the next page until all are read",
            {"role": "person", "answered": True}, {"as": "psi-coordinator", "project": LEUVEN}),
        _ic("patient.consult", "consult", "the patient consults their own inclusions",
            "ConsultInclusionsRequest with their own NISS", _OK, "show them",
            {"role": "person", "self": True, "answered": True}, {"as": "patient", "patient": PEETERS}),
        _ic("patient.modify", "modify", "the patient changes their own consent",
            "ModifyInclusionRequest with Consent only", _OK, "show the new consent",
            {"role": "person", "self": True, "answered": True},
            {"as": "patient", "patient": PEETERS, "inclusion": LEUVEN, "changes": _AGREE}),
    ]
    return out


def _refusal(code: str, op: str, title: str, send: str, handle: str, run: dict[str, Any]) -> Scenario:
    return _ic(f"refusal.{code.lower().replace('_', '-')}", op, title, send, f"{_REFUSED}: Code {code}", handle,
               {"code": code}, run)


_IC_REFUSALS = [
    _refusal("ACCESS_DENIED", "list", "a caller without the role is refused",
             "a request the caller may not make (a GP lists a project)",
             "tell the user they may not; do not retry", {"as": "gp", "project": LEUVEN}),
    _refusal("NOT_FOUND", "consult", "another PSI's patient answers exactly like not found",
             "PSI staff consult a patient who is only in another PSI",
             "say 'not found'; never infer that the patient is elsewhere", {"as": "psi-administrative",
                                                                            "patient": MAES}),
    _refusal("PRINCIPAL_EXISTS", "declare", "a second principal inclusion is refused",
             "a principal declaration for a patient principal elsewhere",
             "declare as information, or have the other PSI end its principal inclusion",
             {"as": "gp", "patient": PEETERS, "project": NAMUR, "status": "principal", "consent": ("agree", 0)}),
    _refusal("ALREADY_INCLUDED", "declare", "a patient already in that PSI is refused",
             "a declaration in a PSI that already includes the patient", "consult and modify the inclusion instead",
             {"as": "gp", "patient": PEETERS, "project": LEUVEN, "status": "information", "consent": ("agree", 0)}),
    _refusal("END_BEFORE_START", "modify", "an end before the start is refused",
             "ModifyInclusionRequest whose EndDate precedes the start", "correct the date",
             {"as": "gp", "patient": PEETERS, "inclusion": LEUVEN, "changes": {"EndDate": "2001-01-01"}}),
    _refusal("CONSENT_INCOMPLETE", "declare", "a declaration without a consent is refused",
             "DeclareInclusionRequest without Consent (or without its Agreement or Date)",
             "ask the patient's consent and its date; the Message names what is missing",
             {"as": "gp", "patient": RENARD, "project": NAMUR, "status": "information", "consent": None}),
    _refusal("CONSENT_DATE_IN_FUTURE", "declare", "a consent dated in the future is refused",
             "a Consent/Date after today", "date the consent on the day it was given",
             {"as": "gp", "patient": RENARD, "project": NAMUR, "status": "information", "consent": ("agree", 2)}),
    _refusal("PATIENT_DECEASED", "declare", "a declaration effective after the patient's death is refused",
             "a declaration for a deceased patient (Lejeune, died 2026-09-14) starting after the death",
             "do not declare; the National Register knows the death",
             {"as": "gp", "patient": "36122402201", "project": NAMUR, "status": "information",
              "consent": ("agree", 0)}),
    _refusal("SSIN_REPLACED", "declare", "a replaced NISS is refused",
             "a declaration naming a BIS number the National Register replaced", "use the new NISS",
             {"as": "gp", "patient": "88431512423", "project": NAMUR, "status": "information",
              "consent": ("agree", 0)}),
    _refusal("NOTHING_TO_CHANGE", "modify", "a modification that changes nothing is refused",
             "ModifyInclusionRequest with no Status, StartDate, EndDate nor Consent", "send only what changes",
             {"as": "gp", "patient": PEETERS, "inclusion": LEUVEN, "changes": {}}),
    _refusal("UNKNOWN_PROJECT", "declare", "an unknown PSI is refused",
             "a declaration in a project CoBrHa does not know", "check the PSI's NIHII",
             {"as": "gp", "patient": RENARD, "project": "91099925", "status": "information",
              "consent": ("agree", 0)}),
    _refusal("DUPLICATE_REQUEST_ID", "declare", "another request under a request Id already used is refused",
             "a second, different request with the Id of an earlier one (a retry must be identical)",
             "make a new Id per request; resend identical bytes only to retry",
             {"as": "gp", "patient": RENARD, "project": NAMUR, "status": "information", "consent": ("agree", 0),
              "after": {"patient": "16082102260"}}),
    _refusal("INVALID_IDENTIFIER", "consult", "a NISS with wrong check digits is refused",
             "a Patient/Ssin whose check digits fail (SOA-03007)", "check NISS check digits before sending",
             {"as": "gp", "patient": "48031202167"}),
    _refusal("INVALID_REQUEST", "declare", "a request not valid against the schema is refused",
             "a body the XSD refuses (an unknown Status; SOA-03006)", "validate requests against the WSDL's XSD",
             {"as": "gp", "patient": RENARD, "project": NAMUR, "status": "whatever", "consent": ("agree", 0)}),
]


# -- MemberData ----------------------------------------------------------------------------------------------
def _md(key: str, title: str, send: str, answer: str, handle: str, expect: dict[str, Any],
        run: dict[str, Any], deliberate: frozenset[str] = frozenset()) -> Scenario:
    return Scenario(f"md.{key}", MD, OPERATIONS[MD], title, send, answer, handle, expect, run, deliberate)


# The sandbox's STS certifies no organisation whose NIHII has 11 digits (a hospital's): its certificate's
# 8-digit NIHII is not found in CoBrHa, an 11-digit one is not "the organisation's" in the token. Until it
# does, the hospital scenarios are played in the simple mode.
HOSPITAL_TOKENS = "x509"
_SUCCESS = "samlp:Response Success: patientData, one period assertion per period (most recent first), payment, "\
    "the technicalAssertion last"
_INFO = [(INS, [("requestType", "information"), ("contactType", "other")])]
_INVOICING = [(INS, [("requestType", "invoicing"), ("contactType", "other")])]
_MD_CASES = [
    _md("by-niss", "consult by NISS", "AttributeQuery with NameID Format urn:be:fgov:person:ssin",
        _SUCCESS, "read the periods, CT1/CT2 and the payer from the assertions",
        {"name_format": "ssin", "status": "Success", "detail_code": None, "facets": frozenset({INS}),
         "request_type": "information"},
        {"as": "gp", "subject": PEETERS}),
    _md("by-registration-number", "consult by registration number at an insurer",
        "NameID Format urn:be:cin:nippin:careReceiver:registrationNumber@mut, value regnr@mutuality",
        _SUCCESS + ", every NameID as asked", "match the patient by the NISS of patientData",
        {"name_format": "regnr@mut", "status": "Success"},
        {"as": "gp", "subject": "434439589175@101", "format": "regnr@mut"}),
    _md("by-niss-at-insurer", "consult by NISS at a given insurer",
        "NameID Format urn:be:cin:nippin:member:ssin@mut, value ssin@mutuality", _SUCCESS,
        "read the period of that insurer", {"name_format": "ssin@mut", "status": "Success"},
        {"as": "gp", "subject": f"{PEETERS}@101", "format": "ssin@mut"}),
    _md("invoicing", "consult for invoicing", "insurability facet with requestType invoicing",
        _SUCCESS + "; each period with a paymentApproval", "keep the payment approval with the invoice",
        {"request_type": "invoicing", "status": "Success", "detail_code": None, "role": ("doctor", "nurse",
                                                                                         "physiotherapist")},
        {"as": "gp", "subject": JANSSENS, "facets": _INVOICING}),
    _md("pharmacist-delivery-date", "a pharmacist asks on the delivery date",
        "one day (NotBefore = NotOnOrAfter = the delivery date), requestType invoicing",
        "insurability:status (invoicingPossible or invoicingImpossible:…), a paymentApproval with its check code",
        "deliver under third-party payment only when invoicingPossible",
        {"role": ("pharmacist", "pharmacy"), "period_days": 0, "status": "Success",
         "assertions": frozenset({"insurability:status"})},
        {"as": "pharmacist", "subject": PEETERS, "period": (-1, -1), "facets": [(INS, [("requestType",
                                                                                         "invoicing")])]}),
    _md("pharmacist-invoicing-impossible", "a pharmacist is told invoicing is impossible",
        "the delivery day of a member with an individual problem (Lambert)",
        "insurability:status invoicingImpossible:individualProblem, no paymentApproval",
        "do not invoice the insurer; the patient pays", {"role": ("pharmacist", "pharmacy"), "status": "Success",
                                                          "subject": "79081502279"},
        {"as": "pharmacist", "subject": "79081502279", "period": (-1, -1),
         "facets": [(INS, [("requestType", "invoicing")])]}),
    _md("hospital-contact-other", "a hospital asks for an ordinary contact", "contactType other",
        _SUCCESS, "as for any provider", {"role": "hospital", "contact_type": "other", "status": "Success"},
        {"as": "hospital", "subject": PEETERS, "facets": _INFO, "tokens": HOSPITAL_TOKENS}),
    _md("hospital-contact-hospitalized", "a hospital learns of a stay in another hospital",
        "contactType hospitalized for a patient staying in another hospital (De Smet)",
        _SUCCESS + " and a hospitalisation assertion (hospital NIHII, service, admission date)",
        "treat the other hospital's stay as the insurer says",
        {"role": "hospital", "contact_type": "hospitalized", "status": "Success",
         "assertions": frozenset({"hospitalisation"})},
        {"as": "other-hospital", "subject": "68042702242", "period": (-2, -1), "tokens": HOSPITAL_TOKENS,
         "facets": [(INS, [("requestType", "information"), ("contactType", "hospitalized")])]}),
    _md("mutation-partial-answer", "a mutation in the period: PartialAnswer",
        "a period across a change of insurer (Maes, 101 to 319 on 2026-07-01)",
        "Success + PartialAnswer, DetailCode MUTATION, a generalSituation mutation and one period per insurer",
        "read every period; the answer is complete but for the change", {"substatus": "PartialAnswer",
                                                                        "detail_code": "MUTATION"},
        {"as": "gp", "subject": MAES, "period": ("2026-05-01", "2026-08-31")}),
    _md("missing-facets", "facets that yield nothing: PartialAnswer MISSING_FACETS",
        "only a facet the patient has nothing for (palliativeStatus for Peeters)",
        "Success + PartialAnswer, DetailCode MISSING_FACETS, only the technicalAssertion",
        "tell the user there is nothing to show", {"detail_code": "MISSING_FACETS"},
        {"as": "gp", "subject": PEETERS, "facets": [(f"{N}:palliativeStatus", [])]}),
]
_FACETS = {"chronicCondition": (PEETERS, []), "carePath": (PEETERS, [("carePathType", "diabetes")]),
           "referencePharmacy": (PEETERS, []), "globalMedicalFile": (PEETERS, []),
           "palliativeStatus": ("39060802118", [])}
_MD_CASES += [
    _md(f"facet.{name}", f"the {name} facet", f"samlp:Extensions with the Facet {N}:{name}",
        f"an assertion {N}:{name} (the facet echoed in its Advice)", "read it; a facet may be refused by profession",
        {"facets": frozenset({f"{N}:{name}"}), "assertions": frozenset({name}), "status": "Success"},
        {"as": "gp", "subject": subject, "facets": [(f"{N}:{name}", dims)]})
    for name, (subject, dims) in _FACETS.items()
]


def _md_error(code: str, top: str, title: str, run: dict[str, Any], handle: str = "",
              deliberate: frozenset[str] = frozenset()) -> Scenario:
    return _md(f"error.{code.lower().replace('_', '-')}", title, f"an AttributeQuery showing it: {title}",
               f"samlp:Response {top} with StatusDetail/Fault, DetailCode {code}, Location naming the node",
               handle or "show the catalogue's message; fix the node the Location names (evaluate it on the query)",
               {"detail_code": code, "status": top}, {"as": "gp", "subject": PEETERS, **run}, deliberate)


_MD_ERRORS = [
    _md_error("UNKNOWN_NISS_ROUTING", "Responder", "a NISS no insurer knows", {"subject": "85100403749"},
              "the patient is not insured: ask the patient"),
    _md_error("INVALID_INSS_VALUE", "Requester", "a NISS with a wrong check digit", {"subject": "48031202167"}),
    _md_error("INVALID_INSS_FORMAT", "Requester", "a NISS not 11 digits", {"subject": "4803120216"}),
    _md_error("BO_UNKNOWN_NISS", "Responder", "a NISS the named insurer does not know",
              {"subject": f"{PEETERS}@509", "format": "ssin@mut"}),
    _md_error("BO_UNKNOWN_REGNBR", "Responder", "a registration number the insurer does not know",
              {"subject": "9434439589175@101", "format": "regnr@mut"}),
    _md_error("START_DATE_IN_FUTURE", "Requester", "a period in the future", {"period": (3, 9)}),
    _md_error("INVALID_PERIOD_FOR_SECTOR", "Requester", "a period too long for the sector", {"period": (-400, -1)}),
    _md_error("PERIOD_TOO_FAR_IN_PAST", "Requester", "a period more than 5 years back",
              {"period": ("2019-01-01", "2019-02-01")}),
    _md_error("INVALID_PERIOD", "Requester", "an end before the start", {"period": (-3, -9)}),
    _md_error("EMPTY_STARTDATE", "Requester", "a NotBefore that is no xs:dateTime", {"not_before": "yesterday"},
              deliberate=frozenset({"schema"})),
    _md_error("NO_FACET", "Responder", "no facet asked", {"facets": []}, deliberate=frozenset({"schema"})),
    _md_error("UNKNOWN_FACET", "Requester", "an unknown facet", {"facets": [(f"{N}:whatever", [])]}),
    _md_error("DUPLICATED_FACET", "Requester", "a facet asked twice",
              {"facets": [(f"{N}:chronicCondition", []), (f"{N}:chronicCondition", [])]}),
    _md_error("MISSING_DIMENSION", "Requester", "requestType missing", {"facets": [(INS, [("contactType", "other")])]}),
    _md_error("INVALID_DIMENSION_ID", "Requester", "an unknown dimension",
              {"facets": [(f"{N}:chronicCondition", [("colour", "blue")])]}),
    _md_error("EMPTY_REQUESTTYPE", "Requester", "requestType empty", {"facets": [(INS, [("requestType", "")])]}),
    _md_error("UNALLOWED_REQUESTTYPE", "Requester", "requestType not allowed",
              {"facets": [(INS, [("requestType", "curiosity")])]}),
    _md_error("UNAUTHORIZED_CONTACTTYPE", "Requester", "contactType hospitalized asked by a doctor",
              {"facets": [(INS, [("requestType", "information"), ("contactType", "hospitalized")])]}),
    _md_error("MISMATCHED_CONTACTTYPE", "Responder", "hospitalized elsewhere for a patient who is not",
              {"as": "hospital", "tokens": HOSPITAL_TOKENS, "facets": [(INS, [("requestType", "information"),
                                                   ("contactType", "hospitalized")])]}),
    _md_error("UNAUTHORIZED_FACET", "Requester", "a facet the profession may not ask (carePath, physiotherapist)",
              {"as": "physiotherapist", "facets": [(f"{N}:carePath", [("carePathType", "diabetes")])]}),
    _md_error("CROSSCHECK_ISSUER", "Requester", "an Issuer that is not the signing care provider",
              {"issuer": "11203795004"}),
    _md_error("FORBIDDEN_ATTRIBUTES", "Requester", "attributes in the query",
              {"extra": '<saml:Attribute xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" Name="x"/>'}),
]
_MD_REFUSAL = _md("refusal.access-denied", "a caller who may not consult is refused at the envelope",
                  "a query signed by someone who is no care provider (a citizen)",
                  "a BusinessError fault ACCESS_DENIED (SOA-01002), nothing consulted",
                  "do not retry; only care providers consult", {"code": "ACCESS_DENIED"},
                  {"as": "patient", "subject": PEETERS, "issuer": PEETERS}, deliberate=frozenset({"required"}))


# -- Tarification and Mediprima -------------------------------------------------------------------------------
def _tar(key: str, title: str, send: str, answer: str, expect: dict[str, Any], run: dict[str, Any],
         service: str = TAR, handle: str = "show fee, reimbursement and patient share per code") -> Scenario:
    prefix = "tar" if service == TAR else "mp"
    return Scenario(f"{prefix}.{key}", service, OPERATIONS[service], title, send, answer, handle, expect, run)


def _case(key: str, title: str, who: str, patient: str, codes: list[str], shares: dict[str, str],
          **run: Any) -> Scenario:
    expect: dict[str, Any] = {"patient": patient, "errors": EMPTY, "role": CALLERS[who].quality,
                              "justification": run.get("justification"), "codes": frozenset(codes),
                              "priced": frozenset(codes)}
    if "gmd_manager" in run:
        expect["gmd_manager"] = run["gmd_manager"]
    share = ", ".join(f"{c}: patient {s}" for c, s in shares.items())
    return _tar(key, title, f"RetrieveTransactionRequest (transaction tariff) for {patient}, codes "
                f"{', '.join(codes)}", f"acknowledge iscomplete true, one priced transaction per code ({share})",
                expect, {"as": who, "patient": patient, "codes": codes, **run})


_TAR_CASES = [
    _case("ordinary", "ordinary patient", "gp", DESMET, ["101076", "103132"], {"101076": "6.00", "103132": "11.95"}),
    _case("preferential", "preferential (BIM) patient", "gp", JANSSENS, ["101076"], {"101076": "1.50"}),
    _case("gmd-held", "GMD held by the requester", "gp", MAES, ["101076"], {"101076": "4.00"}),
    _case("gmd-other-gp", "GMD of another GP named (G notion)", "accredited-gp", MAES, ["101076"],
          {"101076": "4.00"}, gmd_manager="11200035003", justification="7"),
    _case("care-trajectory", "care-trajectory patient", "gp", PEETERS, ["101076"], {"101076": "0.00"}),
    _case("palliative", "palliative patient, home visit", "gp", "58032102205", ["103132"], {"103132": "0.00"}),
    _case("child", "child under 12", "gp", "16082102260", ["101076"], {"101076": "1.50"}),
    _case("third-party-justified", "third-party payment justified (justification 2)", "gp", DESMET, ["101076"],
          {"101076": "6.00"}, justification="2"),
    _case("group-practice", "GMD held in the requester's group practice", "group-gp", "90060615644",
          ["101076"], {"101076": "4.00"}),
    _case("logopedist", "speech therapist", "logopedist", DESMET, ["701013"], {"701013": "7.50"}),
    _case("dentist", "dentist", "dentist", DESMET, ["371571", "303166"], {"371571": "0.00", "303166": "5.40"}),
    _case("midwife", "midwife", "midwife", DESMET, ["422096", "428735"], {"422096": "0.00", "428735": "0.00"}),
    _case("specialist", "specialist", "specialist", DESMET, ["102012"], {"102012": "12.00"}),
    _case("nurse", "nurse", "nurse", DESMET, ["425110", "794253"], {"425110": "1.90", "794253": "0.00"}),
    _case("medical-house-specialist", "medical-house subscriber, an act the convention does not cover",
          "specialist", "39060802118", ["102012"], {"102012": "12.00"}),
]


def _tar_error(code: str, title: str, run: dict[str, Any], handle: str = "", service: str = TAR) -> Scenario:
    return _tar(f"error.{code}", title, f"a tariff request showing it: {title}",
                f"a normal answer, acknowledge iscomplete false, error cd {code} with a url (XPath in the request)",
                {"errors": frozenset({code})}, {"as": "gp", "patient": DESMET, "codes": ["101076"], **run},
                service, handle or "show the error's description; evaluate its url on the request sent")


_TAR_ERRORS = [
    _tar_error("112", "NISS check digit", {"patient": "48031202167"}),
    _tar_error("111", "a code of the wrong format", {"codes": ["1010"]}),
    _tar_error("120", "patient unknown to the insurers", {"patient": "85100403749"}),
    _tar_error("170", "patient not in order", {"patient": "79081502279"}),
    _tar_error("146", "date after today", {"day": 1}),
    _tar_error("166", "date more than two months back", {"day": -70}),
    _tar_error("171", "a code of another discipline", {"codes": ["560011"]}),
    _tar_error("130", "a value not allowed (unknown code, justification)", {"codes": ["999999"]}),
    _tar_error("169", "medical-house subscription covers the act", {"patient": "39060802118",
                                                                     "codes": ["101076", "102771"]}),
    _tar_error("167", "the named GMD manager is not the holder", {"patient": MAES, "gmd_manager": "11203795004"}),
    _tar_error("174", "the GMD manager is the author", {"patient": MAES, "gmd_manager": "11200035003"}),
    # the STS certifies no doctor without a valid VISA: only the simple mode's certificate gets this far
    _tar_error("140", "author may not ask today (no valid VISA)", {"as": "expired-gp", "tokens": "x509"}),
    _tar_error("155", "author is not the caller", {"author": "11203795004"}),
]
_TAR_REFUSALS = [
    _tar("refusal.access-denied", "a caller who is no care provider is refused", "a request signed by a citizen",
         "a BusinessError fault ACCESS_DENIED (SOA-01002)", {"code": "ACCESS_DENIED"},
         {"as": "patient", "patient": DESMET, "codes": ["101076"], "author": "11200035003"},
         handle="only care providers ask tariffs"),
    _tar("refusal.invalid-request", "a blob that is no tariff request is refused",
         "a Detail whose transaction is not tariff (gmd)", "a BusinessError fault INVALID_REQUEST (SOA-03006)",
         {"code": "INVALID_REQUEST"}, {"as": "gp", "patient": DESMET, "codes": ["101076"], "transaction": "gmd"},
         handle="send transaction tariff to tarification, tariffmediprima to mediprima"),
]
_MP = [
    _tar("cpas-share-covered", "CPAS decision covering the patient share", "transaction tariffmediprima (Popescu)",
         "fee = reimbursement-fpssi + reimbursement-pswc, patient 0.00, umc false, pswc the CPAS",
         {"patient": "92080304510", "errors": EMPTY, "priced": frozenset({"101076"})},
         {"as": "gp", "patient": "92080304510", "codes": ["101076"]}, MP,
         "bill the SPP and the CPAS, the patient nothing"),
    _tar("urgent-medical-aid", "urgent medical aid", "transaction tariffmediprima (Diallo)",
         "reimbursement-fpssi, patient share 6.00, umc true",
         {"patient": "99012106236", "errors": EMPTY, "priced": frozenset({"101076"})},
         {"as": "gp", "patient": "99012106236", "codes": ["101076"]}, MP, "the patient pays the share"),
    _tar_error("170", "no CPAS decision for the patient", {"patient": DESMET}, service=MP,
               handle="the patient is not covered by a CPAS: use the ordinary tarification"),
    _tar("refusal.invalid-request", "the ordinary transaction at the Mediprima address is refused",
         "transaction tariff to mediprima", "a BusinessError fault INVALID_REQUEST",
         {"code": "INVALID_REQUEST"}, {"as": "gp", "patient": "92080304510", "codes": ["101076"],
                                       "transaction": "tariff"}, MP, "send tariffmediprima"),
]

SCENARIOS: tuple[Scenario, ...] = (*_role_scenarios(), *_IC_REFUSALS, *_MD_CASES, *_MD_ERRORS, _MD_REFUSAL,
                                   *_TAR_CASES, *_TAR_ERRORS, *_TAR_REFUSALS, *_MP)
SERVICES = (IC, MD, TAR, MP)


def by_id() -> dict[str, Scenario]:
    return {s.id: s for s in SCENARIOS}


def select(services: list[str] | None = None, ids: list[str] | None = None) -> list[Scenario]:
    """The scenarios of ``services`` (all if none) whose id starts with one of ``ids`` (all if none)."""
    return [s for s in SCENARIOS if (not services or s.service in services)
            and (not ids or any(s.id.startswith(i) for i in ids))]
