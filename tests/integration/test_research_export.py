"""``mycarenet-ic export research`` (seed 000 §23 2°, seeds 003 and 004) against a sandbox: only consenting
patients, double-coded through the coding stub over signed HTTP, wide classes, an access journal, the
30-year retention."""

from __future__ import annotations

import csv
import datetime as dt
import getpass
import hashlib
import re
import subprocess
from pathlib import Path

import pytest

from mycarenet_ic.clients.gateways import ZeepCodingGateway
from mycarenet_ic.domain.identifiers import make_niss
from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.errors import UpstreamFault
from mycarenet_ic.persistence.research import SqlResearchJournal
from mycarenet_ic.sandbox import Sandbox
from mycarenet_ic.security.wssec import MemoryReplayCache, Signer, Verifier
from mycarenet_ic.services.research import FIELDS, InsurerCoding
from mycarenet_ic.stubs.coding import SecondCoder
from tests import support
from tests.ic_client import Fault, IcClient

pytestmark = pytest.mark.integration
NAMUR, LEUVEN = "91000252", "91000153"
AS_OF = "2027-01-15"  # declarations of 2026-12-10 take effect on 2027-01-01
BIRTH = dt.date(1950, 6, 1)  # 76 on AS_OF: band 75-84


def _cli(sandbox: Sandbox, *args: str) -> subprocess.CompletedProcess[str]:
    return support.sandbox_cli(sandbox, "export", *args)


def _export(sandbox: Sandbox, out: Path, *extra: str, as_of: str = AS_OF) -> tuple[Path, list[dict[str, str]]]:
    done = _cli(sandbox, "research", "--purpose", "diabetes care pathways", "--out", str(out), "--as-of", as_of,
                *extra)
    assert done.returncode == 0, done.stderr
    assert "research export [" in done.stderr and "100%" in done.stderr  # progress on stderr
    [path] = [p for p in out.iterdir() if p.suffix == ".csv"]
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == FIELDS
        return path, list(reader)


@pytest.fixture(scope="module")
def people(sandbox: Sandbox) -> dict[str, list[str]]:
    """New patients declared in PSI Namur on 2026-12-10: six men born 1950 in Brussels agreeing (one class of
    six), one agreeing from Liège (a class of one), one refusing, one agreeing without an insurer, one
    agreeing in Namur but refusing in Leuven."""
    ssins = [make_niss(BIRTH, 701 + 2 * n) for n in range(10)]
    groups = {"brussels": ssins[:6], "liege": ssins[6:7], "refusing": ssins[7:8], "uninsured": ssins[8:9],
              "withdrawn": ssins[9:10]}
    scenario = sandbox.scenario
    scenario.add_persons([{"ssin": s, "last_name": f"Research{n}", "first_names": ["Test"],
                           "birth_date": BIRTH.isoformat(), "sex": "male"} for n, s in enumerate(ssins)])
    for n, ssin in enumerate(ssins):
        if ssin in groups["uninsured"]:
            continue
        scenario.extra["insurer_affiliations"].append({
            "ssin": ssin, "mutuality": "131", "registration_number": f"9900000{n:05d}", "start": "2015-01-01",
            "end": None, "ct1": "110", "ct2": "110", "third_party": "none"})
        scenario.extra["member_facts"][ssin] = {"postal_code": "4000" if ssin in groups["liege"] else "1000"}
    scenario.save()
    doctor = IcClient(sandbox, Quality.DOCTOR, support.DOCTOR_SSIN, support.DOCTOR_NIHII)
    today = dt.date.today()
    for ssin in ssins:
        consent = "refuse" if ssin in groups["refusing"] else "agree"
        answer = doctor.declare(ssin, NAMUR, start=dt.date(2026, 12, 10), consent=(consent, today))
        assert not isinstance(answer, Fault), answer
    answer = doctor.declare(groups["withdrawn"][0], LEUVEN, start=dt.date(2026, 12, 10), consent=("refuse", today))
    assert not isinstance(answer, Fault), answer
    return groups


def _code(sandbox: Sandbox, ssin: str, project: str) -> str:
    """What the two codings give a patient (the test holds both keys; no party of the flow does)."""
    first = InsurerCoding.from_data_dir(sandbox.settings.data_dir).code("100", ssin)
    return SecondCoder.from_data_dir(sandbox.settings.data_dir).code(project, first)


def _journal(sandbox: Sandbox) -> list[dict[str, object]]:
    return SqlResearchJournal(sandbox.platform.engine).entries()


def test_seed003_004_the_export_holds_only_consenting_patients_coded_and_classed(
        sandbox: Sandbox, people: dict[str, list[str]], tmp_path: Path) -> None:
    path, rows = _export(sandbox, tmp_path, "--project", "study-a")
    by_code = {r["research_id"]: r for r in rows}
    for ssin in people["brussels"]:
        assert by_code[_code(sandbox, ssin, "study-a")] == {
            "research_id": _code(sandbox, ssin, "study-a"), "sex": "male", "age_band": "75-84",
            "region": "brussels", "project": NAMUR, "status": "information", "start_month": "2027-01",
            "end_month": ""}
    # a class of one patient is generalised (seed 003 art. 2)
    liege = by_code[_code(sandbox, people["liege"][0], "study-a")]
    assert (liege["sex"], liege["age_band"], liege["region"]) == ("*", "*", "*")
    for ssin in people["refusing"] + people["uninsured"] + people["withdrawn"]:
        assert _code(sandbox, ssin, "study-a") not in by_code
    # re-identification from the file alone: no NISS of anyone, no birth date in any spelling, no day
    # (the research codes are 20 random digits: scanned apart, below)
    text = re.sub(r"^[0-9]{20},", ",", path.read_text(encoding="utf-8"), flags=re.M)
    for person in sandbox.scenario.persons.values():
        assert person.ssin not in text
        birth = dt.date.fromisoformat(person.birth_date) if person.birth_date else None
        if birth:
            for spelled in (birth.isoformat(), birth.strftime("%Y%m%d"), birth.strftime("%d/%m/%Y"),
                            birth.strftime("%d%m%Y")):
                assert spelled not in text, spelled
        assert person.last_name not in text
    for row in rows:
        code = row["research_id"]
        assert re.fullmatch(r"[0-9]{20}", code) and not any(ssin in code for ssin in sandbox.scenario.persons)
        assert re.fullmatch(r"[0-9]{4}-[0-9]{2}", row["start_month"]) and re.fullmatch(
            r"([0-9]{4}-[0-9]{2})?", row["end_month"])
        assert row["sex"] in {"male", "female", "unknown", "*"}
        assert row["region"] in {"brussels", "flanders", "wallonia", "unknown", "*"}


def test_seed004_two_exports_for_different_projects_cannot_be_joined(
        sandbox: Sandbox, people: dict[str, list[str]], tmp_path: Path) -> None:
    _, a = _export(sandbox, tmp_path / "a", "--project", "study-a")
    _, a_again = _export(sandbox, tmp_path / "a2", "--project", "study-a")
    _, b = _export(sandbox, tmp_path / "b", "--project", "study-b")
    _, alone = _export(sandbox, tmp_path / "c")
    ids = [{r["research_id"] for r in rows} for rows in (a, b, alone)]
    assert len(ids[0]) == len(ids[1]) == len(ids[2]) >= len(people["brussels"]) + 1
    assert not ids[0] & ids[1] and not ids[0] & ids[2] and not ids[1] & ids[2]
    assert {r["research_id"] for r in a_again} == ids[0]  # one project's update links its own rows


def test_seed003_the_access_journal_says_who_when_which_data_why_and_nothing_of_the_content(
        sandbox: Sandbox, people: dict[str, list[str]], tmp_path: Path) -> None:
    before = len(_journal(sandbox))
    audited = [r for r in sandbox.platform.audit.rows(limit=10_000) if r["operation"] == "ResearchExport"]
    path, rows = _export(sandbox, tmp_path, "--project", "study-journal")
    [line] = _journal(sandbox)[before:]
    assert line["caller"] == f"operator:{getpass.getuser()}" and line["purpose"] == "diabetes care pathways"
    assert (line["project"], line["as_of"], line["reference_year"]) == ("study-journal", dt.date(2027, 1, 15), 2027)
    assert line["fields"] == ",".join(FIELDS) and line["destroy_after"] == dt.date(2057, 12, 31)
    assert line["file"] == str(path.resolve()) and line["purged_at"] is None
    assert line["file_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    patients = len({r["research_id"] for r in rows})
    assert f"{patients} patient(s), {len(rows)} inclusion row(s)" in str(line["scope"])
    left_out = re.search(r"([0-9]+) left out \(no insurer\)", str(line["scope"]))
    assert left_out and int(left_out.group(1)) >= len(people["uninsured"])
    journal_text = " ".join(str(v) for v in line.values())
    assert not any(r["research_id"] in journal_text for r in rows)
    assert not any(ssin in journal_text for ssin in sandbox.scenario.persons)  # no NISS
    audit_after = [r for r in sandbox.platform.audit.rows(limit=10_000) if r["operation"] == "ResearchExport"]
    assert len(audit_after) == len(audited) + 1 and str(line["extraction"]) in str(audit_after[-1]["detail"])


def test_cli_errors_are_one_line_and_nothing_is_written_or_journaled(sandbox: Sandbox, tmp_path: Path) -> None:
    before = len(_journal(sandbox))
    for args in (("--purpose", "  ", "--out", str(tmp_path)),
                 ("--purpose", "x", "--project", "not a name", "--out", str(tmp_path))):
        done = _cli(sandbox, "research", *args)
        assert done.returncode == 2 and done.stderr.startswith("error: ") and done.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == [] and len(_journal(sandbox)) == before


def test_the_coding_stub_answers_signed_and_only_the_insurers(sandbox: Sandbox) -> None:
    gateway = sandbox.platform.coding(sandbox.urls)  # the platform, playing the insurers, with its STS token
    values = ["100-" + "0f" * 32, "300-" + "a1" * 16]
    coder = SecondCoder.from_data_dir(sandbox.settings.data_dir)
    assert gateway.encode("study-x", values) == [coder.code("study-x", v) for v in values]
    verifier = Verifier(sandbox.platform.trust, MemoryReplayCache())
    doctor = ZeepCodingGateway(sandbox.urls["coding"], Signer(sandbox.platform.pki.issue_holder(
        Quality.DOCTOR, support.DOCTOR_SSIN, support.DOCTOR_NIHII)), verifier, ca_file=sandbox.platform.pki.ca_file)

    def coding_rows() -> list[dict[str, object]]:
        return [r for r in sandbox.platform.audit.rows(limit=10_000) if r["service"] == "coding"]

    seen = {r["seq"] for r in coding_rows()}
    with pytest.raises(UpstreamFault) as denied:
        doctor.encode("study-x", values)  # a care provider may not use the intermediary as an oracle
    assert "fault" in str(denied.value.reason) and "Only the insurers" in str(denied.value.reason)
    with pytest.raises(UpstreamFault) as invalid:
        gateway.encode("study-x", [support.PATIENT_LINKED])  # a NISS is never coded: not insurer-coded
    assert "fault" in str(invalid.value.reason)
    new = [r for r in coding_rows() if r["seq"] not in seen]
    assert len(new) == 2
    assert all(r["outcome"] != "OK" for r in new)
    assert all(support.PATIENT_LINKED not in str(r["detail"]) for r in new)


def test_seed003_art4_samples_past_thirty_years_are_destroyed(sandbox: Sandbox, people: dict[str, list[str]],
                                                              tmp_path: Path) -> None:
    old, _ = _export(sandbox, tmp_path / "old", "--project", "study-old")
    newer, _ = _export(sandbox, tmp_path / "newer", "--project", "study-new", as_of="2028-01-15")
    done = _cli(sandbox, "research-purge", "--as-of", "2058-06-01")
    assert done.returncode == 0, done.stderr
    assert not old.exists() and newer.exists()
    lines = {line["file"]: line for line in _journal(sandbox)}
    assert lines[str(old.resolve())]["purged_at"] is not None and lines[str(newer.resolve())]["purged_at"] is None
    assert all(line["purged_at"] is not None for line in lines.values() if line["reference_year"] == 2027)
    [purge] = [r for r in sandbox.platform.audit.rows(limit=10) if r["operation"] == "ResearchPurge"]
    assert "sample(s) destroyed" in str(purge["detail"])
    # a second purge on the same day destroys nothing more
    assert "destroyed 0 research sample(s)" in _cli(sandbox, "research-purge", "--as-of", "2058-06-01").stdout
