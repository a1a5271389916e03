"""The eHealth STS, from the caller's side: ask for a SAML 1.1 holder-of-key token for one quality, check it,
keep it while it is fresh.

The request is what eHealth's public clients send (e-Contract/mycarenet, taktik/freehealth-connector,
egelke/eHI): a ``samlp:Request`` / ``AttributeQuery`` whose ``NameIdentifier`` names the identity certificate
(subject DN, issuer DN as qualifier), whose ``SubjectConfirmation`` carries the holder-of-key certificate and
the caller's own unsigned assertion of its identification attributes (with the validity asked for), and the
designators of the quality (:meth:`TokenRole.designators`). It is signed inside, enveloped over
``#RequestID``, with the holder-of-key key when that is another key than the identity's (proof of
possession), and sent WS-Security signed with the identity key. The answer's WS-Security signature must be
the STS's, its status Success, its one assertion signed by the pinned STS certificate
(:class:`AssertionVerifier`), bound to our holder-of-key and certifying the quality asked for.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from mycarenet_ic import ns
from mycarenet_ic.config import Settings
from mycarenet_ic.domain.qualities import CallerIdentity, Quality
from mycarenet_ic.errors import SecurityRejected, UpstreamFault, UpstreamUnavailable
from mycarenet_ic.security.parser import ParseLimits, parse_untrusted
from mycarenet_ic.security.pki import KeyPair, identity_from_certificate
from mycarenet_ic.security.saml11 import (
    CERTIFIED_NAMESPACE,
    HOLDER_OF_KEY,
    IDENTIFICATION_NAMESPACE,
    SAML,
    SAMLP,
    AssertionVerifier,
    NameIdentifier,
    VerifiedAssertion,
)
from mycarenet_ic.security.sts_attributes import identity_of, role
from mycarenet_ic.security.wssec import MemoryReplayCache, Signer, TrustStore, Verifier, _fmt, _utc_now

SOAP_ACTION = f"{ns.STS_PROTOCOL}:RequestSecurityToken"
_SAML, _SAMLP, _DS = f"{{{SAML}}}", f"{{{SAMLP}}}", f"{{{ns.DS}}}"


class StsRefused(UpstreamFault):
    """The STS gave no usable token: it refused the request (its status message), or did not certify the
    quality asked for."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"The STS gave no token: {reason}", reason=reason)


@dataclass(frozen=True)
class Token:
    """A verified STS token: the assertion as received (to put in a ``wsse:Security`` header unchanged)
    and what it certifies."""

    assertion: etree._Element
    assertion_id: str
    not_before: dt.datetime
    not_on_or_after: dt.datetime
    identity: CallerIdentity
    verified: VerifiedAssertion

    @property
    def xml(self) -> bytes:
        return etree.tostring(self.assertion)


def _subject(parent: etree._Element, name: NameIdentifier) -> etree._Element:
    subject = etree.SubElement(parent, f"{_SAML}Subject")
    ident = etree.SubElement(subject, f"{_SAML}NameIdentifier", Format=name.format)
    if name.qualifier is not None:
        ident.set("NameQualifier", name.qualifier)
    ident.text = name.value
    return subject


def _der_b64(cert: x509.Certificate) -> str:
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def build_request(quality: Quality, identity: x509.Certificate, holder_of_key: KeyPair, asserted: str,
                  *, validity: dt.timedelta = dt.timedelta(seconds=Settings.sts_token_seconds),
                  now: dt.datetime | None = None, sign: bool | None = None) -> etree._Element:
    """The ``samlp:Request`` for a token in ``quality``: ``asserted`` is the holder's NISS, its organisation's
    NIHII or the platform's CBE (the identification attributes' value). Signed inside with the holder-of-key
    key when ``sign`` (default: when the holder-of-key certificate is not the identity certificate)."""
    token_role = role(quality)
    issued = (now or _utc_now()).replace(microsecond=0)
    name = NameIdentifier.of_certificate(identity)
    hok_cert = holder_of_key.certificate
    request = etree.Element(f"{_SAMLP}Request", nsmap={"samlp": SAMLP, "saml": SAML, "ds": ns.DS})
    request.set("RequestID", f"request-{uuid.uuid4()}")
    request.set("MajorVersion", "1")
    request.set("MinorVersion", "1")
    request.set("IssueInstant", _fmt(issued))
    query = etree.SubElement(request, f"{_SAMLP}AttributeQuery")
    confirmation = etree.SubElement(_subject(query, name), f"{_SAML}SubjectConfirmation")
    etree.SubElement(confirmation, f"{_SAML}ConfirmationMethod").text = HOLDER_OF_KEY
    data = etree.SubElement(confirmation, f"{_SAML}SubjectConfirmationData")
    inner = etree.SubElement(data, f"{_SAML}Assertion", AssertionID=f"assertion-{uuid.uuid4()}",
                             IssueInstant=_fmt(issued), Issuer=name.value, MajorVersion="1", MinorVersion="1")
    etree.SubElement(inner, f"{_SAML}Conditions", NotBefore=_fmt(issued), NotOnOrAfter=_fmt(issued + validity))
    statement = etree.SubElement(inner, f"{_SAML}AttributeStatement")
    _subject(statement, name)
    for attr_name in token_role.asserted:
        attr = etree.SubElement(statement, f"{_SAML}Attribute", AttributeName=attr_name,
                                AttributeNamespace=IDENTIFICATION_NAMESPACE)
        etree.SubElement(attr, f"{_SAML}AttributeValue").text = asserted
    key_info = etree.SubElement(confirmation, f"{_DS}KeyInfo")
    etree.SubElement(etree.SubElement(key_info, f"{_DS}X509Data"), f"{_DS}X509Certificate").text = _der_b64(hok_cert)
    for attr_name, namespace in token_role.designators():
        etree.SubElement(query, f"{_SAML}AttributeDesignator", AttributeName=attr_name, AttributeNamespace=namespace)
    same_key = hok_cert.public_bytes(serialization.Encoding.DER) == identity.public_bytes(serialization.Encoding.DER)
    if sign if sign is not None else not same_key:
        Signer(holder_of_key).sign_enveloped(request, id_attribute="RequestID")
    return request


def asserted_value(quality: Quality, identity: x509.Certificate) -> str:
    """The identification value of ``quality`` the identity certificate holds: the NISS of a person, the
    NIHII of an organisation, the CBE of the platform."""
    holder = identity_from_certificate(identity)
    if quality is Quality.PLATFORM:
        cn = identity.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
        value = str(cn[0].value).partition("=")[2] if cn else ""
    elif quality.is_organisation:
        value = holder.nihii or ""
    else:
        value = holder.ssin or ""
    if not value:
        raise ValueError(f"the certificate holds no identifier of a {quality.value}")
    return value


class StsClient:
    """Asks one STS for tokens, as the holder of ``identity`` (and of ``holder_of_key``, by default the
    identity itself). ``sts_certificate`` is pinned: the answer and the assertion must be signed with it."""

    def __init__(self, address: str, identity: KeyPair, trust: TrustStore, sts_certificate: x509.Certificate, *,
                 holder_of_key: KeyPair | None = None, ca_file: str | Path | None = None,
                 timeout: float = Settings.upstream_timeout_seconds,
                 validity_seconds: int = Settings.sts_token_seconds,
                 clock: Callable[[], dt.datetime] = _utc_now) -> None:
        self.address = address
        self.identity = identity
        self.holder_of_key = holder_of_key or identity
        self.sts_certificate = sts_certificate
        self.validity = dt.timedelta(seconds=validity_seconds)
        self.timeout = timeout
        self.clock = clock
        self._signer = Signer(identity)
        self._verifier = Verifier(trust, MemoryReplayCache())
        self._assertions = AssertionVerifier(trust, [sts_certificate], clock=clock)
        self._session = requests.Session()
        # https: the server's certificate must chain to ``ca_file`` (the sandbox CA), else to the bundle
        # REQUESTS_CA_BUNDLE names, else to the system's CAs; never unchecked.
        self._session.verify = str(ca_file) if ca_file else os.environ.get("REQUESTS_CA_BUNDLE") or True
        self._session.trust_env = False
        self._lock = threading.Lock()

    def request(self, quality: Quality) -> etree._Element:
        """The ``samlp:Request`` this client sends for ``quality``."""
        identity = self.identity.certificate
        return build_request(quality, identity, self.holder_of_key, asserted_value(quality, identity),
                             validity=self.validity, now=self.clock())

    def token(self, quality: Quality) -> Token:
        """A fresh token certifying ``quality``; :class:`StsRefused` when the STS gives none."""
        request = self.request(quality)
        response = self.send(request)
        if response.get("InResponseTo") != request.get("RequestID"):
            raise StsRefused("the answer is not to this request")
        code = response.find(f"{_SAMLP}Status/{_SAMLP}StatusCode")
        if code is None or _qname(code) != f"{_SAMLP}Success":
            message = response.findtext(f"{_SAMLP}Status/{_SAMLP}StatusMessage") or ""
            codes = [] if code is None else list(code.iter(f"{_SAMLP}StatusCode"))
            values = [etree.QName(_qname(c)).localname for c in codes]
            raise StsRefused(f"{'/'.join(values) or 'no status'}: {message}".strip())
        assertions = response.findall(f"{_SAML}Assertion")
        if len(assertions) != 1:
            raise StsRefused("the answer carries no single assertion")
        try:
            verified = self._assertions.verify(assertions[0])
        except SecurityRejected as exc:
            raise StsRefused(f"the assertion is not acceptable: {exc.reason}") from None
        hok = self.holder_of_key.certificate.public_bytes(serialization.Encoding.DER)
        if verified.holder_of_key.public_bytes(serialization.Encoding.DER) != hok:
            raise StsRefused("the token is bound to another key")
        token_role = role(quality)
        if token_role.boolean and verified.value(token_role.boolean, CERTIFIED_NAMESPACE) != "true":
            raise StsRefused(f"not certified as {quality.value} ({token_role.boolean} is not true)")
        try:
            identity = identity_of(verified)
        except SecurityRejected as exc:
            raise StsRefused(exc.reason) from None
        assertion = etree.fromstring(etree.tostring(assertions[0]))
        return Token(assertion, verified.assertion_id, verified.not_before, verified.not_on_or_after, identity,
                     verified)

    def send(self, request: etree._Element) -> etree._Element:
        envelope = etree.Element(f"{{{ns.SOAP11_ENV}}}Envelope", nsmap={"soap": ns.SOAP11_ENV})
        etree.SubElement(envelope, f"{{{ns.SOAP11_ENV}}}Body").append(request)
        self._signer.sign(envelope)
        try:
            with self._lock:
                http = self._session.post(self.address, data=etree.tostring(envelope), timeout=self.timeout,
                                          headers={"Content-Type": "text/xml; charset=utf-8",
                                                   "SOAPAction": f'"{SOAP_ACTION}"'})
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise UpstreamUnavailable(reason=f"{self.address} RequestSecurityToken: {type(exc).__name__}") from None
        try:
            answer = parse_untrusted(http.content, ParseLimits())
            verified = self._verifier.verify(answer)
        except Exception as exc:  # noqa: BLE001 - whatever is wrong with the answer, it is not used
            raise UpstreamFault(reason=f"{self.address} RequestSecurityToken: answer rejected: "
                                       f"{getattr(exc, 'reason', type(exc).__name__)}") from None
        if verified.certificate.public_bytes(serialization.Encoding.DER) != \
                self.sts_certificate.public_bytes(serialization.Encoding.DER):
            raise UpstreamFault(reason=f"{self.address} RequestSecurityToken: answer not signed by the STS")
        body = [c for c in verified.body if isinstance(c.tag, str)]
        fault = verified.body.find(f"{{{ns.SOAP11_ENV}}}Fault")
        if fault is not None:
            raise UpstreamFault(reason=f"{self.address} RequestSecurityToken: fault {fault.findtext('faultcode')}: "
                                       f"{fault.findtext('faultstring')}")
        if len(body) != 1 or body[0].tag != f"{_SAMLP}Response":
            raise UpstreamFault(reason=f"{self.address} RequestSecurityToken: the answer is no samlp:Response")
        return body[0]


def _qname(code: etree._Element) -> str:
    """A StatusCode's ``Value`` (a QName) in Clark notation, its prefix resolved where it is written."""
    prefix, _, local = (code.get("Value") or "").rpartition(":")
    return f"{{{code.nsmap.get(prefix or None, '')}}}{local}"


class TokenSource:
    """One quality's token, fetched once and renewed before it expires: when less than ``renew_fraction`` of
    its validity remains (half, as freehealth does). Thread-safe: callers at once wait for one fetch."""

    def __init__(self, client: StsClient, quality: Quality, *, renew_fraction: float = 0.5,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self.client = client
        self.quality = quality
        self.renew_fraction = renew_fraction
        self.clock = clock or client.clock
        self._token: Token | None = None
        self._lock = threading.Lock()
        self.fetches = 0

    def token(self) -> Token:
        with self._lock:
            if self._token is None or self._stale(self._token):
                self._token = self.client.token(self.quality)
                self.fetches += 1
            return self._token

    def _stale(self, token: Token) -> bool:
        remaining = token.not_on_or_after - self.clock()
        return remaining < (token.not_on_or_after - token.not_before) * self.renew_fraction
