"""Assurability rules (domain, no I/O): global situation, period limits, payment approval."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mycarenet_ic.domain.assurability import (
    AssurabilityError,
    InsurabilityPeriod,
    MemberFile,
    Situation,
    check_period,
    general_situation,
    payment_approval,
    years_in,
)

pytestmark = pytest.mark.unit
D = dt.date
TODAY = D(2026, 11, 22)


def period(mut: str, start: dt.date, end: dt.date | None = None, reason: str | None = None,
           ct1: str = "110") -> InsurabilityPeriod:
    return InsurabilityPeriod(mut, "123", start, end, ct1, "110", end_reason=reason)


def file(*periods: InsurabilityPeriod) -> MemberFile:
    return MemberFile("48031202166", periods)


def test_normal_when_one_period_covers_everything() -> None:
    assert general_situation(file(period("101", D(2015, 1, 1))), D(2026, 1, 1), D(2026, 6, 30)).situation \
        is Situation.NORMAL


def test_mutation_names_date_and_both_insurers() -> None:
    got = general_situation(file(period("101", D(2015, 1, 1), D(2026, 6, 30)), period("319", D(2026, 7, 1))),
                            D(2026, 6, 1), D(2026, 7, 31))
    assert (got.situation, got.mutation_date, got.old_mutuality, got.new_mutuality) == (
        Situation.MUTATION, D(2026, 7, 1), "101", "319")


def test_several_situations_when_more_than_one_change() -> None:
    f = file(period("407", D(2015, 1, 1), D(2026, 3, 31)), period("509", D(2026, 4, 1), D(2026, 8, 31), ct1="111"),
             period("509", D(2026, 9, 1)))
    assert general_situation(f, D(2026, 3, 1), D(2026, 10, 1)).situation is Situation.SEVERAL
    # the same insurer throughout, only the CT changing: normal (real answers with two periods of one
    # mutuality carry no generalSituation)
    g = file(period("509", D(2026, 4, 1), D(2026, 8, 31), ct1="111"), period("509", D(2026, 9, 1)))
    assert general_situation(g, D(2026, 8, 1), D(2026, 9, 30)).situation is Situation.NORMAL
    assert general_situation(f, D(2026, 8, 1), D(2026, 9, 30)).situation is Situation.NORMAL


@pytest.mark.parametrize("reason,death,expected", [
    ("mutation", None, "mutation"), (None, None, "unknown"), ("unknown", None, "unknown"),
    ("mutation", D(2026, 9, 14), "death"),
])
def test_closed_file_says_why(reason: str | None, death: dt.date | None, expected: str) -> None:
    f = file(period("101", D(2015, 1, 1), D(2026, 9, 14), reason))
    got = general_situation(f, D(2026, 9, 1), D(2026, 9, 30), death)
    assert (got.situation, got.closure_reason) == (Situation.CLOSED, expected)
    after = general_situation(f, D(2026, 10, 1), D(2026, 10, 30), death)
    assert (after.situation, after.closure_reason) == (Situation.CLOSED, expected)
    # the date of the change: the day of death, else the first day no longer covered
    closed_on = death if death is not None else D(2026, 9, 15)
    assert got.transfer_date == after.transfer_date == closed_on
    assert not got.normal and got.mutation_date is None


def test_opened_after_the_period() -> None:
    got = general_situation(file(period("319", D(2026, 11, 1))), D(2026, 9, 1), D(2026, 10, 1))
    assert got.situation is Situation.OPENED_AFTER and got.transfer_date == D(2026, 11, 1)


def test_a_normal_situation_has_no_date() -> None:
    got = general_situation(file(period("101", D(2015, 1, 1))), D(2026, 1, 1), D(2026, 6, 30))
    assert got.normal and got.transfer_date is None
    mutation = general_situation(file(period("101", D(2015, 1, 1), D(2026, 6, 30)), period("319", D(2026, 7, 1))),
                                 D(2026, 6, 1), D(2026, 7, 31))
    assert not mutation.normal and mutation.transfer_date == D(2026, 7, 1)


@pytest.mark.parametrize("start,end,pharmacist,code", [
    (D(2026, 11, 25), D(2026, 11, 30), False, "START_DATE_IN_FUTURE"),
    (D(2026, 5, 1), D(2026, 4, 1), False, "INVALID_PERIOD"),
    (D(2021, 11, 1), D(2021, 11, 30), False, "PERIOD_TOO_FAR_IN_PAST"),
    (D(2025, 1, 1), D(2026, 11, 1), False, "INVALID_PERIOD_FOR_SECTOR"),
    (D(2026, 11, 1), D(2026, 11, 5), True, "INVALID_PERIOD_FOR_SECTOR"),
])
def test_period_limits(start: dt.date, end: dt.date, pharmacist: bool, code: str) -> None:
    with pytest.raises(AssurabilityError) as err:
        check_period(start, end, TODAY, pharmacist)
    assert err.value.code == code


def test_allowed_periods() -> None:
    check_period(D(2026, 1, 1), D(2026, 11, 21), TODAY, pharmacist=False)
    check_period(D(2026, 11, 21), D(2026, 11, 22), TODAY, pharmacist=True)
    check_period(D(2021, 12, 1), D(2021, 12, 31), TODAY, pharmacist=False)


@given(st.dates(min_value=D(2022, 1, 1), max_value=D(2026, 12, 31)), st.sampled_from(["101", "216", "319", "602"]))
def test_payment_approval_is_stable_and_carries_its_check_code(day: dt.date, mut: str) -> None:
    f = file(period(mut, D(2015, 1, 1)))
    number, check = payment_approval(f, f.periods[0], day)
    assert (number, check) == payment_approval(f, f.periods[0], day)
    assert number.startswith(mut) and len(number) == 17 and int(number) % 97 == int(check)


def test_preferential_and_years_in_period() -> None:
    assert period("101", D(2015, 1, 1), ct1="111").preferential and not period("101", D(2015, 1, 1)).preferential
    assert years_in((2023, 2025, 2026), D(2025, 6, 1), D(2026, 2, 1)) == [2025, 2026]
