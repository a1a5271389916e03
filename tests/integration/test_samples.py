"""``samples/`` (issue 18 item 5) against a sandbox on a fresh demo scenario: the committed samples are what the
sandbox answers today (regenerated with ``samples write``, compared beyond the calendar days); a sample,
filled in and signed by ``samples sign``, gets the answer its scenario describes; each zeep client of
``samples/clients/`` runs as it stands, as its own process, and prints what the README's tables say."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from mycarenet_ic.conformance.catalogue import by_id
from mycarenet_ic.conformance.facts import facts_of
from mycarenet_ic.samples.generate import REFRESH, action, differences
from mycarenet_ic.sandbox import Sandbox
from tests import support

pytestmark = pytest.mark.integration

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """A sandbox of its own on the demo scenario as it starts (the Integrated Care samples declare)."""
    with support.running_sandbox(tmp_path_factory.mktemp("samples") / "data") as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def me(box: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding ``me/``: the README's ``certs issue`` for Dr Verhoeven, from the sandbox's CA."""
    where = tmp_path_factory.mktemp("vendor")
    for extra in ((), ("--nihii", "11200035003", "--with-quality")):
        done = support.sandbox_cli(box, "certs", "issue", "--ssin", "74030902123", "--quality", "doctor",
                                   *extra, "--out", str(where / ("me" if not extra else "simple")))
        assert done.returncode == 0, done.stderr
    return where


def test_the_committed_samples_are_what_the_sandbox_answers(box: Sandbox, tmp_path: Path) -> None:
    # first in the module: the Integrated Care scenarios expect the demo scenario as it starts
    fresh = tmp_path / "samples"
    done = support.sandbox_cli(box, "samples", "write", str(fresh), timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    progress = [line for line in done.stderr.splitlines() if line.startswith("[")]
    assert len(progress) == len(by_id()) and progress[-1].endswith(list(by_id())[-1])
    problems = differences(SAMPLES, fresh)
    assert not problems, f"samples/ is stale; refresh it with: {REFRESH}\n" + "\n".join(problems[:20])


def _sign(box: Sandbox, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    """``mycarenet-ic samples sign <args>`` on the sandbox's data directory (in this process: it is quick)."""
    from mycarenet_ic.cli import main

    monkeypatch.setenv("MYCARENET_DATA_DIR", str(box.settings.data_dir))
    return main(["samples", "sign", *args])


def _post(box: Sandbox, service: str, soap_action: str, signed: bytes) -> bytes:
    return requests.post(box.urls[service], data=signed, timeout=30, headers={
        "Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{soap_action}"'}).content


@pytest.mark.parametrize(("scenario", "how"), [("ic.doctor.consult", "x509"), ("md.by-niss", "x509"),
                                                ("tar.ordinary", "x509"), ("mp.cpas-share-covered", "x509"),
                                                ("md.by-niss", "sts"), ("tar.ordinary", "sts")])
def test_a_sample_signed_by_samples_sign_gets_its_scenarios_answer(box: Sandbox, me: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch, scenario: str,
                                                                    how: str) -> None:
    wanted = by_id()[scenario]
    request = SAMPLES / wanted.service / scenario / "request.xml"
    cert = me / ("simple/doctor-74030902123" if how == "x509" else "me/doctor-74030902123")
    signed = tmp_path / "signed.xml"
    assert _sign(box, monkeypatch, str(request), "--cert", f"{cert}.cert.pem", "--key", f"{cert}.key.pem",
                 "--out", str(signed), *(["--sts", "doctor"] if how == "sts" else [])) == 0
    assert b"{{" not in signed.read_bytes() and b"wsse:Security" in signed.read_bytes()
    answer = _post(box, wanted.service, action(wanted), signed.read_bytes())
    facts = facts_of(wanted.service, wanted.caller.quality, signed.read_bytes(), answer, wanted.caller.ssin)
    assert wanted.matches(facts), answer[-2000:]


def test_samples_sign_says_which_placeholder_it_needs(box: Sandbox, me: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    request = SAMPLES / "integrated-care" / "ic.doctor.modify" / "request.xml"
    cert = me / "simple" / "doctor-74030902123"
    assert _sign(box, monkeypatch, str(request), "--cert", f"{cert}.cert.pem", "--key", f"{cert}.key.pem") == 2
    out, err = capsys.readouterr()
    assert out == "" and err.strip() == "error: {{inclusion1}}: give its value (--set inclusion1=VALUE)"


def test_samples_write_refuses_a_scenario_that_is_no_longer_the_demo(box: Sandbox, tmp_path: Path) -> None:
    # the first scenario's declaration made already (by the first test, or here): nothing is written
    from mycarenet_ic.conformance.runner import Credentials, Runner

    Runner(box.urls, Credentials(box.settings.data_dir, "x509")).play(by_id()["ic.doctor.declare"])
    target = tmp_path / "samples"
    done = support.sandbox_cli(box, "samples", "write", str(target), timeout=300)
    assert done.returncode == 2 and not target.exists()
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ic.doctor.declare: not the answer the scenario describes: code=ALREADY_INCLUDED")
    assert last.endswith("(is the sandbox on a fresh demo scenario? sandbox --reset-scenario)")


CLIENTS = {
    "integrated_care": ["patient: Peeters Jan Pieter", "inclusion: 91000153 principal 2025-04-01",
                        "inclusion: 91000252 information 2026-03-01"],
    "memberdata": ["MemberData: urn:oasis:names:tc:SAML:2.0:status:Success", "insurer: urn:be:cin:io:100"],
    "tarification": ["101076: fee 30.49, insurer 24.49, patient 6.00"],
    "mediprima": ["101076: fee 30.49, SPP 24.49, CPAS 6.00, patient 0.00"],
}


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_each_sample_client_runs_as_it_stands(box: Sandbox, me: Path, client: str) -> None:
    script = SAMPLES / "clients" / f"{client}.py"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "MYCARENET_DATA_DIR": str(box.settings.data_dir)}
    done = subprocess.run([sys.executable, str(script)], cwd=me, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == CLIENTS[client]


def test_there_is_a_client_per_service() -> None:
    services = {s.service.replace("-", "_") for s in by_id().values()}
    assert services == set(CLIENTS) == {p.stem for p in (SAMPLES / "clients").glob("*.py")} - {"sandbox_client"}


def test_the_readme_signing_commands_work_as_written(box: Sandbox, me: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.integration.test_readme_sts_example import command

    issue, sign = command("certs issue", "## Samples"), command("samples sign", "## Samples")
    assert issue[issue.index("--out") + 1] == "./me" and "--with-quality" not in issue  # what the fixture made
    monkeypatch.chdir(me)
    request = sign[2]
    assert sign[:2] == ["samples", "sign"] and _sign(box, monkeypatch, str(SAMPLES.parent / request), *sign[3:]) == 0
    wanted = by_id()[Path(request).parent.name]
    signed = (me / sign[sign.index("--out") + 1]).read_bytes()
    answer = _post(box, wanted.service, action(wanted), signed)
    assert wanted.matches(facts_of(wanted.service, "doctor", signed, answer, wanted.caller.ssin))
    readme = (SAMPLES.parent / "README.md").read_text()
    assert f"`python samples/clients/tarification.py` prints `{CLIENTS['tarification'][0]}`" in readme
