"""Messages signed with an STS holder-of-key token: the verifier accepts the assertion's key signing Body and
Timestamp, takes the caller from the certified attributes, and refuses every other arrangement (an assertion
not from the STS, expired, a key that is not the holder's, an assertion moved into another message, a token
kind the endpoint does not take, a reference to another token, a replay)."""

from __future__ import annotations

import copy
import datetime as dt
import pathlib

import pytest
from lxml import etree

from mycarenet_ic import ns
from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.errors import SecurityRejected
from mycarenet_ic.security import pki
from mycarenet_ic.security.callers import caller_of
from mycarenet_ic.security.saml11 import AssertionVerifier, NameIdentifier, build_assertion
from mycarenet_ic.security.sts_attributes import role
from mycarenet_ic.security.wssec import MemoryReplayCache, Signer, TokenKind, TrustStore, Verifier
from tests import support

pytestmark = pytest.mark.unit

BOTH = frozenset({TokenKind.X509, TokenKind.SAML_HOK})


class Keys:
    def __init__(self, data_dir: pathlib.Path) -> None:
        self.pki = pki.Pki(data_dir)
        self.pki.init()
        self.sts = self.pki.service("sts")
        self.doctor = self.pki.issue_identity(Quality.DOCTOR, support.DOCTOR_SSIN, None)
        self.other = self.pki.issue_identity(Quality.DOCTOR, support.PATIENT_LINKED, None)
        self.trust = TrustStore.from_pem(self.pki.ca().cert_pem)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return Keys(tmp_path_factory.mktemp("hok"))


def _verifier(keys: Keys, accepted: frozenset[TokenKind] = BOTH) -> Verifier:
    return Verifier(keys.trust, MemoryReplayCache(), assertions=AssertionVerifier(keys.trust, [keys.sts.certificate]),
                    accepted=accepted)


def _token(keys: Keys, holder: pki.KeyPair | None = None, issuer: pki.KeyPair | None = None,
           quality: Quality = Quality.DOCTOR, **kw: object) -> etree._Element:
    holder = holder or keys.doctor
    attributes = role(quality).certified(support.DOCTOR_SSIN, support.DOCTOR_NIHII)
    built = build_assertion(issuer or keys.sts, NameIdentifier.of_certificate(holder.certificate),
                            holder.certificate, attributes, **kw)  # type: ignore[arg-type]
    return etree.fromstring(etree.tostring(built))


def _message(key: pki.KeyPair, token: etree._Element | None, body: str | None = None) -> etree._Element:
    signed = Signer(key, token=token).sign(support.envelope(body or support.aa_body()))
    return etree.fromstring(support.to_bytes(signed))  # what travels is bytes


def _reason(verifier: Verifier, message: etree._Element) -> str:
    """Why ``verifier`` refuses ``message`` (the audit's reason; the client sees one generic text)."""
    with pytest.raises(SecurityRejected) as refused:
        verifier.verify(message)
    return refused.value.reason


def test_a_holder_of_key_message_names_the_caller_the_sts_certified(keys: Keys) -> None:
    message = _message(keys.doctor, _token(keys))
    security = message.find(f".//{{{ns.WSSE}}}Security")
    assert security is not None and security.find(f"{{{ns.WSSE}}}BinarySecurityToken") is None
    key_id = security.find(f".//{{{ns.WSSE}}}KeyIdentifier")
    assert key_id is not None and key_id.get("ValueType") == ns.SAML_ASSERTION_ID
    verified = _verifier(keys).verify(message)
    assert verified.token is not None and verified.certificate == keys.doctor.certificate
    caller = caller_of(verified)
    assert (caller.quality, caller.ssin, caller.nihii) == (Quality.DOCTOR, support.DOCTOR_SSIN, support.DOCTOR_NIHII)


def test_the_certificate_alone_says_only_who_the_person_is(keys: Keys) -> None:
    # An eHealth-style identity certificate (no quality) with a BinarySecurityToken: a citizen, not a doctor.
    caller = caller_of(_verifier(keys).verify(_message(keys.doctor, None)))
    assert (caller.quality, caller.ssin, caller.nihii) == (Quality.CITIZEN, support.DOCTOR_SSIN, None)


def test_a_token_not_from_the_sts_is_refused(keys: Keys) -> None:
    # Signed by a certificate the sandbox CA issued (the doctor's own): an issuer the verifier does not pin.
    with pytest.raises(SecurityRejected):
        _verifier(keys).verify(_message(keys.doctor, _token(keys, issuer=keys.doctor)))


def test_an_expired_token_is_refused(keys: Keys) -> None:
    start = support.now() - dt.timedelta(hours=3)
    token = _token(keys, not_before=start, not_on_or_after=start + dt.timedelta(hours=1), issue_instant=start)
    with pytest.raises(SecurityRejected):
        _verifier(keys).verify(_message(keys.doctor, token))


def test_a_message_signed_by_another_key_than_the_holders_is_refused(keys: Keys) -> None:
    # The doctor's token, but the message signed by someone else's key.
    assert "signature does not verify" in _reason(_verifier(keys), _message(keys.other, _token(keys)))


def test_an_assertion_copied_into_another_message_is_refused(keys: Keys) -> None:
    stolen = _message(keys.doctor, _token(keys)).find(f".//{{{ns.SAML11_ASSERTION}}}Assertion")
    assert stolen is not None
    # The thief signs its own message with its own key and puts the stolen assertion in as the token.
    forged = _message(keys.other, copy.deepcopy(stolen), support.aa_body(patient=support.PATIENT_UNLINKED))
    with pytest.raises(SecurityRejected):
        _verifier(keys).verify(forged)


def test_a_changed_certified_attribute_breaks_the_sts_signature(keys: Keys) -> None:
    token = _token(keys)
    for value in token.iter(f"{{{ns.SAML11_ASSERTION}}}AttributeValue"):
        if value.text == support.DOCTOR_NIHII:
            value.text = support.EXPIRED_VISA_NIHII
    with pytest.raises(SecurityRejected):
        _verifier(keys).verify(_message(keys.doctor, token))


def test_each_endpoint_takes_only_the_token_kinds_it_is_set_for(keys: Keys) -> None:
    x509_only = _verifier(keys, frozenset({TokenKind.X509}))
    saml_only = _verifier(keys, frozenset({TokenKind.SAML_HOK}))
    assert "does not accept saml-hok" in _reason(x509_only, _message(keys.doctor, _token(keys)))
    assert "does not accept x509" in _reason(saml_only, _message(keys.doctor, None))
    with pytest.raises(ValueError, match="assertion verifier"):
        Verifier(keys.trust, MemoryReplayCache(), accepted=BOTH)


def test_a_key_identifier_naming_another_assertion_is_refused(keys: Keys) -> None:
    message = _message(keys.doctor, _token(keys))
    key_id = message.find(f".//{{{ns.WSSE}}}KeyIdentifier")
    assert key_id is not None
    key_id.text = "_elsewhere"
    assert "token reference" in _reason(_verifier(keys), message)


def test_two_tokens_in_one_header_are_refused(keys: Keys) -> None:
    message = _message(keys.doctor, _token(keys))
    security = message.find(f".//{{{ns.WSSE}}}Security")
    assert security is not None
    extra = etree.SubElement(security, f"{{{ns.WSSE}}}BinarySecurityToken", ValueType=ns.X509V3)
    extra.text = "AA=="
    assert "exactly one security token" in _reason(_verifier(keys), message)


def test_a_body_changed_after_signing_is_refused(keys: Keys) -> None:
    message = _message(keys.doctor, _token(keys))
    for ssin in message.iter(f"{{{support.AA_NS}}}Ssin"):
        ssin.text = support.PATIENT_UNLINKED
    assert "signature does not verify" in _reason(_verifier(keys), message)


def test_a_holder_of_key_message_is_accepted_once(keys: Keys) -> None:
    verifier = _verifier(keys)
    message = _message(keys.doctor, _token(keys))
    verifier.verify(copy.deepcopy(message))
    assert "replayed" in _reason(verifier, message)


def test_an_organisation_token_names_the_organisation(keys: Keys) -> None:
    pharmacy = keys.pki.issue_identity(Quality.PHARMACY, None, support.PHARMACY_NIHII)
    attributes = role(Quality.PHARMACY).certified(support.PHARMACY_NIHII, support.PHARMACY_NIHII)
    token = build_assertion(keys.sts, NameIdentifier.of_certificate(pharmacy.certificate), pharmacy.certificate,
                            attributes)
    caller = caller_of(_verifier(keys).verify(_message(pharmacy, etree.fromstring(etree.tostring(token)))))
    assert (caller.quality, caller.ssin, caller.nihii) == (Quality.PHARMACY, None, support.PHARMACY_NIHII)


def test_a_token_that_certifies_nothing_names_no_professional(keys: Keys) -> None:
    # The STS answers "false" and an empty NIHII for a quality it cannot certify: the caller is then a citizen.
    attributes = role(Quality.DOCTOR).certified(support.DOCTOR_SSIN, None)
    token = build_assertion(keys.sts, NameIdentifier.of_certificate(keys.doctor.certificate),
                            keys.doctor.certificate, attributes)
    caller = caller_of(_verifier(keys).verify(_message(keys.doctor, etree.fromstring(etree.tostring(token)))))
    assert caller.quality is Quality.CITIZEN
