"""README "Authenticating as in production": the Python block after ``<!-- example: sts -->`` runs as it
stands against a running sandbox, after the section's own ``certs issue`` command. Its preamble is the
README's: ``$MYCARENET_DATA_DIR`` names the sandbox's data directory (whose ``sandbox.json`` gives the
addresses), and the working directory holds the ``me/`` the command wrote."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from mycarenet_ic.cli import main
from mycarenet_ic.sandbox import Sandbox

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## Authenticating as in production"


def _section(title: str = SECTION) -> str:
    text = README.read_text()
    start = text.index(title)
    end = text.find("\n## ", start + len(title))
    return text[start:end if end != -1 else len(text)]


def example(marker: str = "sts", title: str = SECTION) -> str:
    """The ```python block after ``<!-- example: <marker> -->`` in the README section ``title``."""
    found = re.search(rf"<!-- example: {marker} -->\n```python\n(.*?)\n```\n", _section(title), re.DOTALL)
    assert found, f"README: no ```python block after <!-- example: {marker} -->"
    return found.group(1)


def command(name: str, title: str = SECTION) -> list[str]:
    """The arguments of the section's ``mycarenet-ic <name> …`` command (continued lines joined)."""
    block = re.search(r"\n```\n(.*?)\n```\n", _section(title), re.DOTALL)
    assert block, "README: no command block in the section"
    lines = block.group(1).replace("\\\n", " ").splitlines()
    words = shlex.split(next(line for line in lines if f"mycarenet-ic {name} " in line))
    return words[words.index(name.split()[0]):]


def test_the_readme_sts_example_gets_a_token_and_calls_memberdata(
        sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    data = sandbox.settings.data_dir
    assert (data / "sandbox.json").exists()  # the running sandbox's addresses, which the example reads
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MYCARENET_DATA_DIR", str(data))
    assert main(command("certs issue")) == 0  # as the README says, into ./me, from the data dir's CA
    assert (tmp_path / "me" / "doctor-74030902123-hok.key.pem").exists()
    capsys.readouterr()
    assert main(command("sts token")) == 0  # the README's second command prints the token
    assert "urn:be:fgov:person:ssin:doctor:boolean" in capsys.readouterr().out
    before = len(sandbox.platform.audit.rows())

    exec(compile(example(), str(README), "exec"), {"__name__": "readme_example"})  # noqa: S102 - our README

    printed = capsys.readouterr().out.splitlines()
    assert printed == ["certified: doctor 11200035003", "MemberData: urn:oasis:names:tc:SAML:2.0:status:Success"]
    rows = sandbox.platform.audit.rows()[before:]
    memberdata = [r for r in rows if r["service"] == "memberdata"]
    assert [(r["caller"], r["outcome"]) for r in memberdata] == [("doctor:11200035003", "OK")], rows


def test_the_readme_says_what_it_prints() -> None:
    section = _section()
    assert "It prints `certified: doctor 11200035003` and `MemberData: urn:oasis:names:tc:SAML:2.0:status:Success`" \
        in section.replace("\n", " ")
    assert "--hok" in command("certs issue") and "--with-quality" not in command("certs issue")
    assert command("sts token")[-2:] == ["--as", "doctor"] and "--hok-key" in command("sts token")
