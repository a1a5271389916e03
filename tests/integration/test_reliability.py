"""Nothing is lost, nothing is done twice: concurrent declarations with resends, the same message at
once, a database that fails mid-request, stubs that are down or slow, SIGTERM with requests in flight,
and two worker processes sharing the replay cache and the audit chain. Real servers over HTTP on
127.0.0.1, on SQLite and on PostgreSQL; sizes are bounded (see each test)."""

from __future__ import annotations

import datetime as dt
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from lxml import etree
from sqlalchemy import func, select, text

from mycarenet_ic.app import Gateways, business_endpoints
from mycarenet_ic.clients.gateways import (
    ZeepAttributeAuthorityGateway,
    ZeepCobrhaGateway,
    ZeepNationalRegisterGateway,
)
from mycarenet_ic.config import Settings
from mycarenet_ic.domain.identifiers import make_niss
from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.persistence.audit import verify_chain
from mycarenet_ic.persistence.db import make_engine
from mycarenet_ic.persistence.tables import audit_log, ic_event, ic_inclusion, ic_request
from mycarenet_ic.sandbox import Sandbox
from mycarenet_ic.security.pki import Pki
from mycarenet_ic.security.wssec import MemoryReplayCache, Signer, TrustStore, Verifier
from mycarenet_ic.server import ServedApp, free_port, wait_ready
from tests import support
from tests.ic_client import IC_NS, Fault, IcClient
from tests.integration.conftest import sandbox_env

pytestmark = pytest.mark.integration

PSIS = ("91000153", "91000252", "91000351")
CLIENTS = int(os.environ.get("MYCARENET_RELIABILITY_CLIENTS", "32"))
PER_CLIENT = int(os.environ.get("MYCARENET_RELIABILITY_PER_CLIENT", "250"))
RESEND_EVERY = 10  # 10 % of the declarations are sent a second time with the same request Id


def counts(box: Sandbox) -> tuple[int, int, int]:
    with box.platform.engine.connect() as conn:
        return tuple(conn.execute(select(func.count()).select_from(t)).scalar_one()  # type: ignore[return-value]
                     for t in (ic_inclusion, ic_event, ic_request))


def new_patients(box: Sandbox, count: int) -> list[str]:
    """``count`` fresh persons in the National Register stub (valid NISS, born on 1 January 1950 + n days)."""
    out: list[str] = []
    records: list[dict[str, Any]] = []
    n = 0
    while len(out) < count:
        birth = dt.date(1950, 1, 1) + dt.timedelta(days=n // 400)
        ssin = make_niss(birth, 500 + n % 400)
        n += 1
        if box.scenario.person(ssin) is not None:
            continue
        out.append(ssin)
        records.append({"ssin": ssin, "last_name": f"Load{len(out)}", "first_names": ["Test"],
                        "birth_date": birth.isoformat(), "sex": "unknown"})
    box.scenario.add_persons(records)
    return out


def _declare(session: requests.Session, url: str, signer: Signer, ssin: str, psi: str, rid: str) -> tuple[str, str]:
    """One signed declaration, posted raw (no zeep: the client must not be the bottleneck); (answer Id, inclusion)."""
    body = (f'<ic:DeclareInclusionRequest xmlns:ic="{IC_NS}" Id="{rid}" '
            f'IssueInstant="{support.now().replace(microsecond=0).isoformat()}"><ic:CommonInput>'
            "<ic:IsTest>true</ic:IsTest><ic:Origin><ic:Package><ic:Name>load</ic:Name></ic:Package></ic:Origin>"
            f"</ic:CommonInput><ic:Patient><ic:Ssin>{ssin}</ic:Ssin></ic:Patient><ic:Project>{psi}</ic:Project>"
            "<ic:Status>information</ic:Status><ic:StartDate>2026-10-01</ic:StartDate>"
            "<ic:Consent><ic:Agreement>agree</ic:Agreement><ic:Date>2026-10-01</ic:Date></ic:Consent>"
            "</ic:DeclareInclusionRequest>")
    answer = session.post(url, data=support.to_bytes(support.signed(signer, body)), timeout=120,
                          headers={"Content-Type": "text/xml; charset=utf-8"})
    root = etree.fromstring(answer.content)
    reply = root.find(f"{{{support.ns.SOAP11_ENV}}}Body/{{{IC_NS}}}DeclareInclusionResponse")
    if answer.status_code != 200 or reply is None:
        return "fault", answer.content.decode(errors="replace")[-400:]
    return reply.get("Id") or "", reply.findtext(f"{{{IC_NS}}}Inclusion/{{{IC_NS}}}InclusionId") or ""


def test_concurrent_declarations_with_resends_lose_and_duplicate_nothing(sandbox: Sandbox) -> None:
    total = CLIENTS * PER_CLIENT
    patients = new_patients(sandbox, (total + len(PSIS) - 1) // len(PSIS))
    work = [(patients[i // len(PSIS)], PSIS[i % len(PSIS)], f"_load{i:06d}{secrets.token_hex(4)}")
            for i in range(total)]
    signer = Signer(sandbox.platform.pki.issue_holder(Quality.DOCTOR, support.DOCTOR_SSIN, support.DOCTOR_NIHII))
    url = sandbox.urls["integrated-care"]
    before = counts(sandbox)
    answers: dict[str, tuple[str, str]] = {}
    resent: dict[str, tuple[str, str]] = {}
    failures: list[Any] = []

    def client_run(slot: int) -> None:
        session = requests.Session()
        session.trust_env = False  # no proxy from the environment; the sandbox CAs explicitly
        session.verify = os.environ["REQUESTS_CA_BUNDLE"]
        for k in range(slot, total, CLIENTS):
            ssin, psi, rid = work[k]
            first = _declare(session, url, signer, ssin, psi, rid)
            if first[0] == "fault":
                failures.append((rid, first[1]))
                continue
            answers[rid] = first
            if k % RESEND_EVERY == 0:
                resent[rid] = _declare(session, url, signer, ssin, psi, rid)

    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(client_run, range(CLIENTS)))
    assert failures == []
    assert len(answers) == total and len(resent) == (total + RESEND_EVERY - 1) // RESEND_EVERY
    after = counts(sandbox)
    assert (after[0] - before[0], after[1] - before[1], after[2] - before[2]) == (total, total, total)
    for rid, again in resent.items():  # every resend got the first answer: same answer Id, same inclusion
        assert again == answers[rid]
    assert len({inclusion for _, inclusion in answers.values()}) == total
    assert verify_chain(sandbox.platform.engine).ok


def test_the_same_signed_message_twenty_times_at_once_is_processed_once(sandbox: Sandbox) -> None:
    ssin = new_patients(sandbox, 1)[0]
    client = IcClient(sandbox, Quality.DOCTOR, support.DOCTOR_SSIN, support.DOCTOR_NIHII)
    body = (f'<ic:DeclareInclusionRequest xmlns:ic="{IC_NS}" Id="_{secrets.token_hex(8)}" '
            f'IssueInstant="{support.now().replace(microsecond=0).isoformat()}"><ic:CommonInput>'
            "<ic:IsTest>true</ic:IsTest><ic:Origin><ic:Package><ic:Name>t</ic:Name></ic:Package></ic:Origin>"
            f"</ic:CommonInput><ic:Patient><ic:Ssin>{ssin}</ic:Ssin></ic:Patient><ic:Project>91000153</ic:Project>"
            "<ic:Status>information</ic:Status><ic:StartDate>2026-11-01</ic:StartDate>"
            "<ic:Consent><ic:Agreement>agree</ic:Agreement><ic:Date>2026-11-01</ic:Date></ic:Consent>"
            "</ic:DeclareInclusionRequest>")
    message = support.to_bytes(support.signed(Signer(client.holder), body))
    before = counts(sandbox)
    barrier = threading.Barrier(20)

    def send(_: int) -> int:
        barrier.wait()
        return support.post(sandbox.urls["integrated-care"], message).status

    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(send, range(20)))
    assert sorted(statuses) == [200] + [500] * 19
    assert counts(sandbox) == tuple(c + 1 for c in before)


def _inject_failure(box: Sandbox, on: bool) -> None:
    """Make the database refuse the change-event insert (a real failure inside the write transaction)."""
    with box.platform.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            if on:
                conn.execute(text("CREATE OR REPLACE FUNCTION mcn_fail() RETURNS trigger AS $$ BEGIN "
                                  "RAISE EXCEPTION 'injected failure'; END $$ LANGUAGE plpgsql"))
                conn.execute(text("CREATE TRIGGER mcn_fail BEFORE INSERT ON ic_event FOR EACH ROW "
                                  "EXECUTE FUNCTION mcn_fail()"))
            else:
                conn.execute(text("DROP TRIGGER mcn_fail ON ic_event"))
        elif on:
            conn.execute(text("CREATE TRIGGER mcn_fail BEFORE INSERT ON ic_event "
                              "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"))
        else:
            conn.execute(text("DROP TRIGGER mcn_fail"))


def test_a_database_failure_mid_request_is_a_retryable_system_error_that_leaves_nothing(sandbox: Sandbox) -> None:
    ssin = new_patients(sandbox, 1)[0]
    client = IcClient(sandbox, Quality.DOCTOR, support.DOCTOR_SSIN, support.DOCTOR_NIHII)
    before = counts(sandbox)
    _inject_failure(sandbox, True)
    try:
        failed = client.declare(ssin, "91000252", request_id="_dbfail1")
    finally:
        _inject_failure(sandbox, False)
    assert isinstance(failed, Fault)
    assert (failed.kind, failed.code, failed.retry) == ("SystemError", "STORAGE_UNAVAILABLE", "true")
    assert "injected" not in failed.message and "INSERT" not in failed.message
    assert counts(sandbox) == before  # no inclusion, no event, no stored answer
    row = sandbox.platform.audit.rows(limit=1)[0]
    assert (row["operation"], row["outcome"]) == ("DeclareInclusionRequest", "ERROR")
    assert "STORAGE_UNAVAILABLE" in str(row["detail"])
    retried = client.declare(ssin, "91000252", request_id="_dbfail1")  # the retry succeeds
    assert not isinstance(retried, Fault) and counts(sandbox)[0] == before[0] + 1


class _BlackHole:
    """A TCP server on 127.0.0.1 that accepts connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/"
        self.held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def broken_upstreams(sandbox: Sandbox) -> Iterator[dict[str, str]]:
    """Integrated Care served with its stubs down (a closed port) or slow (a black hole), timeout 1 s."""
    hole = _BlackHole()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    down = f"http://127.0.0.1:{closed.getsockname()[1]}/"
    closed.close()
    platform = sandbox.platform
    signer, verifier = platform.signer("mycarenet"), platform.answer_verifier()
    served = {}
    for name, url in (("down", down), ("slow", hole.url)):
        gateways = Gateways(ZeepAttributeAuthorityGateway(url, signer, verifier, 1.0),
                            ZeepCobrhaGateway(url, signer, verifier, 1.0),
                            ZeepNationalRegisterGateway(url, signer, verifier, 1.0))
        endpoint = business_endpoints(platform, gateways)["integrated-care"]
        app = ServedApp(f"ic-{name}", endpoint, threads=4, path="/integrated-care").start()
        endpoint.address = app.url
        wait_ready(app.url + "?wsdl")
        served[name] = app
    try:
        yield {name: app.url for name, app in served.items()}
    finally:
        for app in served.values():
            app.stop()
        hole.close()


@pytest.mark.parametrize("which", ["down", "slow"])
def test_a_stub_down_or_slow_is_a_clean_system_error_within_the_timeout(sandbox: Sandbox, which: str,
                                                                        broken_upstreams: dict[str, str]) -> None:
    client = IcClient(sandbox, Quality.DOCTOR, support.DOCTOR_SSIN, support.DOCTOR_NIHII, url=broken_upstreams[which])
    before = counts(sandbox)
    started = time.monotonic()
    answer = client.declare(new_patients(sandbox, 1)[0], "91000252")
    elapsed = time.monotonic() - started
    assert isinstance(answer, Fault)
    assert (answer.kind, answer.code, answer.retry) == ("SystemError", "UPSTREAM_UNAVAILABLE", "true")
    assert elapsed < 1.0 + 3.0  # the configured timeout, plus the time to sign and answer
    assert counts(sandbox) == before


# -- whole processes ---------------------------------------------------------------------------------------
def _env(data_dir: Path, database_url: str | None) -> dict[str, str]:
    env = sandbox_env()
    env["MYCARENET_DATA_DIR"] = str(data_dir)
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def _start_sandbox(data_dir: Path, database_url: str | None) -> tuple[subprocess.Popen[str], dict[str, str]]:
    proc = subprocess.Popen([sys.executable, "-m", "mycarenet_ic.cli", "sandbox", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=_env(data_dir, database_url))
    ready: dict[str, str] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("READY "):
            _, name, url = line.split()
            ready[name] = url
        if line.startswith("Ctrl-C"):
            support.trust(data_dir)
            return proc, ready
    raise AssertionError(f"the sandbox did not start (exit {proc.wait()})")


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    from tests.conftest import _database

    yield from _database(request.param, tmp_path)


class _Box:
    """Enough of a Sandbox for IcClient: the PKI of a data directory, and a verifier trusting its CA."""

    def __init__(self, data_dir: Path) -> None:
        pki = Pki(data_dir)
        trust = TrustStore.from_pem(pki.ca().cert_pem)
        self.platform = SimpleNamespace(pki=pki, answer_verifier=lambda: Verifier(trust, MemoryReplayCache()),
                                        close=lambda: None)
        self.urls: dict[str, str] = {}


def test_sigterm_with_requests_in_flight_loses_nothing(tmp_path: Path, database: str | None) -> None:
    data_dir = tmp_path / "data"
    proc, urls = _start_sandbox(data_dir, database)
    box = _Box(data_dir)
    ok: dict[str, str] = {}          # request Id → inclusion Id, for every declaration answered
    refused: list[str] = []
    stop = threading.Event()
    fresh = [make_niss(dt.date(1960, 1, 1) + dt.timedelta(days=i), 601) for i in range(6 * 40)]
    token = (data_dir / "secrets" / "admin.token").read_text().strip()
    added = requests.post(urls["scenario-admin"].rstrip("/") + "/scenario/changes", timeout=30,
                          headers={"Authorization": f"Bearer {token}"},
                          json={"action": "add-persons", "persons": [
                              {"ssin": s, "last_name": "Inflight", "first_names": ["T"], "birth_date": None,
                               "sex": "unknown"} for s in fresh]})
    assert added.status_code == 200, added.text

    def worker(slot: int) -> None:
        client = IcClient(box, Quality.DOCTOR, support.DOCTOR_SSIN, support.DOCTOR_NIHII,  # type: ignore[arg-type]
                          url=urls["integrated-care"])
        n = 0
        while not stop.is_set() and n < 40:
            rid = f"_sig{slot:02d}{n:03d}"
            ssin, psi = fresh[slot * 40 + n], ("91000153", "91000252", "91000351")[(slot + n) % 3]
            try:
                answer = client.declare(ssin, psi, status="information", request_id=rid)
            except Exception:  # noqa: BLE001 - connection refused or reset: the request never started
                refused.append(rid)
                return
            if not isinstance(answer, Fault):
                ok[rid] = answer.Inclusion.InclusionId
            n += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(ok) < 12 and time.monotonic() < deadline:
        time.sleep(0.05)  # polling progress of the clients, bounded
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    stop.set()
    for t in threads:
        t.join(timeout=60)
    _stop(proc)
    assert len(ok) >= 12
    # restart on the same data: every answered declaration is there, and only those
    proc, urls = _start_sandbox(data_dir, database)
    try:
        engine = make_engine(Settings(data_dir=data_dir, database_url=database).effective_database_url)
        try:
            with engine.connect() as conn:
                stored = {rid: answer for rid, answer in conn.execute(
                    select(ic_request.c.request_id, ic_request.c.answer).where(ic_request.c.request_id.like("_sig%")))}
            assert set(stored) == set(ok)
            for rid, inclusion_id in ok.items():
                assert inclusion_id in stored[rid]
            assert verify_chain(engine).ok
        finally:
            engine.dispose()
    finally:
        _stop(proc)
        box.platform.close()


def test_two_workers_share_the_replay_cache_and_one_audit_chain(tmp_path: Path, database: str | None) -> None:
    data_dir = tmp_path / "data"
    from mycarenet_ic.app import Platform
    from mycarenet_ic.stubs.scenario import Scenario

    platform = Platform.prepared(Settings(data_dir=data_dir, database_url=database))  # PKI, schema, keys: once
    Scenario.for_data_dir(data_dir, reset=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = _env(data_dir, database) | {"MYCARENET_PUBLIC_URL": base}
    # The business services reach the stubs through this same server: each worker needs more threads than
    # the requests it serves at once (16 at most here), or they could all wait on upstream calls.
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", "2", "-k", "gthread", "--threads", "24",
                             "-b", f"127.0.0.1:{port}", "--graceful-timeout", "20", "mycarenet_ic.wsgi:create_app()"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(f"{base}/integrated-care?wsdl", timeout=60)
        holder = platform.pki.issue_holder(Quality.DOCTOR, support.DOCTOR_SSIN, support.DOCTOR_NIHII)
        # the same signed declaration, sent 16 times at once to the two workers: one is processed
        common = ("<ic:CommonInput><ic:IsTest>true</ic:IsTest><ic:Origin><ic:Package><ic:Name>t</ic:Name>"
                  "</ic:Package></ic:Origin></ic:CommonInput>")
        maes = "61110202116"
        declare = (f'<ic:DeclareInclusionRequest xmlns:ic="{IC_NS}" Id="_{secrets.token_hex(8)}" '
                   f'IssueInstant="{support.now().replace(microsecond=0).isoformat()}">{common}'
                   f"<ic:Patient><ic:Ssin>{maes}</ic:Ssin></ic:Patient><ic:Project>91000351</ic:Project>"
                   "<ic:Status>principal</ic:Status><ic:StartDate>2026-11-01</ic:StartDate>"
                   "<ic:Consent><ic:Agreement>agree</ic:Agreement><ic:Date>2026-11-01</ic:Date></ic:Consent>"
                   "</ic:DeclareInclusionRequest>")
        message = support.to_bytes(support.signed(Signer(holder), declare))
        barrier = threading.Barrier(16)

        def post(data: bytes) -> int:
            return requests.post(f"{base}/integrated-care", data=data, timeout=60,
                                 headers={"Content-Type": "text/xml; charset=utf-8"}).status_code

        def send(_: int) -> int:
            barrier.wait()
            return post(message)

        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(send, range(16)))
        with platform.engine.connect() as conn:
            stored = conn.execute(select(func.count()).select_from(ic_inclusion)).scalar_one()
            replays = conn.execute(select(func.count()).select_from(audit_log).where(
                audit_log.c.outcome == "DENIED", audit_log.c.detail.like("%message replayed%"))).scalar_one()
        assert sorted(statuses) == [200] + [500] * 15 and (stored, replays) == (1, 15)

        # a burst of signed consultations spread over both workers: one linear chain
        def consult(_: int) -> int:
            body = (f'<ic:ConsultInclusionsRequest xmlns:ic="{IC_NS}" Id="_{secrets.token_hex(8)}" '
                    f'IssueInstant="{support.now().replace(microsecond=0).isoformat()}">{common}'
                    f"<ic:Patient><ic:Ssin>{maes}</ic:Ssin></ic:Patient></ic:ConsultInclusionsRequest>")
            return post(support.to_bytes(support.signed(Signer(holder), body)))

        with ThreadPoolExecutor(16) as pool:
            assert set(pool.map(consult, range(64))) == {200}
        report = verify_chain(platform.engine)
        assert report.ok, report.reason
        with platform.engine.connect() as conn:
            rows = conn.execute(select(func.count()).select_from(audit_log).where(
                audit_log.c.operation == "ConsultInclusionsRequest", audit_log.c.outcome == "OK")).scalar_one()
        assert rows == 64 and report.rows >= 1 + 15 + 64 * 2  # each consultation: its row and the link check
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        platform.close()
