"""``mycarenet-ic statistics``: patients per project, status, consent, age band and insurer (seed 000 §23),
counted against a scenario set up here over HTTP; aggregates only, small cells suppressed, audited."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess

import pytest

from mycarenet_ic.domain.identifiers import make_niss
from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.sandbox import Sandbox
from tests import support
from tests.ic_client import Fault, IcClient

pytestmark = pytest.mark.integration
NAMUR, STOPPED = "91000252", "91000450"
AS_OF = "2027-01-15"  # declarations of 2026-12-10 take effect on 2027-01-01
# PSI Namur's demo patients on AS_OF: Peeters (information, agree, 78, insurer 100), Janssens (principal,
# refuse, 74, 200), Dubois (principal, agree, 71, 400), Lambert (information, agree, 47, 500).
DEMO_NAMUR = {("information", "agree", "75-84", "100"), ("principal", "refuse", "65-74", "200"),
              ("principal", "agree", "65-74", "400"), ("information", "agree", "45-64", "500")}


def _cli(sandbox: Sandbox, *args: str) -> subprocess.CompletedProcess[str]:
    return support.sandbox_cli(sandbox, "statistics", *args, timeout=120)


def _statistics_rows(sandbox: Sandbox) -> list[dict[str, object]]:
    return [r for r in sandbox.platform.audit.rows(limit=10_000) if r["operation"] == "Statistics"]


@pytest.fixture(scope="module")
def scenario(sandbox: Sandbox) -> list[str]:
    """Seven new patients born in 1950 (76 on AS_OF, no insurer affiliation) declared in PSI Namur on
    2026-12-10 as information: six agreeing, one refusing."""
    patients = [make_niss(dt.date(1950, 6, 1), 700 + n) for n in range(7)]
    sandbox.scenario.add_persons([{"ssin": s, "last_name": f"Stat{n}", "first_names": ["Test"],
                                   "birth_date": "1950-06-01", "sex": "unknown"} for n, s in enumerate(patients)])
    doctor = IcClient(sandbox, Quality.DOCTOR, support.DOCTOR_SSIN, support.DOCTOR_NIHII)
    for n, ssin in enumerate(patients):
        consent = ("refuse" if n == 6 else "agree", dt.date.today())
        answer = doctor.declare(ssin, NAMUR, start=dt.date(2026, 12, 10), consent=consent)
        assert not isinstance(answer, Fault), answer
    return patients


def test_seed000_s23_counts_per_project_status_consent_age_band_and_insurer(sandbox: Sandbox,
                                                                            scenario: list[str]) -> None:
    audited = len(_statistics_rows(sandbox))
    done = _cli(sandbox, "--as-of", AS_OF, "--project", NAMUR, "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["as_of"], out["project"], out["threshold"]) == (AS_OF, NAMUR, 5)
    [namur] = out["projects"]
    cells = {(c["status"], c["consent"], c["age_band"], c["insurer"]): c["patients"] for c in namur["cells"]}
    assert namur["total"] == 4 + 7
    assert cells == {("information", "agree", "75-84", "000"): 6, ("information", "refuse", "75-84", "000"): "<5",
                     **{key: "<5" for key in DEMO_NAMUR}}
    # aggregates only: no NISS, no name, no birth date, no inclusion
    assert re.search(r"[0-9]{11}", done.stdout) is None
    assert "Stat" not in done.stdout and "1950" not in done.stdout
    assert len(_statistics_rows(sandbox)) == audited + 1
    row = _statistics_rows(sandbox)[-1]
    assert row["caller"] == "platform:statistics" and f"as of {AS_OF} project={NAMUR}: 11 inclusion(s)" in str(
        row["detail"])


def test_seed000_s23_before_the_new_inclusions_take_effect_they_are_not_counted(sandbox: Sandbox,
                                                                                scenario: list[str]) -> None:
    out = json.loads(_cli(sandbox, "--as-of", "2026-12-20", "--project", NAMUR, "--json").stdout)
    [namur] = out["projects"]
    # four demo patients: a total under five is suppressed, and so is every cell
    assert namur["total"] == "<5" and {c["patients"] for c in namur["cells"]} == {"<5"}


def test_the_view_lists_every_project_and_never_a_patient(sandbox: Sandbox, scenario: list[str]) -> None:
    done = _cli(sandbox, "--as-of", AS_OF)
    assert done.returncode == 0, done.stderr
    assert f"PSI {NAMUR}: 11 patient(s)" in done.stdout
    assert re.search(r"^  information +agree +75-84 +000 +6$", done.stdout, re.M), done.stdout
    assert re.search(r"PSI 91000153: (<5|[0-9]+) patient\(s\)", done.stdout)
    for line in done.stdout.splitlines():
        assert re.search(r"[0-9]{11}", line) is None, line
    # the stopped project (CoBrHa end 2023-12-31) was closed before counting: none of its patients is current
    assert f"PSI {STOPPED}" not in done.stdout
    assert any(r["operation"] == f"ProjectStopped:{STOPPED}" for r in sandbox.platform.audit.rows(limit=10_000))
    # on a day it ran, it is counted (two patients: suppressed)
    old = json.loads(_cli(sandbox, "--as-of", "2022-06-01", "--project", STOPPED, "--json").stdout)
    assert [(p["project"], p["total"]) for p in old["projects"]] == [(STOPPED, "<5")]


@pytest.mark.parametrize("args,message", [
    (["--project", "91000251"], "error: --project: "),
    (["--as-of", "2026-02-30"], "error: "),
])
def test_bad_arguments_are_one_line_errors(sandbox: Sandbox, args: list[str], message: str) -> None:
    audited = len(_statistics_rows(sandbox))
    done = _cli(sandbox, *args)
    assert done.returncode != 0 and done.stdout == ""
    assert done.stderr.startswith(message) and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert len(_statistics_rows(sandbox)) == audited
