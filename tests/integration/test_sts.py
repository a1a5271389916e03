"""The STS stub and its client: the eHealth SAML 1.1 request and answer, certified from the demo scenario."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import requests
from cryptography import x509
from lxml import etree

from mycarenet_ic import contract, ns
from mycarenet_ic.cli import main
from mycarenet_ic.clients.sts import StsClient, StsRefused, TokenSource, build_request
from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.sandbox import Sandbox
from mycarenet_ic.security.pki import KeyPair, create_ca, holder_name, issue, write_keypair
from mycarenet_ic.security.saml11 import CERTIFIED_NAMESPACE, SAML, SAMLP, AssertionVerifier
from mycarenet_ic.security.sts_attributes import role
from mycarenet_ic.security.wssec import Signer
from mycarenet_ic.stubs.sts import same_name
from tests import support

pytestmark = pytest.mark.integration

EXPIRED_VISA_SSIN = "57120502143"   # Moreau Alain, doctor 11207458003, VISA ended 2024-12-31
SCHEMA = contract.schema("saml-protocol-1.1-subset.xsd")
P = f"{{{SAMLP}}}"


def _identity(box: Sandbox, quality: Quality = Quality.DOCTOR, ssin: str | None = support.DOCTOR_SSIN,
              nihii: str | None = None) -> KeyPair:
    return box.platform.pki.issue_identity(quality, ssin, nihii)


def _client(box: Sandbox, identity: KeyPair, hok: KeyPair | None = None, **kw: object) -> StsClient:
    pki = box.platform.pki
    return StsClient(box.urls["sts"], identity, box.platform.trust, pki.service("sts").certificate,
                     holder_of_key=hok, ca_file=pki.ca_file, **kw)  # type: ignore[arg-type]


def _status(response: etree._Element) -> list[str]:
    return [c.get("Value") or "" for c in response.iter(f"{P}StatusCode")]


def _refused(response: etree._Element, words: str) -> None:
    assert SCHEMA.validate(response), SCHEMA.error_log
    assert _status(response) == ["samlp:Requester", "samlp:RequestDenied"]
    assert words in (response.findtext(f"{P}Status/{P}StatusMessage") or "")
    assert response.find(f"{{{SAML}}}Assertion") is None


def _certified(response: etree._Element, name: str | None) -> str | None:
    for attr in response.iter(f"{{{SAML}}}Attribute"):
        if attr.get("AttributeName") == name and attr.get("AttributeNamespace") == CERTIFIED_NAMESPACE:
            return attr.findtext(f"{{{SAML}}}AttributeValue") or ""
    return None


@pytest.fixture(scope="module")
def doctor_id(sandbox: Sandbox) -> KeyPair:
    return _identity(sandbox)


def test_a_doctor_of_the_scenario_gets_a_token(sandbox: Sandbox, doctor_id: KeyPair) -> None:
    client = _client(sandbox, doctor_id)
    request = client.request(Quality.DOCTOR)
    assert SCHEMA.validate(request), SCHEMA.error_log
    response = client.send(request)
    assert SCHEMA.validate(response), SCHEMA.error_log
    assert _status(response) == ["samlp:Success"]
    assert response.get("InResponseTo") == request.get("RequestID")
    doctor = role(Quality.DOCTOR)
    assert _certified(response, doctor.boolean) == "true"
    assert _certified(response, doctor.nihii11) == support.DOCTOR_NIHII

    token = client.token(Quality.DOCTOR)
    sts_cert = sandbox.platform.pki.service("sts").certificate
    verified = AssertionVerifier(sandbox.platform.trust, [sts_cert]).verify(etree.fromstring(token.xml))
    assert verified.assertion_id == token.assertion_id
    assert verified.holder_of_key == doctor_id.certificate
    assert (token.identity.quality, token.identity.ssin, token.identity.nihii) == (
        Quality.DOCTOR, support.DOCTOR_SSIN, support.DOCTOR_NIHII)
    # The client asks for [its now, its now + 1 h]; the STS starts the token at its own now (a second later
    # on a busy machine) and keeps the asked end: at most the hour asked, never more.
    assert dt.timedelta(minutes=59) < token.not_on_or_after - token.not_before <= dt.timedelta(hours=1)


def test_a_pharmacy_gets_a_token_with_its_nihii11(sandbox: Sandbox) -> None:
    pharmacy = _identity(sandbox, Quality.PHARMACY, None, support.PHARMACY_NIHII)
    token = _client(sandbox, pharmacy).token(Quality.PHARMACY)
    assert token.verified.value(role(Quality.PHARMACY).nihii11 or "", CERTIFIED_NAMESPACE) == \
        support.PHARMACY_NIHII + "000"
    assert (token.identity.quality, token.identity.nihii) == (Quality.PHARMACY, support.PHARMACY_NIHII)


@pytest.mark.parametrize(("quality", "ssin", "nihii"), [
    (Quality.DOCTOR, support.PATIENT_UNLINKED, None),          # a person CoBrHa does not know as a doctor
    (Quality.DOCTOR, EXPIRED_VISA_SSIN, None),                 # a doctor whose VISA ended
    (Quality.NURSE, support.DOCTOR_SSIN, None),                # a doctor is no nurse
    (Quality.PHARMACY, None, support.CLOSED_PHARMACY_NIHII),   # a pharmacy that closed
])
def test_what_cobrha_does_not_bear_out_is_false_and_the_client_refuses_it(
        sandbox: Sandbox, quality: Quality, ssin: str | None, nihii: str | None) -> None:
    client = _client(sandbox, _identity(sandbox, quality, ssin, nihii))
    response = client.send(client.request(quality))
    assert SCHEMA.validate(response), SCHEMA.error_log
    assert _status(response) == ["samlp:Success"]   # as production: answered, but not certified
    assert _certified(response, role(quality).boolean) == "false"
    assert _certified(response, role(quality).nihii11) == ""
    with pytest.raises(StsRefused, match=f"not certified as {quality.value}"):
        client.token(quality)


def test_an_asserted_niss_that_is_not_the_certificate_s_is_refused(sandbox: Sandbox, doctor_id: KeyPair) -> None:
    client = _client(sandbox, doctor_id)
    request = build_request(Quality.DOCTOR, doctor_id.certificate, doctor_id, support.PATIENT_LINKED)
    _refused(client.send(request), "is not the certificate's")


def test_a_name_identifier_of_another_certificate_is_refused(sandbox: Sandbox, doctor_id: KeyPair) -> None:
    other = _identity(sandbox, ssin=support.PATIENT_LINKED)
    request = build_request(Quality.DOCTOR, other.certificate, doctor_id, support.DOCTOR_SSIN)
    _refused(_client(sandbox, doctor_id).send(request), "NameIdentifier is not the subject")


def test_an_unknown_designator_is_refused(sandbox: Sandbox, doctor_id: KeyPair) -> None:
    request = build_request(Quality.DOCTOR, doctor_id.certificate, doctor_id, support.DOCTOR_SSIN)
    query = request.find(f"{P}AttributeQuery")
    assert query is not None
    etree.SubElement(query, f"{{{SAML}}}AttributeDesignator", AttributeName="urn:example:salary",
                     AttributeNamespace=CERTIFIED_NAMESPACE)
    _refused(_client(sandbox, doctor_id).send(request), "unknown attribute designator urn:example:salary")


def test_a_separate_holder_of_key_of_the_same_person_gets_a_token_bound_to_it(
        sandbox: Sandbox, doctor_id: KeyPair) -> None:
    hok = _identity(sandbox)
    token = _client(sandbox, doctor_id, hok).token(Quality.DOCTOR)
    assert token.verified.holder_of_key == hok.certificate
    assert token.identity.nihii == support.DOCTOR_NIHII


def test_a_holder_of_key_from_another_ca_is_refused(sandbox: Sandbox, doctor_id: KeyPair) -> None:
    foreign = issue(create_ca(), holder_name(Quality.DOCTOR, support.DOCTOR_SSIN, None, with_quality=False))
    request = build_request(Quality.DOCTOR, doctor_id.certificate, foreign, support.DOCTOR_SSIN)
    _refused(_client(sandbox, doctor_id).send(request), "holder-of-key certificate refused")


def test_a_holder_of_key_of_another_person_is_refused(sandbox: Sandbox, doctor_id: KeyPair) -> None:
    hok = _identity(sandbox, ssin=support.PATIENT_LINKED)
    request = build_request(Quality.DOCTOR, doctor_id.certificate, hok, support.DOCTOR_SSIN)
    _refused(_client(sandbox, doctor_id).send(request), "names another holder")


def test_the_inner_signature_must_be_the_holder_of_key_s(sandbox: Sandbox, doctor_id: KeyPair) -> None:
    hok = _identity(sandbox)
    client = _client(sandbox, doctor_id)
    # Signed with another key (the identity's) under the holder-of-key's certificate.
    forged = KeyPair(doctor_id.key_pem, hok.cert_pem)
    request = build_request(Quality.DOCTOR, doctor_id.certificate, forged, support.DOCTOR_SSIN, sign=True)
    _refused(client.send(request), "request signature refused")
    # Not signed at all: no proof of possession.
    request = build_request(Quality.DOCTOR, doctor_id.certificate, hok, support.DOCTOR_SSIN, sign=False)
    _refused(client.send(request), "one signature by the holder-of-key")
    # Signed, then changed: the designators are covered.
    request = build_request(Quality.DOCTOR, doctor_id.certificate, hok, support.DOCTOR_SSIN)
    request.set("IssueInstant", support.now().replace(microsecond=0).isoformat())
    _refused(client.send(request), "request signature refused")


def test_the_validity_asked_for_is_capped(sandbox: Sandbox, doctor_id: KeyPair) -> None:
    token = _client(sandbox, doctor_id, validity_seconds=3 * 86_400).token(Quality.DOCTOR)
    assert token.not_on_or_after - token.not_before == dt.timedelta(seconds=sandbox.settings.sts_max_token_seconds)
    request = build_request(Quality.DOCTOR, doctor_id.certificate, doctor_id, support.DOCTOR_SSIN)
    for conditions in request.iter(f"{{{SAML}}}Conditions"):
        conditions.getparent().remove(conditions)
    response = _client(sandbox, doctor_id).send(request)
    stated = response.find(f"{{{SAML}}}Assertion/{{{SAML}}}Conditions")
    assert stated is not None
    span = dt.datetime.fromisoformat(stated.get("NotOnOrAfter") or "") - \
        dt.datetime.fromisoformat(stated.get("NotBefore") or "")
    assert span == dt.timedelta(seconds=sandbox.settings.sts_token_seconds)


def test_the_audit_says_what_was_certified_without_the_niss(sandbox: Sandbox, doctor_id: KeyPair) -> None:
    before = len(sandbox.platform.audit.rows(limit=1_000_000))
    token = _client(sandbox, doctor_id).token(Quality.DOCTOR)
    request = build_request(Quality.DOCTOR, doctor_id.certificate, doctor_id, support.PATIENT_LINKED)
    _client(sandbox, doctor_id).send(request)
    rows = support.service_rows_since(sandbox, "sts", before)
    # The validity the audit states is the token's own (3600 s asked; 3599 s when the STS's now is a second
    # after the client's on a busy machine).
    validity = int((token.not_on_or_after - token.not_before).total_seconds())
    assert 3540 < validity <= 3600
    assert [(r["outcome"], r["detail"]) for r in rows] == [
        ("OK", f"token for a person: doctor=true; valid {validity} s"),
        ("DENIED", f"refused: the asserted {role(Quality.DOCTOR).asserted[0]} is not the certificate's")]
    assert not any(support.DOCTOR_SSIN in str(r) or support.PATIENT_LINKED in str(r["detail"]) for r in rows)


def test_the_token_source_fetches_once_and_renews_past_half_its_validity(
        sandbox: Sandbox, doctor_id: KeyPair) -> None:
    now = [support.now()]
    source = TokenSource(_client(sandbox, doctor_id, validity_seconds=600), Quality.DOCTOR, clock=lambda: now[0])
    first = source.token()
    now[0] += dt.timedelta(seconds=290)
    assert source.token() is first and source.fetches == 1
    now[0] += dt.timedelta(seconds=20)   # 310 s of 600 gone: less than half remains
    second = source.token()
    assert second.assertion_id != first.assertion_id and source.fetches == 2


def test_names_compare_in_any_common_spelling(doctor_id: KeyPair) -> None:
    cert: x509.Certificate = doctor_id.certificate
    ours = "CN=SSIN=74030902123, OU=SSIN=74030902123, OU=eHealth-platform Belgium, O=Federal Government, C=BE"
    assert same_name(ours, cert.subject)
    assert same_name('CN="SSIN=74030902123",OU="SSIN=74030902123",OU=eHealth-platform Belgium,'
                     'O=Federal Government,C=BE', cert.subject)                       # RFC 1779 quoting
    assert same_name("C=BE, O=Federal Government, OU=eHealth-platform Belgium, OU=SSIN=74030902123, "
                     "CN=SSIN=74030902123", cert.subject)                             # the other order
    assert not same_name(ours.replace("74030902123", "48031202166", 1), cert.subject)
    assert not same_name("CN=SSIN=74030902123", cert.subject)


def test_cli_prints_a_token_and_one_line_errors(sandbox: Sandbox, doctor_id: KeyPair, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    paths = write_keypair(doctor_id, tmp_path, "doctor")
    data = str(sandbox.settings.data_dir)
    assert main(["sts", "token", "--data-dir", data, "--cert", str(paths["cert"]), "--key", str(paths["key"]),
                 "--as", "doctor"]) == 0
    out = capsys.readouterr().out
    assert etree.fromstring(out.encode()).tag == f"{{{SAML}}}Assertion"
    assert (role(Quality.DOCTOR).boolean or "?") in out

    assert main(["sts", "token", "--data-dir", data, "--cert", str(tmp_path / "missing.pem"), "--key",
                 str(paths["key"]), "--as", "doctor"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "missing.pem" in err

    assert main(["sts", "token", "--data-dir", data, "--cert", str(paths["cert"]), "--key", str(paths["key"]),
                 "--as", "nurse"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: not certified as nurse") and err.count("\n") == 1


def test_certs_issue_identity_writes_a_production_style_certificate(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    assert main(["certs", "issue", "--data-dir", str(data), "--quality", "doctor", "--ssin", support.DOCTOR_SSIN,
                 "--identity", "--out", str(out), "--name", "me"]) == 0
    capsys.readouterr()
    cert = x509.load_pem_x509_certificate((out / "me.cert.pem").read_bytes())
    assert "QUALITY=" not in cert.subject.rfc4514_string()
    assert cert.subject.rfc4514_string().startswith(f"CN=SSIN={support.DOCTOR_SSIN},")


def test_prepare_gives_an_old_data_directory_its_sts_certificate(tmp_path: Path) -> None:
    from mycarenet_ic.app import prepare
    from mycarenet_ic.config import Settings

    settings = Settings(data_dir=tmp_path / "data")
    prepare(settings)
    ca = (settings.data_dir / "pki" / "ca.cert.pem").read_bytes()
    for suffix in (".cert.pem", ".key.pem", ".p12"):
        (settings.data_dir / "pki" / f"sts{suffix}").unlink()
    prepare(settings)
    assert (settings.data_dir / "pki" / "sts.cert.pem").exists()
    assert (settings.data_dir / "pki" / "ca.cert.pem").read_bytes() == ca


@pytest.mark.parametrize(("action", "accepted"), [
    (f"{ns.STS_PROTOCOL}:RequestSecurityToken", True),   # the WSDL's
    (f"{ns.STS_PROTOCOL}:RequestSecureToken", True),     # what freehealth-connector sends (production takes it)
    (f"{ns.STS_PROTOCOL}:Issue", False),
])
def test_the_soap_action_spellings_clients_send(sandbox: Sandbox, doctor_id: KeyPair, action: str,
                                                accepted: bool) -> None:
    client = _client(sandbox, doctor_id)
    envelope = support.envelope("")
    body = envelope.find(f"{{{ns.SOAP11_ENV}}}Body")
    assert body is not None
    body.append(client.request(Quality.DOCTOR))
    Signer(doctor_id).sign(envelope)
    http = requests.post(sandbox.urls["sts"], data=support.to_bytes(envelope), timeout=30,
                         headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{action}"'})
    answer = etree.fromstring(http.content)
    fault = answer.find(f".//{{{ns.SOAP11_ENV}}}Fault")
    if accepted:
        assert http.status_code == 200 and fault is None
        assert answer.find(f".//{{{ns.SAML11_PROTOCOL}}}Response") is not None
    else:
        assert http.status_code == 500 and fault is not None and "INVALID_SOAP_ACTION" in http.text
