"""The ``mycarenet-ic sandbox`` process: stoppable whatever happened to its standard output, no port left
serving when it cannot start, no thread left that keeps a process alive after a stop. Real processes
and sockets on 127.0.0.1, ephemeral ports, deadlines instead of sleeps."""

from __future__ import annotations

import functools
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from mycarenet_ic.config import Settings
from mycarenet_ic.sandbox import Sandbox, read_running
from tests import support

pytestmark = pytest.mark.integration

SERVICES = {"attribute-authority", "cobrha", "national-register", "sts", "coding", "scenario-admin",
            "integrated-care", "memberdata", "tarification", "mediprima", "web"}
START_DEADLINE = 90.0  # the first start creates a PKI; the test machine may be busy
STOP_DEADLINE = 30.0


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


@pytest.mark.parametrize(("close_after", "signum"), [
    ("nothing", signal.SIGTERM),      # stdout gone before the first line is printed
    ("first-line", signal.SIGTERM),   # like ``mycarenet-ic sandbox | head -1``
    ("first-line", signal.SIGINT),    # Ctrl-C
])
def test_sandbox_with_its_output_closed_still_serves_and_stops_on_a_signal(spawn, close_after: str,
                                                                          signum: int) -> None:
    proc, data, err = spawn()
    assert proc.stdout is not None
    deadline = time.monotonic() + START_DEADLINE
    if close_after == "first-line":
        first = proc.stdout.readline()
        assert first.startswith(b"data directory: "), (first, err.read_text())
    proc.stdout.close()
    urls = _poll("sandbox.json", lambda: read_running(data), deadline)
    assert set(urls) == SERVICES
    support.trust(data)
    # It keeps serving after its output went away ...
    for name, url in urls.items():
        if name != "scenario-admin":
            _poll(f"{name} ?wsdl", functools.partial(_wsdl_served, url), deadline)
    assert proc.poll() is None, err.read_text()
    # ... and a signal stops it cleanly.
    stops_cleanly(proc, err, urls, data, signum)


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


def _free_range(count: int) -> int:
    """A first port such that it and the ``count - 1`` after it are free now."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first + count > 65535:
            continue
        held: list[socket.socket] = []
        try:
            for port in range(first, first + count):
                s = socket.socket()
                held.append(s)
                s.bind(("127.0.0.1", port))
            return int(first)
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise AssertionError("no range of free ports found")


def test_a_sandbox_that_cannot_start_says_so_in_one_line_and_leaves_no_port_serving(spawn) -> None:
    first = _free_range(len(SERVICES))
    # The fourth service's port is taken: the first three are already serving when the start fails.
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", first + 3))
        taken.listen()
        proc, data, err = spawn("--port", str(first))
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
        free = [port for port in (first, first + 1, first + 2, *range(first + 4, first + len(SERVICES)))
                if not _accepts(f"http://127.0.0.1:{port}/")]
        assert len(free) == len(SERVICES) - 1
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
