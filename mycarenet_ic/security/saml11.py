"""SAML 1.1 holder-of-key assertions as the eHealth STS issues them: build one signed, verify one strictly.

The shape follows the eHealth STS (as public clients read it: e-Contract/mycarenet, egelke/eHI,
taktik/freehealth-connector): an ``Assertion``
(``MajorVersion`` 1, ``MinorVersion`` 1, ``Issuer`` ``urn:be:fgov:ehealth:sts:1_0``) with ``Conditions``, an
``AuthenticationStatement`` whose ``Subject`` is confirmed holder-of-key with the key's certificate, an
``AttributeStatement`` of (name, namespace, values), and, last, an enveloped XML signature over
``#<AssertionID>`` (exclusive c14n, RSA-SHA256, SHA-256: the algorithms of :mod:`.wssec`).

``AssertionID`` is neither ``wsu:Id`` nor ``xml:id``: it is registered as the ID attribute for xmlsec, and
the verifier makes sure nothing else in the document carries the same value, so the reference can only
resolve to the assertion being verified (no wrapping). What the verifier returns is read from that signed
element only, by fixed child paths, never by searching the document.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import secrets
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from mycarenet_ic import ns
from mycarenet_ic.errors import SecurityRejected
from mycarenet_ic.security.pki import KeyPair
from mycarenet_ic.security.wssec import (
    ID_ATTRIBUTES,
    XPATH_NAMESPACES,
    Signer,
    TrustStore,
    _fmt,
    _parse_time,
    _utc_now,
    describe,
)

SAML = ns.SAML11_ASSERTION
SAMLP = ns.SAML11_PROTOCOL
HOLDER_OF_KEY = "urn:oasis:names:tc:SAML:1.0:cm:holder-of-key"
X509_SUBJECT_NAME = "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName"
AUTHN_X509_PKI = "urn:oasis:names:tc:SAML:1.0:am:X509-PKI"
STS_ISSUER = "urn:be:fgov:ehealth:sts:1_0"
IDENTIFICATION_NAMESPACE = "urn:be:fgov:identification-namespace"
CERTIFIED_NAMESPACE = "urn:be:fgov:certified-namespace:ehealth"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
# How a WS-Security header names the assertion that holds the signing key (SAML token profile).
SAML_ASSERTION_ID_VALUE_TYPE = ns.SAML_ASSERTION_ID
SAML11_TOKEN_TYPE = ns.SAML_V11_TOKEN

_ID_ATTRIBUTE = "AssertionID"
# Every element of the document that answers to the Id $v by any Id-like attribute (a Python walk of the whole
# message was a tenth of a holder-of-key token's check).
_ANSWERING = etree.XPath("//*[" + " or ".join(f"@{name}=$v" for name in (*ID_ATTRIBUTES, "RequestID", "ResponseID"))
                         + "]", namespaces=XPATH_NAMESPACES)


def _s(local: str) -> str:
    return f"{{{SAML}}}{local}"


def _ds(local: str) -> str:
    return f"{{{ns.DS}}}{local}"


# -- errors -------------------------------------------------------------------------------------------------
class AssertionRejected(SecurityRejected):
    """An assertion the verifier does not accept; the client sees the generic security fault."""


class AssertionMalformed(AssertionRejected):
    """Not the shape of an eHealth STS assertion (versions, statements, subject, times)."""


class AssertionWrapped(AssertionRejected):
    """The signature does not cover exactly this assertion (moved, duplicated Id, nested assertion)."""


class AssertionUntrusted(AssertionRejected):
    """Signed by a certificate that is not a trusted issuer's."""


class AssertionSignatureInvalid(AssertionRejected):
    """The signature does not verify or uses an algorithm outside the policy."""


class AssertionExpired(AssertionRejected):
    """Outside its ``Conditions`` window (with the allowed clock skew)."""


# -- values -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NameIdentifier:
    value: str
    qualifier: str | None = None
    format: str = X509_SUBJECT_NAME

    @classmethod
    def of_certificate(cls, cert: x509.Certificate) -> NameIdentifier:
        """The subject DN as text and the issuer DN as qualifier, as eHealth clients send them (RFC 1779 style:
        most significant RDN last, ", " between)."""
        return cls(_dn(cert.subject), _dn(cert.issuer))


@dataclass(frozen=True)
class SamlAttribute:
    name: str
    namespace: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class VerifiedAssertion:
    """What a verified assertion says; only from the signed element."""

    assertion_id: str
    issuer: str
    issue_instant: dt.datetime
    subject: NameIdentifier
    holder_of_key: x509.Certificate
    issuer_certificate: x509.Certificate
    attributes: tuple[SamlAttribute, ...]
    not_before: dt.datetime
    not_on_or_after: dt.datetime

    def values(self, name: str, namespace: str) -> tuple[str, ...]:
        """All values of that attribute (several statements of one attribute are joined), () when absent."""
        return tuple(v for a in self.attributes if (a.name, a.namespace) == (name, namespace) for v in a.values)

    def value(self, name: str, namespace: str) -> str | None:
        """The single value of that attribute, None when absent; more than one value is not a single value."""
        found = self.values(name, namespace)
        if len(found) > 1:
            raise AssertionMalformed(f"attribute {name} has several values")
        return found[0] if found else None


def _dn(name: x509.Name) -> str:
    return ", ".join(rdn.rfc4514_string() for rdn in reversed(name.rdns))


def _der_b64(cert: x509.Certificate) -> str:
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


# -- building -----------------------------------------------------------------------------------------------
AttributeSpec = SamlAttribute | tuple[str, str, Sequence[str]]


def build_assertion(
    issuer_keypair: KeyPair,
    subject: NameIdentifier,
    holder_of_key: x509.Certificate,
    attributes: Iterable[AttributeSpec],
    *,
    issuer: str = STS_ISSUER,
    not_before: dt.datetime | None = None,
    not_on_or_after: dt.datetime | None = None,
    validity: dt.timedelta = dt.timedelta(hours=1),
    issue_instant: dt.datetime | None = None,
    assertion_id: str | None = None,
) -> etree._Element:
    """A signed STS-style assertion: ``Conditions`` (default: from now for ``validity``), an
    ``AuthenticationStatement`` confirming ``subject`` holder-of-key with ``holder_of_key``, an
    ``AttributeStatement`` with ``attributes`` (each at least one value, "" allowed) and the enveloped
    signature by ``issuer_keypair`` as last child."""
    issued = issue_instant or _utc_now()
    start = not_before or issued
    end = not_on_or_after or start + validity
    if end <= start:
        raise ValueError("NotOnOrAfter must be after NotBefore")
    specs = [a if isinstance(a, SamlAttribute) else SamlAttribute(a[0], a[1], tuple(a[2])) for a in attributes]
    if not specs:
        raise ValueError("an AttributeStatement needs at least one attribute")
    if any(not a.values for a in specs):
        raise ValueError("every attribute needs at least one value")

    assertion = etree.Element(_s("Assertion"), nsmap={None: SAML})
    assertion.set(_ID_ATTRIBUTE, assertion_id or f"_{secrets.token_hex(16)}")
    assertion.set("IssueInstant", _fmt(issued))
    assertion.set("Issuer", issuer)
    assertion.set("MajorVersion", "1")
    assertion.set("MinorVersion", "1")
    conditions = etree.SubElement(assertion, _s("Conditions"))
    conditions.set("NotBefore", _fmt(start))
    conditions.set("NotOnOrAfter", _fmt(end))

    authn = etree.SubElement(assertion, _s("AuthenticationStatement"))
    authn.set("AuthenticationInstant", _fmt(issued))
    authn.set("AuthenticationMethod", AUTHN_X509_PKI)
    confirmation = etree.SubElement(_subject(authn, subject), _s("SubjectConfirmation"))
    etree.SubElement(confirmation, _s("ConfirmationMethod")).text = HOLDER_OF_KEY
    key_info = etree.SubElement(confirmation, _ds("KeyInfo"), nsmap={"ds": ns.DS})
    x509_data = etree.SubElement(key_info, _ds("X509Data"))
    etree.SubElement(x509_data, _ds("X509Certificate")).text = _der_b64(holder_of_key)

    statement = etree.SubElement(assertion, _s("AttributeStatement"))
    _subject(statement, subject)
    for spec in specs:
        attr = etree.SubElement(statement, _s("Attribute"))
        attr.set("AttributeName", spec.name)
        attr.set("AttributeNamespace", spec.namespace)
        for value in spec.values:
            etree.SubElement(attr, _s("AttributeValue")).text = value
    return Signer(issuer_keypair).sign_enveloped(assertion, after=statement, id_attribute=_ID_ATTRIBUTE)


def _subject(parent: etree._Element, name: NameIdentifier) -> etree._Element:
    subject = etree.SubElement(parent, _s("Subject"))
    ident = etree.SubElement(subject, _s("NameIdentifier"))
    ident.set("Format", name.format)
    if name.qualifier is not None:
        ident.set("NameQualifier", name.qualifier)
    ident.text = name.value
    return subject


# -- verifying ----------------------------------------------------------------------------------------------
class AssertionVerifier:
    """Accepts an assertion only when signed, as its last child, by one of ``issuers`` (pinned: a certificate
    the CA merely issued, a doctor's say, is not an issuer), that certificate passing ``trust`` (issued by a
    trusted CA, in its validity period), over exactly this assertion, and inside its ``Conditions`` window."""

    def __init__(
        self,
        trust: TrustStore,
        issuers: Sequence[x509.Certificate],
        *,
        issuer_name: str | None = STS_ISSUER,
        max_clock_skew_seconds: int = 60,
        clock: Callable[[], dt.datetime] = _utc_now,
    ) -> None:
        if not issuers:
            raise ValueError("at least one trusted issuer certificate")
        self.trust = trust
        self._issuers = {c.public_bytes(serialization.Encoding.DER) for c in issuers}
        self.issuer_name = issuer_name
        self.skew = dt.timedelta(seconds=max_clock_skew_seconds)
        self.clock = clock
        # Assertions whose STS signature verified, by their exact bytes: a token comes with every message of
        # its holder for an hour, and identical bytes verify identically (the wrapping, trust and time checks
        # still run on every message). Bounded; cleared when full.
        self._verified: set[bytes] = set()
        self._verified_lock = threading.Lock()

    def _verify_signature(self, assertion: etree._Element, signature: etree._Element,
                          cert: x509.Certificate) -> None:
        key = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER) + etree.tostring(assertion)).digest()
        if key in self._verified:
            return
        verify_enveloped_signature(assertion, signature, _ID_ATTRIBUTE, cert)
        with self._verified_lock:
            if len(self._verified) >= 4096:
                self._verified.clear()
            self._verified.add(key)

    def verify(self, assertion: etree._Element) -> VerifiedAssertion:
        if assertion.tag != _s("Assertion"):
            raise AssertionMalformed("not a SAML 1.1 Assertion")
        if (assertion.get("MajorVersion"), assertion.get("MinorVersion")) != ("1", "1"):
            raise AssertionMalformed("not SAML version 1.1")
        assertion_id = assertion.get(_ID_ATTRIBUTE)
        if not assertion_id:
            raise AssertionMalformed("assertion without AssertionID")
        issuer = assertion.get("Issuer") or ""
        if self.issuer_name is not None and issuer != self.issuer_name:
            raise AssertionUntrusted(f"assertion from another issuer: {issuer[:200]!r}, not {self.issuer_name!r}")

        signature = self._signature(assertion, assertion_id)
        self._check_signed_info(signature, assertion_id)
        cert = self._issuer_certificate(signature)
        now = self.clock()
        self.trust.check(cert, now)

        self._verify_signature(assertion, signature, cert)

        not_before, not_on_or_after = self._check_conditions(assertion, now)
        issue_instant = _time(assertion.get("IssueInstant"))
        if issue_instant > now + self.skew:
            raise AssertionExpired("assertion issued in the future")
        subject, holder_of_key = self._subject_and_key(assertion)
        return VerifiedAssertion(
            assertion_id=assertion_id,
            issuer=issuer,
            issue_instant=issue_instant,
            subject=subject,
            holder_of_key=holder_of_key,
            issuer_certificate=cert,
            attributes=self._attributes(assertion),
            not_before=not_before,
            not_on_or_after=not_on_or_after,
        )

    @staticmethod
    def _signature(assertion: etree._Element, assertion_id: str) -> etree._Element:
        """The one signature, the assertion's last child; nothing else in the document may answer to its Id."""
        signatures = assertion.findall(f".//{_ds('Signature')}")
        children = [c for c in assertion if isinstance(c.tag, str)]
        if len(signatures) != 1 or not children or children[-1] is not signatures[0]:
            raise AssertionWrapped("exactly one signature, the assertion's last child, is required")
        if assertion.find(f".//{_s('Assertion')}") is not None:
            raise AssertionWrapped("an assertion inside the assertion")
        check_id_unique(assertion, assertion_id)
        return signatures[0]

    @staticmethod
    def _check_signed_info(signature: etree._Element, assertion_id: str) -> None:
        check_enveloped_signed_info(signature, assertion_id)

    def _issuer_certificate(self, signature: etree._Element) -> x509.Certificate:
        texts = signature.findall(f"{_ds('KeyInfo')}/{_ds('X509Data')}/{_ds('X509Certificate')}")
        if len(texts) != 1:
            raise AssertionUntrusted("the signature must name exactly one certificate")
        cert = _certificate(texts[0].text, AssertionUntrusted)
        if cert.public_bytes(serialization.Encoding.DER) not in self._issuers:
            raise AssertionUntrusted(f"assertion not signed by a trusted issuer: {describe(cert)}")
        return cert

    def _check_conditions(self, assertion: etree._Element, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        conditions = assertion.findall(_s("Conditions"))
        if len(conditions) != 1:
            raise AssertionMalformed("exactly one Conditions is required")
        not_before = _time(conditions[0].get("NotBefore"))
        not_on_or_after = _time(conditions[0].get("NotOnOrAfter"))
        if not_on_or_after <= not_before:
            raise AssertionMalformed("empty validity window")
        if now + self.skew < not_before:
            raise AssertionExpired(f"assertion not yet valid: valid from {_fmt(not_before)}, "
                                   f"{(not_before - now).total_seconds():.0f} s from now")
        if now - self.skew >= not_on_or_after:
            raise AssertionExpired(f"assertion expired: {(now - not_on_or_after).total_seconds():.0f} s ago "
                                   f"(NotOnOrAfter {_fmt(not_on_or_after)})")
        return not_before, not_on_or_after

    @staticmethod
    def _subject_and_key(assertion: etree._Element) -> tuple[NameIdentifier, x509.Certificate]:
        """One subject for all statements, and one holder-of-key certificate confirming it."""
        names: set[NameIdentifier] = set()
        keys: set[bytes] = set()
        statements = assertion.findall(_s("AuthenticationStatement")) + assertion.findall(_s("AttributeStatement"))
        for statement in statements:
            subject = statement.find(_s("Subject"))
            if subject is None:
                raise AssertionMalformed("statement without a Subject")
            ident = subject.find(_s("NameIdentifier"))
            if ident is not None:
                # All its text, as the signature's c14n reads it: a comment the holder slips in (not signed)
                # must not cut the name short (``.text`` would stop at the comment).
                names.add(NameIdentifier("".join(ident.itertext()).strip(), ident.get("NameQualifier"),
                                         ident.get("Format") or ""))
            for confirmation in subject.findall(_s("SubjectConfirmation")):
                methods = [(m.text or "").strip() for m in confirmation.findall(_s("ConfirmationMethod"))]
                if methods != [HOLDER_OF_KEY]:
                    raise AssertionMalformed("subject not confirmed holder-of-key")
                texts = confirmation.findall(f"{_ds('KeyInfo')}/{_ds('X509Data')}/{_ds('X509Certificate')}")
                if len(texts) != 1:
                    raise AssertionMalformed("holder-of-key confirmation must carry one certificate")
                keys.add(_certificate(texts[0].text, AssertionMalformed).public_bytes(serialization.Encoding.DER))
        if len(names) != 1:
            raise AssertionMalformed("the statements must name one subject")
        if len(keys) != 1:
            raise AssertionMalformed("exactly one holder-of-key certificate is required")
        return names.pop(), x509.load_der_x509_certificate(keys.pop())

    @staticmethod
    def _attributes(assertion: etree._Element) -> tuple[SamlAttribute, ...]:
        out = []
        for statement in assertion.findall(_s("AttributeStatement")):
            for attr in statement.findall(_s("Attribute")):
                name, namespace = attr.get("AttributeName"), attr.get("AttributeNamespace")
                if not name or not namespace:
                    raise AssertionMalformed("attribute without name or namespace")
                values = tuple("".join(v.itertext()).strip() for v in attr.findall(_s("AttributeValue")))
                out.append(SamlAttribute(name, namespace, values))
        return tuple(out)


def check_id_unique(element: etree._Element, ref_id: str) -> None:
    """Nothing but ``element`` in its document answers to ``ref_id`` (any Id-like attribute): a signature
    reference ``#ref_id`` can only resolve to it."""
    if any(el is not element for el in _ANSWERING(element, v=ref_id)):
        raise AssertionWrapped("another element carries the signed element's Id")


def check_enveloped_signed_info(signature: etree._Element, ref_id: str) -> None:
    """The policy of an enveloped signature (an assertion's, a request's): exclusive c14n, RSA-SHA256, one
    reference to exactly ``#ref_id``, SHA-256, transforms enveloped-signature then exclusive c14n."""
    signed_info = signature.find(_ds("SignedInfo"))
    if signed_info is None:
        raise AssertionSignatureInvalid("signature without SignedInfo")
    c14n = signed_info.find(_ds("CanonicalizationMethod"))
    method = signed_info.find(_ds("SignatureMethod"))
    if c14n is None or c14n.get("Algorithm") != ns.EXC_C14N:
        raise AssertionSignatureInvalid("canonicalisation must be exclusive c14n")
    if method is None or method.get("Algorithm") != ns.RSA_SHA256:
        raise AssertionSignatureInvalid("signature method must be RSA-SHA256")
    refs = signed_info.findall(_ds("Reference"))
    if len(refs) != 1 or refs[0].get("URI") != f"#{ref_id}":
        raise AssertionWrapped("the signature must reference exactly the signed element")
    digest = refs[0].find(_ds("DigestMethod"))
    if digest is None or digest.get("Algorithm") != ns.SHA256:
        raise AssertionSignatureInvalid("digest must be SHA-256")
    transforms = refs[0].find(_ds("Transforms"))
    algorithms = [] if transforms is None else [t.get("Algorithm") for t in transforms]
    if algorithms != [ENVELOPED, ns.EXC_C14N]:
        raise AssertionSignatureInvalid("transforms must be enveloped-signature then exclusive c14n")


def verify_enveloped_signature(element: etree._Element, signature: etree._Element, id_attribute: str,
                               cert: x509.Certificate) -> None:
    """``signature`` verifies over ``element`` (its ``id_attribute`` registered as the ID) with the key of
    ``cert``, whatever the signature's own KeyInfo says."""
    ctx = xmlsec.SignatureContext()
    ctx.key = xmlsec.Key.from_memory(cert.public_bytes(serialization.Encoding.DER),
                                     xmlsec.constants.KeyDataFormatCertDer, None)
    ctx.register_id(element, id_attribute)
    try:
        ctx.verify(signature)
    except xmlsec.Error:
        raise AssertionSignatureInvalid("the signature does not verify") from None


def _time(text: str | None) -> dt.datetime:
    try:
        return _parse_time(text)
    except SecurityRejected:
        raise AssertionMalformed("time missing or not a dateTime with a zone") from None


def _certificate(text: str | None, error: type[AssertionRejected]) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(base64.b64decode("".join((text or "").split()), validate=True))
    except ValueError:
        raise error("certificate unreadable") from None
