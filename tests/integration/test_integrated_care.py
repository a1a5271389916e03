"""Integrated Care over HTTP: signed zeep calls built from ``wsdl/`` against the running sandbox (real
stubs, real database on SQLite and PostgreSQL). Each rule of the issue has a test that names it; the
access matrix role × operation × own/other PSI × link/no link is one parametrised test."""

from __future__ import annotations

import datetime as dt
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import func, select, text

from mycarenet_ic import contract, ns
from mycarenet_ic.domain.identifiers import is_valid_niss
from mycarenet_ic.domain.inclusions import Inclusion
from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.persistence.tables import ic_event, ic_inclusion, ic_request
from mycarenet_ic.sandbox import Sandbox
from mycarenet_ic.security.wssec import Signer
from tests import support
from tests.ic_client import IC_NS, Fault, IcClient

pytestmark = pytest.mark.integration

PSI_LEUVEN, PSI_NAMUR, PSI_GENT, PSI_STOPPED = "91000153", "91000252", "91000351", "91000450"
ADMIN_LEUVEN, COORD_LEUVEN = "81041102219", "73080202153"
ADMIN_NAMUR, ADMIN_GENT = "79033002279", "83060602231"
PHARMACIST_NIHII = "61229665000"
# Patients of the matrix: own PSI = Leuven.
A = support.PATIENT_LINKED      # Peeters: principal in Leuven (+ information in Namur); linked to doctor and pharmacy
B = support.PATIENT_UNLINKED    # Desmet: declared in Leuven by the fixture; no link
C = "61110202116"               # Maes: principal in Gent; linked to doctor and pharmacy
D = "41091702105"               # Cools: declared in Gent by the fixture; no link
NOBODY_INCLUDED = "72061602183"  # Renard: in no project


def inclusions(box: Sandbox, ssin: str) -> list[Inclusion]:
    return box.platform.inclusions.inclusions_of(ssin)


def in_project(box: Sandbox, ssin: str, project: str) -> Inclusion:
    return next(i for i in inclusions(box, ssin) if i.project == project)


def audit_tail(box: Sandbox, n: int = 1) -> list[dict[str, Any]]:
    return [r for r in box.platform.audit.rows(limit=50) if r["service"] == "integrated-care"][-n:]


def state(box: Sandbox) -> tuple[int, int, int, int]:
    with box.platform.engine.connect() as conn:
        counts = [conn.execute(select(func.count()).select_from(t)).scalar_one()
                  for t in (ic_inclusion, ic_event, ic_request)]
        versions = conn.execute(select(func.coalesce(func.sum(ic_inclusion.c.version), 0))).scalar_one()
    return (*counts, int(versions))  # type: ignore[return-value]


def matrix_clients(sandbox: Sandbox, sts: bool = False) -> dict[str, IcClient]:
    """The matrix's callers (``sts``: each with an identity certificate and an STS token, as production)."""
    out = {
        "doctor": IcClient(sandbox, Quality.DOCTOR, support.DOCTOR_SSIN, support.DOCTOR_NIHII, sts=sts),
        "pharmacist": IcClient(sandbox, Quality.PHARMACIST, support.PHARMACIST_SSIN, PHARMACIST_NIHII, sts=sts),
        "psi-administrative": IcClient(sandbox, Quality.PSI_STAFF, ADMIN_LEUVEN, None, sts=sts),
        "psi-coordinator": IcClient(sandbox, Quality.PSI_STAFF, COORD_LEUVEN, None, sts=sts),
        "patient": IcClient(sandbox, Quality.CITIZEN, A, None, sts=sts),
        "admin-namur": IcClient(sandbox, Quality.PSI_STAFF, ADMIN_NAMUR, None, sts=sts),
        "admin-gent": IcClient(sandbox, Quality.PSI_STAFF, ADMIN_GENT, None, sts=sts),
    }
    # B and D of the matrix: included without any therapeutic link (declaring needs none).
    assert not isinstance(out["psi-administrative"].declare(B, PSI_LEUVEN), Fault)
    assert not isinstance(out["admin-gent"].declare(D, PSI_GENT), Fault)
    return out


@pytest.fixture(scope="module")
def clients(sandbox: Sandbox) -> dict[str, IcClient]:
    return matrix_clients(sandbox)


# -- the access matrix ---------------------------------------------------------------------------------
# Expected per cell, from seed 000: §11 providers declare without a link and consult/modify only with
# one; §13 pharmacists likewise through their pharmacy's link; §12 PSI staff see only their own PSI's
# patients (another PSI's patient answers like "not found"), the administrative declares in their own
# PSI and changes start/consent, the coordinator lists and consults; §10 the patient consults their own
# data and changes only the consent.
OK, DENIED, HIDDEN = "OK", "ACCESS_DENIED", "NOT_FOUND"
# Patients in no project and without links, one per role so that successful declarations do not collide.
FRESH = {"doctor": "46010302186", "pharmacist": "58032102205", "psi-administrative": "63070702174",
         "psi-coordinator": "95111102271", "patient": "87022802110"}
MATRIX: dict[str, dict[tuple[str, str], str]] = {
    #                 (operation, own/other PSI · link/no link)
    "doctor": {("declare", "own"): OK, ("declare", "other"): OK,
               ("consult", "own+link"): OK, ("consult", "own-link"): DENIED,
               ("consult", "other+link"): OK, ("consult", "other-link"): DENIED,
               ("modify", "own+link"): OK, ("modify", "own-link"): DENIED,
               ("modify", "other+link"): OK, ("modify", "other-link"): DENIED,
               ("list", "own"): DENIED, ("list", "other"): DENIED},
    "psi-administrative": {("declare", "own"): OK, ("declare", "other"): DENIED,
                           ("consult", "own+link"): OK, ("consult", "own-link"): OK,
                           ("consult", "other+link"): HIDDEN, ("consult", "other-link"): HIDDEN,
                           ("modify", "own+link"): OK, ("modify", "own-link"): OK,
                           ("modify", "other+link"): HIDDEN, ("modify", "other-link"): HIDDEN,
                           ("list", "own"): DENIED, ("list", "other"): DENIED},
    "psi-coordinator": {("declare", "own"): DENIED, ("declare", "other"): DENIED,
                        ("consult", "own+link"): OK, ("consult", "own-link"): OK,
                        ("consult", "other+link"): HIDDEN, ("consult", "other-link"): HIDDEN,
                        ("modify", "own+link"): DENIED, ("modify", "own-link"): DENIED,
                        ("modify", "other+link"): DENIED, ("modify", "other-link"): DENIED,
                        ("list", "own"): OK, ("list", "other"): DENIED},
    # The patient's "own" is their own file (A); every other patient is someone else's.
    "patient": {("declare", "own"): DENIED, ("declare", "other"): DENIED,
                ("consult", "own+link"): OK, ("consult", "own-link"): DENIED,
                ("consult", "other+link"): DENIED, ("consult", "other-link"): DENIED,
                ("modify", "own+link"): OK, ("modify", "own-link"): DENIED,
                ("modify", "other+link"): DENIED, ("modify", "other-link"): DENIED,
                ("list", "own"): DENIED, ("list", "other"): DENIED},
}
MATRIX["pharmacist"] = MATRIX["doctor"]  # §13: "aura accès sans restriction aux mêmes fonctionnalités"
CELLS = [(role, op, where) for role, cells in MATRIX.items() for (op, where) in cells]
PATIENT_OF = {"own+link": A, "own-link": B, "other+link": C, "other-link": D}
PSI_OF = {"own": PSI_LEUVEN, "other": PSI_GENT}


@pytest.mark.parametrize("role,operation,where", CELLS, ids=[f"{r}-{o}-{w}" for r, o, w in CELLS])
def test_access_matrix(sandbox: Sandbox, clients: dict[str, IcClient], role: str, operation: str,
                       where: str) -> None:
    check_cell(sandbox, clients, role, operation, where)


def check_cell(sandbox: Sandbox, clients: dict[str, IcClient], role: str, operation: str, where: str) -> None:
    """One cell of the matrix: the answer it expects, and for a refusal no change and a DENIED audit row."""
    client = clients[role]
    expected = MATRIX[role][(operation, where)]
    before = state(sandbox)
    if operation == "declare":
        answer = client.declare(FRESH[role], PSI_OF[where])
    elif operation == "list":
        answer = client.list(PSI_OF[where])
    elif operation == "consult":
        answer = client.consult(PATIENT_OF[where])
    else:
        ssin = PATIENT_OF[where]
        target = in_project(sandbox, ssin, PSI_LEUVEN if where.startswith("own") else PSI_GENT)
        answer = client.modify(ssin, target.id, Consent={"Agreement": "agree", "Date": dt.date.today()})
    if expected == OK:
        assert not isinstance(answer, Fault), answer
        assert audit_tail(sandbox)[0]["outcome"] == "OK"
        return
    assert isinstance(answer, Fault) and answer.kind == "BusinessError", answer
    assert answer.code == expected
    assert state(sandbox) == before, "a refused call changed the database"
    assert audit_tail(sandbox)[0]["outcome"] == "DENIED"


# -- the rules -------------------------------------------------------------------------------------------
def test_declaration_stores_declared_and_effective_dates(sandbox: Sandbox, clients: dict[str, IcClient]) -> None:
    answer = clients["doctor"].declare("44021402211", PSI_NAMUR, start=dt.date(2026, 1, 31),
                                       consent=("agree", dt.date(2026, 1, 31)))
    assert answer.Inclusion.DeclaredStartDate == dt.date(2026, 1, 31)
    assert answer.Inclusion.StartDate == dt.date(2026, 2, 1)
    assert answer.Inclusion.Provider == support.DOCTOR_NIHII
    end = clients["doctor"].modify("44021402211", answer.Inclusion.InclusionId, EndDate=dt.date(2026, 3, 15))
    assert end.Inclusion.DeclaredEndDate == dt.date(2026, 3, 15) and end.Inclusion.EndDate == dt.date(2026, 4, 30)
    with sandbox.platform.engine.connect() as conn:
        row = conn.execute(select(ic_inclusion).where(ic_inclusion.c.id == answer.Inclusion.InclusionId)).one()
    assert (row.declared_start, row.start_date, row.declared_end, row.end_date) == (
        dt.date(2026, 1, 31), dt.date(2026, 2, 1), dt.date(2026, 3, 15), dt.date(2026, 4, 30))


def test_second_principal_is_refused_with_the_reason(sandbox: Sandbox, clients: dict[str, IcClient]) -> None:
    before = state(sandbox)
    answer = clients["doctor"].declare(A, PSI_GENT, status="principal")  # A is principal in Leuven
    assert isinstance(answer, Fault) and answer.code == "PRINCIPAL_EXISTS"
    assert "only one project can be principal" in answer.message and PSI_LEUVEN not in answer.message
    assert state(sandbox) == before
    # turning an information inclusion into a principal one is refused the same way
    namur = in_project(sandbox, A, PSI_NAMUR)
    answer = clients["doctor"].modify(A, namur.id, Status="principal")
    assert isinstance(answer, Fault) and answer.code == "PRINCIPAL_EXISTS"
    assert state(sandbox) == before


def test_cobrha_checks_provider_visa_pharmacy_and_project(sandbox: Sandbox, clients: dict[str, IcClient]) -> None:
    before = state(sandbox)
    expired = IcClient(sandbox, Quality.DOCTOR, "57120502143", support.EXPIRED_VISA_NIHII)
    answer = expired.declare("95111102271", PSI_LEUVEN)
    assert isinstance(answer, Fault) and answer.code == "ACCESS_DENIED" and "VISA" in answer.message
    closed = IcClient(sandbox, Quality.PHARMACY, None, support.CLOSED_PHARMACY_NIHII)
    answer = closed.consult(A)
    assert isinstance(answer, Fault) and answer.code == "ACCESS_DENIED" and "pharmacy" in answer.message
    for project in (PSI_STOPPED, "99999971"):  # a stopped project, and a well-formed NIHII nobody has
        answer = clients["doctor"].declare("95111102271", project)
        assert isinstance(answer, Fault) and answer.code == "UNKNOWN_PROJECT", project
    answer = clients["doctor"].declare("95111102272", PSI_LEUVEN)  # a wrong check digit
    assert isinstance(answer, Fault) and answer.code == "INVALID_IDENTIFIER"
    assert state(sandbox) == before


def test_common_input_must_agree_with_the_certificate(sandbox: Sandbox, clients: dict[str, IcClient]) -> None:
    before = state(sandbox)
    answer = clients["doctor"].raw("declareInclusion", CommonInput=IcClient.common(
        Nihii={"Quality": "doctor", "Value": "11203795004"}), Patient={"Ssin": "95111102271"}, Project=PSI_LEUVEN,
        Status="information", StartDate=dt.date.today())
    assert isinstance(answer, Fault) and answer.code == "ACCESS_DENIED"
    assert state(sandbox) == before


def test_pharmacist_consults_through_the_pharmacys_link_not_a_personal_one(
        sandbox: Sandbox, clients: dict[str, IcClient]) -> None:
    """Seed 000 §13: the therapeutic link checked for a pharmacist is the patient's link with the pharmacy."""
    pharmacist = clients["pharmacist"]
    sandbox.scenario.add_link(B, PHARMACIST_NIHII, "perspharmacist", "2024-01-01")  # a personal link: not enough
    try:
        before = state(sandbox)
        refused = pharmacist.consult(B)
        assert isinstance(refused, Fault) and refused.code == "ACCESS_DENIED" and state(sandbox) == before
        sandbox.scenario.add_link(B, support.PHARMACY_NIHII, "orgpharmacy", "2024-01-01")  # the pharmacy's link
        assert [i.Project for i in pharmacist.consult(B).Inclusion] == [PSI_LEUVEN]
    finally:
        sandbox.scenario.remove_links(B, PHARMACIST_NIHII)
        sandbox.scenario.remove_links(B, support.PHARMACY_NIHII)
    assert isinstance(pharmacist.consult(B), Fault)


def test_psi_staff_learn_only_that_a_principal_exists_elsewhere(sandbox: Sandbox,
                                                                clients: dict[str, IcClient]) -> None:
    seen = clients["admin-namur"].consult(A)  # A: information in Namur, principal in Leuven
    assert [i.Project for i in seen.Inclusion] == [PSI_NAMUR]
    assert seen.PrincipalInclusionElsewhere is True
    leuven = clients["psi-administrative"].consult(A)
    assert {i.Project for i in leuven.Inclusion} == {PSI_LEUVEN} and leuven.PrincipalInclusionElsewhere is False
    doctor = clients["doctor"].consult(A)
    assert {i.Project for i in doctor.Inclusion} == {PSI_LEUVEN, PSI_NAMUR}
    assert doctor.Patient.LastName == "Peeters" and doctor.Patient.BirthDate == dt.date(1948, 3, 12)


def test_another_psis_patient_answers_exactly_like_not_found(sandbox: Sandbox, clients: dict[str, IcClient]) -> None:
    admin = clients["psi-administrative"]
    hidden, missing = admin.consult(C), admin.consult(NOBODY_INCLUDED)
    assert isinstance(hidden, Fault) and isinstance(missing, Fault)
    assert (hidden.code, hidden.message, hidden.kind, hidden.retry) == (
        missing.code, missing.message, missing.kind, missing.retry)
    # Neither is the administrative's patient: both are refusals in the audit, indistinguishable outside it.
    assert [r["outcome"] for r in audit_tail(sandbox, 2)] == ["DENIED", "DENIED"]


def test_patient_changes_only_own_consent(sandbox: Sandbox, clients: dict[str, IcClient]) -> None:
    leuven = in_project(sandbox, A, PSI_LEUVEN)
    before = state(sandbox)
    answer = clients["patient"].modify(A, leuven.id, Status="information")
    assert isinstance(answer, Fault) and answer.code == "ACCESS_DENIED"
    assert state(sandbox) == before
    answer = clients["patient"].modify(A, leuven.id, Consent={"Agreement": "refuse", "Date": dt.date.today()})
    assert answer.Inclusion.Consent.Agreement == "refuse" and answer.Inclusion.Status == "principal"


def test_retry_with_the_same_request_id_returns_the_first_answer(sandbox: Sandbox,
                                                                 clients: dict[str, IcClient]) -> None:
    rid = f"_{secrets.token_hex(8)}"
    first = clients["doctor"].declare("39060802118", PSI_NAMUR, request_id=rid)
    after_first = state(sandbox)
    again = clients["doctor"].declare("39060802118", PSI_NAMUR, request_id=rid)  # a new signature, same Id
    assert (again.Id, again.Inclusion.InclusionId, again.IssueInstant) == (
        first.Id, first.Inclusion.InclusionId, first.IssueInstant)
    assert state(sandbox) == after_first
    other = clients["doctor"].declare("66090902290", PSI_NAMUR, request_id=rid)  # same Id, other content
    assert isinstance(other, Fault) and other.code == "DUPLICATE_REQUEST_ID"
    assert state(sandbox) == after_first
    # the same Id from another sender is another request
    mod_rid = f"_{secrets.token_hex(8)}"
    one = clients["doctor"].modify("39060802118", first.Inclusion.InclusionId, mod_rid, StartDate=dt.date(2026, 9, 1))
    two = clients["doctor"].modify("39060802118", first.Inclusion.InclusionId, mod_rid, StartDate=dt.date(2026, 9, 1))
    assert one.Inclusion.Version == two.Inclusion.Version == 2 and one.Id == two.Id


def test_retries_are_told_apart_by_the_holder_stored_only_as_a_pseudonym(sandbox: Sandbox) -> None:
    # The idempotency key is the holder (who, whatever certificate or token), not the audit's label of them
    # (which spells a NIHII out): what is stored of it is a pseudonym.
    with sandbox.platform.engine.connect() as conn:
        senders = conn.execute(select(ic_request.c.sender)).scalars().all()
    assert senders, "the fixture declares inclusions"
    assert all(len(s) == 64 and set(s) <= set("0123456789abcdef") for s in senders), senders[:3]


def test_coordinator_lists_the_project_a_page_at_a_time(sandbox: Sandbox, clients: dict[str, IcClient]) -> None:
    page = clients["psi-coordinator"].list(PSI_LEUVEN, 0, 2)
    assert page.Total >= 3 and len(page.ProjectPatient) == 2 and page.MoreAvailable is True
    everyone = clients["psi-coordinator"].list(PSI_LEUVEN, 0, 50)
    names = {p.Patient.LastName for p in everyone.ProjectPatient}
    assert {"Peeters", "Desmet"} <= names
    assert "Jacobs" not in names  # ended 2026-06-15 → 2026-07-31
    assert {p.Inclusion.Project for p in everyone.ProjectPatient} == {PSI_LEUVEN}


def test_every_call_is_audited_with_a_pseudonym(sandbox: Sandbox, clients: dict[str, IcClient]) -> None:
    clients["doctor"].consult(A)
    clients["doctor"].consult(B)
    ok, denied = audit_tail(sandbox, 2)
    pseudonym = sandbox.platform.pseudonymiser.pseudonym
    assert (ok["outcome"], ok["patient"], ok["operation"]) == ("OK", pseudonym(A), "ConsultInclusionsRequest")
    assert (denied["outcome"], denied["patient"]) == ("DENIED", pseudonym(B))
    assert ok["caller"] == f"doctor:{support.DOCTOR_NIHII}" and "inclusions=" in ok["detail"]


_COMMON = ("<ic:CommonInput><ic:IsTest>true</ic:IsTest><ic:Origin><ic:Package><ic:Name>hand</ic:Name>"
           "</ic:Package></ic:Origin><ic:InputReference>hand-1</ic:InputReference></ic:CommonInput>")
HAND_BUILT = {
    # operation: (certificate, body after CommonInput)
    "DeclareInclusion": ("doctor", "<ic:Patient><ic:Ssin>16082102260</ic:Ssin></ic:Patient><ic:Project>91000252"
                         "</ic:Project><ic:Status>information</ic:Status><ic:StartDate>2026-11-02</ic:StartDate>"
                         "<ic:Consent><ic:Agreement>agree</ic:Agreement><ic:Date>2026-11-02</ic:Date></ic:Consent>"),
    "ConsultInclusions": ("doctor", f"<ic:Patient><ic:Ssin>{A}</ic:Ssin></ic:Patient>"),
    "ModifyInclusion": ("doctor", f"<ic:Patient><ic:Ssin>{A}</ic:Ssin></ic:Patient><ic:InclusionId>{{leuven}}"
                        "</ic:InclusionId><ic:Consent><ic:Agreement>agree</ic:Agreement><ic:Date>2026-11-01"
                        "</ic:Date></ic:Consent>"),
    "ListProjectPatients": ("psi-coordinator", "<ic:Project>91000153</ic:Project><ic:MaxResults>5</ic:MaxResults>"),
}


@pytest.mark.parametrize("operation", sorted(HAND_BUILT))
def test_hand_built_requests_get_schema_valid_signed_answers(sandbox: Sandbox, clients: dict[str, IcClient],
                                                             answer_verifier: Any, operation: str) -> None:
    who, rest = HAND_BUILT[operation]
    rest = rest.replace("{leuven}", in_project(sandbox, A, PSI_LEUVEN).id)
    rid = f"_{secrets.token_hex(8)}"
    body = (f'<ic:{operation}Request xmlns:ic="{IC_NS}" Id="{rid}" '
            f'IssueInstant="{support.now().replace(microsecond=0).isoformat()}">{_COMMON}{rest}</ic:{operation}Request>')
    signer = clients[who].client._client.wsse.signer
    answer = support.post(sandbox.urls["integrated-care"], support.to_bytes(support.signed(signer, body)))
    assert answer.status == 200, answer.body[:600]
    payload = answer_verifier.verify(answer.root).body[0]
    contract.schema("mycarenet-integratedcare-v1.xsd").assertValid(payload)
    assert etree.QName(payload).localname == f"{operation}Response" and payload.get("InResponseTo") == rid
    assert payload.findtext(f"{{{IC_NS}}}CommonOutput/{{{IC_NS}}}InputReference") == "hand-1"


def test_answers_validate_against_the_schema_and_are_signed(sandbox: Sandbox, doctor_signer: Signer,
                                                            answer_verifier: Any) -> None:
    body = (f'<ic:ConsultInclusionsRequest xmlns:ic="{IC_NS}" Id="_{secrets.token_hex(8)}" '
            f'IssueInstant="{support.now().replace(microsecond=0).isoformat()}">'
            "<ic:CommonInput><ic:IsTest>true</ic:IsTest><ic:Origin><ic:Package><ic:Name>hand</ic:Name>"
            "</ic:Package></ic:Origin></ic:CommonInput>"
            f"<ic:Patient><ic:Ssin>{A}</ic:Ssin></ic:Patient></ic:ConsultInclusionsRequest>")
    answer = support.post(sandbox.urls["integrated-care"], support.to_bytes(support.signed(doctor_signer, body)))
    assert answer.status == 200, answer.body[:400]
    verified = answer_verifier.verify(answer.root)
    payload = verified.body[0]
    contract.schema("mycarenet-integratedcare-v1.xsd").assertValid(payload)
    assert etree.QName(payload).localname == "ConsultInclusionsResponse"
    assert payload.findtext(f"{{{IC_NS}}}CommonOutput/{{{IC_NS}}}InputReference") is None
    # a body that breaks the schema (status outside the enumeration) is a clean business error
    bad = body.replace("ConsultInclusionsRequest", "DeclareInclusionRequest").replace(
        "</ic:Patient>", "</ic:Patient><ic:Project>91000153</ic:Project><ic:Status>maybe</ic:Status>"
        "<ic:StartDate>2026-11-01</ic:StartDate>")
    fault = support.post(sandbox.urls["integrated-care"], support.to_bytes(support.signed(doctor_signer, bad)))
    assert fault.error_detail()["Code"] == "INVALID_REQUEST"
    assert ns.SOAP11_ENV in fault.body.decode()


# -- National Register mutations ----------------------------------------------------------------------------
def test_mutations_at_start_closed_the_deceased_and_moved_the_replaced_niss(sandbox: Sandbox) -> None:
    lejeune = inclusions(sandbox, support.DECEASED)
    assert [(i.end, i.closed_by_death) for i in lejeune] == [(dt.date(2026, 9, 14), True)]
    assert inclusions(sandbox, support.BIS_REPLACED) == []
    moved = inclusions(sandbox, support.REPLACEMENT)
    assert [(i.project, i.status.value) for i in moved] == [(PSI_GENT, "principal")]
    operations = {r["operation"] for r in sandbox.platform.audit.rows(limit=10_000)}
    assert {"NrMutation:Deceased#1", "NrMutation:SsinReplaced#2"} <= operations


def _cli(sandbox: Sandbox, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "MYCARENET_DATA_DIR": str(sandbox.settings.data_dir)}
    if sandbox.settings.database_url:
        env["DATABASE_URL"] = sandbox.settings.database_url
    return subprocess.run([sys.executable, "-m", "mycarenet_ic.cli", *args], capture_output=True, text=True,
                          env=env, timeout=120, check=False)


def test_new_mutations_are_applied_on_demand_once(sandbox: Sandbox, clients: dict[str, IcClient]) -> None:
    patient, new_niss = "77020202294", "77020203977"  # Lemmens: a new NISS (same birth date)
    assert not isinstance(clients["doctor"].declare(patient, PSI_GENT, start=dt.date(2026, 3, 1)), Fault)
    dying = "59052902291"  # Smets
    assert not isinstance(clients["doctor"].declare(dying, PSI_LEUVEN, start=dt.date(2026, 2, 1)), Fault)
    sandbox.scenario.replace_ssin(patient, new_niss, dt.date.today().isoformat())
    sandbox.scenario.record_death(dying, "2026-11-10")
    done = _cli(sandbox, "mutations", "sync")
    assert done.returncode == 0, done.stderr
    assert "mutations applied: 2" in done.stdout
    again = _cli(sandbox, "mutations", "sync")
    assert "mutations applied: 0" in again.stdout
    assert inclusions(sandbox, patient) == [] and len(inclusions(sandbox, new_niss)) == 1
    assert [(i.end, i.closed_by_death) for i in inclusions(sandbox, dying)] == [(dt.date(2026, 11, 10), True)]
    # the moved inclusion answers under the new NISS only
    assert clients["admin-gent"].consult(new_niss).Inclusion[0].Project == PSI_GENT


def test_the_follower_applies_mutations_periodically(sandbox: Sandbox, clients: dict[str, IcClient]) -> None:
    import time

    from mycarenet_ic.sandbox import MutationFollower

    patient = "93031402178"  # Van de Velde
    assert not isinstance(clients["doctor"].declare(patient, PSI_NAMUR, start=dt.date(2026, 5, 1)), Fault)
    follower = MutationFollower(sandbox.platform.mutation_sync(sandbox.gateways), every=0.05).start()
    try:
        sandbox.scenario.record_death(patient, "2026-11-12")
        deadline = time.monotonic() + 30
        while inclusions(sandbox, patient)[0].end is None and time.monotonic() < deadline:
            time.sleep(0.05)  # polling the effect of a background thread, bounded
    finally:
        follower.stop()
    assert inclusions(sandbox, patient)[0].end == dt.date(2026, 11, 12)


# -- export, retention, what is stored ----------------------------------------------------------------------
def test_export_to_insurers_writes_each_change_once(sandbox: Sandbox, clients: dict[str, IcClient],
                                                    tmp_path: Path) -> None:
    from mycarenet_ic.persistence.insurer_export import validate_export

    first = _cli(sandbox, "export", "insurers", "--out", str(tmp_path / "one"))
    assert first.returncode == 0, first.stderr
    assert "100%" in first.stderr  # the progress bar
    files = sorted((tmp_path / "one").glob("insurer-*.xml"))
    assert files
    seqs: list[int] = []
    for path in files:
        validate_export(path)
        root = etree.parse(str(path)).getroot()
        insurer = root.get("Insurer")
        for event in root:
            seqs.append(int(event.get("Seq")))
            mutuality = event.findtext("{*}Patient/{*}Mutuality")
            assert mutuality is None and insurer == "000" or mutuality[0] + "00" == insurer
    with sandbox.platform.engine.connect() as conn:
        assert sorted(seqs) == [r.seq for r in conn.execute(select(ic_event.c.seq).order_by(ic_event.c.seq))]
    second = _cli(sandbox, "export", "insurers", "--out", str(tmp_path / "two"))
    assert second.returncode == 0 and "nothing new" in second.stdout
    assert list((tmp_path / "two").glob("*.xml")) == []
    clients["doctor"].declare("09101202203", PSI_NAMUR)  # Aerts, a child
    third = _cli(sandbox, "export", "insurers", "--out", str(tmp_path / "three"))
    exported = [e for p in (tmp_path / "three").glob("insurer-*.xml") for e in etree.parse(str(p)).getroot()]
    assert third.returncode == 0 and len(exported) == 1
    assert exported[0].findtext("{*}Patient/{*}Ssin") == "09101202203"
    assert exported[0].get("Kind") == "declaration"
    assert any(r["operation"] == "ExportInsurers" for r in sandbox.platform.audit.rows(limit=100))
    # --since re-exports from a date without moving the cursor
    since = _cli(sandbox, "export", "insurers", "--since", "2000-01-01", "--out", str(tmp_path / "again"))
    again = [e for p in (tmp_path / "again").glob("insurer-*since*.xml") for e in etree.parse(str(p)).getroot()]
    assert since.returncode == 0 and len(again) == len(seqs) + 1
    assert "nothing new" in _cli(sandbox, "export", "insurers", "--out", str(tmp_path / "four")).stdout


def test_purge_deletes_what_ended_more_than_ten_years_ago(sandbox: Sandbox, clients: dict[str, IcClient]) -> None:
    old = clients["doctor"].declare("68042702242", PSI_GENT, start=dt.date(2012, 1, 1))  # De Smet
    clients["doctor"].modify("68042702242", old.Inclusion.InclusionId, EndDate=dt.date(2014, 5, 2))
    recent = in_project(sandbox, A, PSI_LEUVEN)
    done = _cli(sandbox, "purge", "--as-of", "2026-11-22")
    assert done.returncode == 0, done.stderr
    assert "purged 1 inclusion(s) that ended before 2016-11-22" in done.stdout, done.stdout
    assert inclusions(sandbox, "68042702242") == []  # ended 2014-06-30 < 2016-11-22
    assert in_project(sandbox, A, PSI_LEUVEN).id == recent.id
    with sandbox.platform.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ic_event).where(
            ic_event.c.inclusion_id == old.Inclusion.InclusionId)).scalar_one() == 0
    assert any(r["operation"] == "Purge" and "deleted 1" in str(r["detail"])
               for r in sandbox.platform.audit.rows(limit=100))


def _dump(sandbox: Sandbox) -> str:
    """Every row of every table, as text (what a database dump would show)."""
    from mycarenet_ic.persistence.tables import metadata

    out = []
    with sandbox.platform.engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(text(f"SELECT * FROM {table.name}")):
                out.append(" ".join(str(v) for v in row))
    return "\n".join(out)


def test_database_dump_holds_no_niss_no_name_no_birth_date(sandbox: Sandbox, clients: dict[str, IcClient]) -> None:
    import re

    from mycarenet_ic.stubs.scenario import Scenario

    clients["doctor"].consult(A)
    clients["psi-coordinator"].list(PSI_LEUVEN)
    dump = _dump(sandbox)
    scenario = Scenario.load(sandbox.settings.data_dir / "scenario.json")
    nihiis = {p.nihii for p in scenario.professionals} | set(scenario.organisations)
    tokens = set(re.findall(r"(?<![0-9a-f])[0-9]{11}(?![0-9a-f])", dump))
    assert {t for t in tokens if is_valid_niss(t)} - nihiis == set()
    for person in scenario.persons.values():
        assert person.ssin not in dump
        assert person.birth_date not in dump, person.birth_date
        assert re.search(rf"\b{re.escape(person.last_name)}\b", dump) is None, person.last_name

