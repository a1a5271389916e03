"""The attacks on an STS holder-of-key message, over HTTP against the running sandbox (issue 13 parts 2 and 6):
a token not signed by the STS, expired, or whose holder-of-key did not sign the message, an assertion moved into
another message or changed after the STS signed it, wrapping, the algorithm policy, freshness, replay, a token
kind the service does not take. Each is answered with the eHealth security fault (SOA-01001, the fault signed)
and leaves one DENIED audit row whose reason is the attack's, nothing else: no inclusion, event or request row,
no replay-cache entry. The valid message is accepted (the controls), so the attacks fail for their reason."""

from __future__ import annotations

import copy
import datetime as dt
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import xmlsec
from lxml import etree

from mycarenet_ic import ns
from mycarenet_ic.clients.messages import attribute_query
from mycarenet_ic.clients.sts import StsClient
from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.sandbox import Sandbox
from mycarenet_ic.security import pki
from mycarenet_ic.security.wssec import Signer, Verifier
from tests import attacks, support
from tests.ic_client import IC_NS
from tests.integration.test_integrated_care import _COMMON, FRESH, NOBODY_INCLUDED, PSI_NAMUR
from tests.integration.test_memberdata import LAST_MONTH, MD
from tests.unit.test_hok import Keys, _message, _token

pytestmark = pytest.mark.integration

ASSERTION = f"{{{ns.SAML11_ASSERTION}}}Assertion"


@dataclass
class Hok:
    """The parts of the attacks on one sandbox: its PKI (``keys.sts`` the STS's key, ``keys.doctor`` the demo
    GP's identity certificate, ``keys.other`` another person's), the GP's token from the sandbox's STS, and the
    other person's own token (a citizen's)."""

    keys: Keys
    token: etree._Element
    own: etree._Element


def _hok(box: Sandbox) -> Hok:
    keys = Keys(box.settings.data_dir)

    def token(identity: pki.KeyPair, quality: Quality) -> etree._Element:
        client = StsClient(box.urls["sts"], identity, box.platform.trust, keys.sts.certificate,
                           ca_file=box.platform.pki.ca_file)
        return client.token(quality).assertion

    return Hok(keys, token(keys.doctor, Quality.DOCTOR), token(keys.other, Quality.CITIZEN))


@pytest.fixture(scope="module")
def hok(sandbox: Sandbox) -> Hok:
    return _hok(sandbox)


# -- the requests: a declaration (it stores an inclusion, an event and an idempotency row) and a consultation
def _declaration(patient: str = NOBODY_INCLUDED) -> str:
    today = dt.date.today().isoformat()
    return (f'<ic:DeclareInclusionRequest xmlns:ic="{IC_NS}" Id="_{secrets.token_hex(8)}" '
            f'IssueInstant="{support.now().replace(microsecond=0).isoformat()}">{_COMMON}'
            f"<ic:Patient><ic:Ssin>{patient}</ic:Ssin></ic:Patient><ic:Project>{PSI_NAMUR}</ic:Project>"
            f"<ic:Status>information</ic:Status><ic:StartDate>{today}</ic:StartDate><ic:Consent>"
            f"<ic:Agreement>agree</ic:Agreement><ic:Date>{today}</ic:Date></ic:Consent></ic:DeclareInclusionRequest>")


def _consultation(patient: str = support.PATIENT_LINKED) -> str:
    query = attribute_query(support.DOCTOR_NIHII, patient, *LAST_MONTH)
    return support.commons_request("MemberDataConsultationRequest", MD, 3, query, patient, dt.date.today(), "hok-1")


REQUESTS: dict[str, Callable[..., str]] = {"integrated-care": _declaration, "memberdata": _consultation}
# Who the accepted requests are about (a declaration of a patient in no project yet, on each sandbox)
ACCEPTED_PATIENT = {"integrated-care": FRESH["doctor"], "memberdata": support.PATIENT_LINKED}


# -- the attacks: each builds the message from the parts and a request body --------------------------------
Attack = Callable[[Hok, str], etree._Element]


def _assertion(message: etree._Element) -> etree._Element:
    found = message.find(f"{{{ns.SOAP11_ENV}}}Header/{{{ns.WSSE}}}Security/{ASSERTION}")
    assert found is not None
    return found


def _nihii_changed(token: etree._Element) -> etree._Element:
    """``token`` with the certified NIHII made another doctor's (the STS's signature left as it was)."""
    changed = copy.deepcopy(token)
    values = [v for v in changed.iter(f"{{{ns.SAML11_ASSERTION}}}AttributeValue") if v.text == support.DOCTOR_NIHII]
    assert values
    for value in values:
        value.text = support.EXPIRED_VISA_NIHII
    return changed


def _valid(hok: Hok, body: str) -> etree._Element:
    return _message(hok.keys.doctor, hok.token, body)


def _not_from_the_sts(issuer: Callable[[Keys], pki.KeyPair]) -> Attack:
    return lambda hok, body: _message(hok.keys.doctor, _token(hok.keys, issuer=issuer(hok.keys)), body)


def _window(start: dt.timedelta) -> Attack:
    def build(hok: Hok, body: str) -> etree._Element:
        begin = support.now() + start
        token = _token(hok.keys, not_before=begin, not_on_or_after=begin + dt.timedelta(hours=1), issue_instant=begin)
        return _message(hok.keys.doctor, token, body)
    return build


def _copied(hok: Hok, body: str) -> etree._Element:
    # The assertion taken from a message the GP signed, put into the thief's own message, signed with its key.
    stolen = copy.deepcopy(_assertion(_valid(hok, body)))
    return _message(hok.keys.other, stolen, body)


def _wrapped(where: str) -> Attack:
    """A forged assertion (the NIHII changed) carrying the genuine one's AssertionID, in a wrapper in the
    Header, inside the Body's request, or in the genuine one's place (the genuine one moved into a wrapper)."""
    def build(hok: Hok, body: str) -> etree._Element:
        message = _valid(hok, body)
        genuine = _assertion(message)
        forged = _nihii_changed(genuine)
        header = message.find(f"{{{ns.SOAP11_ENV}}}Header")
        request = message.find(f"{{{ns.SOAP11_ENV}}}Body/*")
        assert header is not None and request is not None
        if where == "header":
            etree.SubElement(header, "{urn:attacker}Wrapper").append(forged)
        elif where == "body":
            request.append(forged)
        else:
            genuine.addprevious(forged)
            etree.SubElement(header, "{urn:attacker}Wrapper").append(genuine)
        return message
    return build


def _names_another_assertion(where: str) -> Attack:
    """The GP's stolen token as the header's token, the thief's own valid token (its key signs the message)
    elsewhere in the message, and the signature's KeyIdentifier naming the thief's."""
    def build(hok: Hok, body: str) -> etree._Element:
        own = copy.deepcopy(hok.own)
        if where == "body":
            request = etree.fromstring(body)
            request.append(own)
            body = etree.tostring(request).decode()
        message = _message(hok.keys.other, hok.token, body)
        if where == "header":
            header = message.find(f"{{{ns.SOAP11_ENV}}}Header")
            assert header is not None
            etree.SubElement(header, "{urn:attacker}Wrapper").append(own)
        key_id = message.find(f".//{{{ns.WSSE}}}KeyIdentifier")
        assert key_id is not None
        key_id.text = own.get("AssertionID")
        return message
    return build


def _unsigned_token(hok: Hok, body: str) -> etree._Element:
    token = copy.deepcopy(hok.token)
    signature = token.find(f"{{{ns.DS}}}Signature")
    assert signature is not None
    token.remove(signature)
    return _message(hok.keys.doctor, token, body)


def _signed_with(**methods: object) -> Attack:
    def build(hok: Hok, body: str) -> etree._Element:
        return support.signed(Signer(hok.keys.doctor, token=hok.token, **methods), body)  # type: ignore[arg-type]
    return build


def _at(delta: dt.timedelta) -> Attack:
    return lambda hok, body: support.signed(Signer(hok.keys.doctor, token=hok.token), body, when=support.now() + delta)


# name: (the attack, what the DENIED audit row says)
ATTACKS: dict[str, tuple[Attack, str]] = {
    "token signed by a key of the sandbox CA, not the STS's": (
        _not_from_the_sts(lambda keys: keys.other), "not signed by a trusted issuer"),
    "token signed by a foreign CA's key named as the STS": (
        _not_from_the_sts(lambda keys: pki.issue(pki.create_ca(), keys.sts.certificate.subject)),
        "not signed by a trusted issuer"),
    "token expired": (_window(-dt.timedelta(hours=3)), "assertion expired"),
    "token not yet valid": (_window(dt.timedelta(hours=1)), "not yet valid"),
    "token without the STS signature": (_unsigned_token, "exactly one signature, the assertion's last child"),
    "message signed by another key than the holder-of-key": (
        lambda hok, body: _message(hok.keys.other, hok.token, body), ": signature does not verify"),
    "assertion copied into a message signed with another key": (_copied, ": signature does not verify"),
    "certified NIHII changed after the STS signed": (
        lambda hok, body: _message(hok.keys.doctor, _nihii_changed(hok.token), body), "the signature does not verify"),
    "forged assertion with the same AssertionID in the header": (_wrapped("header"), "duplicate Id"),
    "forged assertion with the same AssertionID in the body": (_wrapped("body"), "duplicate Id"),
    "genuine assertion wrapped away, a forged one in its place": (_wrapped("place"), "duplicate Id"),
    "KeyIdentifier naming the thief's own assertion in the body": (
        _names_another_assertion("body"), "does not name this header's token"),
    "KeyIdentifier naming the thief's own assertion in the header": (
        _names_another_assertion("header"), "exactly one Signature"),
    "message signature RSA-SHA1": (
        _signed_with(signature_method=xmlsec.constants.TransformRsaSha1), "signature method must be RSA-SHA256"),
    "message digests SHA-1": (_signed_with(digest_method=xmlsec.constants.TransformSha1), "digest must be SHA-256"),
    "timestamp expired": (_at(-dt.timedelta(minutes=5)), "timestamp expired"),
    "timestamp 2 minutes ahead": (_at(dt.timedelta(minutes=2)), "timestamp in the future"),
}


def _post(box: Sandbox, service: str, message: etree._Element) -> support.Answer:
    return support.post(box.urls[service], support.to_bytes(message))


def _refused(before: attacks.State, box: Sandbox, answer: support.Answer, verifier: Verifier, reason: str) -> None:
    """The eHealth security fault, one DENIED row saying ``reason``, nothing else changed since ``before``."""
    err = attacks.refused(answer, verifier)
    assert err["SoaCode"] == "SOA-01001"
    attacks.only_denied(before, attacks.state(box), reason)


@pytest.mark.parametrize("service", sorted(REQUESTS))
@pytest.mark.parametrize("name", list(ATTACKS))
def test_an_attack_on_a_holder_of_key_message_is_refused_and_changes_nothing(
        name: str, service: str, sandbox: Sandbox, hok: Hok, answer_verifier: Verifier) -> None:
    attack, reason = ATTACKS[name]
    message = attack(hok, REQUESTS[service]())
    before = attacks.state(sandbox)
    _refused(before, sandbox, _post(sandbox, service, message), answer_verifier, reason)


def _accepted(box: Sandbox, service: str, answer: support.Answer, verifier: Verifier, before: attacks.State) -> None:
    """The control: answered (signed), one OK row naming the GP the STS certified, the request's cache entry."""
    assert answer.status == 200 and answer.fault is None, answer.body[:600]
    assert answer.root is not None
    verifier.verify(answer.root)
    after = attacks.state(box)
    rows = [r for r in box.platform.audit.rows(limit=1_000_000)[len(before["audit"]):] if r["service"] == service]
    assert [(r["outcome"], r["caller"]) for r in rows] == [("OK", f"doctor:{support.DOCTOR_NIHII}")]
    assert after["replay"] > before["replay"]


@pytest.mark.parametrize("service", sorted(REQUESTS))
def test_the_valid_holder_of_key_message_is_accepted_and_its_resend_refused(
        service: str, sandbox: Sandbox, hok: Hok, answer_verifier: Verifier) -> None:
    data = support.to_bytes(_valid(hok, REQUESTS[service](ACCEPTED_PATIENT[service])))
    before = attacks.state(sandbox)
    first = support.post(sandbox.urls[service], data)
    _accepted(sandbox, service, first, answer_verifier, before)
    if service == "integrated-care":  # the declaration was stored: the controls of "nothing stored"
        after = attacks.state(sandbox)
        grew = {name for name, rows in after["stored"].items() if len(rows) > len(before["stored"][name])}
        assert {"ic_inclusion", "ic_event", "ic_request"} <= grew
    replayed = attacks.state(sandbox)
    _refused(replayed, sandbox, support.post(sandbox.urls[service], data), answer_verifier, "message replayed")


# -- token kinds: a sandbox started for one kind (MYCARENET_TOKENS) refuses the other ---------------------------
@pytest.fixture(scope="module", params=["saml-hok", "x509"])
def single_kind(request: pytest.FixtureRequest,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Sandbox, Hok]]:
    with support.running_sandbox(tmp_path_factory.mktemp(f"only-{request.param}") / "data",
                                 accepted_tokens=request.param) as box:
        yield request.param, box, _hok(box)


@pytest.mark.parametrize("service", sorted(REQUESTS))
def test_a_service_refuses_the_token_kind_it_is_not_set_for(
        service: str, single_kind: tuple[str, Sandbox, Hok]) -> None:
    kind, box, hok = single_kind
    verifier = box.platform.answer_verifier()
    certificate = box.platform.pki.issue_holder(Quality.DOCTOR, support.DOCTOR_SSIN, support.DOCTOR_NIHII)
    messages: dict[str, Callable[[str], etree._Element]] = {
        "saml-hok": lambda body: _valid(hok, body), "x509": lambda body: support.signed(Signer(certificate), body)}
    other = "x509" if kind == "saml-hok" else "saml-hok"
    before = attacks.state(box)
    _refused(before, box, _post(box, service, messages[other](REQUESTS[service]())), verifier,
             f"does not accept {other} tokens")
    before = attacks.state(box)
    answer = _post(box, service, messages[kind](REQUESTS[service](ACCEPTED_PATIENT[service])))
    _accepted(box, service, answer, verifier, before)
