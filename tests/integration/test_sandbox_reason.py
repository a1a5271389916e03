"""Say why, in the sandbox (issue 18 item 4): a refused request gets production's generic fault unchanged, and
in the sandbox only an ``X-Sandbox-Reason`` header naming its audit row and the inspector's page of it;
``mycarenet-ic audit show --last`` prints the true reason. The production-style entry (``mycarenet_ic.wsgi``)
never adds the header."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests
from lxml import etree

from mycarenet_ic.inspector.reason import CLI, HEADER
from mycarenet_ic.inspector.store import InspectorStore, QueuedRecorder
from mycarenet_ic.sandbox import Sandbox
from mycarenet_ic.security import pki
from mycarenet_ic.security.wssec import Signer, Verifier
from mycarenet_ic.server import ServedApp, wait_ready
from mycarenet_ic.stubs.admin import admin_token
from mycarenet_ic.web.inspector_pages import OPERATOR_COOKIE
from tests import attacks, support
from tests.integration.test_attacks import ATTACKS
from tests.integration.test_inspector import TRUE_REASONS

pytestmark = pytest.mark.integration

ERRORS = etree.XMLSchema(etree.parse(str(Path(__file__).parents[1] / "fidelity" / "xsd" / "ehealth-errors-soa.xsd")))
POINTER = re.compile(r'^audit-row=(\d+); inspector=(\S+); cli="([^"]+)"$')
# Refused at each step a refusal can come from: the parser, the signature, the certificate, the clock.
SHOWN = ("no security header", "body changed after signing", "certificate not from the sandbox CA",
         "expired timestamp", "DOCTYPE with an external entity")


def audited(reason: str) -> str:
    """The inspector's true reason as the audit keeps it: every valid NISS masked."""
    return reason.replace(support.DOCTOR_SSIN, r"\[niss\]")


@pytest.fixture(scope="module")
def signer(sandbox: Sandbox, doctor: pki.KeyPair) -> Signer:
    return Signer(doctor)


def send(url: str, data: bytes) -> tuple[support.Answer, requests.structures.CaseInsensitiveDict[str]]:
    resp = requests.post(url, data=data, headers={"Content-Type": "text/xml; charset=utf-8"}, timeout=30)
    root = etree.fromstring(resp.content, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    return support.Answer(resp.status_code, resp.content, root), resp.headers


def generic_fault(answer: support.Answer, verifier: Verifier) -> dict[str, str]:
    """The fault production gives: the generic text, its detail valid against the eHealth errors schema."""
    err = attacks.refused(answer, verifier, {"SECURITY_ERROR", "MALFORMED_REQUEST"})
    assert answer.fault is not None
    assert ERRORS.validate(answer.fault.find("detail")[0]), ERRORS.error_log
    return err


@pytest.mark.parametrize("name", SHOWN)
def test_a_refusal_names_its_audit_row_and_inspector_page_in_the_sandbox(
        name: str, sandbox: Sandbox, signer: Signer, answer_verifier: Verifier) -> None:
    before = attacks.state(sandbox)
    answer, headers = send(sandbox.urls["attribute-authority"], ATTACKS[name](signer))
    after = attacks.state(sandbox)
    err = generic_fault(answer, answer_verifier)
    attacks.only_denied(before, after)
    (row,) = after["audit"][len(before["audit"]):]
    found = POINTER.match(headers[HEADER])
    assert found is not None, headers[HEADER]
    assert int(found.group(1)) == row.seq
    assert found.group(2) == f"{sandbox.urls['web']}inspector/audit/{row.seq}" and found.group(3) == CLI
    # The pointer says where, never why: the true reason is in the audit row, not in the answer.
    assert re.search(audited(TRUE_REASONS[name]), row.detail), row.detail
    assert row.detail not in headers[HEADER] and row.detail.encode() not in answer.body
    assert err["Message"] not in row.detail or err["Message"] == row.detail  # the client's text is generic


def test_an_answered_request_carries_no_pointer(sandbox: Sandbox, signer: Signer) -> None:
    resp = requests.post(sandbox.urls["attribute-authority"], data=support.to_bytes(
        support.signed(signer, support.aa_body())), headers={"Content-Type": "text/xml; charset=utf-8"}, timeout=30)
    assert resp.status_code == 200 and HEADER not in resp.headers


def test_the_inspector_page_of_the_pointer_shows_the_exchange_to_the_operator(
        sandbox: Sandbox, signer: Signer) -> None:
    answer, headers = send(sandbox.urls["attribute-authority"], ATTACKS["body changed after signing"](signer))
    found = POINTER.match(headers[HEADER])
    assert answer.status == 500 and found is not None
    page = found.group(2)
    # Nobody signed in: the sign-in form, nothing of the exchange.
    anonymous = requests.get(page, timeout=10, allow_redirects=False)
    assert anonymous.status_code == 302   # carrying the exchange's page to land on after signing in
    assert anonymous.headers["Location"] == f"/web/inspector/signin?next=/inspector/audit/{found.group(1)}"
    recorder = sandbox.platform.recorder
    assert isinstance(recorder, QueuedRecorder)
    recorder.flush()
    s = requests.Session()
    form = s.get(sandbox.urls["web"] + "inspector/signin", timeout=10)
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    signed_in = s.post(sandbox.urls["web"] + "inspector/signin", timeout=10, allow_redirects=False,
                       data={"token": admin_token(sandbox.settings.data_dir), "csrf": csrf.group(1)})
    assert signed_in.status_code == 302 and signed_in.cookies.get(OPERATOR_COOKIE)
    to = s.get(page, timeout=10, allow_redirects=False)
    assert to.status_code == 302, to.text[:300]
    exchange_id = int(to.headers["Location"].rstrip("/").rpartition("/")[2])
    store = InspectorStore.of(sandbox.settings)
    try:
        exchange = store.get(exchange_id)
    finally:
        store.close()
    assert exchange is not None and exchange.audit_seq == int(found.group(1)) and exchange.answer == answer.body
    shown = s.get(urljoin(sandbox.urls["web"], to.headers["Location"]), timeout=10)  # a path under /web/
    assert shown.status_code == 200 and "does not match" in shown.text
    # An audit row with no exchange recorded: a clear 404.
    assert s.get(f"{sandbox.urls['web']}inspector/audit/999999999", timeout=10).status_code == 404


def test_audit_show_last_prints_the_true_reasons(sandbox: Sandbox, signer: Signer) -> None:
    for name in ("no signature", "expired timestamp"):
        answer, headers = send(sandbox.urls["attribute-authority"], ATTACKS[name](signer))
        assert answer.status == 500 and HEADER in headers
    before = attacks.state(sandbox)
    last = support.sandbox_cli(sandbox, "audit", "show", "--last")
    assert last.returncode == 0, last.stderr
    seq = POINTER.match(headers[HEADER]).group(1)  # type: ignore[union-attr]
    assert last.stdout.startswith(f"audit row {seq} at "), last.stdout
    assert re.search(r"true reason: SECURITY_ERROR: " + TRUE_REASONS["expired timestamp"], last.stdout), last.stdout
    assert f"inspector: {sandbox.urls['web']}inspector/audit/{seq}" in last.stdout
    assert "exactly one Signature" not in last.stdout  # only the last one
    two = support.sandbox_cli(sandbox, "audit", "show", "--last", "2")
    assert two.returncode == 0 and two.stdout.count("true reason: ") == 2, two.stdout
    assert "exactly one Signature in the Security header" in two.stdout
    # Reading it changes nothing but the reads' own (OK) audit rows.
    after = attacks.state(sandbox)
    assert [r.outcome for r in after["audit"][len(before["audit"]):]] == ["OK", "OK"]
    assert after["stored"] == before["stored"] and after["replay"] == before["replay"]
    bad = support.sandbox_cli(sandbox, "audit", "show", "--last", "0")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def production_style(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The WSGI entry (as gunicorn serves it) on its own data directory, over a real socket."""
    from mycarenet_ic import wsgi

    with pytest.MonkeyPatch.context() as env:
        env.setenv("MYCARENET_DATA_DIR", str(tmp_path_factory.mktemp("wsgi") / "data"))
        env.delenv("DATABASE_URL", raising=False)
        app = wsgi.create_app()
    served = ServedApp("wsgi", app, "127.0.0.1", 0).start()
    try:
        wait_ready(served.url + "attribute-authority?wsdl")
        yield served.url
    finally:
        served.stop()


@pytest.mark.parametrize("name", ["no security header", "certificate not from the sandbox CA"])
def test_the_production_style_deployment_never_adds_the_pointer(
        name: str, production_style: str, sandbox: Sandbox, signer: Signer) -> None:
    data = ATTACKS[name](signer)
    answer, headers = send(production_style + "attribute-authority", data)
    boxed, boxed_headers = send(sandbox.urls["attribute-authority"], data)
    assert answer.status == boxed.status == 500
    assert HEADER not in headers and HEADER in boxed_headers
    # The same fault from both: production's generic text and code, valid against the errors schema.
    ours, theirs = answer.error_detail(), boxed.error_detail()
    assert ours["Code"] == "SECURITY_ERROR"
    for key in ("kind", "faultcode", "faultstring", "Origin", "Code", "SoaCode", "Message", "Retry"):
        assert ours[key] == theirs[key], key
    assert answer.fault is not None
    assert ERRORS.validate(answer.fault.find("detail")[0]), ERRORS.error_log
