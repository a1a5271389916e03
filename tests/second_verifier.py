"""A second, independent implementation checks our WS-Security signatures: signxml (its own c14n, digests
and RSA over ``cryptography``), where the service verifies with xmlsec.

signxml reads the references by their ``Id`` attribute whatever its namespace, so ``wsu:Id`` resolves as
it is; what it cannot follow is the WS-Security ``KeyInfo`` (a ``SecurityTokenReference`` to the
``BinarySecurityToken``), so the certificate is taken from that token here, checked as issued by the CA,
and handed to signxml as the one key to verify with.
"""

from __future__ import annotations

import base64

from cryptography import x509
from lxml import etree
from signxml import DigestAlgorithm, SignatureConfiguration, SignatureMethod, XMLVerifier

from mycarenet_ic import ns

_WSU_ID = f"{{{ns.WSU}}}Id"
_SECURITY = f"./{{{ns.SOAP11_ENV}}}Header/{{{ns.WSSE}}}Security/"
_EXPECT = SignatureConfiguration(location=_SECURITY, expect_references=2,
                                 signature_methods=frozenset({SignatureMethod.RSA_SHA256}),
                                 digest_algorithms=frozenset({DigestAlgorithm.SHA256}))


def token_certificate(envelope: etree._Element) -> x509.Certificate:
    """The certificate of the BinarySecurityToken the Security header's signature names."""
    reference = envelope.find(f"{_SECURITY}{{{ns.DS}}}Signature/{{{ns.DS}}}KeyInfo/"
                              f"{{{ns.WSSE}}}SecurityTokenReference/{{{ns.WSSE}}}Reference")
    assert reference is not None and reference.get("URI", "").startswith("#")
    tokens = [t for t in envelope.iterfind(f"{_SECURITY}{{{ns.WSSE}}}BinarySecurityToken")
              if t.get(_WSU_ID) == reference.get("URI", "")[1:]]
    assert len(tokens) == 1 and tokens[0].get("ValueType") == ns.X509V3
    return x509.load_der_x509_certificate(base64.b64decode(tokens[0].text or ""))


def verify_with_signxml(envelope: etree._Element, ca: x509.Certificate) -> dict[str, etree._Element]:
    """signxml's verdict on ``envelope``'s signature (raises ``signxml.exceptions.InvalidInput`` and kin
    when it does not hold): the token's certificate issued by ``ca``, RSA-SHA256 over a SignedInfo with two
    SHA-256 references, each digest matching. Returns what signxml says was signed, by local name."""
    certificate = token_certificate(envelope)
    certificate.verify_directly_issued_by(ca)
    results = XMLVerifier().verify(envelope, x509_cert=certificate, expect_config=_EXPECT)
    assert isinstance(results, list)
    return {etree.QName(r.signed_xml).localname: r.signed_xml for r in results if r.signed_xml is not None}
