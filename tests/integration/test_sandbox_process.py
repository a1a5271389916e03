"""The ``mycarenet-ic sandbox`` process: one port, a path per service; it stops on a signal (finishing what
is in flight) or when its standard output is closed; no port left serving when it cannot start, no
thread left that keeps a process alive after a stop. Real processes
and sockets on 127.0.0.1, ephemeral ports, deadlines instead of sleeps."""

from __future__ import annotations

import select
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from mycarenet_ic.config import Settings
from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.sandbox import Sandbox, read_running
from mycarenet_ic.security.pki import Pki
from mycarenet_ic.security.wssec import Signer
from mycarenet_ic.server import free_port
from tests import support
from tests.integration.conftest import sandbox_command, sandbox_env
from tests.integration.test_outside_attacks import consult_body

pytestmark = pytest.mark.integration

SERVICES = {"attribute-authority", "cobrha", "national-register", "sts", "coding", "etk-depot", "scenario-admin",
            "integrated-care", "memberdata", "tarification", "mediprima", "web"}
START_DEADLINE = 90.0  # the first start creates a PKI; the test machine may be busy
STOP_DEADLINE = 45.0  # the stop lets requests in flight take up to sandbox.STOP_GRACE


def _poll(what: str, check: Callable[[], Any], deadline: float) -> Any:
    """``check()`` until it returns something true, backing off a little; fail at ``deadline``."""
    delay, last = 0.01, None
    while time.monotonic() < deadline:
        try:
            result = check()
        except (OSError, ValueError, KeyError) as exc:
            result, last = None, exc
        if result:
            return result
        time.sleep(delay)  # polling back-off, not a fixed wait
        delay = min(delay * 2, 0.2)
    raise AssertionError(f"{what} did not happen in time (last error: {last})")


def _wsdl_served(url: str) -> bool:
    return requests.get(url + "?wsdl", timeout=5).status_code == 200


def _accepts(url: str) -> bool:
    host, _, port = url.split("/")[2].partition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


def _read_lines(proc: subprocess.Popen[bytes]) -> list[str]:
    """Every line the sandbox prints, read in a thread (its output stays open)."""
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.decode())

    threading.Thread(target=read, name="sandbox-stdout", daemon=True).start()
    return lines


def _ready(proc: subprocess.Popen[bytes], err: Path, lines: list[str], deadline: float) -> dict[str, str]:
    """The ``READY <name> <url>`` lines, once the sandbox said it is up."""
    def up() -> dict[str, str] | None:
        if proc.poll() is not None:
            raise AssertionError(f"the sandbox exited ({proc.returncode}): {err.read_text()}")
        if not any(line.startswith("Ctrl-C stops") for line in lines):
            return None
        return dict(line.split()[1:3] for line in lines if line.startswith("READY "))

    return dict(_poll("READY lines", up, deadline))


def _exits_cleanly(proc: subprocess.Popen[bytes], err: Path, port: int, data: Path) -> None:
    """The process ends by itself: exit code 0, no traceback, its port free, its sandbox.json gone."""
    try:
        code = proc.wait(timeout=START_DEADLINE + STOP_DEADLINE)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the sandbox kept running with its output closed: {err.read_text()}")
    stderr = err.read_text()
    assert code == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
    assert not _accepts(f"http://127.0.0.1:{port}/")
    assert not (data / "sandbox.json").exists()


def test_sandbox_piped_to_head_ends_with_it(tmp_path: Path) -> None:
    """``mycarenet-ic sandbox | head -1``, as a shell runs it: the shell waits for both sides, so its
    return within the deadline means the sandbox ended too; then no port serves, no sandbox.json is left."""
    import shlex

    port, data = free_port(), tmp_path / "data"
    command = shlex.join([*sandbox_command(), "sandbox", "--data-dir", str(data), "--port", str(port)])
    try:
        done = subprocess.run(["bash", "-c", f"set -o pipefail; {command} 2>{tmp_path / 'err'} | head -1"],
                              capture_output=True, text=True, env=sandbox_env(), timeout=START_DEADLINE + STOP_DEADLINE)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the sandbox kept running after head -1 exited: {(tmp_path / 'err').read_text()}")
    assert done.stdout.startswith("data directory: ") and done.stdout.count("\n") == 1, done
    assert done.returncode == 0, (tmp_path / "err").read_text()  # pipefail: the sandbox's own exit code
    assert "Traceback" not in (tmp_path / "err").read_text()
    assert not _accepts(f"http://127.0.0.1:{port}/")
    assert not (data / "sandbox.json").exists()


@pytest.mark.parametrize("close_after", [
    "nothing",      # stdout gone before the first line is printed
    "first-line",   # the reader took one line, then closed the pipe
    "ready",        # a supervisor that read the READY lines, then went away
])
def test_a_sandbox_whose_output_is_closed_stops_by_itself(spawn, close_after: str) -> None:
    port = free_port()
    proc, data, err = spawn("--port", str(port))
    assert proc.stdout is not None
    deadline = time.monotonic() + START_DEADLINE
    if close_after == "first-line":
        first = proc.stdout.readline()
        assert first.startswith(b"data directory: "), (first, err.read_text())
    elif close_after == "ready":
        lines: list[str] = []
        while not any(line.startswith("Ctrl-C stops") for line in lines):
            line = proc.stdout.readline().decode()
            assert line and time.monotonic() < deadline, (lines, err.read_text())
            lines.append(line)
        urls = dict(line.split()[1:3] for line in lines if line.startswith("READY "))
        # One port, one path per service: the addresses follow from the port alone, run after run.
        assert urls == {name: f"https://127.0.0.1:{port}/{name}" + ("/" if name in ("scenario-admin", "web") else "")
                        for name in SERVICES}
        assert read_running(data) == urls
        support.trust(data)
        for name in ("memberdata", "integrated-care", "etk-depot"):  # each WSDL names its own path on the port
            wsdl = requests.get(urls[name] + "?wsdl", timeout=10)
            assert wsdl.status_code == 200 and f'location="{urls[name]}"' in wsdl.text, wsdl.text[-600:]
    proc.stdout.close()
    _exits_cleanly(proc, err, port, data)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_sandbox(spawn, signum: int) -> None:
    proc, data, err = spawn()
    urls = _ready(proc, err, _read_lines(proc), time.monotonic() + START_DEADLINE)
    assert set(urls) == SERVICES and urls == read_running(data)
    assert len({urlsplit(url).port for url in urls.values()}) == 1
    stops_cleanly(proc, err, urls, data, signum)


def _unread_bytes(port: int) -> int:
    """What the kernel holds, not yet read by the server, on the established connections to ``port``."""
    return sum(int(fields[4].split(":")[1], 16) for fields in support.established_to(port))  # rx_queue


def _answer(conn: socket.socket) -> bytes:
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    return data


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads the kernel's socket queues (Linux)")
def test_sigterm_lets_the_requests_in_flight_finish_then_exits(spawn) -> None:
    """Consultations (each asks the AA on the same port) are in the server's hands when the signal comes:
    every one is answered in full, then the process exits 0. (Plain HTTP: with TLS a client socket is
    readable before any answer, for the server's session tickets.)"""
    proc, data, err = spawn("--plain-http")
    urls = _ready(proc, err, _read_lines(proc), time.monotonic() + START_DEADLINE)
    support.trust(data)
    signer = Signer(Pki(data).issue_holder(Quality.DOCTOR, support.DOCTOR_SSIN, support.DOCTOR_NIHII))
    url = urlsplit(urls["integrated-care"])
    assert url.port is not None
    requests_ = []
    for _ in range(12):
        body = support.to_bytes(support.signed(signer, consult_body()))
        requests_.append(f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: text/xml; charset=utf-8\r\n"
                         f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
    conns = [support.connect(urls["integrated-care"], timeout=60) for _ in requests_]
    try:
        for conn, raw in zip(conns, requests_, strict=True):
            conn.sendall(raw)
        _poll("the server read every request", lambda: _unread_bytes(url.port) == 0,  # type: ignore[arg-type]
              time.monotonic() + 30)
        proc.send_signal(signal.SIGTERM)
        waiting = len(conns) - len(select.select(conns, [], [], 0)[0])
        answers = [_answer(conn) for conn in conns]
    finally:
        for conn in conns:
            conn.close()
    assert waiting > 0, "every answer came before the signal: nothing was in flight"
    heads = [a.partition(b"\r\n")[0] for a in answers]
    assert heads == [b"HTTP/1.1 200 OK"] * len(conns), (heads, err.read_text())
    assert all(b"ConsultInclusionsResponse" in a and b"Fault>" not in a for a in answers)
    try:
        code = proc.wait(timeout=STOP_DEADLINE)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the sandbox ignored SIGTERM: {err.read_text()}")
    assert code == 0, err.read_text()
    assert not _accepts(urls["integrated-care"])


def stops_cleanly(proc: subprocess.Popen[bytes], err: Path, urls: dict[str, str], data: Path,
                  signum: int = signal.SIGTERM) -> None:
    """``signum`` stops the sandbox process: exit code 0, no traceback, no port left serving."""
    proc.send_signal(signum)
    try:
        code = proc.wait(timeout=STOP_DEADLINE)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the sandbox ignored signal {signum}: {err.read_text()}")
    stderr = err.read_text()
    assert code == 0, stderr
    # The command itself did not fail (what the servers log while stopping is theirs to keep quiet).
    assert "BrokenPipeError" not in stderr and "mycarenet_ic/cli.py" not in stderr, stderr
    assert [name for name, url in urls.items() if _accepts(url)] == []
    assert not (data / "sandbox.json").exists()


def test_a_sandbox_that_cannot_start_says_so_in_one_line_and_leaves_no_port_serving(spawn) -> None:
    with socket.socket() as taken:  # its port is someone else's
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        proc, data, err = spawn("--port", str(taken.getsockname()[1]))
        try:
            code = proc.wait(timeout=START_DEADLINE)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the sandbox neither started nor stopped: {err.read_text()}")
        assert proc.stdout is not None
        out = proc.stdout.read()
        stderr = err.read_text()
        assert code == 2, (out, stderr)  # a port in use: something the person can fix (cli_support.start_failure)
        assert b"READY" not in out
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), stderr
        assert "Traceback" not in stderr
        assert not (data / "sandbox.json").exists()


def test_a_stopped_sandbox_leaves_no_thread_that_keeps_a_process_alive(tmp_path: Path) -> None:
    def blocking() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if not t.daemon and t is not threading.main_thread()}

    before = blocking()
    box = Sandbox(Settings(data_dir=tmp_path / "data", mutation_sync_seconds=3600), reset_scenario=True)
    urls = box.start(0)
    box.stop()
    assert blocking() - before == set()
    assert [name for name, url in urls.items() if _accepts(url)] == []
