"""What our Signer makes, a second XML-DSig implementation (signxml) accepts: the Body and the Timestamp
signed as they are; and it refuses the same message once the Body, the Timestamp or the signature changed."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cryptography import x509
from lxml import etree
from signxml.exceptions import InvalidDigest, InvalidSignature

from mycarenet_ic import ns
from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.security import pki
from mycarenet_ic.security.wssec import Signer
from tests import support
from tests.second_verifier import verify_with_signxml

pytestmark = pytest.mark.unit

S = ns.SOAP11_ENV


@pytest.fixture(scope="module")
def ca() -> pki.KeyPair:
    return pki.create_ca()


@pytest.fixture(scope="module")
def signer(ca: pki.KeyPair) -> Signer:
    return Signer(pki.issue(ca, pki.holder_name(Quality.DOCTOR, support.DOCTOR_SSIN, support.DOCTOR_NIHII)))


def _signed(signer: Signer) -> etree._Element:
    """A signed envelope as it travels: serialised, then read back."""
    return etree.fromstring(support.to_bytes(support.signed(signer, support.aa_body(patient=support.PATIENT_LINKED))))


def _c14n(el: etree._Element) -> bytes:
    return etree.tostring(el, method="c14n", exclusive=True)


def test_signxml_accepts_our_signature_over_the_body_and_the_timestamp(ca: pki.KeyPair, signer: Signer) -> None:
    envelope = _signed(signer)
    signed = verify_with_signxml(envelope, x509.load_pem_x509_certificate(ca.cert_pem))
    assert sorted(signed) == ["Body", "Timestamp"]
    body = envelope.find(f"{{{S}}}Body")
    stamp = envelope.find(f"{{{S}}}Header/{{{ns.WSSE}}}Security/{{{ns.WSU}}}Timestamp")
    assert body is not None and stamp is not None
    assert _c14n(signed["Body"]) == _c14n(body) and _c14n(signed["Timestamp"]) == _c14n(stamp)
    assert signed["Body"].findtext(f".//{{{support.AA_NS}}}Ssin") == support.PATIENT_LINKED


def _patient(envelope: etree._Element) -> None:
    ssin = envelope.find(f".//{{{support.AA_NS}}}Ssin")
    assert ssin is not None
    ssin.text = support.PATIENT_UNLINKED


def _expires(envelope: etree._Element) -> None:
    expires = envelope.find(f".//{{{ns.WSU}}}Expires")
    assert expires is not None
    expires.text = "2099-01-01T00:00:00Z"


def _signature_value(envelope: etree._Element) -> None:
    value = envelope.find(f".//{{{ns.DS}}}SignatureValue")
    assert value is not None and value.text
    value.text = ("A" if value.text[0] != "A" else "B") + value.text[1:]


@pytest.mark.parametrize(("tamper", "error"), [(_patient, InvalidDigest), (_expires, InvalidDigest),
                                               (_signature_value, InvalidSignature)],
                         ids=["body", "timestamp", "signature-value"])
def test_signxml_refuses_what_was_changed_after_signing(ca: pki.KeyPair, signer: Signer,
                                                        tamper: Callable[[etree._Element], None],
                                                        error: type[Exception]) -> None:
    envelope = _signed(signer)
    tamper(envelope)
    with pytest.raises(error):
        verify_with_signxml(envelope, x509.load_pem_x509_certificate(ca.cert_pem))


def test_a_signer_another_ca_issued_is_refused(signer: Signer) -> None:
    with pytest.raises(ValueError, match="[Ii]ssuer"):
        verify_with_signxml(_signed(signer), x509.load_pem_x509_certificate(pki.create_ca().cert_pem))
