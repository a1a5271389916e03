"""Integrated Care rules of seed 000 that were checked from outside (issue 19, items 1, 4, 6 and 7), over
HTTP against the running sandbox. Each test names the seed paragraph; each refusal leaves the database as
it was (``state``)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import select

from mycarenet_ic.app import Platform
from mycarenet_ic.domain.inclusions import Closure, Consent, Inclusion, Status
from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.persistence.insurer_export import export_insurers
from mycarenet_ic.persistence.tables import ic_event, ic_inclusion
from mycarenet_ic.sandbox import Sandbox
from tests import support
from tests.ic_client import Fault, IcClient
from tests.integration.test_integrated_care import (
    ADMIN_GENT,
    ADMIN_LEUVEN,
    COORD_LEUVEN,
    PSI_GENT,
    PSI_LEUVEN,
    PSI_NAMUR,
    PSI_STOPPED,
    _dump,
    inclusions,
    state,
)

pytestmark = pytest.mark.integration
TODAY = dt.date.today()


@pytest.fixture(scope="module")
def doctor(sandbox: Sandbox) -> IcClient:
    return IcClient(sandbox, Quality.DOCTOR, support.DOCTOR_SSIN, support.DOCTOR_NIHII)


def _link(sandbox: Sandbox, patient: str) -> None:
    sandbox.scenario.add_link(patient, support.DOCTOR_NIHII, "persphysician", "2020-01-01")


def _fault(answer: object, code: str) -> Fault:
    assert isinstance(answer, Fault) and answer.kind == "BusinessError", answer
    assert answer.code == code, answer
    return answer


# -- item 1: a death closes the open inclusions, and nothing opens one past it (seed 000 §9) ----------------
def test_seed000_s9_a_declaration_after_the_applied_death_is_closed_at_the_death(
        sandbox: Sandbox, doctor: IcClient) -> None:
    """§9: the mutation service's death closes the patient's open inclusions. The death was applied already,
    so no later sync would close a declaration made now: the declaration itself must end at the death."""
    patient, death = "51030302111", dt.date(2026, 10, 15)  # Dewulf
    sandbox.scenario.record_death(patient, death.isoformat())
    sandbox.follower.run_once()
    before = state(sandbox)
    late = doctor.declare(patient, PSI_LEUVEN, start=dt.date(2026, 10, 20))  # would take effect on 2026-11-01
    assert "2026-10-15" in _fault(late, "PATIENT_DECEASED").message
    assert state(sandbox) == before
    answer = doctor.declare(patient, PSI_LEUVEN, status="principal", start=dt.date(2026, 8, 20))
    assert not isinstance(answer, Fault), answer
    inc = answer.Inclusion
    assert (inc.StartDate, inc.EndDate, inc.ClosedByDeath, inc.ClosureReason) == (
        dt.date(2026, 9, 1), death, True, "death")
    sandbox.follower.run_once()  # later syncs find nothing open
    assert [(i.end, i.closure, i.version) for i in inclusions(sandbox, patient)] == [(death, Closure.DEATH, 1)]


def test_seed000_s9_a_death_the_register_knows_closes_a_declaration_before_the_feed_runs(
        sandbox: Sandbox, doctor: IcClient) -> None:
    """§9: once the National Register knows the death, a declaration is closed at it even though the mutation
    feed was not read yet; the feed then changes nothing more (closing twice is no new version, no event)."""
    patient, death = "12040302104", dt.date(2026, 11, 3)  # Vermeulen
    sandbox.scenario.record_death(patient, death.isoformat())
    answer = doctor.declare(patient, PSI_NAMUR, start=dt.date(2026, 6, 1))
    assert (answer.Inclusion.EndDate, answer.Inclusion.ClosureReason) == (death, "death")
    after = state(sandbox)
    sandbox.follower.run_once()
    assert state(sandbox) == after
    assert [(i.end, i.version) for i in inclusions(sandbox, patient)] == [(death, 1)]


def test_seed000_s9_an_exclusion_cannot_reopen_an_inclusion_past_the_death(sandbox: Sandbox,
                                                                            doctor: IcClient) -> None:
    """§9 with §11.3: the exclusion date is modifiable, but an inclusion closed at the death may not be made
    to run past it again (nor lose its death mark that way)."""
    patient, death = "03013002151", dt.date(2026, 10, 15)  # Hermans
    _link(sandbox, patient)
    declared = doctor.declare(patient, PSI_NAMUR, start=dt.date(2026, 3, 1))
    inclusion_id = declared.Inclusion.InclusionId
    sandbox.scenario.record_death(patient, death.isoformat())
    sandbox.follower.run_once()
    before = state(sandbox)
    # after the death; and before it, but taking effect at the end of the next month (2026-11-30)
    for end in (dt.date(2026, 10, 20), dt.date(2026, 10, 1)):
        refused = doctor.modify(patient, inclusion_id, EndDate=end)
        assert "2026-10-15" in _fault(refused, "PATIENT_DECEASED").message
        assert state(sandbox) == before
        assert [(i.end, i.closed_by_death) for i in inclusions(sandbox, patient)] == [(death, True)]
    # another change keeps the death's end
    consent = doctor.modify(patient, inclusion_id, Consent={"Agreement": "refuse", "Date": TODAY})
    assert (consent.Inclusion.EndDate, consent.Inclusion.ClosureReason) == (death, "death")
    # an exclusion that takes effect before the death is the real end
    excluded = doctor.modify(patient, inclusion_id, EndDate=dt.date(2026, 8, 10))
    assert (excluded.Inclusion.EndDate, excluded.Inclusion.ClosedByDeath, excluded.Inclusion.ClosureReason) == (
        dt.date(2026, 9, 30), None, None)


def test_seed000_s9_a_write_racing_the_feed_cannot_leave_an_inclusion_open_past_the_death(
        platform: Platform) -> None:
    """§9: the death applied from the feed is kept with the patient's lock, so a write that looked at the
    National Register before the death was known still ends at the death."""
    store, patient, death = platform.inclusions, "51030302111", dt.date(2026, 10, 15)
    assert platform.mutation_sink.apply_death("race-test", 1, 0, patient, death) == 0  # no inclusion yet
    candidate = Inclusion(id="", patient="", project=PSI_LEUVEN, status=Status.PRINCIPAL,
                          declared_start=dt.date(2026, 3, 1), consent=Consent.AGREE, consent_date=TODAY)
    out = store.write(ssin=patient, sender="test", request_id="race-1", operation="declare", request_hash="h",
                      operator=support.DOCTOR_SSIN, change=lambda _current: (candidate, "declaration"))
    assert (out.inclusion.end, out.inclusion.closure) == (death, Closure.DEATH)
    assert [(i.end, i.closure) for i in store.inclusions_of(patient)] == [(death, Closure.DEATH)]


# -- item 4: the operator's NISS is part of the inclusion (seed 000 §7 10°, annex data 10) -------------------
def test_seed000_annex_data10_the_operators_niss_is_shown_to_who_consults_and_exported(
        sandbox: Sandbox, doctor: IcClient, tmp_path: Path) -> None:
    """Annex, data 10: the NISS of the person who operates goes to the CIN (stored), the insurers (export)
    and is consulted by providers, PSIs, the patient and pharmacists. Stored only sealed/pseudonymised."""
    patient = "20051802120"  # Michiels
    _link(sandbox, patient)
    declared = doctor.declare(patient, PSI_LEUVEN, start=dt.date(2026, 11, 5))
    assert declared.Inclusion.Operator == support.DOCTOR_SSIN
    admin = IcClient(sandbox, Quality.PSI_STAFF, ADMIN_LEUVEN, None)
    changed = admin.modify(patient, declared.Inclusion.InclusionId, Consent={"Agreement": "refuse", "Date": TODAY})
    assert changed.Inclusion.Operator == ADMIN_LEUVEN
    readers = [doctor, admin, IcClient(sandbox, Quality.CITIZEN, patient, None),
               IcClient(sandbox, Quality.PSI_STAFF, COORD_LEUVEN, None)]
    for reader in readers:
        assert [i.Operator for i in reader.consult(patient).Inclusion] == [ADMIN_LEUVEN]
    listed = readers[-1].list(PSI_LEUVEN, 0, 50).ProjectPatient
    assert [p.Inclusion.Operator for p in listed if p.Patient.Ssin == patient] == [ADMIN_LEUVEN]
    # a retry answers the first answer, operator included
    rid = "_operator-retry-1"
    first = admin.modify(patient, declared.Inclusion.InclusionId, rid, StartDate=dt.date(2026, 11, 6))
    again = admin.modify(patient, declared.Inclusion.InclusionId, rid, StartDate=dt.date(2026, 11, 6))
    assert first.Inclusion.Operator == again.Inclusion.Operator == ADMIN_LEUVEN and first.Id == again.Id
    # stored sealed and pseudonymised, never in clear
    with sandbox.platform.engine.connect() as conn:
        row = conn.execute(select(ic_inclusion.c.operator, ic_inclusion.c.operator_sealed)
                           .where(ic_inclusion.c.id == declared.Inclusion.InclusionId)).one()
        sealed_events = [r.operator_sealed for r in conn.execute(
            select(ic_event.c.operator_sealed).where(ic_event.c.inclusion_id == declared.Inclusion.InclusionId)
            .order_by(ic_event.c.seq))]
    assert sandbox.platform.sealer.open(row.operator_sealed) == ADMIN_LEUVEN
    assert row.operator == sandbox.platform.pseudonymiser.pseudonym(ADMIN_LEUVEN, "operator")
    assert [sandbox.platform.sealer.open(s) for s in sealed_events] == [support.DOCTOR_SSIN, ADMIN_LEUVEN,
                                                                        ADMIN_LEUVEN]
    dump = _dump(sandbox)
    assert ADMIN_LEUVEN not in dump and support.DOCTOR_SSIN not in dump
    # the insurers get, per event, who made it
    report = export_insurers(sandbox.platform.inclusion_events, sandbox.platform.feed_cursors,
                             sandbox.platform.affiliations, tmp_path, since=dt.date(2000, 1, 1), caller="test")
    operators = [e.findtext("{*}Inclusion/{*}Operator") for path in report.files.values()
                 for e in etree.parse(str(path)).getroot() if e.findtext("{*}Patient/{*}Ssin") == patient]
    assert operators == [support.DOCTOR_SSIN, ADMIN_LEUVEN, ADMIN_LEUVEN]


# -- item 6: consent and its date at declaration (seed 000 §11.1) -----------------------------------------
def test_seed000_s11_1_a_declaration_needs_the_consent_and_its_date(sandbox: Sandbox, doctor: IcClient) -> None:
    """§11.1: a declaration gives the PSI, the start, the status and the "date" and "accord ou refus" of the
    consent. A refusal has its registration date too (annex, data 2: "l'accord ou du refus")."""
    patient = "99123102247"  # Van Damme
    before = state(sandbox)
    cases: list[tuple[tuple[str | None, dt.date | None] | None, str]] = [
        (None, "Consent"), (("refuse", None), "Consent/Date"), (("agree", None), "Consent/Date"),
        ((None, TODAY), "Consent/Agreement")]
    for consent, missing in cases:
        refused = _fault(doctor.declare(patient, PSI_GENT, consent=consent), "CONSENT_INCOMPLETE")
        assert f"lacks {missing}:" in refused.message, (consent, refused.message)
        assert state(sandbox) == before
    declared = doctor.declare(patient, PSI_GENT, consent=("refuse", TODAY))
    assert (declared.Inclusion.Consent.Agreement, declared.Inclusion.Consent.Date) == ("refuse", TODAY)
    # a modification may leave the consent out, never half of it
    admin = IcClient(sandbox, Quality.PSI_STAFF, ADMIN_GENT, None)
    after = state(sandbox)
    half = admin.modify(patient, declared.Inclusion.InclusionId, Consent={"Agreement": "agree"})
    assert "lacks Consent/Date:" in _fault(half, "CONSENT_INCOMPLETE").message
    assert state(sandbox) == after


# -- item 7: a stopped PSI (CoBrHa: inactive, with an end date) ---------------------------------------------
def test_seed000_s9_a_stopped_projects_inclusions_end_at_its_end_date(sandbox: Sandbox, doctor: IcClient,
                                                                      tmp_path: Path) -> None:
    """§9 (the PSI's NIHII is checked in CoBrHa): "PSI Ancien projet" stopped on 2023-12-31. Its inclusions,
    written open by the demo, are closed at that date with the reason, and its principal inclusion no longer
    keeps the patient from a principal inclusion elsewhere."""
    principal, information, stop = "64040402266", "50080802169", dt.date(2023, 12, 31)
    assert [(i.project, i.end) for i in inclusions(sandbox, principal)] == [(PSI_STOPPED, None)]
    answer = doctor.declare(principal, PSI_GENT, status="principal", start=TODAY)
    assert not isinstance(answer, Fault), answer
    for ssin in (principal, information):
        [old] = [i for i in inclusions(sandbox, ssin) if i.project == PSI_STOPPED]
        assert (old.end, old.closure, old.closed_by_death) == (stop, Closure.PROJECT_STOPPED, False)
    rows = [r for r in sandbox.platform.audit.rows(limit=10_000) if r["operation"] == f"ProjectStopped:{PSI_STOPPED}"]
    assert len(rows) == 1 and "closed 2 inclusion(s) at 2023-12-31" in str(rows[0]["detail"])
    # nothing runs it past the project's end again
    _link(sandbox, principal)
    [old] = [i for i in inclusions(sandbox, principal) if i.project == PSI_STOPPED]
    before = state(sandbox)
    refused = doctor.modify(principal, old.id, EndDate=dt.date(2024, 3, 1))
    assert "2023-12-31" in _fault(refused, "PROJECT_STOPPED").message
    assert state(sandbox) == before
    seen = {i.Project: i for i in doctor.consult(principal).Inclusion}
    assert (seen[PSI_STOPPED].EndDate, seen[PSI_STOPPED].ClosureReason) == (stop, "project-stopped")
    assert len([r for r in sandbox.platform.audit.rows(limit=10_000)
                if r["operation"] == f"ProjectStopped:{PSI_STOPPED}"]) == 1  # nothing more to close
    # the insurers learn of it (and the export stays valid)
    report = export_insurers(sandbox.platform.inclusion_events, sandbox.platform.feed_cursors,
                             sandbox.platform.affiliations, tmp_path, since=dt.date(2000, 1, 1), caller="test")
    kinds = [(e.findtext("{*}Patient/{*}Ssin"), e.findtext("{*}Inclusion/{*}ClosureReason"))
             for path in report.files.values() for e in etree.parse(str(path)).getroot()
             if e.get("Kind") == "project-closure"]
    assert sorted(kinds) == sorted([(principal, "project-stopped"), (information, "project-stopped")])


def test_no_niss_of_an_operator_in_the_audit_details(sandbox: Sandbox) -> None:
    """What the inclusion now carries (the operator's NISS) stays out of the audit log's free text."""
    details = " ".join(str(r["detail"]) for r in sandbox.platform.audit.rows(limit=10_000))
    assert re.search(r"(?<![0-9a-f])(81041102219|74030902123)(?![0-9a-f])", details) is None
