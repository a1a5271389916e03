"""Stored or remote text printed by ``mycarenet-ic`` cannot drive the terminal: escape sequences, C1
controls, bidi overrides and line breaks in audit rows, scenario data and error messages come out as
visible escapes, one row per line. Real sandbox, real HTTP on 127.0.0.1, the real command."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from mycarenet_ic.domain.identifiers import make_niss
from mycarenet_ic.persistence.audit import AuditEntry
from mycarenet_ic.sandbox import Sandbox
from mycarenet_ic.stubs.admin import admin_token
from mycarenet_ic.textsafe import UNSAFE
from tests import support

pytestmark = pytest.mark.integration

ATTACK = "\x1b[2J\x1b[31m"


def _command() -> list[str]:
    script = Path(sys.executable).with_name("mycarenet-ic")
    return [str(script)] if script.exists() else [sys.executable, "-m", "mycarenet_ic.cli"]


def _cli(box: Sandbox, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    if box.settings.database_url:
        env["DATABASE_URL"] = box.settings.database_url
    return subprocess.run([*_command(), *args, "--data-dir", str(box.settings.data_dir)],
                          capture_output=True, timeout=120, env=env)


def _unsafe_in(output: bytes) -> set[str]:
    """The characters of ``output`` a terminal would obey, the line ends aside."""
    return set(output.decode("utf-8")) & (UNSAFE - {"\n"})


def _raw_post(url: str, soap_action: str, body: bytes, timeout: float = 30) -> bytes:
    """A POST whose SOAPAction header goes out byte for byte (http.client refuses control characters)."""
    parts = urlsplit(url)
    assert parts.hostname == "127.0.0.1" and parts.port
    head = (f"POST {parts.path} HTTP/1.1\r\nHost: 127.0.0.1:{parts.port}\r\n"
            f"Content-Type: text/xml; charset=utf-8\r\nSOAPAction: \"{soap_action}\"\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode("latin-1")
    answer = b""
    deadline = time.monotonic() + timeout
    with support.connect(url, timeout) as conn:
        conn.sendall(head + body)
        while time.monotonic() < deadline:
            chunk = conn.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1."), answer[:200]
    return answer


def test_audit_show_escapes_a_soapaction_sent_over_http(sandbox: Sandbox) -> None:
    marker = f"{ATTACK}evil-{time.monotonic_ns()}"
    answer = _raw_post(sandbox.urls["cobrha"], marker, b"<not-soap/>")
    stored = [r for r in sandbox.platform.audit.rows() if marker in str(r["operation"])]
    out = _cli(sandbox, "audit", "show", "--limit", "20")
    assert out.returncode == 0, out.stderr
    assert b"\x1b" not in out.stdout and not _unsafe_in(out.stdout)
    if stored:  # the server let the header through: the row is shown, escaped
        assert b"\\x1b[2J\\x1b[31mevil-" in out.stdout
    else:  # the server refused the header itself (400), before any audit
        assert answer.split(b"\r\n", 1)[0].split()[1] == b"400"
        assert b"evil-" not in out.stdout


def test_audit_show_escapes_every_field_written_through_the_audit_api(sandbox: Sandbox) -> None:
    sandbox.platform.audit.append(AuditEntry(
        service="cobrha\x1b]0;owned\x07", operation=f"op{ATTACK}", caller="doctor:\u202e12345",
        outcome="DENIED", request_id="r\r\x9b2J", detail="first line\nsecond line\tand\x08\x7f"))
    out = _cli(sandbox, "audit", "show", "--limit", "1")
    assert out.returncode == 0, out.stderr
    assert b"\x1b" not in out.stdout and not _unsafe_in(out.stdout)
    assert out.stdout.count(b"\n") == 1  # one row, one line
    line = out.stdout.decode()
    for shown in ("cobrha\\x1b]0;owned\\x07", "op\\x1b[2J\\x1b[31m", "doctor:\\u202e12345", "req=r\\r\\x9b2J",
                  "first line\\nsecond line\\tand\\x08\\x7f"):
        assert shown in line, line


def test_scenario_show_escapes_remote_text_and_stays_json(sandbox: Sandbox) -> None:
    admin = sandbox.urls["scenario-admin"].rstrip("/")
    headers = {"Authorization": f"Bearer {admin_token(sandbox.settings.data_dir)}"}
    ssin = make_niss(dt.date(1961, 2, 3), 777)
    name = f"Evil{ATTACK}\u202eredro\x9b"
    added = requests.post(admin + "/scenario/changes", timeout=10, headers=headers, json={
        "action": "add-person", "ssin": ssin, "last_name": name, "first_names": ["Ève\x07"],
        "birth_date": "1961-02-03", "sex": "female"})  # the scenario's values: male, female, unknown
    assert added.status_code == 200, added.text
    out = _cli(sandbox, "scenario", "show")
    assert out.returncode == 0, out.stderr
    assert b"\x1b" not in out.stdout and not _unsafe_in(out.stdout)
    shown = json.loads(out.stdout)
    assert [(p["last_name"], p["first_names"]) for p in shown["persons"] if p["ssin"] == ssin] == [
        (name, ["Ève\x07"])]
    assert "Ève".encode() in out.stdout  # letters stay readable


def test_an_error_message_echoing_input_is_one_escaped_line(sandbox: Sandbox) -> None:
    out = _cli(sandbox, "scenario", "death", "--ssin", f"{ATTACK}\u202e\nforged line", "--date", "2026-01-01")
    assert out.returncode != 0
    assert out.stdout == b""
    assert b"\x1b" not in out.stderr and not _unsafe_in(out.stderr)
    assert out.stderr.count(b"\n") == 1 and out.stderr.startswith(b"error: "), out.stderr
    assert b"\\x1b[2J\\x1b[31m\\u202e\\nforged line" in out.stderr


def test_scenario_commands_without_a_reachable_sandbox_fail_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    data = tmp_path / "data"

    def scenario_show() -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([*_command(), "scenario", "show", "--data-dir", str(data)],
                              capture_output=True, timeout=120, env=env)

    out = scenario_show()  # no sandbox.json at all
    assert out.returncode != 0 and out.stderr.count(b"\n") == 1 and out.stderr.startswith(b"error: "), out.stderr
    with socket.socket() as closed:  # a port nobody listens on any more
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    data.mkdir()
    (data / "sandbox.json").write_text(json.dumps({"services": {"scenario-admin": f"http://127.0.0.1:{port}/"}}))
    out = scenario_show()
    assert out.returncode != 0 and out.stderr.count(b"\n") == 1 and out.stderr.startswith(b"error: "), out.stderr
