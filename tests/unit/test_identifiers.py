"""NISS/SSIN and NIHII rules (CONTRACTS.md "Identifiers"; DOMAIN.md actors)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mycarenet_ic.domain.identifiers import (
    InvalidIdentifier,
    NihiiKind,
    Sex,
    is_valid_cbe,
    is_valid_niss,
    make_cbe,
    make_nihii,
    make_niss,
    parse_nihii,
    parse_niss,
)

pytestmark = pytest.mark.unit

births = st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2099, 12, 31))
sequences = st.integers(min_value=1, max_value=998)


@given(births, sequences)
def test_built_niss_parses_back_to_its_birth_date_and_sex(birth: dt.date, seq: int) -> None:
    niss = parse_niss(make_niss(birth, seq))
    assert niss.birth_date == birth
    assert niss.born_2000_or_later == (birth.year >= 2000)
    assert niss.sex == (Sex.MALE if seq % 2 else Sex.FEMALE)
    assert not niss.is_bis


@given(births, sequences, st.integers(min_value=0, max_value=10), st.integers(min_value=1, max_value=9))
def test_any_single_digit_change_breaks_the_check(birth: dt.date, seq: int, pos: int, delta: int) -> None:
    good = make_niss(birth, seq)
    changed = good[:pos] + str((int(good[pos]) + delta) % 10) + good[pos + 1:]
    # A changed digit may by chance land on another valid number of the other century;
    # it must never be read as the same person.
    if is_valid_niss(changed):
        assert parse_niss(changed).value != good
    else:
        with pytest.raises(InvalidIdentifier):
            parse_niss(changed)


def test_born_2000_or_later_uses_the_prefix_2() -> None:
    niss = make_niss(dt.date(2012, 4, 3), 21)
    body = niss[:9]
    assert int(niss[9:]) == 97 - int("2" + body) % 97
    assert int(niss[9:]) != 97 - int(body) % 97
    assert parse_niss(niss).birth_date == dt.date(2012, 4, 3)


@given(births, sequences)
def test_bis_numbers_sex_known_and_unknown(birth: dt.date, seq: int) -> None:
    known = parse_niss(make_niss(birth, seq, bis="known-sex"))
    unknown = parse_niss(make_niss(birth, seq, bis="unknown-sex"))
    assert known.is_bis and unknown.is_bis
    assert known.birth_date == birth == unknown.birth_date
    assert unknown.sex is Sex.UNKNOWN
    assert known.sex == (Sex.MALE if seq % 2 else Sex.FEMALE)


@pytest.mark.parametrize(
    "bad", ["", "1234567890", "123456789012", "8503150012x", "85.03.15-001.2", "８５０３１５００１２３"])
def test_malformed_niss_is_refused(bad: str) -> None:
    assert not is_valid_niss(bad)


def test_formatted_niss_is_accepted_compact() -> None:
    niss = make_niss(dt.date(1985, 3, 15), 1)
    formatted = f"{niss[:2]}.{niss[2:4]}.{niss[4:6]}-{niss[6:9]}.{niss[9:]}"
    assert parse_niss(formatted).value == niss


def test_impossible_birth_date_is_refused() -> None:
    body = "850230001"  # 30 February
    niss = body + f"{97 - int(body) % 97:02d}"
    with pytest.raises(InvalidIdentifier, match="date"):
        parse_niss(niss)


@given(st.integers(min_value=0, max_value=9), st.integers(min_value=0, max_value=99999),
       st.one_of(st.none(), st.from_regex(r"\A[0-9]{3}\Z")))
def test_built_nihii_parses(kind: int, seq: int, qualification: str | None) -> None:
    nihii = parse_nihii(make_nihii(kind, seq, qualification))
    assert nihii.qualification == qualification
    assert len(nihii.base) == 8


@given(st.integers(min_value=0, max_value=9), st.integers(min_value=0, max_value=99999),
       st.integers(min_value=0, max_value=7), st.integers(min_value=1, max_value=9))
def test_nihii_check_digits_catch_single_changes(kind: int, seq: int, pos: int, delta: int) -> None:
    good = make_nihii(kind, seq, "003")
    changed = good[:pos] + str((int(good[pos]) + delta) % 10) + good[pos + 1:]
    with pytest.raises(InvalidIdentifier):
        parse_nihii(changed)


def test_nihii_profession_digit() -> None:
    assert parse_nihii(make_nihii(1, 12345, "003")).kind is NihiiKind.DOCTOR
    assert parse_nihii(make_nihii(6, 12345)).kind is NihiiKind.PHARMACIST
    assert parse_nihii(make_nihii(9, 12345)).kind is NihiiKind.OTHER


def test_person_nihii_needs_a_qualification() -> None:
    with pytest.raises(InvalidIdentifier):
        parse_nihii(make_nihii(1, 12345), person=True)
    assert parse_nihii(make_nihii(6, 12345), person=False).qualification is None


@given(st.integers(min_value=0, max_value=19_999_999))
def test_enterprise_numbers(base: int) -> None:
    cbe = make_cbe(base)
    assert is_valid_cbe(cbe)
    assert not is_valid_cbe(cbe[:-1] + str((int(cbe[-1]) + 1) % 10))
