"""The research export's rules (seeds 000 §23 2°, 003, 004): who is exported, the wide classes, the two codings,
the retention date."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from mycarenet_ic.domain.identifiers import make_niss
from mycarenet_ic.domain.inclusions import Consent, Inclusion, Status
from mycarenet_ic.services.research import (
    InsurerCoding,
    check_project,
    check_purpose,
    consenting,
    destroy_after,
    month,
    region_of,
    sex_of,
)
from mycarenet_ic.stubs.coding import SecondCoder

pytestmark = pytest.mark.unit
XSD_INSURER_CODED = re.compile(r"[0-9]{3}-[0-9a-f]{32,64}")


@pytest.mark.parametrize("postal_code,region", [
    ("1000", "brussels"), ("1299", "brussels"), ("1300", "wallonia"), ("1499", "wallonia"), ("1500", "flanders"),
    ("2000", "flanders"), ("3000", "flanders"), ("3500", "flanders"), ("3999", "flanders"), ("4000", "wallonia"),
    ("4700", "wallonia"), ("5000", "wallonia"), ("6600", "wallonia"), ("7999", "wallonia"), ("8000", "flanders"),
    ("9999", "flanders"), (None, "unknown"), ("0999", "unknown"), ("10000", "unknown"), ("10a0", "unknown"),
])
def test_seed004_regions_are_the_three_regions_of_the_postal_code(postal_code: str | None, region: str) -> None:
    assert region_of(postal_code) == region


def test_sex_comes_from_the_niss_and_months_hide_the_day() -> None:
    assert sex_of(make_niss(dt.date(1950, 6, 1), 701)) == "male"
    assert sex_of(make_niss(dt.date(1950, 6, 1), 702)) == "female"
    assert sex_of("12345678901") == "unknown"
    assert month(dt.date(2027, 3, 14)) == "2027-03" and month(None) == ""


def _inc(consent: Consent | None, start: dt.date = dt.date(2026, 1, 10), project: str = "91000252") -> Inclusion:
    return Inclusion(id=f"{project}{consent}{start}", patient="p", project=project, status=Status.INFORMATION,
                     declared_start=start, consent=consent, consent_date=start if consent else None)


def test_seed000_s23_only_agreements_and_a_refusal_anywhere_withdraws_them() -> None:
    on = dt.date(2027, 1, 15)
    agree, other_agree = _inc(Consent.AGREE), _inc(Consent.AGREE, project="91000153")
    assert consenting([agree, other_agree], on) == [agree, other_agree]
    assert consenting([agree, _inc(None, project="91000153")], on) == [agree]
    assert consenting([agree, _inc(Consent.REFUSE, project="91000153")], on) == []
    assert consenting([_inc(None)], on) == []
    # not started on the extraction's day (a declaration of 2027-01-20 takes effect on 2027-02-01)
    assert consenting([_inc(Consent.AGREE, start=dt.date(2027, 1, 20))], on) == []


def test_seed003_art4_a_sample_is_kept_until_the_end_of_the_thirtieth_year_after_it() -> None:
    assert destroy_after(2027) == dt.date(2057, 12, 31)


def test_project_names_and_purposes_are_checked() -> None:
    assert check_project("study-2027_a.v1") == "study-2027_a.v1"
    for bad in ("", "-x", "a b", "x" * 65, "étude"):
        with pytest.raises(ValueError):
            check_project(bad)
    assert check_purpose("  diabetes \n follow-up ") == "diabetes follow-up"
    for bad in ("", "   ", "x" * 501, "a\x1b[2Jb"):
        with pytest.raises(ValueError):
            check_purpose(bad)


def test_seed003_art1_first_coding_is_keyed_per_insurer(tmp_path: Path) -> None:
    ssin = make_niss(dt.date(1950, 6, 1), 701)
    coding = InsurerCoding.from_data_dir(tmp_path)
    first = coding.code("100", ssin)
    assert XSD_INSURER_CODED.fullmatch(first) and ssin not in first
    assert coding.code("100", ssin) == first == InsurerCoding.from_data_dir(tmp_path).code("100", ssin)
    # another insurer, or the same insurer of another data directory (another key): unrelated codes
    assert coding.code("200", ssin)[4:] != first[4:]
    assert InsurerCoding.from_data_dir(tmp_path / "other").code("100", ssin) != first
    assert (tmp_path / "secrets" / "insurers" / "100.key").stat().st_mode & 0o077 == 0
    with pytest.raises(ValueError):
        coding.code("1000", ssin)


def test_seed003_art1_second_coding_is_a_meaningless_number_per_project(tmp_path: Path) -> None:
    coder = SecondCoder.from_data_dir(tmp_path)
    value = "100-" + "ab" * 32
    code = coder.code("study-a", value)
    assert re.fullmatch(r"[0-9]{20}", code)
    assert coder.code("study-a", value) == code  # a project's yearly update links its own rows
    assert coder.code("study-b", value) != code
    assert coder.code("study-a", "100-" + "ab" * 31 + "ac") != code
    assert SecondCoder(b"k" * 32).code("study-a", value) != code  # the service's key is in the code
    with pytest.raises(ValueError):
        SecondCoder(b"short")
