"""The WS-Security verifier accepts what the signer makes and refuses every known attack.

Each attack is built from a correctly signed message, then altered; all must be
rejected, and a rejected message must not reach the replay cache.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable

import pytest
import xmlsec
from cryptography import x509
from cryptography.x509.oid import NameOID
from lxml import etree

from mycarenet_ic import ns
from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.errors import SecurityRejected
from mycarenet_ic.security import pki
from mycarenet_ic.security.wssec import MemoryReplayCache, Signer, TrustStore, Verifier
from tests import support

pytestmark = pytest.mark.unit

S, WSU, WSSE, DS = ns.SOAP11_ENV, ns.WSU, ns.WSSE, ns.DS


@pytest.fixture(scope="module")
def ca() -> pki.KeyPair:
    return pki.create_ca()


@pytest.fixture(scope="module")
def doctor(ca: pki.KeyPair) -> pki.KeyPair:
    return pki.issue(ca, pki.holder_name(Quality.DOCTOR, support.DOCTOR_SSIN, support.DOCTOR_NIHII))


class CountingCache(MemoryReplayCache):
    def __init__(self) -> None:
        super().__init__()
        self.stored = 0

    def check_and_store(self, key: str, expires: dt.datetime) -> bool:
        fresh = super().check_and_store(key, expires)
        self.stored += fresh
        return fresh


@pytest.fixture
def cache() -> CountingCache:
    return CountingCache()


@pytest.fixture
def verifier(ca: pki.KeyPair, cache: CountingCache) -> Verifier:
    return Verifier(TrustStore.from_pem(ca.cert_pem), cache)


def reparse(root: etree._Element) -> etree._Element:
    return etree.fromstring(etree.tostring(root))


def fresh(doctor: pki.KeyPair, **kw: object) -> etree._Element:
    return reparse(support.signed(Signer(doctor, **kw), support.aa_body()))  # type: ignore[arg-type]


def test_signed_message_verifies_and_names_the_signer(doctor: pki.KeyPair, verifier: Verifier) -> None:
    result = verifier.verify(fresh(doctor))
    ident = pki.identity_from_certificate(result.certificate)
    assert (ident.quality, ident.ssin, ident.nihii) == (Quality.DOCTOR, support.DOCTOR_SSIN, support.DOCTOR_NIHII)
    assert result.body.tag == f"{{{S}}}Body"


def test_the_identity_is_read_once_per_certificate_and_never_mixed_up(ca: pki.KeyPair, doctor: pki.KeyPair) -> None:
    """The identity is cached by certificate: the same certificate parsed again hits it; another holder's
    certificate (even of the same quality) gets its own; a subject naming nobody raises every time."""
    nurse = pki.issue(ca, pki.holder_name(Quality.PHARMACIST, support.PHARMACIST_SSIN, "61229665000"))
    nobody = pki.issue(ca, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nobody")]))
    first = pki.identity_from_certificate(x509.load_pem_x509_certificate(doctor.cert_pem))
    hits = pki.identity_from_certificate.cache_info().hits
    again = pki.identity_from_certificate(x509.load_pem_x509_certificate(doctor.cert_pem))
    assert again == first and pki.identity_from_certificate.cache_info().hits == hits + 1
    other = pki.identity_from_certificate(x509.load_pem_x509_certificate(nurse.cert_pem))
    assert (other.quality, other.ssin, other.nihii) == (Quality.PHARMACIST, support.PHARMACIST_SSIN, "61229665000")
    assert other.fingerprint != first.fingerprint
    for _ in range(2):
        with pytest.raises(ValueError):
            pki.identity_from_certificate(x509.load_pem_x509_certificate(nobody.cert_pem))


def _body(root: etree._Element) -> etree._Element:
    return root.find(f"{{{S}}}Body")


def _header(root: etree._Element) -> etree._Element:
    return root.find(f"{{{S}}}Header")


def no_signature(root: etree._Element) -> None:
    sec = _header(root).find(f"{{{WSSE}}}Security")
    sec.remove(sec.find(f"{{{DS}}}Signature"))


def no_security(root: etree._Element) -> None:
    _header(root).remove(_header(root).find(f"{{{WSSE}}}Security"))


def body_changed(root: etree._Element) -> None:
    ssin = root.find(f".//{{{support.AA_NS}}}Ssin")
    ssin.text = support.PATIENT_UNLINKED


def timestamp_changed(root: etree._Element) -> None:
    root.find(f".//{{{WSU}}}Expires").text = "2099-01-01T00:00:00Z"


def _wrap(root: etree._Element, new_id: str | None) -> None:
    body = _body(root)
    wrapper = etree.SubElement(_header(root), "{urn:attacker}Wrapper")
    root.remove(body)
    wrapper.append(body)
    evil = etree.SubElement(root, f"{{{S}}}Body")
    evil.set(f"{{{WSU}}}Id", new_id or body.get(f"{{{WSU}}}Id"))
    evil.append(etree.fromstring(support.aa_body(patient=support.PATIENT_UNLINKED)))


def wrapped_same_id(root: etree._Element) -> None:
    _wrap(root, None)


def wrapped_other_id(root: etree._Element) -> None:
    _wrap(root, "id-evil")


def second_body(root: etree._Element) -> None:
    extra = copy.deepcopy(_body(root))
    extra.attrib.pop(f"{{{WSU}}}Id")
    root.append(extra)


def second_security(root: etree._Element) -> None:
    sec = _header(root).find(f"{{{WSSE}}}Security")
    _header(root).append(copy.deepcopy(sec))


def duplicate_id(root: etree._Element) -> None:
    ts_id = root.find(f".//{{{WSU}}}Timestamp").get(f"{{{WSU}}}Id")
    el = etree.SubElement(_header(root), "{urn:attacker}Decoy")
    el.set(f"{{{WSU}}}Id", ts_id)


def reference_to_other_element(root: etree._Element) -> None:
    ref = root.find(f".//{{{DS}}}Reference")
    ref.set("URI", "#somewhere-else")


def token_swapped(root: etree._Element, other: pki.KeyPair) -> None:
    import base64

    from cryptography.hazmat.primitives import serialization

    token = root.find(f".//{{{WSSE}}}BinarySecurityToken")
    token.text = base64.b64encode(other.certificate.public_bytes(serialization.Encoding.DER)).decode()


ATTACKS: dict[str, Callable[[etree._Element], None]] = {
    "no signature": no_signature,
    "no security header": no_security,
    "body changed after signing": body_changed,
    "timestamp changed after signing": timestamp_changed,
    "signed body wrapped, same id": wrapped_same_id,
    "signed body wrapped, other id": wrapped_other_id,
    "second body": second_body,
    "second security header": second_security,
    "duplicate id": duplicate_id,
    "reference to another element": reference_to_other_element,
}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_is_rejected_and_not_cached(name: str, doctor: pki.KeyPair, verifier: Verifier,
                                           cache: CountingCache) -> None:
    root = fresh(doctor)
    ATTACKS[name](root)
    with pytest.raises(SecurityRejected):
        verifier.verify(reparse(root))
    assert cache.stored == 0


def test_certificate_of_another_ca_is_rejected(verifier: Verifier, cache: CountingCache) -> None:
    rogue_ca = pki.create_ca()
    rogue = pki.issue(rogue_ca, pki.holder_name(Quality.DOCTOR, support.DOCTOR_SSIN, support.DOCTOR_NIHII))
    with pytest.raises(SecurityRejected) as info:
        verifier.verify(fresh(rogue))
    assert "issue" in info.value.reason
    assert cache.stored == 0


def test_swapped_token_fails_the_signature(doctor: pki.KeyPair, ca: pki.KeyPair, verifier: Verifier) -> None:
    other = pki.issue(ca, pki.holder_name(Quality.NURSE, support.PATIENT_LINKED, None))
    root = fresh(doctor)
    token_swapped(root, other)
    with pytest.raises(SecurityRejected) as info:
        verifier.verify(reparse(root))
    assert info.value.reason.startswith("signature does not verify: the references match")


def test_rsa_sha1_is_rejected(doctor: pki.KeyPair, verifier: Verifier) -> None:
    root = fresh(doctor, signature_method=xmlsec.constants.TransformRsaSha1,
                 digest_method=xmlsec.constants.TransformSha1)
    with pytest.raises(SecurityRejected) as info:
        verifier.verify(root)
    assert "RSA-SHA256" in info.value.reason


def test_expired_and_future_timestamps_are_rejected(doctor: pki.KeyPair, verifier: Verifier) -> None:
    signer = Signer(doctor)
    old = reparse(support.signed(signer, support.aa_body(), when=support.now() - dt.timedelta(minutes=5)))
    with pytest.raises(SecurityRejected) as info:
        verifier.verify(old)
    assert "expired" in info.value.reason
    ahead = reparse(support.signed(signer, support.aa_body(), when=support.now() + dt.timedelta(minutes=2)))
    with pytest.raises(SecurityRejected) as info:
        verifier.verify(ahead)
    assert "future" in info.value.reason


def test_timestamp_lifetime_over_300_seconds_is_rejected(doctor: pki.KeyPair, verifier: Verifier) -> None:
    root = fresh(doctor, ttl_seconds=600)
    with pytest.raises(SecurityRejected) as info:
        verifier.verify(root)
    assert "lifetime" in info.value.reason


def test_replay_is_rejected(doctor: pki.KeyPair, verifier: Verifier, cache: CountingCache) -> None:
    root = fresh(doctor)
    verifier.verify(reparse(root))
    with pytest.raises(SecurityRejected) as info:
        verifier.verify(reparse(root))
    assert info.value.reason == "message replayed"
    assert cache.stored == 1


def test_expired_certificate_is_rejected(ca: pki.KeyPair, verifier: Verifier) -> None:
    old = pki.issue(ca, pki.holder_name(Quality.DOCTOR, support.DOCTOR_SSIN, None), valid_days=1,
                    not_before=support.now() - dt.timedelta(days=3))
    with pytest.raises(SecurityRejected) as info:
        verifier.verify(fresh(old))
    assert "validity" in info.value.reason


def test_security_failures_share_one_client_text() -> None:
    texts = {SecurityRejected(reason).text for reason in ("message replayed", "duplicate Id", "x")}
    assert len(texts) == 1


def test_signer_as_a_zeep_plugin_never_passes_an_unchecked_answer(doctor: pki.KeyPair, verifier: Verifier) -> None:
    """Issue 12 (fail-open): ``Signer.verify`` used to hand back any answer, forged or unsigned, when it had
    no Verifier. Without one it now refuses every answer; with one it refuses a forged answer."""
    forged = support.envelope(support.aa_body())  # no Security header at all
    with pytest.raises(SecurityRejected):
        Signer(doctor).verify(forged)
    with pytest.raises(SecurityRejected):
        Signer(doctor, verifier=verifier).verify(support.envelope(support.aa_body()))
    good = fresh(doctor)
    assert Signer(doctor, verifier=verifier).verify(good) is good


@pytest.mark.parametrize("attribute", [f"{{{WSU}}}Id", "Id", "ID", "{http://www.w3.org/XML/1998/namespace}id",
                                       "AssertionID"])
def test_a_decoy_answering_to_the_timestamps_id_by_any_id_attribute_is_rejected(
        attribute: str, doctor: pki.KeyPair, verifier: Verifier, cache: CountingCache) -> None:
    root = fresh(doctor)
    ts_id = root.find(f".//{{{WSU}}}Timestamp").get(f"{{{WSU}}}Id")
    etree.SubElement(_header(root), "{urn:attacker}Decoy").set(attribute, ts_id)
    with pytest.raises(SecurityRejected) as info:
        verifier.verify(reparse(root))
    assert info.value.reason == "duplicate Id"
    assert cache.stored == 0


def test_an_element_that_repeats_its_own_id_in_two_attributes_is_rejected(
        doctor: pki.KeyPair, verifier: Verifier, cache: CountingCache) -> None:
    root = fresh(doctor)
    stamp = root.find(f".//{{{WSU}}}Timestamp")
    stamp.set("Id", stamp.get(f"{{{WSU}}}Id"))
    with pytest.raises(SecurityRejected) as info:
        verifier.verify(reparse(root))
    assert info.value.reason == "duplicate Id"
    assert cache.stored == 0
