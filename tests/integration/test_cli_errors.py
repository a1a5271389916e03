"""``mycarenet-ic`` fails in one ``error: …`` line, never a traceback: a database it cannot open, a date
it cannot read, an output pipe closed early. The real command, in its own process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _command() -> list[str]:
    script = Path(sys.executable).with_name("mycarenet-ic")
    return [str(script)] if script.exists() else [sys.executable, "-m", "mycarenet_ic.cli"]


def _run(*args: str, **kw: object) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return subprocess.run([*_command(), *args], capture_output=True, timeout=120, env=env, **kw)  # type: ignore[call-overload]


def _one_error_line(out: subprocess.CompletedProcess[bytes]) -> str:
    assert out.returncode == 1, out
    assert b"Traceback" not in out.stderr, out.stderr.decode()
    lines = out.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


@pytest.mark.parametrize("command", [["audit", "show"], ["audit", "verify"]])
def test_a_database_that_cannot_be_opened_is_one_error_line(tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "no" / "such" / "dir"
    line = _one_error_line(_run(*command, "--data-dir", str(missing)))
    # audit show first checks who reads (no data directory, no operator); verify opens the database
    assert ("no data directory at" in line) if command[1] == "show" else ("unable to open database file" in line)
    assert not missing.exists()  # nothing was created on the way


@pytest.mark.parametrize(("command", "option"), [(["export", "insurers", "--out", "x"], "--since"),
                                                (["purge"], "--as-of")])
def test_a_date_that_cannot_be_read_is_one_error_line(tmp_path: Path, command: list[str], option: str) -> None:
    line = _one_error_line(_run(*command, "--data-dir", str(tmp_path / "data"), option, "2026-02-30\x1b[2J"))
    assert "\\x1b[2J" in line


def test_an_output_closed_early_ends_the_command_quietly(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    # The shell's ``… | head -1``: a reader that has gone before the command writes.
    read, write = os.pipe()
    os.close(read)
    try:
        out = subprocess.run([*_command(), "certs", "init", "--data-dir", data], stdout=write,
                             stderr=subprocess.PIPE, timeout=120,
                             env={k: v for k, v in os.environ.items() if k != "DATABASE_URL"})
    finally:
        os.close(write)
    assert b"Traceback" not in out.stderr and b"Exception ignored" not in out.stderr, out.stderr.decode()
    assert out.returncode == 1
