"""The ETEE sealed message and the ETK (mycarenet_ic/security/etee.py), the ETK registry (security/etk.py):
a round trip, what a seal is made of, and each way a seal is refused."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from asn1crypto import cms
from cryptography.hazmat.primitives.serialization import pkcs7

from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.errors import MalformedRequest
from mycarenet_ic.security import etee
from mycarenet_ic.security.etk import APPLICATION, PLATFORM_CBE, EtkIdentifier, EtkRegistry, insurer_cbe, issue_etk
from mycarenet_ic.security.parser import ParseLimits
from mycarenet_ic.security.pki import KeyPair, Pki
from stubs.etk_depot import get_etk
from tests import support

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    pki = Pki(tmp_path_factory.mktemp("etee"))
    pki.init()
    EtkRegistry(pki).ensure_sandbox_parties()
    return pki


@pytest.fixture(scope="module")
def sender(pki: Pki) -> KeyPair:
    return pki.issue_identity(Quality.DOCTOR, support.DOCTOR_SSIN, None)


@pytest.fixture(scope="module")
def recipient(pki: Pki) -> KeyPair:
    return EtkRegistry(pki).held_keys("platform")[0]


@pytest.fixture(scope="module")
def trust(pki: Pki) -> etee.TrustCheck:
    return etee.TrustCheck([pki.ca().certificate])


def test_a_sealed_message_opens_for_its_recipient_and_names_its_signers(
        sender: KeyPair, recipient: KeyPair, trust: etee.TrustCheck) -> None:
    opened = etee.unseal(etee.seal(b"<q>1</q>", sender, [recipient.certificate]), [recipient], trust)
    assert opened.content == b"<q>1</q>"
    assert opened.inner_signer == sender.certificate and opened.outer_signer == sender.certificate


def test_the_seal_is_signed_then_enveloped_with_aes128_then_signed(
        sender: KeyPair, recipient: KeyPair) -> None:
    outer = cms.ContentInfo.load(etee.seal(b"x", sender, [recipient.certificate]))
    assert outer["content_type"].native == "signed_data"
    signed = outer["content"]
    assert signed["signer_infos"][0]["digest_algorithm"]["algorithm"].native == "sha256"
    envelope = cms.ContentInfo.load(signed["encap_content_info"]["content"].native)
    assert envelope["content_type"].native == "enveloped_data"
    enc = envelope["content"]["encrypted_content_info"]
    assert enc["content_encryption_algorithm"]["algorithm"].native == "aes128_cbc"
    [ktri] = envelope["content"]["recipient_infos"]
    assert ktri.chosen["rid"].chosen["serial_number"].native == recipient.certificate.serial_number
    inner = cms.ContentInfo.load(pkcs7.pkcs7_decrypt_der(envelope.dump(), recipient.certificate,
                                                         etee._key(recipient), []))
    assert inner["content_type"].native == "signed_data"
    assert inner["content"]["encap_content_info"]["content"].native == b"x"


def test_sealed_for_someone_else_is_not_for_us(pki: Pki, sender: KeyPair, recipient: KeyPair,
                                               trust: etee.TrustCheck) -> None:
    other = EtkRegistry(pki).held_keys("insurer")[0]
    with pytest.raises(etee.SealRefused) as refused:
        etee.unseal(etee.seal(b"x", sender, [other.certificate]), [recipient], trust)
    assert refused.value.kind == "not-for-us"


@pytest.mark.parametrize("where", ["signature", "content", "envelope", "truncated", "garbage"])
def test_a_broken_seal_is_refused(sender: KeyPair, recipient: KeyPair, trust: etee.TrustCheck, where: str) -> None:
    sealed = bytearray(etee.seal(b"<q/>", sender, [recipient.certificate]))
    info = cms.ContentInfo.load(bytes(sealed))
    if where == "signature":
        sig = info["content"]["signer_infos"][0]["signature"].native
        at = bytes(sealed).index(sig) + 10
        sealed[at] ^= 1
    elif where in ("content", "envelope"):
        body = info["content"]["encap_content_info"]["content"].native
        at = bytes(sealed).index(body) + (len(body) - 20 if where == "content" else 60)
        sealed[at] ^= 1
    elif where == "truncated":
        del sealed[-40:]
    else:
        sealed = bytearray(b"not a CMS message at all")
    with pytest.raises(etee.SealRefused) as refused:
        etee.unseal(bytes(sealed), [recipient], trust)
    assert refused.value.kind == "broken"


def test_a_signer_from_another_ca_is_refused(tmp_path: Path, recipient: KeyPair, trust: etee.TrustCheck) -> None:
    foreign = Pki(tmp_path)
    foreign.init()
    stranger = foreign.issue_identity(Quality.DOCTOR, support.DOCTOR_SSIN, None)
    with pytest.raises(etee.SealRefused) as refused:
        etee.unseal(etee.seal(b"x", stranger, [recipient.certificate]), [recipient], trust)
    assert refused.value.kind == "signer"


def test_an_expired_signer_is_refused(sender: KeyPair, recipient: KeyPair, trust: etee.TrustCheck) -> None:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=3650)
    with pytest.raises(etee.SealRefused) as refused:
        etee.unseal(etee.seal(b"x", sender, [recipient.certificate]), [recipient], trust, now=later)
    assert refused.value.kind == "signer"


def test_the_etk_holds_the_encryption_certificate_and_is_checked(pki: Pki, trust: etee.TrustCheck,
                                                                 tmp_path: Path) -> None:
    pair, etk = issue_etk(pki, Quality.DOCTOR, support.DOCTOR_SSIN, support.DOCTOR_NIHII)
    assert etee.etk_certificate(etk, trust) == pair.certificate
    assert EtkRegistry(pki).knows(pair.certificate)
    foreign = Pki(tmp_path)
    foreign.init()
    alien = etee.make_etk(foreign.issue_identity(Quality.DOCTOR, support.DOCTOR_SSIN, None).certificate,
                          foreign.service("mycarenet"), [])
    with pytest.raises(etee.SealRefused) as refused:
        etee.etk_certificate(alien, trust)
    assert refused.value.kind == "etk"
    with pytest.raises(etee.SealRefused):
        etee.etk_certificate(b"\x30\x03\x02\x01\x01")


def test_the_registry_lists_the_platform_and_the_insurers(pki: Pki) -> None:
    registry = EtkRegistry(pki)
    code, _, etk, _, _ = get_etk(registry, [EtkIdentifier("CBE", PLATFORM_CBE, APPLICATION)])
    assert code == "200" and etk is not None
    assert etee.etk_certificate(etk) == registry.held_keys("platform")[0].certificate
    code, _, etk, _, _ = get_etk(registry, [EtkIdentifier("CBE", insurer_cbe("300"), APPLICATION)])
    assert code == "200" and etk is not None
    code, _, etk, matching, _ = get_etk(registry, [EtkIdentifier("CBE", PLATFORM_CBE)])
    assert (code, etk) == ("200", None) and matching == [[EtkIdentifier("CBE", PLATFORM_CBE, APPLICATION)]]
    assert get_etk(registry, [EtkIdentifier("SSIN", "12345678901")])[4] == [("INVALID_SSIN_NUMBER",
                                                                               "The SSIN is not valid.")]
    assert get_etk(registry, [EtkIdentifier("EHP", "1")])[0] == "400"
    assert get_etk(registry, [EtkIdentifier("SSIN", support.PATIENT_LINKED)])[0] == "404"
    # made once: preparing again keeps the keys
    before = [e.stem for e in registry.entries()]
    registry.ensure_sandbox_parties()
    assert [e.stem for e in registry.entries()] == before


def test_known_content_round_trip_and_refusals() -> None:
    limits = ParseLimits(max_bytes=65536)
    assert etee.read_known_content(etee.known_content(b"<a/>", b"etk"), limits) == (b"<a/>", "none", b"etk")
    with pytest.raises(MalformedRequest):
        etee.read_known_content(b"<other xmlns='urn:be:cin:encrypted'/>", limits)
    with pytest.raises(MalformedRequest):
        etee.read_known_content(b"not xml", limits)
