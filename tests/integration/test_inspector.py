"""The inspector: every exchange recorded as it was, with the true reason of a refusal that the client only
sees as the generic fault; bounded by count and age; never failing an exchange; `mycarenet-ic inspect`."""

from __future__ import annotations

import datetime as dt
import io
import os
import queue
import re
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from mycarenet_ic import cli, ns
from mycarenet_ic.clients.messages import attribute_query
from mycarenet_ic.inspector import UNVERIFIED_KEPT_BYTES, Exchange, views
from mycarenet_ic.inspector.store import InspectorStore, QueuedRecorder
from mycarenet_ic.sandbox import Sandbox
from mycarenet_ic.security import pki
from mycarenet_ic.security.wssec import Signer, Verifier
from mycarenet_ic.stubs import attribute_authority
from tests import attacks, support
from tests.integration.test_attacks import ATTACKS

pytestmark = pytest.mark.integration

MD_NS = "urn:be:fgov:ehealth:mycarenet:memberdata:protocol:v1"

# What the inspector must say of each attack of the security suite (the client gets one generic text).
TRUE_REASONS: dict[str, str] = {
    "no signature": r"SECURITY_ERROR: exactly one Signature in the Security header",
    "no security header": r"SECURITY_ERROR: exactly one Security header",
    "body changed after signing": r"signature does not verify: the digest of Body \(#[\w-]+\) does not match",
    "signed body wrapped, same id": r"SECURITY_ERROR: more than one Body or Header",
    "signed body wrapped, changed id": r"SECURITY_ERROR: more than one Body or Header",
    "second body": r"SECURITY_ERROR: envelope must hold exactly one Header then one Body",
    "second security header": r"SECURITY_ERROR: exactly one Security header",
    "duplicate id": r"SECURITY_ERROR: duplicate Id",
    "certificate not from the sandbox CA": r"certificate from an unknown issuer: subject .*SSIN=74030902123.*, "
                                           r"issuer .*CN=MyCareNet sandbox CA",
    "RSA-SHA1": r"SECURITY_ERROR: signature method must be RSA-SHA256",
    "expired timestamp": r"timestamp expired: [0-9]+ s ago",
    "timestamp 2 minutes ahead": r"timestamp in the future: created 1[12][0-9] s ahead of this service's clock "
                                 r"\(skew allowed: 60 s\)",
    "DOCTYPE with an external entity": r"SECURITY_ERROR: .*(DOCTYPE|markup declaration)",
    "billion laughs": r"SECURITY_ERROR: .*(DOCTYPE|markup declaration)",
    "nesting 10,000 deep": r"SECURITY_ERROR: .*(deep|depth)",
    "100,000 attributes": r"REQUEST_TOO_LARGE: Content-Length [0-9]+",  # 1 MB of attributes: over the cap
    "body over the cap": r"REQUEST_TOO_LARGE: Content-Length [0-9]+",
    "invalid UTF-8": r"MALFORMED_REQUEST: .*UTF-8",
}


@pytest.fixture(scope="module")
def signer(sandbox: Sandbox, doctor: pki.KeyPair) -> Signer:
    signer = Signer(doctor)
    signer._test_keypair = doctor  # type: ignore[attr-defined]  # the RSA-SHA1 attack signs with it
    return signer


@pytest.fixture(scope="module")
def store(sandbox: Sandbox) -> Iterator[InspectorStore]:
    store = InspectorStore.of(sandbox.settings)
    yield store
    store.close()


def recorded_since(sandbox: Sandbox, store: InspectorStore, newest: int) -> list[Exchange]:
    """What the sandbox recorded after exchange ``newest``, with the messages, once its writer caught up."""
    recorder = sandbox.platform.recorder
    assert isinstance(recorder, QueuedRecorder)
    recorder.flush()
    found = [store.get(e.id) for e in store.list(after=newest, limit=100) if e.id is not None]
    return [e for e in found if e is not None]


def test_the_attacks_of_the_security_suite_are_covered() -> None:
    assert set(TRUE_REASONS) == set(ATTACKS)


@pytest.mark.parametrize("name", list(ATTACKS))
def test_the_inspector_shows_the_true_reason_the_client_does_not_get(
        name: str, sandbox: Sandbox, store: InspectorStore, signer: Signer, answer_verifier: Verifier) -> None:
    newest = store.newest_id()
    before = attacks.state(sandbox)
    sent = ATTACKS[name](signer)
    answer = support.post(sandbox.urls["attribute-authority"], sent)
    after = attacks.state(sandbox)
    # The client: the generic fault, as the security suite checks; nothing stored but the DENIED row.
    err = attacks.refused(answer, answer_verifier, {"SECURITY_ERROR", "MALFORMED_REQUEST", "REQUEST_TOO_LARGE"})
    attacks.only_denied(before, after)
    # The inspector: this exchange, as it was, and why it was refused.
    (exchange,) = recorded_since(sandbox, store, newest)
    assert (exchange.service, exchange.outcome, exchange.status) == ("attribute-authority", "DENIED", 500)
    assert exchange.code == err["Code"] and exchange.reason is not None
    assert re.search(TRUE_REASONS[name], f"{exchange.code}: {exchange.reason}"), exchange.reason
    assert exchange.reason not in err["Message"] and exchange.reason.encode() not in answer.body
    assert exchange.answer == answer.body
    # What the endpoint read is what was sent (a body over the cap is refused by its length, unread), of a
    # sender nobody identified only its first UNVERIFIED_KEPT_BYTES.
    assert exchange.caller == "unknown"
    assert exchange.request == (b"" if exchange.code == "REQUEST_TOO_LARGE" else sent[:UNVERIFIED_KEPT_BYTES])


def test_an_unidentified_sender_cannot_fill_the_disk(sandbox: Sandbox, store: InspectorStore) -> None:
    newest = store.newest_id()
    big = (b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><a>'
           + b"x" * 900_000 + b"</a></soap:Body></soap:Envelope>")
    assert support.post(sandbox.urls["cobrha"], big).status == 500
    (exchange,) = recorded_since(sandbox, store, newest)
    assert exchange.caller == "unknown" and exchange.request == big[:UNVERIFIED_KEPT_BYTES]


def _memberdata(signer: Signer, patient: str = support.PATIENT_LINKED) -> bytes:
    end = dt.date.today() - dt.timedelta(days=1)
    query = attribute_query(support.DOCTOR_NIHII, patient, end - dt.timedelta(days=30), end,
                            [("urn:be:cin:nippin:insurability", [("requestType", "information")])])
    body = support.commons_request("MemberDataConsultationRequest", MD_NS, 3, query, patient, end, "inspector")
    return support.to_bytes(support.signed(signer, body))


def test_an_answered_exchange_with_its_caller_and_decoded_blobs(sandbox: Sandbox, store: InspectorStore,
                                                                signer: Signer) -> None:
    newest = store.newest_id()
    answer = support.post(sandbox.urls["memberdata"], _memberdata(signer))
    assert answer.status == 200 and answer.fault is None
    found = recorded_since(sandbox, store, newest)
    # The platform's own calls to the stubs are exchanges too (with the platform as their caller).
    (exchange,) = [e for e in found if e.service == "memberdata"]
    assert (exchange.operation, exchange.outcome, exchange.code, exchange.reason) == (
        "MemberDataConsultationRequest", "OK", None, None)
    assert exchange.caller == f"doctor:{support.DOCTOR_NIHII}" and exchange.duration_ms > 0
    assert all(e.caller.startswith("platform:") for e in found if e is not exchange)
    blobs = views.blobs(exchange)
    assert [(b.message, b.kind) for b in blobs] == [("request", "SAML"), ("answer", "SAML")]
    request_blob = etree.fromstring(blobs[0].text.encode())
    assert etree.QName(request_blob).localname == "AttributeQuery"
    assert support.PATIENT_LINKED in blobs[0].text and "\n  <" in blobs[0].text  # decoded, indented
    assert etree.QName(etree.fromstring(blobs[1].text.encode())).namespace == ns.SAML2_PROTOCOL



def test_a_tariff_exchanges_kmehr_blobs_are_decoded(sandbox: Sandbox, store: InspectorStore,
                                                    signer: Signer) -> None:
    """The Tarification blobs are KMEHR transactions (the request's and the answer's), decoded and indented."""
    from mycarenet_ic.clients.messages import tariff_request

    day = dt.date.today() - dt.timedelta(days=2)
    newest = store.newest_id()
    body = support.commons_request("TarificationConsultationRequest", "urn:be:fgov:ehealth:mycarenet:tarification:"
                                   "protocol:v1", 2, tariff_request(support.DOCTOR_NIHII, support.DOCTOR_SSIN,
                                                                    support.PATIENT_UNLINKED, day, ["101076"]),
                                   support.PATIENT_UNLINKED, day, "inspector-kmehr")
    answer = support.post(sandbox.urls["tarification"], support.to_bytes(support.signed(signer, body)))
    assert answer.status == 200 and answer.fault is None, answer.body[:300]
    (exchange,) = [e for e in recorded_since(sandbox, store, newest) if e.service == "tarification"]
    blobs = views.blobs(exchange)
    assert [(b.message, b.kind) for b in blobs] == [("request", "KMEHR"), ("answer", "KMEHR")]
    # The messageservices transaction (request, then response) that carries the KMEHR, decoded and indented.
    for blob, element in zip(blobs, ("RetrieveTransactionRequest", "RetrieveTransactionResponse"), strict=True):
        root = etree.fromstring(blob.text.encode())
        assert etree.QName(root).localname == element and root.find(f".//{{{ns.KMEHR}}}*") is not None
        assert "\n  <" in blob.text
    assert "101076" in blobs[0].text and "101076" in blobs[1].text

class Failing:
    """A recorder that fails every time (a full disk, a bug)."""

    calls = 0

    def record(self, exchange: Exchange) -> None:
        self.calls += 1
        raise OSError("no space left on device")


def _call(app: Any, data: bytes) -> tuple[str, bytes]:
    status: list[str] = []
    environ = {"REQUEST_METHOD": "POST", "CONTENT_TYPE": "text/xml; charset=utf-8", "CONTENT_LENGTH": str(len(data)),
               "wsgi.input": io.BytesIO(data), "HTTP_SOAPACTION": ""}
    body = b"".join(app(environ, lambda s, _headers: status.append(s)))
    return status[0], body


def test_a_recorder_that_fails_does_not_fail_the_exchange(sandbox: Sandbox, signer: Signer,
                                                          answer_verifier: Verifier) -> None:
    failing = Failing()
    deps = replace(sandbox.platform.endpoint_deps("attribute-authority"), recorder=failing)
    endpoint = attribute_authority.build(sandbox.scenario, deps)
    status, body = _call(endpoint, support.to_bytes(support.signed(signer, support.aa_body())))
    assert status == "200 OK" and b"Fault" not in body
    answer_verifier.verify(etree.fromstring(body))
    status, body = _call(endpoint, ATTACKS["body changed after signing"](signer))
    assert status.startswith("500") and b"SOA-01001" in body
    status, body = _call(endpoint, b"not xml")
    assert status.startswith("500") and b"Fault" in body
    assert failing.calls == 3


def _exchange(at: dt.datetime, n: int) -> Exchange:
    return Exchange(at=at, service="memberdata", operation="Op", caller=f"doctor:{n}", outcome="OK", status=200,
                    duration_ms=1.0, request=b"<r/>", answer=b"<a/>")


def test_bounded_by_count_and_by_age(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    by_count = InspectorStore(tmp_path / "count.sqlite3", max_exchanges=3, max_age_seconds=3600)
    for n in range(5):
        by_count.write([_exchange(now, n)], now=now)
    assert [e.caller for e in by_count.list()] == ["doctor:4", "doctor:3", "doctor:2"]
    by_count.write([_exchange(now, n) for n in range(5, 12)], now=now)  # one batch over the bound
    assert by_count.count() == 3 and by_count.list()[0].caller == "doctor:11"
    by_age = InspectorStore(tmp_path / "age.sqlite3", max_exchanges=100, max_age_seconds=60)
    by_age.write([_exchange(now - dt.timedelta(seconds=120), 1), _exchange(now - dt.timedelta(seconds=30), 2)],
                 now=now)
    assert [e.caller for e in by_age.list()] == ["doctor:2"]
    by_age.prune(now=now + dt.timedelta(seconds=31))  # what the writer does when idle
    assert by_age.count() == 0
    # Raw traffic (NISS in clear): the owner's only.
    assert stat.S_IMODE(os.stat(tmp_path / "age.sqlite3").st_mode) == 0o600
    by_count.close()
    by_age.close()


def test_the_queue_is_bounded_and_the_writer_stores_in_order(tmp_path: Path) -> None:
    store = InspectorStore(tmp_path / "q.sqlite3", max_exchanges=100, max_age_seconds=3600)
    now = dt.datetime.now(dt.UTC)
    recorder = QueuedRecorder(store, max_pending_bytes=100)
    big = replace(_exchange(now, 0), request=b"x" * 200)
    recorder.record(big)  # larger than the whole queue may hold: dropped, not waited for
    for n in range(1, 4):
        recorder.record(_exchange(now, n))
    recorder.flush()
    assert recorder.dropped == 1 and [e.caller for e in store.list()] == ["doctor:3", "doctor:2", "doctor:1"]
    recorder.close()


def test_on_in_the_sandbox_off_in_the_wsgi_entry_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    from mycarenet_ic import wsgi
    from mycarenet_ic.config import Settings

    monkeypatch.delenv("MYCARENET_INSPECTOR", raising=False)
    assert Settings.from_env().inspector and not wsgi.wsgi_settings().inspector
    monkeypatch.setenv("MYCARENET_INSPECTOR", "1")
    assert wsgi.wsgi_settings().inspector
    monkeypatch.setenv("MYCARENET_INSPECTOR", "0")
    assert not Settings.from_env().inspector and not wsgi.wsgi_settings().inspector


# -- the command line ----------------------------------------------------------------------------------------
def _cli(capsys: pytest.CaptureFixture[str], sandbox: Sandbox, *args: str) -> tuple[int, str, str]:
    code = cli.main(["inspect", *args, "--data-dir", str(sandbox.settings.data_dir)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def two_refusals(sandbox: Sandbox, store: InspectorStore, signer: Signer) -> tuple[Exchange, Exchange, Exchange]:
    newest = store.newest_id()
    for name in ("expired timestamp", "RSA-SHA1"):
        support.post(sandbox.urls["attribute-authority"], ATTACKS[name](signer))
    support.post(sandbox.urls["memberdata"], _memberdata(signer))
    found = recorded_since(sandbox, store, newest)
    expired, sha1 = found[:2]
    (md,) = [e for e in found if e.service == "memberdata"]
    return expired, sha1, md


def test_inspect_list_filters(capsys: pytest.CaptureFixture[str], sandbox: Sandbox,
                              two_refusals: tuple[Exchange, Exchange, Exchange]) -> None:
    expired, sha1, md = two_refusals
    code, out, _ = _cli(capsys, sandbox, "list", "--service", "attribute-authority", "--outcome", "DENIED",
                        "--since", "10m", "--limit", "2")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2
    assert lines[0].split()[0] == str(sha1.id) and "signature method must be RSA-SHA256" in lines[0]
    assert lines[1].split()[0] == str(expired.id) and "timestamp expired:" in lines[1]
    code, out, _ = _cli(capsys, sandbox, "list", "--caller", md.caller, "--service", "memberdata")
    assert code == 0 and str(md.id) in out and "attribute-authority" not in out
    code, out, _ = _cli(capsys, sandbox, "list", "--service", "nothing-here")
    assert code == 0 and out == ""
    with pytest.raises(SystemExit) as refused:
        _cli(capsys, sandbox, "list", "--token", "wrong")
    assert str(refused.value.code) == "error: that is not this data directory's admin token (secrets/admin.token)"


def test_inspect_show_and_its_files(capsys: pytest.CaptureFixture[str], sandbox: Sandbox, tmp_path: Path,
                                    two_refusals: tuple[Exchange, Exchange, Exchange]) -> None:
    expired, _, md = two_refusals
    code, out, _ = _cli(capsys, sandbox, "show", str(expired.id))
    assert code == 0 and f"reason: {expired.reason}" in out and "--- request ---" in out and "Timestamp" in out
    code, out, _ = _cli(capsys, sandbox, "show", str(md.id))
    assert code == 0 and re.search(r"--- request blob 0 \(SAML, (none|deflate)\) ---", out) and "AttributeQuery" in out
    code, out, _ = _cli(capsys, sandbox, "show", str(md.id), "--out", str(tmp_path / "out"))
    written = {Path(line).name for line in out.splitlines()}
    assert code == 0 and {f"{md.id}-request.xml", f"{md.id}-answer.xml", f"{md.id}-exchange.json",
                          f"{md.id}-request-blob-0.xml", f"{md.id}-answer-blob-0.xml"} <= written
    assert (tmp_path / "out" / f"{md.id}-request.xml").read_bytes() == md.request
    assert stat.S_IMODE(os.stat(tmp_path / "out" / f"{md.id}-request.xml").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "out").st_mode) == 0o700  # a new directory: the owner's only
    # An existing directory is written into as it is (its mode and its other files untouched); a link is refused.
    shared, other = tmp_path / "shared", tmp_path / "shared" / "notes.txt"
    shared.mkdir(mode=0o755)
    other.write_text("mine")
    other.chmod(0o644)
    assert _cli(capsys, sandbox, "show", str(md.id), "--out", str(shared))[0] == 0
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755 and stat.S_IMODE(other.stat().st_mode) == 0o644
    (tmp_path / "link").symlink_to(shared)
    with pytest.raises(SystemExit) as linked:
        _cli(capsys, sandbox, "show", str(md.id), "--out", str(tmp_path / "link"))
    assert "not a link" in str(linked.value.code)
    with pytest.raises(SystemExit) as missing:
        _cli(capsys, sandbox, "show", "999999")
    assert re.fullmatch(r"error: no exchange 999999 \(the inspector keeps the newest 5000, none older than 1 day.*\)",
                        str(missing.value.code))


def test_inspect_diff(capsys: pytest.CaptureFixture[str], sandbox: Sandbox,
                      two_refusals: tuple[Exchange, Exchange, Exchange]) -> None:
    expired, sha1, _ = two_refusals
    code, out, _ = _cli(capsys, sandbox, "diff", str(expired.id), str(sha1.id))
    assert code == 1 and f"--- exchange {expired.id}" in out
    assert f"-reason: {expired.reason}" in out and f"+reason: {sha1.reason}" in out
    code, out, _ = _cli(capsys, sandbox, "diff", str(sha1.id), str(sha1.id))
    assert (code, out) == (0, "")


def test_inspect_tail(capsys: pytest.CaptureFixture[str], sandbox: Sandbox,
                      two_refusals: tuple[Exchange, Exchange, Exchange]) -> None:
    code, out, _ = _cli(capsys, sandbox, "tail", "-n", "2", "--service", "attribute-authority")
    expired, sha1, _ = two_refusals
    assert code == 0 and [line.split()[0] for line in out.splitlines()] == [str(expired.id), str(sha1.id)]


def test_inspect_tail_follows_until_sigterm(sandbox: Sandbox, store: InspectorStore, signer: Signer,
                                           two_refusals: tuple[Exchange, Exchange, Exchange]) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    command = [sys.executable, "-m", "mycarenet_ic.cli", "inspect", "tail", "-f", "-n", "1", "--interval", "0.05",
               "--service", "attribute-authority", "--data-dir", str(sandbox.settings.data_dir)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
        lines: queue.Queue[str] = queue.Queue()
        out, err = proc.stdout, proc.stderr
        assert out is not None and err is not None
        def read() -> None:
            for line in out:
                lines.put(line)

        threading.Thread(target=read, daemon=True).start()
        try:
            assert lines.get(timeout=60).split()[0] == str(two_refusals[1].id)  # the last one: following now
            support.post(sandbox.urls["attribute-authority"], ATTACKS["no signature"](signer))
            followed = lines.get(timeout=60)
            assert "exactly one Signature in the Security header" in followed and "DENIED" in followed
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0  # a clean stop: no traceback
            assert err.read() == ""
        finally:
            if proc.poll() is None:
                proc.kill()
