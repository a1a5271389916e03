"""HTTPS (issue 19, item 13): every sandbox endpoint speaks TLS with a certificate from the sandbox CA, as
production does; clients that do not trust that CA are refused, plain HTTP on a TLS port gets no answer
and changes nothing, the services reach the stubs over TLS checked against the CA, and a silent TLS
client is dropped like a silent HTTP one. Plain HTTP stays available for local debugging."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from lxml import etree

from mycarenet_ic.clients.gateways import ZeepCobrhaGateway
from mycarenet_ic.errors import UpstreamFault, UpstreamUnavailable
from mycarenet_ic.sandbox import Sandbox
from mycarenet_ic.security.pki import Pki
from mycarenet_ic.security.wssec import Signer
from mycarenet_ic.server import FrontLimits, ServedApp, server_tls
from tests import support

pytestmark = pytest.mark.integration

WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"


def _audit_rows(box: Sandbox) -> int:
    return len(box.platform.audit.rows(limit=1_000_000))


def test_every_endpoint_is_https_and_names_itself_so(sandbox: Sandbox) -> None:
    assert sandbox.settings.tls
    for name, url in sandbox.urls.items():
        assert url.startswith("https://127.0.0.1:"), url
        if name not in sandbox.soap_urls:
            continue
        wsdl = etree.fromstring(requests.get(url + "?wsdl", timeout=10).content)
        addresses = [a.get("location") for a in wsdl.iter(f"{{{WSDL_SOAP}}}address")]
        assert addresses and all(a == url for a in addresses)


def test_the_certificate_is_the_sandbox_cas_for_the_loopback_names(sandbox: Sandbox) -> None:
    parts = urlsplit(sandbox.urls["memberdata"])
    context = ssl.create_default_context(cafile=str(sandbox.platform.pki.ca_file))
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        der = tls.getpeercert(binary_form=True)
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    assert der is not None
    cert = x509.load_der_x509_certificate(der)
    assert cert.issuer == sandbox.platform.pki.ca().certificate.subject
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert "127.0.0.1" in [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_a_client_that_does_not_trust_the_sandbox_ca_is_refused(sandbox: Sandbox, tmp_path: Path) -> None:
    other = Pki(tmp_path / "other")
    other.init()
    url = sandbox.urls["cobrha"] + "?wsdl"
    for verify in (True, str(other.ca_file)):  # the system's CAs; another sandbox's CA
        with requests.Session() as session, pytest.raises(requests.exceptions.SSLError):
            session.trust_env = False  # not the tests' bundle of sandbox CAs
            session.get(url, timeout=10, verify=verify)


def test_plain_http_on_a_tls_port_gets_no_answer_and_changes_nothing(sandbox: Sandbox, doctor_signer: Signer) -> None:
    parts = urlsplit(sandbox.urls["integrated-care"])
    body = support.to_bytes(support.signed(doctor_signer, support.aa_body()))
    before = _audit_rows(sandbox)
    with socket.create_connection((parts.hostname, parts.port), timeout=15) as raw:
        raw.sendall(b"POST /integrated-care HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\n"
                    b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
        answer = b""
        try:
            while chunk := raw.recv(65536):
                answer += chunk
        except OSError:
            pass
    assert not answer.startswith(b"HTTP/")
    assert _audit_rows(sandbox) == before


def test_the_services_reach_the_stubs_over_tls_checked_against_the_ca(sandbox: Sandbox, tmp_path: Path) -> None:
    assert all(url.startswith("https://") for url in sandbox.urls.values())
    signer = sandbox.platform.signer("mycarenet")
    verifier = sandbox.platform.answer_verifier()
    trusted = ZeepCobrhaGateway(sandbox.urls["cobrha"], signer, verifier, 10, sandbox.platform.pki.ca_file)
    assert trusted.professional(nihii=support.DOCTOR_NIHII) is not None
    other = Pki(tmp_path / "other")
    other.init()
    untrusted = ZeepCobrhaGateway(sandbox.urls["cobrha"], signer, verifier, 10, other.ca_file)
    with pytest.raises((UpstreamUnavailable, UpstreamFault)):
        untrusted.professional(nihii=support.DOCTOR_NIHII)


def test_a_silent_tls_client_is_dropped_without_holding_a_worker() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        pki = Pki(Path(tmp))
        pki.init()
        calls: list[str] = []

        def app(environ: dict[str, object], start_response: object) -> list[bytes]:
            calls.append(str(environ["wsgi.url_scheme"]))
            start_response("200 OK", [("Content-Type", "text/plain")])  # type: ignore[operator]
            return [b"ok"]

        served = ServedApp("tls-probe", app, threads=1, tls=server_tls(*pki.tls_server("127.0.0.1")),
                           limits=FrontLimits(header_timeout=1, idle_timeout=1)).start()
        try:
            silent = socket.create_connection(("127.0.0.1", served.port), timeout=10)  # no handshake at all
            started = time.monotonic()
            assert silent.recv(1) == b""  # closed by the server
            assert time.monotonic() - started < 8
            silent.close()
            # meanwhile, and after, an honest TLS client on the one worker is answered
            answer = requests.get(served.url, timeout=10, verify=str(pki.ca_file))
            assert (answer.status_code, answer.text, calls) == (200, "ok", ["https"])
        finally:
            served.stop()


def test_plain_http_is_an_explicit_option(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "mycarenet_ic.cli", "sandbox", "--plain-http", "--port", "0",
                             "--data-dir", str(tmp_path / "d")],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        ready: dict[str, str] = {}
        deadline = time.monotonic() + 120
        for line in proc.stdout:
            if line.startswith("READY "):
                _, name, url = line.split()
                ready[name] = url
            if line.startswith("Ctrl-C") or time.monotonic() > deadline:
                break
        assert ready and all(url.startswith("http://127.0.0.1:") for url in ready.values())
        assert requests.get(ready["cobrha"] + "?wsdl", timeout=10).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        if proc.stdout is not None:
            proc.stdout.close()
