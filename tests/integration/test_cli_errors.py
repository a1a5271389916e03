"""``mycarenet-ic`` fails in one ``error: …`` line that says what to do, never a traceback: a data directory
that is missing, a file or not writable, a database it cannot open or whose driver is missing, a date it cannot
read, a port in use, a sandbox or server that is not there, an argument missing, an output pipe closed early.
The real command, in its own process (exit 2 for what the person can fix)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _command() -> list[str]:
    script = Path(sys.executable).with_name("mycarenet-ic")
    return [str(script)] if script.exists() else [sys.executable, "-m", "mycarenet_ic.cli"]


def _run(*args: str, env: dict[str, str] | None = None, **kw: object) -> subprocess.CompletedProcess[bytes]:
    base = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return subprocess.run([*_command(), *args], capture_output=True, timeout=120,  # type: ignore[call-overload]
                          env={**base, **(env or {})}, **kw)


def _one_error_line(out: subprocess.CompletedProcess[bytes], code: int = 2) -> str:
    assert out.returncode == code, out
    assert b"Traceback" not in out.stderr, out.stderr.decode()
    lines = out.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert out.stdout == b""
    return lines[0]


@pytest.mark.parametrize("command", [["audit", "show"], ["audit", "verify"], ["export", "insurers", "--out", "x"],
                                     ["purge"], ["statistics"], ["scenario", "show"], ["inspect", "list"]])
def test_a_command_that_reads_a_data_directory_stops_when_there_is_none(tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "no" / "such" / "dir"
    line = _one_error_line(_run(*command, "--data-dir", str(missing)))
    assert f"no data directory at {missing}: start the sandbox there first" in line
    assert not missing.exists() and not (tmp_path / "x").exists()  # nothing was created on the way (no new CA)


def test_a_data_directory_that_is_a_file_is_one_error_line(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("not a directory")
    for command in (["certs", "init"], ["audit", "show"], ["sandbox", "--port", "0"]):
        line = _one_error_line(_run(*command, "--data-dir", str(tmp_path / "data")))
        assert f"the data directory {tmp_path / 'data'} is a file, not a directory: give --data-dir" in line
    assert (tmp_path / "data").read_text() == "not a directory"


def test_a_data_directory_nobody_may_write_is_one_error_line(tmp_path: Path) -> None:
    # /sys refuses every write, root's too (root passes any permission check: a 0500 directory would not do)
    read_only = Path("/sys") if os.geteuid() == 0 else tmp_path / "ro"
    if read_only != Path("/sys"):
        read_only.mkdir(mode=0o500)
    line = _one_error_line(_run("certs", "init", "--data-dir", str(read_only)))
    assert f"the data directory {read_only} is not writable" in line and "run as its owner" in line
    line = _one_error_line(_run("certs", "init", "--data-dir", str(read_only / "data")))
    assert f"cannot make the data directory {read_only / 'data'} in {read_only}" in line
    assert not (read_only / "data").exists() and not (read_only / "pki").exists()


@pytest.mark.parametrize(("url", "says"), [
    ("mysql://me:s3cret@127.0.0.1/db", "DATABASE_URL names mysql, whose driver is not installed"),
    ("postgresql+psycopg2://me:s3cret@127.0.0.1/db", "DATABASE_URL names postgresql, whose driver is not installed"),
    ("nope", "DATABASE_URL is not a database URL this tool can use"),
    ("oracle+nosuch://me:s3cret@127.0.0.1/db", "DATABASE_URL is not a database URL this tool can use"),
])
def test_a_database_url_that_cannot_be_used_is_one_error_line(tmp_path: Path, url: str, says: str) -> None:
    for command in (["prepare"], ["sandbox", "--port", "0"]):
        line = _one_error_line(_run(*command, "--data-dir", str(tmp_path / "data"), env={"DATABASE_URL": url}))
        assert says in line and "s3cret" not in line  # never the URL itself: it may hold a password
        if "psycopg2" in url:
            assert "pip install 'mycarenet-ic[postgres]'" in line
    assert not (tmp_path / "data" / "pki").exists()


@pytest.mark.parametrize(("command", "option"), [(["export", "insurers", "--out", "x"], "--since"),
                                                (["purge"], "--as-of"), (["statistics"], "--as-of")])
def test_a_date_that_cannot_be_read_is_one_error_line(tmp_path: Path, command: list[str], option: str) -> None:
    line = _one_error_line(_run(*command, "--data-dir", str(tmp_path / "data"), option, "2026-02-30\x1b[2J"))
    assert f"argument {option}: not a date (YYYY-MM-DD" in line
    assert "\\x1b[2J" in line
    line = _one_error_line(_run(*command, "--data-dir", str(tmp_path / "data"), option, "notadate"))
    prog = " ".join(command[:2] if command[0] == "export" else command[:1])
    assert "'notadate'" in line and f"(see mycarenet-ic {prog} --help)" in line


@pytest.mark.parametrize(("args", "says"), [
    (["certs"], "mycarenet-ic certs: missing a command: init or issue"),
    (["certs", "issue"], "mycarenet-ic certs issue: missing --quality, --out"),
    (["inspect", "show"], "mycarenet-ic inspect show: missing the id argument"),
    ([], "mycarenet-ic: missing a command: prepare or certs or "),
])
def test_a_missing_argument_is_named_readably(args: list[str], says: str) -> None:
    assert says in _one_error_line(_run(*args))


def test_scenario_and_sts_without_a_sandbox_say_to_start_one(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert _run("certs", "issue", "--data-dir", str(data), "--ssin", "74030902123", "--quality", "doctor",
                "--out", str(tmp_path / "me"), "--name", "me").returncode == 0
    line = _one_error_line(_run("scenario", "show", "--data-dir", str(data)))
    assert f"no sandbox is running on {data}" in line and "start it (mycarenet-ic sandbox)" in line
    sts = ["sts", "token", "--data-dir", str(data), "--cert", str(tmp_path / "me" / "me.cert.pem"),
           "--key", str(tmp_path / "me" / "me.key.pem"), "--as", "doctor"]
    assert "start the sandbox, or give --url" in _one_error_line(_run(*sts))
    with socket.socket() as closed:  # a port nobody listens on any more
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    line = _one_error_line(_run(*sts, "--url", f"https://127.0.0.1:{port}/sts"))
    assert "ConnectionError: the STS did not answer: is the sandbox running? (or check --url)" in line
    line = _one_error_line(_run(*sts, "--url", "127.0.0.1/sts"))
    assert "--url '127.0.0.1/sts' is not an http(s) address" in line


def test_a_port_in_use_is_one_error_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _one_error_line(_run("sandbox", "--data-dir", str(tmp_path / "data"), "--port", str(port)))
    assert f"port {port} on 127.0.0.1 is already in use" in line and "--port 0" in line
    assert not (tmp_path / "data" / "sandbox.json").exists()


def test_version_and_python_dash_m() -> None:
    from mycarenet_ic import __version__

    for command in (_command(), [sys.executable, "-m", "mycarenet_ic"]):
        out = subprocess.run([*command, "--version"], capture_output=True, timeout=120, check=False)
        assert out.returncode == 0 and out.stdout.decode().strip() == f"mycarenet-ic {__version__}", out


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
