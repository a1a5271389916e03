"""The ``mycarenet-ic`` command: certs, audit verify, scenario changes, and the sandbox process."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import pty
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12
from sqlalchemy import delete, update

from mycarenet_ic.app import Platform
from mycarenet_ic.cli import main
from mycarenet_ic.clients.base import SignedSoapClient
from mycarenet_ic.config import Settings
from mycarenet_ic.domain.inclusions import Consent, Inclusion, Status
from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.persistence.tables import audit_log
from mycarenet_ic.sandbox import Sandbox
from mycarenet_ic.security.pki import KeyPair, identity_from_certificate
from mycarenet_ic.security.wssec import Signer
from tests import support
from tests.integration.test_sandbox_process import SERVICES

pytestmark = pytest.mark.integration


def test_certs_init_and_issue(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    assert main(["certs", "init", "--data-dir", str(data)]) == 0
    assert (data / "pki" / "ca.cert.pem").exists() and (data / "pki" / "mycarenet.key.pem").stat().st_mode & 0o077 == 0
    out = tmp_path / "out"
    assert main(["certs", "issue", "--data-dir", str(data), "--ssin", support.PHARMACIST_SSIN,
                 "--nihii", "61229665000", "--quality", "pharmacist", "--out", str(out),
                 "--p12-password", "secret"]) == 0
    printed = capsys.readouterr().out
    assert f"SSIN={support.PHARMACIST_SSIN}" in printed and "sts token --as pharmacist" in printed
    # By default an identity certificate as eHealth issues it: the person only, no quality, no NIHII.
    cert = x509.load_pem_x509_certificate((out / f"pharmacist-{support.PHARMACIST_SSIN}.cert.pem").read_bytes())
    assert "QUALITY=" not in cert.subject.rfc4514_string() and "NIHII=" not in cert.subject.rfc4514_string()
    ident = identity_from_certificate(cert)
    assert (ident.quality, ident.ssin, ident.nihii) == (Quality.CITIZEN, support.PHARMACIST_SSIN, None)
    key, p12_cert, _ = pkcs12.load_key_and_certificates(
        (out / f"pharmacist-{support.PHARMACIST_SSIN}.p12").read_bytes(), b"secret")
    assert key is not None and p12_cert == cert
    assert not list(out.glob("*-hok.*"))


def test_certs_issue_with_quality_is_the_simple_x509_mode(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["certs", "issue", "--data-dir", str(tmp_path / "data"), "--ssin", support.PHARMACIST_SSIN,
                 "--nihii", "61229665000", "--quality", "pharmacist", "--with-quality", "--out", str(out)]) == 0
    assert "sts token" not in capsys.readouterr().out
    cert = x509.load_pem_x509_certificate((out / f"pharmacist-{support.PHARMACIST_SSIN}.cert.pem").read_bytes())
    ident = identity_from_certificate(cert)
    assert (ident.quality.value, ident.ssin, ident.nihii) == ("pharmacist", support.PHARMACIST_SSIN, "61229665000")


def test_certs_issue_hok_writes_a_second_key_for_the_same_holder(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["certs", "issue", "--data-dir", str(tmp_path / "data"), "--quality", "pharmacy",
                 "--nihii", support.PHARMACY_NIHII, "--hok", "--out", str(out), "--name", "ph"]) == 0
    printed = capsys.readouterr().out
    assert f"hok p12: {out / 'ph-hok.p12'}" in printed
    identity, hok = (KeyPair((out / f"{s}.key.pem").read_bytes(), (out / f"{s}.cert.pem").read_bytes())
                     for s in ("ph", "ph-hok"))
    assert identity.certificate.public_key().public_numbers() != hok.certificate.public_key().public_numbers()  # type: ignore[union-attr]
    assert identity.certificate.serial_number != hok.certificate.serial_number
    holders = [identity_from_certificate(c.certificate) for c in (identity, hok)]
    assert [(h.quality, h.nihii) for h in holders] == [(Quality.PHARMACY, support.PHARMACY_NIHII)] * 2
    assert "QUALITY=" not in hok.certificate.subject.rfc4514_string()
    assert (out / "ph-hok.key.pem").stat().st_mode & 0o077 == 0 and (out / "ph-hok.p12").stat().st_mode & 0o077 == 0
    key, p12_cert, chain = pkcs12.load_key_and_certificates((out / "ph-hok.p12").read_bytes(), b"sandbox")
    assert key is not None and p12_cert == hok.certificate and len(chain) == 1


@pytest.mark.parametrize("extra", [["--with-quality", "--hok"], ["--with-quality", "--identity"]])
def test_certs_issue_refuses_a_simple_mode_certificate_with_identity_options(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str]) -> None:
    assert main(["certs", "issue", "--data-dir", str(tmp_path / "data"), "--ssin", support.DOCTOR_SSIN,
                 "--quality", "doctor", "--out", str(tmp_path / "o"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --with-quality") and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_certs_issue_refuses_bad_identifiers(tmp_path: Path) -> None:
    assert main(["certs", "issue", "--data-dir", str(tmp_path), "--ssin", "12345678901", "--quality", "doctor",
                 "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()
    assert main(["certs", "issue", "--data-dir", str(tmp_path), "--quality", "pharmacy",
                 "--out", str(tmp_path / "o")]) == 2


def test_issued_certificate_calls_every_stub_through_zeep(sandbox: Sandbox, tmp_path: Path) -> None:
    data = str(sandbox.settings.data_dir)
    assert main(["certs", "issue", "--data-dir", data, "--ssin", support.DOCTOR_SSIN, "--nihii",
                 support.DOCTOR_NIHII, "--quality", "doctor", "--with-quality", "--out", str(tmp_path),
                 "--name", "me"]) == 0
    me = KeyPair((tmp_path / "me.key.pem").read_bytes(), (tmp_path / "me.cert.pem").read_bytes())
    verifier = sandbox.platform.answer_verifier()
    calls: list[tuple[str, str, str, str, dict[str, Any]]] = [
        ("sandbox-attributeauthority-v1.wsdl",
         "{urn:be:fgov:ehealth:sandbox:attributeauthority:v1}AttributeAuthoritySoapBinding",
         "attribute-authority", "hasTherapeuticLink",
         {"Patient": {"Ssin": support.PATIENT_LINKED},
          "HcParty": {"Nihii": support.DOCTOR_NIHII, "Type": "persphysician"}, "Date": dt.date(2026, 11, 1)}),
        ("sandbox-cobrha-v1.wsdl", "{urn:be:fgov:ehealth:sandbox:addressbook:v1}CobrhaSoapBinding", "cobrha",
         "getProfessionalContactInfo", {"NIHII": support.DOCTOR_NIHII}),
        ("sandbox-nationalregister-v1.wsdl", "{urn:be:fgov:ehealth:sandbox:rn:v1}NationalRegisterSoapBinding",
         "national-register", "searchPersonBySsin", {"Criteria": {"Ssin": support.PATIENT_LINKED}}),
    ]
    before = len(sandbox.platform.audit.rows())
    for wsdl, binding, service, op, args in calls:
        client = SignedSoapClient(wsdl, binding, sandbox.urls[service], Signer(me), verifier)
        answer = client.call(op, **args)
        assert answer.InResponseTo is not None
    rows = sandbox.platform.audit.rows()[before:]
    assert [r["caller"] for r in rows] == [f"doctor:{support.DOCTOR_NIHII}"] * 3
    assert {r["outcome"] for r in rows} == {"OK"}


def test_audit_verify_names_the_broken_row(sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    data = ["--data-dir", str(sandbox.settings.data_dir)]
    env_url = sandbox.settings.database_url
    if env_url:
        os.environ["DATABASE_URL"] = env_url
    gateways = sandbox.platform.gateways(sandbox.urls)
    for _ in range(3):
        assert gateways.national_register.person(support.PATIENT_LINKED) is not None
    try:
        assert main(["audit", "verify", *data]) == 0
        assert "audit chain OK" in capsys.readouterr().out
        rows = sandbox.platform.audit.rows()
        assert len(rows) >= 3
        target = int(rows[1]["seq"])  # type: ignore[call-overload]
        with sandbox.platform.engine.begin() as conn:
            conn.execute(update(audit_log).where(audit_log.c.seq == target).values(caller="someone-else"))
        assert main(["audit", "verify", *data]) == 1
        assert f"BROKEN at row {target}" in capsys.readouterr().out
        with sandbox.platform.engine.begin() as conn:
            conn.execute(update(audit_log).where(audit_log.c.seq == target).values(caller=rows[1]["caller"]))
            conn.execute(delete(audit_log).where(audit_log.c.seq == target + 1))
        assert main(["audit", "verify", *data]) == 1
        assert f"BROKEN at row {target + 2}" in capsys.readouterr().out
    finally:
        os.environ.pop("DATABASE_URL", None)


# The queue each child's stdout is pumped into, by process id, for _rest to read on.
_PUMPED: dict[int, queue.Queue[str | None]] = {}


def _read_lines_until(proc: subprocess.Popen[str], predicate: Callable[[list[str]], bool],
                      timeout: float) -> list[str]:
    """Read the child's stdout in a thread (no select on a buffered pipe) until ``predicate`` holds."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        if predicate(seen):
            _PUMPED[proc.pid] = lines
            return seen
    raise AssertionError(f"sandbox did not print what was expected: {seen}")


def _rest(proc: subprocess.Popen[str]) -> list[str]:
    rest: list[str] = []
    q = _PUMPED.pop(proc.pid)
    while True:
        line = q.get(timeout=30)
        if line is None:
            return rest
        rest.append(line)


def test_sandbox_command_prints_ready_lines_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mycarenet_ic.cli", "sandbox", "--data-dir", str(tmp_path / "d"), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = _read_lines_until(proc, lambda ls: any(x.startswith("Ctrl-C") for x in ls), 90)
        ready = dict(line.split()[1:3] for line in lines if line.startswith("READY "))
        support.trust(tmp_path / "d")
        assert set(ready) == SERVICES
        for name, url in ready.items():
            assert url.startswith("https://127.0.0.1:")  # HTTPS, as production
            if name not in ("scenario-admin", "web"):
                wsdl = requests.get(url + "?wsdl", timeout=10)
                assert wsdl.status_code == 200 and url.encode() in wsdl.content
        # the scenario command reaches the running sandbox
        out = subprocess.run([sys.executable, "-m", "mycarenet_ic.cli", "scenario", "death", "--data-dir",
                              str(tmp_path / "d"), "--ssin", support.PATIENT_LINKED, "--date", "2026-11-20"],
                             capture_output=True, text=True, timeout=60, env=env)
        assert out.returncode == 0 and '"Deceased"' in out.stdout
        saved = Settings(data_dir=tmp_path / "d").data_dir / "scenario.json"
        assert support.PATIENT_LINKED in saved.read_text()
        # ... and so does the on-demand mutation sync: the death closes Peeters' two demo inclusions
        out = subprocess.run([sys.executable, "-m", "mycarenet_ic.cli", "mutations", "sync", "--data-dir",
                              str(tmp_path / "d")], capture_output=True, text=True, timeout=60, env=env)
        assert out.returncode == 0, out.stderr
        assert "deaths 1" in out.stdout and "inclusions changed: 2" in out.stdout
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert "stopped" in _rest(proc)
        with pytest.raises(requests.ConnectionError):
            requests.get(ready["cobrha"] + "?wsdl", timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_export_and_purge_audit_rows_name_the_command_that_ran_them(
        platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch run is audited as its own (not as the mutation sync's): the insurer export and the purge."""
    if platform.settings.database_url:
        monkeypatch.setenv("DATABASE_URL", platform.settings.database_url)
    ended = Inclusion(id="", patient="", project="91000351", status=Status.INFORMATION,
                      declared_start=dt.date(2012, 1, 1), declared_end=dt.date(2014, 5, 2),
                      consent=Consent.AGREE, consent_date=dt.date(2012, 1, 1))
    platform.inclusions.write(ssin="68042702242", sender="test", request_id="ended-1", operation="declare",
                              request_hash="h", operator=None, change=lambda _current: (ended, "declaration"))
    data = str(platform.settings.data_dir)
    assert main(["export", "insurers", "--data-dir", data, "--out", str(tmp_path / "out")]) == 0
    assert main(["purge", "--data-dir", data, "--as-of", "2026-11-22"]) == 0
    assert platform.inclusions.inclusions_of("68042702242") == []
    batch = [(r["operation"], r["caller"]) for r in platform.audit.rows()
             if r["operation"] in ("ExportInsurers", "Purge")]
    assert batch == [("ExportInsurers", "platform:export"), ("Purge", "platform:purge")]


def _cli(*args: str, cwd: Path, env: dict[str, str], stderr: Any = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mycarenet_ic", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=stderr, text=True, timeout=120, check=False)


def test_one_data_directory_wherever_the_command_is_run(tmp_path: Path) -> None:
    """Given none, every command of a user takes the same per-user directory and says so: ``certs issue`` run
    elsewhere issues from the CA ``certs init`` made, and no ./var/sandbox appears where they ran."""
    env = {k: v for k, v in os.environ.items() if k not in ("MYCARENET_DATA_DIR", "DATABASE_URL")}
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    own = tmp_path / "xdg" / "mycarenet-ic"
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    made = _cli("certs", "init", cwd=here, env=env)
    assert made.returncode == 0 and made.stderr.startswith(f"data directory: {own} (the default;"), made.stderr
    issued = _cli("certs", "issue", "--quality", "doctor", "--ssin", support.DOCTOR_SSIN, "--out", "me",
                  "--name", "me", cwd=there, env=env)
    assert issued.returncode == 0 and f"data directory: {own} (the default;" in issued.stderr, issued.stderr
    ca = x509.load_pem_x509_certificate((own / "pki" / "ca.cert.pem").read_bytes())
    cert = x509.load_pem_x509_certificate((there / "me" / "me.cert.pem").read_bytes())
    cert.verify_directly_issued_by(ca)  # raises unless the one CA signed it
    assert not (here / "var").exists() and not (there / "var").exists()
    assert sorted(p.name for p in (tmp_path / "xdg").iterdir()) == ["mycarenet-ic"]


def test_global_options_before_or_after_the_subcommand_and_the_directory_named(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    before = _cli("--data-dir", str(tmp_path / "a"), "--log-level", "info", "certs", "init", cwd=tmp_path, env=env)
    after = _cli("certs", "init", "--data-dir", str(tmp_path / "b"), "--verbose", cwd=tmp_path, env=env)
    both = _cli("--data-dir", str(tmp_path / "ignored"), "certs", "init", "--data-dir", str(tmp_path / "c"),
                cwd=tmp_path, env=env)
    for done, name in ((before, "a"), (after, "b"), (both, "c")):
        assert done.returncode == 0 and f"sandbox PKI in {tmp_path / name}/pki" in done.stdout, done
        assert done.stderr == ""  # named by the caller and not on a terminal: nothing to say
    assert not (tmp_path / "ignored").exists()
    # On a terminal the directory is always named (stderr), whoever named it.
    primary, secondary = pty.openpty()
    try:
        shown = _cli("certs", "init", "--data-dir", str(tmp_path / "a"), cwd=tmp_path, env=env, stderr=secondary)
        os.close(secondary)
        secondary = -1
        said = b""
        with contextlib.suppress(OSError):  # EIO once the child's end is closed and everything read
            while chunk := os.read(primary, 4096):
                said += chunk
    finally:
        os.close(primary)
        if secondary != -1:
            os.close(secondary)
    assert shown.returncode == 0 and said.decode().strip() == f"data directory: {tmp_path / 'a'}"


def test_a_second_sandbox_on_a_data_directory_is_refused_a_crashed_one_does_not_block(tmp_path: Path) -> None:
    from mycarenet_ic.sandbox import read_running

    data = tmp_path / "data"
    data.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    # A sandbox killed outright (no stop, no cleanup): its lock file and sandbox.json stay behind.
    crash = ("import json, os, signal, sys; from pathlib import Path; from mycarenet_ic.datadir import SandboxLock;"
             "d = Path(sys.argv[1]); SandboxLock(d).acquire();"
             "(d / 'sandbox.json').write_text(json.dumps({'services': {'sts': 'https://127.0.0.1:1/sts'}}));"
             "os.kill(os.getpid(), signal.SIGKILL)")
    assert subprocess.run([sys.executable, "-c", crash, str(data)], env=env, timeout=60).returncode == -signal.SIGKILL
    assert (data / "sandbox.lock").exists() and (data / "sandbox.json").exists()
    with pytest.raises(FileNotFoundError, match="was left by one that is gone"):
        read_running(data)
    with support.running_sandbox(data) as box:  # the dead one's lock does not block
        state = (data / "sandbox.json").read_text()
        assert read_running(data) == box.urls
        second = _cli("sandbox", "--data-dir", str(data), "--port", "0", cwd=tmp_path, env=env)
        assert second.returncode == 2 and second.stdout == "", second
        assert second.stderr == (f"error: a sandbox is already running on {data} (process {os.getpid()}; its "
                                 "addresses are in sandbox.json): use that one, stop it first, or give --data-dir "
                                 "(or MYCARENET_DATA_DIR) for a second sandbox\n")
        assert (data / "sandbox.json").read_text() == state  # the running one's state untouched
        assert requests.get(box.urls["sts"] + "?wsdl", timeout=10).status_code == 200
    assert not (data / "sandbox.json").exists()
    with pytest.raises(FileNotFoundError, match="no sandbox is running"):
        read_running(data)


@pytest.mark.parametrize(("url", "extras"), [("postgresql://me@127.0.0.1:5432/db", "postgres"),
                                             ("postgresql+psycopg://me@127.0.0.1/db", "postgres"), ("", "")])
def test_scripts_sandbox_installs_the_postgresql_driver_when_the_database_is_postgresql(
        tmp_path: Path, url: str, extras: str) -> None:
    """scripts/sandbox as it is, beside a lib.sh that records what it is asked to install and a stand-in command."""
    root = Path(__file__).resolve().parents[2]
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "sandbox").write_bytes((root / "scripts" / "sandbox").read_bytes())
    (tmp_path / "scripts" / "lib.sh").write_text('ensure_venv() { echo "extras=[$1]" > asked; }\n')
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "mycarenet-ic").write_text('#!/bin/sh\necho "ran $*"\n')
    (tmp_path / ".venv" / "bin" / "mycarenet-ic").chmod(0o755)
    done = subprocess.run(["bash", str(tmp_path / "scripts" / "sandbox"), "--port", "0"], capture_output=True,
                          text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "DATABASE_URL": url}, check=False)
    assert done.returncode == 0 and done.stdout == "ran sandbox --port 0\n", done
    assert (tmp_path / "asked").read_text() == f"extras=[{extras}]\n"
