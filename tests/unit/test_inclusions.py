"""Inclusion rules and the access policy (domain, no I/O). Each test names the rule it checks."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
    close_at,
    close_at_death,
    decide,
    end_of_next_month,
    first_of_next_month,
    within_limits,
)

pytestmark = pytest.mark.unit
D = dt.date
JAN_10 = D(2026, 1, 10)


def inc(project: str = "91000153", status: Status = Status.PRINCIPAL, start: dt.date = JAN_10,
        end: dt.date | None = None, id: str = "x") -> Inclusion:
    return Inclusion(id=id, patient="p", project=project, status=status, declared_start=start, declared_end=end)


@pytest.mark.parametrize("declared,effective", [
    (D(2026, 1, 10), D(2026, 2, 1)),
    (D(2026, 1, 1), D(2026, 2, 1)),     # the 1st still counts from the month after (annex, data 7)
    (D(2026, 12, 31), D(2027, 1, 1)),   # year change
])
def test_start_takes_effect_on_the_first_of_the_next_month(declared: dt.date, effective: dt.date) -> None:
    assert first_of_next_month(declared) == effective
    assert inc(start=declared).start == effective


@pytest.mark.parametrize("declared,effective", [
    (D(2026, 1, 15), D(2026, 2, 28)),   # February, not a leap year
    (D(2028, 1, 31), D(2028, 2, 29)),   # leap year
    (D(2026, 3, 3), D(2026, 4, 30)),    # a 30-day month
    (D(2026, 12, 1), D(2027, 1, 31)),   # year change
])
def test_end_takes_effect_at_the_end_of_the_next_month(declared: dt.date, effective: dt.date) -> None:
    assert end_of_next_month(declared) == effective
    assert inc(start=D(2025, 1, 1), end=declared).end == effective


@given(st.dates(min_value=D(1990, 1, 1), max_value=D(2090, 12, 31)))
def test_effective_dates_are_after_the_declared_date_and_within_two_months(day: dt.date) -> None:
    start, end = first_of_next_month(day), end_of_next_month(day)
    assert day < start <= day + dt.timedelta(days=31) and start.day == 1
    assert start < end <= day + dt.timedelta(days=62) and (end + dt.timedelta(days=1)).day == 1


def test_only_one_principal_at_a_time() -> None:
    first = inc("91000153", Status.PRINCIPAL, id="a")
    with pytest.raises(InclusionRuleError) as err:
        check_no_conflict(inc("91000252", Status.PRINCIPAL, start=D(2026, 5, 1), id="b"), [first])
    assert err.value.code == "PRINCIPAL_EXISTS" and "91000153" not in err.value.message
    # information next to a principal is fine; so is a principal after the first one ended
    check_no_conflict(inc("91000252", Status.INFORMATION, id="b"), [first])
    ended = inc("91000153", Status.PRINCIPAL, start=D(2025, 1, 1), end=D(2025, 6, 10), id="a")
    check_no_conflict(inc("91000252", Status.PRINCIPAL, start=D(2025, 7, 1), id="b"), [ended])  # from 2025-08-01
    with pytest.raises(InclusionRuleError):  # effective 2025-07-01, while the first runs to 2025-07-31
        check_no_conflict(inc("91000252", Status.PRINCIPAL, start=D(2025, 6, 20), id="b"), [ended])


def test_same_project_twice_for_one_period_is_refused() -> None:
    with pytest.raises(InclusionRuleError) as err:
        check_no_conflict(inc(status=Status.INFORMATION, id="b"), [inc(status=Status.INFORMATION, id="a")])
    assert err.value.code == "ALREADY_INCLUDED"


def test_an_inclusion_does_not_conflict_with_itself() -> None:
    me = inc(id="a")
    check_no_conflict(me, [me])


def test_dates_and_consent_are_checked() -> None:
    today = D(2026, 11, 22)
    with pytest.raises(InclusionRuleError, match="precede"):
        check_dates(D(2026, 5, 1), D(2026, 4, 1), None, None, today)
    with pytest.raises(InclusionRuleError) as err:
        check_dates(D(2026, 5, 1), None, Consent.AGREE, None, today)
    assert err.value.code == "CONSENT_INCOMPLETE"
    with pytest.raises(InclusionRuleError):
        check_dates(D(2026, 5, 1), None, Consent.AGREE, today + dt.timedelta(days=1), today)
    check_dates(D(2026, 5, 1), D(2026, 5, 1), Consent.REFUSE, today, today)


def test_death_closes_open_inclusions_at_the_date_of_death() -> None:
    death = D(2026, 9, 14)
    closed = close_at_death(inc(start=D(2024, 5, 1)), death)
    assert closed is not None and closed.end == death and closed.closed_by_death and closed.version == 2
    assert close_at_death(inc(start=D(2024, 5, 1), end=D(2025, 1, 10)), death) is None  # ended before


def test_seed000_s9_closing_at_a_death_twice_changes_nothing_the_second_time() -> None:
    death = D(2026, 9, 14)
    closed = close_at_death(inc(start=D(2024, 5, 1)), death)
    assert closed is not None and close_at_death(closed, death) is None
    # an exclusion that would end after the death is cut at the death (what the feed does)
    late = close_at_death(inc(start=D(2024, 5, 1), end=D(2026, 9, 1)), death)  # would end 2026-10-31
    assert late is not None and (late.end, late.closure) == (death, Closure.DEATH)


def test_seed000_s9_no_change_leaves_an_inclusion_open_past_a_limit() -> None:
    death = Limit(D(2026, 9, 14), Closure.DEATH)
    stop = Limit(D(2023, 12, 31), Closure.PROJECT_STOPPED)
    open_one = inc(start=D(2022, 1, 10))
    kept = within_limits(open_one, [death, stop], end_asked=False)
    assert (kept.end, kept.closure, kept.version) == (D(2023, 12, 31), Closure.PROJECT_STOPPED, 1)  # the earlier
    with pytest.raises(InclusionRuleError) as err:  # an exclusion asked for past the death is refused
        within_limits(inc(start=D(2026, 1, 10), end=D(2026, 9, 1)), [death], end_asked=True)
    assert err.value.code == "PATIENT_DECEASED" and "2026-09-14" in err.value.message
    with pytest.raises(InclusionRuleError) as err:
        within_limits(inc(start=D(2022, 1, 10), end=D(2024, 1, 5)), [stop], end_asked=True)
    assert err.value.code == "PROJECT_STOPPED"
    early = inc(start=D(2026, 1, 10), end=D(2026, 7, 1))  # ends 2026-08-31, before the death
    assert within_limits(early, [death], end_asked=True) == early
    assert close_at(early, D(2026, 9, 14), Closure.DEATH) is None


@pytest.mark.parametrize("consent,date,missing", [
    (None, None, "Consent"), (Consent.REFUSE, None, "Consent/Date"), (None, D(2026, 1, 2), "Consent/Agreement")])
def test_seed000_s11_1_a_declaration_needs_consent_and_its_date(consent: Consent | None, date: dt.date | None,
                                                                missing: str) -> None:
    with pytest.raises(InclusionRuleError) as err:
        check_consent(consent, date, required=True)
    assert err.value.code == "CONSENT_INCOMPLETE" and f"lacks {missing}:" in err.value.message
    check_consent(Consent.REFUSE, D(2026, 1, 2), required=True)  # a refusal with its date is complete
    check_consent(None, None, required=False)  # a modification may leave the consent out


# -- the access policy (seed 000 §10-§13) -------------------------------------------------------------
DOCTOR = Actor(Role.PROVIDER, nihii="11200035003")
PHARMACIST = Actor(Role.PHARMACIST, nihii="61229665000", pharmacy="62103457")
ADMIN = Actor(Role.PSI_ADMINISTRATIVE, projects=frozenset({"91000153"}))
COORDINATOR = Actor(Role.PSI_COORDINATOR, projects=frozenset({"91000153"}))
PATIENT = Actor(Role.PATIENT, ssin="48031202166")
ALL_FIELDS = frozenset(Field)


@pytest.mark.parametrize("actor", [DOCTOR, PHARMACIST])
def test_providers_declare_without_a_link_but_consult_and_modify_only_with_one(actor: Actor) -> None:
    assert decide(actor, Operation.DECLARE, Target(project="91000351", has_link=False)) is Verdict.ALLOW
    for op in (Operation.CONSULT, Operation.MODIFY):
        assert decide(actor, op, Target(has_link=True, fields=ALL_FIELDS)) is Verdict.ALLOW
        assert decide(actor, op, Target(has_link=False, fields=ALL_FIELDS)) is Verdict.DENY
    assert decide(actor, Operation.LIST, Target(project="91000153")) is Verdict.DENY


def test_psi_administrative_declares_in_own_project_changes_start_and_consent_only() -> None:
    assert decide(ADMIN, Operation.DECLARE, Target(project="91000153")) is Verdict.ALLOW
    assert decide(ADMIN, Operation.DECLARE, Target(project="91000252")) is Verdict.DENY
    own = Target(in_own_project=True, fields=frozenset({Field.START, Field.CONSENT}))
    assert decide(ADMIN, Operation.MODIFY, own) is Verdict.ALLOW
    for f in (Field.STATUS, Field.END):
        assert decide(ADMIN, Operation.MODIFY, Target(in_own_project=True, fields=frozenset({f}))) is Verdict.DENY
    assert decide(ADMIN, Operation.CONSULT, Target(in_own_project=True)) is Verdict.ALLOW
    assert decide(ADMIN, Operation.LIST, Target(project="91000153")) is Verdict.DENY


def test_psi_staff_never_see_another_projects_patient() -> None:
    for actor in (ADMIN, COORDINATOR):
        assert decide(actor, Operation.CONSULT, Target(in_own_project=False, has_link=True)) is Verdict.CONCEAL
    assert decide(ADMIN, Operation.MODIFY, Target(in_own_project=False,
                                                  fields=frozenset({Field.CONSENT}))) is Verdict.CONCEAL


def test_coordinator_lists_and_consults_own_project_only() -> None:
    assert decide(COORDINATOR, Operation.LIST, Target(project="91000153")) is Verdict.ALLOW
    assert decide(COORDINATOR, Operation.LIST, Target(project="91000252")) is Verdict.DENY
    assert decide(COORDINATOR, Operation.CONSULT, Target(in_own_project=True)) is Verdict.ALLOW
    assert decide(COORDINATOR, Operation.DECLARE, Target(project="91000153")) is Verdict.DENY
    assert decide(COORDINATOR, Operation.MODIFY, Target(in_own_project=True,
                                                        fields=frozenset({Field.CONSENT}))) is Verdict.DENY


def test_patient_sees_own_inclusions_and_changes_only_consent() -> None:
    assert decide(PATIENT, Operation.CONSULT, Target(patient_ssin="48031202166")) is Verdict.ALLOW
    assert decide(PATIENT, Operation.CONSULT, Target(patient_ssin="82112502158")) is Verdict.DENY
    assert decide(PATIENT, Operation.MODIFY, Target(patient_ssin="48031202166",
                                                    fields=frozenset({Field.CONSENT}))) is Verdict.ALLOW
    assert decide(PATIENT, Operation.MODIFY, Target(patient_ssin="48031202166",
                                                    fields=frozenset({Field.STATUS}))) is Verdict.DENY
    assert decide(PATIENT, Operation.DECLARE, Target(project="91000153")) is Verdict.DENY
