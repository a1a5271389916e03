"""README "Encrypted MemberData (ETEE)": the section's ``certs issue … --etk`` command, then the Python block
after ``<!-- example: etee -->`` as it stands, against a running sandbox (the mechanism of
test_readme_sts_example: ``$MYCARENET_DATA_DIR`` names the data directory, the working directory holds ``me/``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mycarenet_ic.cli import main
from mycarenet_ic.sandbox import Sandbox
from tests.integration.test_readme_sts_example import README, _section, command, example

pytestmark = pytest.mark.integration

SECTION = "## Encrypted MemberData (ETEE)"


def test_the_readme_etee_example_seals_a_request_and_opens_the_answer(
        sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    data = sandbox.settings.data_dir
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MYCARENET_DATA_DIR", str(data))
    assert main(command("certs issue", SECTION)) == 0
    assert (tmp_path / "me" / "doctor-74030902123-etk.key.pem").exists()
    assert (tmp_path / "me" / "doctor-74030902123.etk").exists()
    capsys.readouterr()
    before = len(sandbox.platform.audit.rows())

    exec(compile(example("etee", SECTION), str(README), "exec"), {"__name__": "readme_example"})  # noqa: S102

    printed = capsys.readouterr().out.splitlines()
    assert printed == ["answer: encryptedForKnownRecipient", "MemberData: urn:oasis:names:tc:SAML:2.0:status:Success"]
    rows = [r for r in sandbox.platform.audit.rows()[before:] if r["service"] in ("memberdata", "etk-depot")]
    assert [(r["service"], r["outcome"]) for r in rows] == [
        ("etk-depot", "OK"), ("etk-depot", "OK"), ("memberdata", "OK")], rows


def test_the_readme_says_what_it_prints() -> None:
    section = _section(SECTION).replace("\n", " ")
    assert ("It prints `answer: encryptedForKnownRecipient` and "
            "`MemberData: urn:oasis:names:tc:SAML:2.0:status:Success`") in section
    assert "--etk" in command("certs issue", SECTION) and "--hok" in command("certs issue", SECTION)
