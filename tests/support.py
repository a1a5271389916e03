"""Helpers shared by the tests: envelopes, signing, posting, reading faults, PostgreSQL databases."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
import socket
import ssl
import subprocess
import sys
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
from lxml import etree

from mycarenet_ic import ns
from mycarenet_ic.clients.raw import envelope as envelope  # the tests use them from here
from mycarenet_ic.clients.raw import to_bytes as to_bytes
from mycarenet_ic.security.wssec import Signer
from mycarenet_ic.soap.faults import descriptive_code

if TYPE_CHECKING:  # the sandbox pulls in every service: only the tests that start one import it
    from mycarenet_ic.sandbox import Sandbox

AA_NS = "urn:be:fgov:ehealth:sandbox:attributeauthority:v1"
AB_NS = "urn:be:fgov:ehealth:sandbox:addressbook:v1"
RN_NS = "urn:be:fgov:ehealth:sandbox:rn:v1"

# Demo-scenario facts the tests rely on (stubs/scenarios/demo.json).
DOCTOR_NIHII = "11200035003"          # Verhoeven Tom, GP, valid VISA
DOCTOR_SSIN = "74030902123"
EXPIRED_VISA_NIHII = "11207458003"    # Moreau Alain, VISA ended 2024-12-31
PHARMACIST_SSIN = "69012702143"       # Geerts Wim (NIHII 61229665000), works in PHARMACY_NIHII
PHARMACY_NIHII = "62103457"
CLOSED_PHARMACY_NIHII = "64099083"
PATIENT_LINKED = "48031202166"        # Peeters Jan: linked to DOCTOR_NIHII and PHARMACY_NIHII
PATIENT_UNLINKED = "82112502158"      # Desmet Jules: no link with DOCTOR_NIHII
DECEASED = "36122402201"              # Lejeune Monique, died 2026-09-14 (mutation 1)
BIS_REPLACED = "88431512423"          # BIS number replaced by REPLACEMENT (mutation 2)
REPLACEMENT = "88031512434"


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def aa_body(patient: str = PATIENT_LINKED, hcparty: str = DOCTOR_NIHII, kind: str = "persphysician",
            on: str = "2026-11-01", request_id: str | None = None) -> str:
    rid = request_id or f"_{secrets.token_hex(8)}"
    return (f'<aa:HasTherapeuticLinkRequest xmlns:aa="{AA_NS}" Id="{rid}" '
            f'IssueInstant="{now().replace(microsecond=0).isoformat()}">'
            f"<aa:Patient><aa:Ssin>{patient}</aa:Ssin></aa:Patient>"
            f"<aa:HcParty><aa:Nihii>{hcparty}</aa:Nihii><aa:Type>{kind}</aa:Type></aa:HcParty>"
            f"<aa:Date>{on}</aa:Date></aa:HasTherapeuticLinkRequest>")


def commons_request(element: str, ns: str, version: int, blob: bytes, patient: str, day: dt.date,
                    reference: str) -> str:
    """A commons request body built by hand for the demo GP (see mycarenet_ic.clients.messages)."""
    from mycarenet_ic.clients.messages import commons_request as build

    return build(element, ns, version, blob, patient, day, reference, DOCTOR_NIHII, DOCTOR_SSIN)


def signed(signer: Signer, body_xml: str, when: dt.datetime | None = None) -> etree._Element:
    return signer.sign(envelope(body_xml), now=when)


@dataclass
class Answer:
    status: int
    body: bytes
    root: etree._Element | None

    @property
    def fault(self) -> etree._Element | None:
        if self.root is None:
            return None
        return self.root.find(f"{{{ns.SOAP11_ENV}}}Body/{{{ns.SOAP11_ENV}}}Fault")

    def error_detail(self) -> dict[str, str]:
        fault = self.fault
        assert fault is not None, self.body[:500]
        detail = fault.find("detail")
        assert detail is not None and len(detail) == 1
        err = detail[0]
        fields = {etree.QName(child).localname: child.text or "" for child in err}
        # "Code" here is our own code (the wire's Code is the SOA catalogue's where it has one: "SoaCode")
        fields["SoaCode"] = fields.get("Code", "")
        fields["Code"] = descriptive_code(fields["SoaCode"], fields.get("Message", ""))
        return {"kind": etree.QName(err).localname, "faultcode": fault.findtext("faultcode") or "",
                "faultstring": fault.findtext("faultstring") or "", **fields}


@contextmanager
def running_sandbox(data_dir: Path, database_url: str | None = None, **settings: Any) -> Iterator[Sandbox]:
    """A sandbox of the tests on 127.0.0.1 (the demo scenario afresh, its CA trusted), stopped after;
    ``settings`` on top of the tests' defaults."""
    from mycarenet_ic.config import Settings
    from mycarenet_ic.sandbox import Sandbox

    # The periodic mutation sync is tested on its own; here it must not race the tests' own syncs.
    # Upstream timeout: the load tests run 32 signing clients in this process on 2 cores; the timeout
    # itself is tested with its own servers (test_reliability).
    # Tokens: both kinds, so that the suite's simple-mode (X.509) clients and its STS clients both reach the
    # services; production's default (STS tokens only) has its own tests (test_hok_attacks).
    defaults: dict[str, Any] = {"mutation_sync_seconds": 3600, "upstream_timeout_seconds": 30,
                                "accepted_tokens": "x509,saml-hok"}
    box = Sandbox(Settings(data_dir=data_dir, database_url=database_url, **{**defaults, **settings}),
                  reset_scenario=True)
    box.start(0)
    trust(box.settings.data_dir)
    try:
        yield box
    finally:
        box.stop()


def trust(data_dir: Path) -> None:
    """Trust the sandbox CA of ``data_dir`` for the tests' HTTPS clients: every sandbox has its own CA, so
    each is added to the one bundle ``REQUESTS_CA_BUNDLE`` names (set for the session in conftest)."""
    bundle = Path(os.environ["REQUESTS_CA_BUNDLE"])
    pem = (Path(data_dir) / "pki" / "ca.cert.pem").read_bytes()
    if pem not in bundle.read_bytes():
        with bundle.open("ab") as out:
            out.write(pem)


def connect(url: str, timeout: float) -> socket.socket:
    """A raw connection to ``url``'s port (for requests written byte for byte): TLS for https, checked
    against the bundle of sandbox CAs."""
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname in ("127.0.0.1", "localhost") and parts.port
    raw = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
    if parts.scheme != "https":
        return raw
    context = ssl.create_default_context(cafile=os.environ["REQUESTS_CA_BUNDLE"])
    return context.wrap_socket(raw, server_hostname=parts.hostname)


def post(url: str, data: bytes, content_type: str = "text/xml; charset=utf-8") -> Answer:
    resp = requests.post(url, data=data, headers={"Content-Type": content_type}, timeout=30)
    try:
        root = etree.fromstring(resp.content, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError:
        root = None
    return Answer(resp.status_code, resp.content, root)


def fresh_postgres_database(base_url: str) -> tuple[str, str]:
    """Create an empty database on the server of ``base_url``; return (url, name)."""
    import psycopg

    name = f"mcn_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    head, _, _ = base_url.rpartition("/")
    return f"{head}/{name}", name


def drop_postgres_database(base_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(base_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def service_rows_since(box: object, service: str, before: int) -> list[dict[str, object]]:
    """The audit rows of ``service`` written after the first ``before`` rows of the whole log."""
    rows = box.platform.audit.rows(limit=1_000_000)  # type: ignore[attr-defined]
    return [r for r in rows[before:] if r["service"] == service]


def postgres_url() -> str | None:
    return os.environ.get("MYCARENET_TEST_POSTGRES_URL") or None


def postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (dropped after); skipped without a server,
    except in CI, where a missing server fails the run."""
    import pytest

    base = postgres_url()
    if base is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the PostgreSQL tests: MYCARENET_TEST_POSTGRES_URL is not set")
        pytest.skip("no PostgreSQL server (set MYCARENET_TEST_POSTGRES_URL)")
    url, name = fresh_postgres_database(base)
    try:
        yield url
    finally:
        drop_postgres_database(base, name)


def sandbox_cli(sandbox: Sandbox, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """``mycarenet-ic <args>`` run as its own process on the sandbox's data directory and database."""
    env = {"PATH": "/usr/bin:/bin", "MYCARENET_DATA_DIR": str(sandbox.settings.data_dir)}
    if sandbox.settings.database_url:
        env["DATABASE_URL"] = sandbox.settings.database_url
    return subprocess.run([sys.executable, "-m", "mycarenet_ic.cli", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, check=False)


def established_to(port: int) -> list[list[str]]:
    """The kernel's rows (``/proc/net/tcp`` and ``tcp6``, Linux) of the established connections whose local port
    is ``port``: the server side of the connections made to it. Fields: 1 local and 2 remote address, 4 the
    queues (``tx:rx``), 9 the socket's inode."""
    rows = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            for row in list(f)[1:]:
                fields = row.split()
                if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 01: ESTABLISHED
                    rows.append(fields)
    return rows
