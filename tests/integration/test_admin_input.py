"""The scenario admin endpoint refuses what is not a change: nesting too deep for the parser or for the
scenario, bodies that are not UTF-8 JSON objects, a Content-Length that is not a number of bytes: 400
with a JSON message, and the scenario is the same afterwards. What it did not expect is a 500 with a
generic JSON message, logged, no traceback in the answer. Real HTTP on 127.0.0.1: the running sandbox,
and the admin app alone behind the standard library's WSGI server (which hands any Content-Length on)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
import requests

from mycarenet_ic.domain.identifiers import make_niss
from mycarenet_ic.sandbox import Sandbox
from mycarenet_ic.stubs.admin import ScenarioAdmin, admin_token
from mycarenet_ic.stubs.scenario import Scenario
from tests import support

pytestmark = pytest.mark.integration


def _nested(depth: int, inner: str = '"a"') -> str:
    return "[" * depth + inner + "]" * depth


def _person(first_names: str) -> bytes:
    change = {"action": "add-person", "ssin": make_niss(dt.date(1970, 1, 1), 991), "last_name": "Deep",
              "first_names": "@", "birth_date": "1970-01-01", "sex": "M"}
    return json.dumps(change).replace('"@"', first_names).encode()


BAD_BODIES = {
    "deep-arrays": b"[" * 100_000,
    "deep-objects": b'{"a":' * 100_000,
    "deep-closed-arrays": _nested(50_000).encode(),
    # Parses, but too deep for the scenario to copy and save: it would be half applied.
    "deep-inside-a-change": _person(_nested(900)),
    "not-utf8": b'{"action": "death", "ssin": "\xff\xfe", "date": "2026-01-01"}',
    "not-json": b'{"action": ',
    "a-list": b'[{"action": "death"}]',
    "a-string": b'"death"',
    "a-number": b"12",
    "null": b"null",
    # Would be taken in, then could never be saved or shown again.
    "lone-surrogate": _person('["\\ud800"]'),
    "lone-surrogate-key": b'{"action": "remove-links", "\\udfff": 1}',
    "nan": _person("NaN"),
    "huge-integer": b'{"action": "death", "ssin": ' + b"9" * 5000 + b"}",
}


def _admin(box: Sandbox) -> tuple[str, dict[str, str]]:
    return (box.urls["scenario-admin"].rstrip("/"),
            {"Authorization": f"Bearer {admin_token(box.settings.data_dir)}"})


def _scenario(box: Sandbox) -> Any:
    base, auth = _admin(box)
    answer = requests.get(base + "/scenario", headers=auth, timeout=30)
    assert answer.status_code == 200
    return answer.json()


def _raw(url: str, head_lines: list[str], body: bytes = b"", timeout: float = 30) -> tuple[int, bytes]:
    """One request written byte for byte, any Content-Length; (status, body) of the answer."""
    parts = urlsplit(url)
    assert parts.hostname == "127.0.0.1" and parts.port
    head = "".join(f"{line}\r\n" for line in head_lines) + "Connection: close\r\n\r\n"
    answer = b""
    deadline = time.monotonic() + timeout
    with support.connect(url, timeout) as conn:
        conn.sendall(head.encode() + body)
        if parts.scheme == "http":
            conn.shutdown(socket.SHUT_WR)  # a server that reads "until EOF" gets an EOF, not a hang
        while time.monotonic() < deadline:
            chunk = conn.recv(65536)
            if not chunk:
                break
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1."), answer[:200]
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_a_body_that_is_not_a_change_is_400_json_and_changes_nothing(sandbox: Sandbox, case: str) -> None:
    base, auth = _admin(sandbox)
    before = _scenario(sandbox)
    answer = requests.post(base + "/scenario/changes", data=BAD_BODIES[case], timeout=30,
                           headers={**auth, "Content-Type": "application/json"})
    assert answer.status_code == 400, answer.text[:300]
    assert answer.headers["Content-Type"].startswith("application/json")
    assert isinstance(answer.json()["error"], str) and "Traceback" not in answer.text
    assert _scenario(sandbox) == before
    assert json.loads((sandbox.settings.data_dir / "scenario.json").read_text()) == before


@pytest.mark.parametrize("length", ["abc", "-5", "-1", "1e3", "0x10", "+5", "٥"])
def test_a_content_length_that_is_not_a_number_of_bytes_is_400_over_the_sandbox(sandbox: Sandbox,
                                                                               length: str) -> None:
    base, auth = _admin(sandbox)
    before = _scenario(sandbox)
    status, _ = _raw(base + "/scenario/changes", [
        "POST /scenario/changes HTTP/1.1", f"Host: {urlsplit(base).netloc}", f"Authorization: {auth['Authorization']}",
        "Content-Type: application/json", f"Content-Length: {length}"], b'{"action": "remove-links"}')
    assert status == 400  # from the HTTP front, or from the admin app itself
    assert _scenario(sandbox) == before


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def lone_admin(tmp_path: Path) -> Iterator[tuple[str, str, Scenario]]:
    """The admin app on its own, behind wsgiref: no front in between that checks Content-Length."""
    scenario = Scenario.for_data_dir(tmp_path / "data", reset=True)
    token = "t0ken"
    server: WSGIServer = make_server("127.0.0.1", 0, ScenarioAdmin(scenario, token), handler_class=_Quiet)
    server.timeout = 5
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", token, scenario
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _lone(url: str, token: str, length: str, body: bytes) -> tuple[int, bytes]:
    return _raw(url, ["POST /scenario/changes HTTP/1.1", f"Host: {urlsplit(url).netloc}",
                      f"Authorization: Bearer {token}", "Content-Type: application/json",
                      f"Content-Length: {length}"], body)


@pytest.mark.parametrize("length", ["abc", "-5", "-1", "1e3", "0x10", "+5", "٥", "1_0", "99999999999999999999"])
def test_the_admin_app_itself_refuses_a_content_length_that_is_not_a_number_of_bytes(
        lone_admin: tuple[str, str, Scenario], length: str) -> None:
    url, token, scenario = lone_admin
    before = scenario.to_dict()
    status, body = _lone(url, token, length, b'{"action": "remove-links", "patient": "x", "hcparty": "y"}')
    assert status == 400, body
    assert "error" in json.loads(body)
    assert scenario.to_dict() == before


def test_a_body_shorter_than_its_content_length_is_400(lone_admin: tuple[str, str, Scenario]) -> None:
    url, token, scenario = lone_admin
    before = scenario.to_dict()
    status, body = _lone(url, token, "500", b'{"action": "remove-links"}')
    assert status == 400 and "error" in json.loads(body)
    assert scenario.to_dict() == before


def test_an_unexpected_failure_is_a_generic_500_json_logged_with_no_traceback_in_the_answer(
        lone_admin: tuple[str, str, Scenario], caplog: pytest.LogCaptureFixture) -> None:
    url, token, scenario = lone_admin
    # The state file cannot be replaced any more (a directory stands in its place): saving fails.
    assert scenario.state_file is not None
    scenario.state_file.unlink()
    scenario.state_file.mkdir()
    change = b'{"action": "remove-links", "patient": "48031202166", "hcparty": "00000000000"}'
    with caplog.at_level(logging.ERROR, logger="mycarenet_ic.stubs.admin"):
        status, body = _lone(url, token, str(len(change)), change)
    assert status == 500
    answer = json.loads(body)
    assert set(answer) == {"error"} and "Traceback" not in answer["error"] and "Directory" not in answer["error"]
    assert any(r.name == "mycarenet_ic.stubs.admin" and r.exc_info for r in caplog.records)
