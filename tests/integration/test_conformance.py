"""The conformance kit against a running sandbox: a scripted vendor covering half of a service's scenarios is
told exactly that half (the set computed from the catalogue); a deviation the sandbox tolerated (a stale
IssueInstant, a reused Id) shows in the report; a NISS caller is found under its pseudonymous label; the JUnit
output parses as a CI reads it; the HTML report works in headless Chromium; ``conformance run`` against the
sandbox passes every scenario."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mycarenet_ic.clients.messages import attribute_query, commons_request
from mycarenet_ic.clients.raw import RawSoapClient
from mycarenet_ic.conformance import catalogue
from mycarenet_ic.conformance.facts import facts_of
from mycarenet_ic.conformance.runner import ACTIONS, MD_NS, Credentials, Runner
from mycarenet_ic.sandbox import Sandbox
from tests import support

pytestmark = pytest.mark.integration

GP = catalogue.CALLERS["gp"]


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """A sandbox of its own (a fresh demo scenario: ``conformance run`` declares inclusions)."""
    with support.running_sandbox(tmp_path_factory.mktemp("conformance") / "data") as sandbox:
        yield sandbox


def _since() -> str:
    """Now: what a test sends next is reported, not what earlier tests sent."""
    return dt.datetime.now(dt.UTC).isoformat()


def _report(box: Sandbox, *args: str) -> Any:
    box.platform.recorder.flush()  # type: ignore[attr-defined]
    done = support.sandbox_cli(box, "conformance", "report", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _exercised(report: dict[str, Any]) -> set[str]:
    return {s["id"] for s in report["scenarios"] if s["exercised"]}


def _targets(box: Sandbox) -> list[str]:
    return [f"--target={name}={box.urls[name]}" for name in (*catalogue.SERVICES, "sts")]


def test_run_against_the_sandbox_passes_every_scenario(box: Sandbox, tmp_path: Path) -> None:
    # first in the module: the Integrated Care scenarios expect the demo scenario as it starts
    out = tmp_path / "run.xml"
    done = support.sandbox_cli(box, "conformance", "run", *_targets(box), "--out", str(out), timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr[-4000:]
    progress = [line for line in done.stderr.splitlines() if line.startswith("[")]
    total = len(catalogue.SCENARIOS)
    assert len(progress) == total and progress[-1].startswith(f"[{total:>3}/{total}] passed")
    suites = ET.parse(out).getroot()
    cases = suites.findall("testsuite/testcase")
    assert sorted(c.get("name") or "" for c in cases) == sorted(s.id for s in catalogue.SCENARIOS)
    assert [c.get("name") for c in cases if len(c.findall("failure")) or len(c.findall("skipped"))] == []


def test_a_vendor_covering_half_the_scenarios_is_told_which_half(box: Sandbox) -> None:
    mine = [s for s in catalogue.select([catalogue.TAR]) if s.run["as"] == "gp" and "tokens" not in s.run]
    half = mine[::2]
    assert len(half) >= 5 and len(mine) - len(half) >= 5
    since = _since()
    vendor = Runner(box.urls, Credentials(box.settings.data_dir, "x509"))
    played = vendor.run(half, "vendor")
    assert [r.scenario.id for r in played.results if r.status != "passed"] == []
    report = json.loads(_report(box, "--caller", GP.nihii or "", "--service", "tarification", "--since", since,
                                "--format", "json"))
    assert _exercised(report) == {s.id for s in half}
    assert len(report["scenarios"]) == len(catalogue.select([catalogue.TAR]))
    assert all(s["deviations"] == [] for s in report["scenarios"])


def _stale_query(box: Sandbox, request_id: str) -> bytes:
    """A MemberData request by NISS whose IssueInstant is an hour old, under ``request_id``: the sandbox
    answers it, production's clients would not send it."""
    today = dt.date.today()
    query = attribute_query(GP.nihii or "", catalogue.PEETERS, today - dt.timedelta(days=30),
                            today - dt.timedelta(days=1))
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).replace(microsecond=0).isoformat()
    body = commons_request("MemberDataConsultationRequest", MD_NS, 3, query, None, today, "stale-1",
                           GP.nihii or "", GP.ssin, request_id=request_id, issue_instant=old)
    client = RawSoapClient(box.urls["memberdata"], Credentials(box.settings.data_dir, "x509").signer("gp"),
                           box.platform.answer_verifier(), box.platform.pki.ca_file)
    sent = client.send(body, ACTIONS[catalogue.MD])
    assert sent.verified and sent.status == 200, sent.problem
    assert facts_of(catalogue.MD, "doctor", sent.request, sent.answer)["status"] == "Success"  # tolerated
    return sent.request


def test_tolerated_deviations_show_in_the_report_and_the_junit_output(box: Sandbox, tmp_path: Path) -> None:
    since = _since()
    request_id = f"_{secrets.token_hex(8)}"
    _stale_query(box, request_id)
    _stale_query(box, request_id)  # the same Id again
    report = json.loads(_report(box, "--caller", GP.nihii or "", "--service", "memberdata", "--since", since,
                                "--format", "json"))
    assert _exercised(report) == {"md.by-niss"}
    by_niss = next(s for s in report["scenarios"] if s["id"] == "md.by-niss")
    kinds = [d["kind"] for d in by_niss["deviations"]]
    assert kinds.count("stale") == 2 and kinds.count("reused-id") == 1, by_niss["deviations"]
    reused = next(d for d in by_niss["deviations"] if d["kind"] == "reused-id")
    assert reused["exchange"] == by_niss["exchanges"][1] and by_niss["exchanges"][0] in reused["message"]
    # JUnit, as a CI reads it: one testcase per scenario, skipped = not exercised, failure = deviation
    out = tmp_path / "md.xml"
    _report(box, "--caller", GP.nihii or "", "--service", "memberdata", "--since", since, "--out", str(out))
    suite = ET.parse(out).getroot().find("testsuite")
    assert suite is not None and suite.get("name") == "conformance.memberdata"
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert set(cases) == {s.id for s in catalogue.select([catalogue.MD])}
    assert len(cases["md.by-niss"].findall("failure")) == 3 and not cases["md.by-niss"].findall("skipped")
    assert all(c.find("skipped") is not None for name, c in cases.items() if name != "md.by-niss")
    assert suite.get("tests") == str(len(cases)) and suite.get("failures") == "1"
    assert suite.get("skipped") == str(len(cases) - 1)


def test_a_niss_caller_is_found_under_its_pseudonymous_label(box: Sandbox) -> None:
    since = _since()
    scenario = catalogue.by_id()["ic.psi-staff.consult"]
    played = Runner(box.urls, Credentials(box.settings.data_dir, "x509")).run([scenario], "vendor")
    assert played.results[0].status == "passed", played.results[0].problem
    niss = catalogue.CALLERS["psi-administrative"].ssin or ""
    report = json.loads(_report(box, "--caller", niss, "--service", "integrated-care", "--since", since,
                                "--format", "json"))
    assert _exercised(report) == {"ic.psi-staff.consult"}
    other = json.loads(_report(box, "--caller", catalogue.CALLERS["psi-coordinator"].ssin or "", "--service",
                               "integrated-care", "--since", since, "--format", "json"))
    assert _exercised(other) == set()


def test_html_report_in_headless_chromium(box: Sandbox, tmp_path: Path) -> None:
    from tests.integration.test_web import _browser_binaries

    chromium, driver_path = _browser_binaries()
    since = _since()
    half = catalogue.select([catalogue.MD], ["md.facet."])
    Runner(box.urls, Credentials(box.settings.data_dir, "x509")).run(half, "vendor")
    page = tmp_path / "report.html"
    _report(box, "--caller", GP.nihii or "", "--service", "memberdata", "--since", since, "--out", str(page))
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.get(page.as_uri())
        rows = driver.find_elements(By.CSS_SELECTOR, "tr.scenario")
        assert len(rows) == len(catalogue.select([catalogue.MD]))
        exercised = {r.get_attribute("id") for r in rows if "exercised" in (r.get_attribute("class") or "").split()}
        assert exercised == {s.id for s in half}
        assert driver.find_element(By.ID, "count-exercised").text.endswith(str(len(half)))
        driver.find_element(By.ID, "only-open").click()
        shown = {r.get_attribute("id") for r in rows if r.is_displayed()}
        assert shown == {r.get_attribute("id") for r in rows} - exercised  # what is still to do
        row = driver.find_element(By.ID, "md.by-niss")  # still to do: shown; its details open on a click
        assert "urn:be:fgov:person:ssin" not in row.text
        row.find_element(By.TAG_NAME, "summary").click()
        assert "urn:be:fgov:person:ssin" in row.text and "handle" in row.text
        driver.find_element(By.ID, "only-open").click()
        assert all(r.is_displayed() for r in rows)
    finally:
        driver.quit()
