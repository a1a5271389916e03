"""WS-Security for SOAP 1.1: sign outgoing envelopes, verify incoming ones strictly.

The signature covers the Body and the Timestamp, with exclusive c14n,
RSA-SHA256 and SHA-256, and names its key through a BinarySecurityToken. The
verifier accepts nothing else, and returns a :class:`VerifiedMessage` whose
``body`` is *the* signed Body: callers read only that.

Order of checks (cheap and structural first, crypto last, replay after crypto
so forged messages cannot fill the cache): one Envelope/Header/Body/Security/
Timestamp/Signature; unique Ids; pinned algorithms; references exactly the Body
and the Timestamp; token from this Security header; signer chains to the trust
store; Timestamp fresh; XML signature valid; signature value never seen before.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import enum
import hashlib
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from mycarenet_ic import ns
from mycarenet_ic.config import Settings
from mycarenet_ic.errors import Replayed, SecurityRejected
from mycarenet_ic.security.pki import KeyPair

if TYPE_CHECKING:  # saml11 builds on this module
    from mycarenet_ic.security.saml11 import AssertionVerifier, VerifiedAssertion

_WSU_ID = f"{{{ns.WSU}}}Id"
# The attributes an element may answer to an Id by (as XPath names: ``wsu`` is WS-Security's utility namespace).
ID_ATTRIBUTES = ("wsu:Id", "Id", "ID", "xml:id", "AssertionID")
XPATH_NAMESPACES = {"wsu": ns.WSU}
# The values of those attributes on an element and all below it.
_ID_VALUES = etree.XPath(" | ".join(f"descendant-or-self::*/@{name}" for name in ID_ATTRIBUTES),
                         namespaces=XPATH_NAMESPACES, smart_strings=False)


def _q(namespace: str, local: str) -> str:
    return f"{{{namespace}}}{local}"


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _fmt(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _parse_time(text: str | None) -> dt.datetime:
    if not text:
        raise SecurityRejected("timestamp without a time")
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise SecurityRejected("timestamp not a dateTime") from None
    if moment.tzinfo is None:
        raise SecurityRejected("timestamp without a time zone")
    return moment


class Signer:
    """Signs SOAP 1.1 envelopes with one key loaded once.

    Also usable as a zeep ``wsse`` plugin: :meth:`apply` signs the outgoing
    envelope, :meth:`verify` checks every answer with the :class:`Verifier` given, and refuses every
    answer when none was given.
    """

    def __init__(
        self,
        keypair: KeyPair,
        ttl_seconds: int = Settings.signature_ttl_seconds,
        verifier: Verifier | None = None,
        *,
        signature_method: Any = None,
        digest_method: Any = None,
        token: etree._Element | Callable[[], etree._Element] | None = None,
    ) -> None:
        """``token``: an STS SAML assertion (or what gives the current one) whose holder-of-key is
        ``keypair``: the header then carries the assertion instead of the certificate (SAML token profile)."""
        self._token = token
        # The method overrides exist so that tests can produce what the verifier must refuse.
        self._sig_method = signature_method or xmlsec.constants.TransformRsaSha256
        self._digest_method = digest_method or xmlsec.constants.TransformSha256
        self._key = xmlsec.Key.from_memory(keypair.key_pem, xmlsec.constants.KeyDataFormatPem, None)
        cert = x509.load_pem_x509_certificate(keypair.cert_pem)
        self._cert_b64 = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        self.ttl = dt.timedelta(seconds=ttl_seconds)
        self._verifier = verifier

    def sign(self, envelope: etree._Element, now: dt.datetime | None = None) -> etree._Element:
        """Add a wsse:Security header (token, Timestamp, Signature) and sign in place."""
        if envelope.tag != _q(ns.SOAP11_ENV, "Envelope"):
            raise ValueError("not a SOAP 1.1 envelope")
        body = envelope.find(_q(ns.SOAP11_ENV, "Body"))
        if body is None:
            raise ValueError("envelope without a Body")
        header = envelope.find(_q(ns.SOAP11_ENV, "Header"))
        if header is None:
            header = etree.Element(_q(ns.SOAP11_ENV, "Header"))
            envelope.insert(0, header)
        for old in header.findall(_q(ns.WSSE, "Security")):
            header.remove(old)
        body_id = body.get(_WSU_ID) or f"id-{secrets.token_hex(8)}"
        body.set(_WSU_ID, body_id)
        suffix = secrets.token_hex(8)
        security = etree.SubElement(header, _q(ns.WSSE, "Security"), nsmap={"wsse": ns.WSSE, "wsu": ns.WSU})
        security.set(_q(ns.SOAP11_ENV, "mustUnderstand"), "1")
        assertion = self._assertion()
        if assertion is None:
            token = etree.SubElement(security, _q(ns.WSSE, "BinarySecurityToken"))
            token.set("EncodingType", ns.BASE64_BINARY)
            token.set("ValueType", ns.X509V3)
            token.set(_WSU_ID, f"X509-{suffix}")
            token.text = self._cert_b64
        stamp = etree.SubElement(security, _q(ns.WSU, "Timestamp"))
        stamp.set(_WSU_ID, f"TS-{suffix}")
        created = now or _utc_now()
        etree.SubElement(stamp, _q(ns.WSU, "Created")).text = _fmt(created)
        etree.SubElement(stamp, _q(ns.WSU, "Expires")).text = _fmt(created + self.ttl)

        signature = xmlsec.template.create(
            envelope, xmlsec.constants.TransformExclC14N, self._sig_method, ns="ds"
        )
        security.append(signature)
        for ref_id in (body_id, f"TS-{suffix}"):
            ref = xmlsec.template.add_reference(signature, self._digest_method, uri=f"#{ref_id}")
            xmlsec.template.add_transform(ref, xmlsec.constants.TransformExclC14N)
        key_info = xmlsec.template.ensure_key_info(signature)
        str_el = etree.SubElement(key_info, _q(ns.WSSE, "SecurityTokenReference"))
        if assertion is None:
            ref_el = etree.SubElement(str_el, _q(ns.WSSE, "Reference"))
            ref_el.set("URI", f"#X509-{suffix}")
            ref_el.set("ValueType", ns.X509V3)
        else:
            # The assertion after the Timestamp, as it came from the STS; the signature names it by its id.
            stamp.addnext(assertion)
            str_el.set(_q(ns.WSSE11, "TokenType"), ns.SAML_V11_TOKEN)
            str_el.set(_WSU_ID, f"STR-{suffix}")
            key_id = etree.SubElement(str_el, _q(ns.WSSE, "KeyIdentifier"))
            key_id.set("ValueType", ns.SAML_ASSERTION_ID)
            key_id.text = assertion.get("AssertionID")

        ctx = xmlsec.SignatureContext()
        ctx.key = self._key
        ctx.register_id(body, "Id", ns.WSU)
        ctx.register_id(stamp, "Id", ns.WSU)
        ctx.sign(signature)
        return envelope

    def _assertion(self) -> etree._Element | None:
        token = self._token() if callable(self._token) else self._token
        return None if token is None else copy.deepcopy(token)

    def sign_enveloped(self, element: etree._Element, after: etree._Element | None = None,
                       id_attribute: str = "ID") -> etree._Element:
        """An enveloped XML-DSig over ``element`` (a SAML assertion, say): exc-c14n, RSA-SHA256, SHA-256,
        the certificate in KeyInfo, the signature placed right after ``after`` (or first)."""
        ref_id = element.get(id_attribute)
        if not ref_id:
            raise ValueError(f"the element to sign has no {id_attribute}")
        signature = xmlsec.template.create(element, xmlsec.constants.TransformExclC14N, self._sig_method, ns="ds")
        if after is not None:
            after.addnext(signature)
        else:
            element.insert(0, signature)
        ref = xmlsec.template.add_reference(signature, self._digest_method, uri=f"#{ref_id}")
        xmlsec.template.add_transform(ref, xmlsec.constants.TransformEnveloped)
        xmlsec.template.add_transform(ref, xmlsec.constants.TransformExclC14N)
        key_info = xmlsec.template.ensure_key_info(signature)
        x509_data = etree.SubElement(key_info, _q(ns.DS, "X509Data"))
        etree.SubElement(x509_data, _q(ns.DS, "X509Certificate")).text = self._cert_b64
        ctx = xmlsec.SignatureContext()
        ctx.key = self._key
        ctx.register_id(element, id_attribute)
        ctx.sign(signature)
        return element

    # zeep plugin interface -------------------------------------------------
    def apply(self, envelope: etree._Element, headers: dict) -> tuple[etree._Element, dict]:
        return self.sign(envelope), headers

    def verify(self, envelope: etree._Element) -> etree._Element:
        """zeep calls this on every answer: without a :class:`Verifier` nothing can be trusted, so it
        refuses (fail-closed) rather than hand back an answer nobody checked."""
        if self._verifier is None:
            raise SecurityRejected("answer not verified: give the Signer a Verifier to check answers")
        return self._verifier.verify(envelope).envelope


class ReplayCache(Protocol):
    def check_and_store(self, key: str, expires: dt.datetime) -> bool:
        """Record ``key`` until ``expires``; return False if it was already there."""


class MemoryReplayCache:
    """A bounded in-process replay cache: for clients verifying answers, and the endpoints' first look (what
    this process saw; the database, where the key goes with the request's audit row, has the last word)."""

    durable = False

    def __init__(self, capacity: int = 100_000) -> None:
        self._seen: OrderedDict[str, dt.datetime] = OrderedDict()
        self._lock = threading.Lock()
        self._capacity = capacity

    def check_and_store(self, key: str, expires: dt.datetime) -> bool:
        now = _utc_now()
        with self._lock:
            while self._seen:
                oldest_key, oldest_exp = next(iter(self._seen.items()))
                if oldest_exp > now and len(self._seen) < self._capacity:
                    break
                del self._seen[oldest_key]
            if key in self._seen:
                return False
            self._seen[key] = expires
            return True


def describe(cert: x509.Certificate) -> str:
    """A certificate as a refusal's true reason names it (never sent to the client)."""
    return f"subject {cert.subject.rfc4514_string()}, issuer {cert.issuer.rfc4514_string()}"


def _seconds(delta: dt.timedelta) -> str:
    return f"{delta.total_seconds():.0f} s"


def why_not_verified(signature: etree._Element, signed: dict[str, etree._Element]) -> str:
    """Why a signature whose algorithms passed did not verify (worked out only then, for the true reason):
    the first reference whose digest no longer matches the element it names, else the signature value."""
    for ref in signature.iterfind(f"{_q(ns.DS, 'SignedInfo')}/{_q(ns.DS, 'Reference')}"):
        element = signed.get(ref.get("URI") or "")
        if element is None:
            continue
        inclusive = ref.find(f".//{{{ns.EXC_C14N}}}InclusiveNamespaces")
        prefixes = (inclusive.get("PrefixList") or "").split() if inclusive is not None else []
        c14n = etree.tostring(element, method="c14n", exclusive=True, with_comments=False,
                              inclusive_ns_prefixes=prefixes or None)
        digest = base64.b64encode(hashlib.sha256(c14n).digest()).decode()
        if digest != "".join((ref.findtext(_q(ns.DS, "DigestValue")) or "").split()):
            name = etree.QName(element).localname
            return f"the digest of {name} ({ref.get('URI')}) does not match: changed after signing"
    return "the references match, the signature value does not (signed with another key, or SignedInfo changed)"


class TrustStore:
    """Certificates are trusted only when issued directly by one of these CAs."""

    def __init__(self, ca_certs: list[x509.Certificate]) -> None:
        self._cas = {ca.subject.public_bytes(): ca for ca in ca_certs}
        # Certificates whose issuer signature and key were checked (DER bytes): only the dates are
        # checked again. Bounded; a trust store is built once per process.
        self._checked: set[bytes] = set()
        self._lock = threading.Lock()

    @classmethod
    def from_pem(cls, *pems: bytes) -> TrustStore:
        return cls([x509.load_pem_x509_certificate(p) for p in pems])

    def check(self, cert: x509.Certificate, now: dt.datetime) -> None:
        der = cert.public_bytes(serialization.Encoding.DER)
        if der in self._checked:
            if not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
                raise SecurityRejected(f"certificate outside its validity period: {describe(cert)}")
            return
        self._check(cert, now)
        with self._lock:
            if len(self._checked) > 10_000:
                self._checked.clear()
            self._checked.add(der)

    def _check(self, cert: x509.Certificate, now: dt.datetime) -> None:
        ca = self._cas.get(cert.issuer.public_bytes())
        if ca is None:
            raise SecurityRejected(f"certificate from an unknown issuer: {describe(cert)}")
        try:
            cert.verify_directly_issued_by(ca)
        except Exception:  # noqa: BLE001 - any failure here means "not issued by this CA"
            raise SecurityRejected(f"certificate not issued by the trusted CA: {describe(cert)}") from None
        self.check_key(cert, now)

    @staticmethod
    def check_key(cert: x509.Certificate, now: dt.datetime) -> None:
        """What any signing certificate must be, whoever vouches for it: in its validity period, not a CA,
        an RSA key of 2048 bits or more (a holder-of-key certificate is vouched for by the STS's token)."""
        if not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
            raise SecurityRejected(f"certificate outside its validity period: {describe(cert)}")
        try:
            constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
            if constraints.ca:
                raise SecurityRejected(f"a CA certificate may not sign messages: {describe(cert)}")
        except x509.ExtensionNotFound:
            pass
        if not isinstance(cert.public_key(), rsa.RSAPublicKey):
            raise SecurityRejected("only RSA keys are accepted")
        if cert.public_key().key_size < 2048:  # type: ignore[union-attr]
            raise SecurityRejected(f"key too short: {cert.public_key().key_size} bits, {describe(cert)}")  # type: ignore[union-attr]


@dataclass(frozen=True)
class VerifyPolicy:
    """Defaults are the secure choice."""

    max_clock_skew_seconds: int = Settings.clock_skew_seconds
    max_ttl_seconds: int = Settings.max_timestamp_ttl_seconds


@dataclass(frozen=True)
class VerifiedMessage:
    """A message whose signature verified: ``certificate`` is the key that signed it (the BinarySecurityToken's,
    or the holder-of-key of ``token``, the STS assertion it carried)."""

    envelope: etree._Element
    body: etree._Element
    certificate: x509.Certificate
    token: VerifiedAssertion | None = None
    # The signature's replay key and until when it must stay unique, when this process's cache is not the
    # durable one: the endpoint stores it with the request's audit row (persistence/audit.py).
    replay: tuple[str, dt.datetime] | None = None


class TokenKind(enum.Enum):
    """How a message names the key that signed it."""

    X509 = "x509"            # a BinarySecurityToken: the signer's certificate itself
    SAML_HOK = "saml-hok"    # an eHealth STS SAML 1.1 assertion: its holder-of-key certificate


class Verifier:
    """Strict WS-Security verification; see the module docstring for the checks.

    ``accepted`` names the token kinds this endpoint takes; a SAML holder-of-key token needs ``assertions``
    (the STS assertion verifier: pinned STS certificate, trust store, validity window)."""

    def __init__(
        self,
        trust: TrustStore,
        replay: ReplayCache,
        policy: VerifyPolicy | None = None,
        clock: Callable[[], dt.datetime] = _utc_now,
        *,
        assertions: AssertionVerifier | None = None,
        accepted: frozenset[TokenKind] = frozenset({TokenKind.X509}),
    ) -> None:
        self.trust = trust
        self.replay = replay
        self.policy = policy or VerifyPolicy()
        self.clock = clock
        self.assertions = assertions
        self.accepted = accepted
        if TokenKind.SAML_HOK in accepted and assertions is None:
            raise ValueError("accepting SAML holder-of-key tokens needs an assertion verifier")
        self._keys: dict[bytes, xmlsec.Key] = {}
        self._keys_lock = threading.Lock()

    def verify(self, envelope: etree._Element) -> VerifiedMessage:
        if envelope.tag != _q(ns.SOAP11_ENV, "Envelope"):
            raise SecurityRejected("not a SOAP 1.1 envelope")
        children = [c for c in envelope if isinstance(c.tag, str)]
        tags = [c.tag for c in children]
        if tags != [_q(ns.SOAP11_ENV, "Header"), _q(ns.SOAP11_ENV, "Body")]:
            raise SecurityRejected("envelope must hold exactly one Header then one Body")
        header, body = children
        if len(envelope.findall(f".//{_q(ns.SOAP11_ENV, 'Body')}")) != 1 or len(
            envelope.findall(f".//{_q(ns.SOAP11_ENV, 'Header')}")
        ) != 1:
            raise SecurityRejected("more than one Body or Header")
        securities = envelope.findall(f".//{_q(ns.WSSE, 'Security')}")
        if len(securities) != 1 or securities[0].getparent() is not header:
            raise SecurityRejected("exactly one Security header is required")
        security = securities[0]
        stamps = envelope.findall(f".//{_q(ns.WSU, 'Timestamp')}")
        if len(stamps) != 1 or stamps[0].getparent() is not security:
            raise SecurityRejected("exactly one Timestamp in the Security header is required")
        self._check_unique_ids(envelope)
        kind, token = self._token(security)
        # One message signature, in the Security header; the only other one the Header may hold is the STS's
        # own, inside the token (the assertion verifier checks it). Signatures inside the Body are content.
        signatures = header.findall(f".//{_q(ns.DS, 'Signature')}")
        outer = [sig for sig in signatures if sig.getparent() is security]
        inner = [sig for sig in signatures if kind is TokenKind.SAML_HOK and token in sig.iterancestors()]
        if len(outer) != 1 or len(outer) + len(inner) != len(signatures):
            raise SecurityRejected("exactly one Signature in the Security header is required")
        stamp, signature = stamps[0], outer[0]

        body_id, stamp_id = body.get(_WSU_ID), stamp.get(_WSU_ID)
        if not body_id or not stamp_id:
            raise SecurityRejected("Body and Timestamp must carry a wsu:Id")
        token_id = token.get(_WSU_ID if kind is TokenKind.X509 else "AssertionID")
        self._check_signed_info(signature, {f"#{body_id}", f"#{stamp_id}"}, f"#{token_id}" if token_id else None)
        self._check_key_reference(signature, kind, token)
        now = self.clock()
        verified_token: VerifiedAssertion | None = None
        if kind is TokenKind.X509:
            cert = self._certificate(token.text)
            self.trust.check(cert, now)
        else:
            assert self.assertions is not None
            verified_token = self.assertions.verify(token)
            cert = verified_token.holder_of_key
            self.trust.check_key(cert, now)
        expires = self._check_timestamp(stamp, now)

        ctx = xmlsec.SignatureContext()
        ctx.key = self._key_for(cert)
        ctx.register_id(body, "Id", ns.WSU)
        ctx.register_id(stamp, "Id", ns.WSU)
        if kind is TokenKind.X509:
            ctx.register_id(token, "Id", ns.WSU)
        else:
            ctx.register_id(token, "AssertionID")
        try:
            ctx.verify(signature)
        except xmlsec.Error:
            signed = {f"#{body_id}": body, f"#{stamp_id}": stamp, f"#{token_id}": token}
            raise SecurityRejected(f"signature does not verify: {why_not_verified(signature, signed)}") from None

        key = self.replay_key(signature, cert)
        if not self.replay.check_and_store(key, expires):
            raise Replayed()
        return VerifiedMessage(envelope, body, cert, verified_token,
                               None if getattr(self.replay, "durable", False) else (key, expires))

    def _token(self, security: etree._Element) -> tuple[TokenKind, etree._Element]:
        """The one token of the Security header, of a kind this endpoint accepts."""
        found = [(TokenKind.X509, el) for el in security if el.tag == _q(ns.WSSE, "BinarySecurityToken")]
        found += [(TokenKind.SAML_HOK, el) for el in security if el.tag == _q(ns.SAML11_ASSERTION, "Assertion")]
        if len(found) != 1:
            raise SecurityRejected("exactly one security token (X.509 or SAML) is required")
        kind, token = found[0]
        if kind not in self.accepted:
            raise SecurityRejected(f"this endpoint does not accept {kind.value} tokens")
        if kind is TokenKind.X509 and token.get("ValueType") != ns.X509V3:
            raise SecurityRejected("the binary token is not an X.509 v3 certificate")
        return kind, token

    @staticmethod
    def _check_key_reference(signature: etree._Element, kind: TokenKind, token: etree._Element) -> None:
        """The signature's KeyInfo names this header's token: a direct reference to the BinarySecurityToken,
        or a KeyIdentifier of the SAML assertion (SAML token profile)."""
        reference = signature.find(f"{_q(ns.DS, 'KeyInfo')}/{_q(ns.WSSE, 'SecurityTokenReference')}")
        if reference is None or len([c for c in reference if isinstance(c.tag, str)]) != 1:
            raise SecurityRejected("the signature must name its token with one SecurityTokenReference")
        named = next(c for c in reference if isinstance(c.tag, str))
        if kind is TokenKind.X509:
            token_id = token.get(_WSU_ID)
            ok = (named.tag == _q(ns.WSSE, "Reference") and token_id is not None
                  and named.get("URI") == f"#{token_id}")
        else:
            ok = (named.tag == _q(ns.WSSE, "KeyIdentifier") and named.get("ValueType") == ns.SAML_ASSERTION_ID
                  and "".join(named.itertext()).strip() == token.get("AssertionID"))
        if not ok:
            raise SecurityRejected("the token reference does not name this header's token")

    @staticmethod
    def _certificate(text: str | None) -> x509.Certificate:
        if not text:
            raise SecurityRejected("no signing certificate")
        try:
            return x509.load_der_x509_certificate(base64.b64decode("".join(text.split()), validate=True))
        except ValueError:
            raise SecurityRejected("signing certificate unreadable") from None

    @staticmethod
    def replay_key(signature: etree._Element, cert: x509.Certificate) -> str:
        """What identifies a signature for the replay cache: the decoded signature bytes and the signer's
        certificate (as WSS4J does), never the text. Base64 has many spellings of the same bytes (the
        unused bits of the last character, white space, comments between text nodes): all are one key."""
        value_el = signature.find(_q(ns.DS, "SignatureValue"))
        text = "".join(value_el.itertext()) if value_el is not None else ""
        try:
            raw = base64.b64decode("".join(text.split()), validate=True)
        except ValueError:
            raise SecurityRejected("signature value is not base64") from None
        if not raw:
            raise SecurityRejected("empty signature value")
        fingerprint = cert.fingerprint(hashes.SHA256())
        return hashlib.sha256(fingerprint + raw).hexdigest()

    @staticmethod
    def _check_unique_ids(root: etree._Element) -> None:
        """No two elements answer to one Id, whatever attribute carries it (the token is found by structure,
        the signed parts by their wsu:Id: a second element with the same Id is a wrapping attempt)."""
        values = _ID_VALUES(root)  # every Id-like attribute's value, in C (a Python walk was ~6 % of a verify)
        if len(values) != len(set(values)):
            raise SecurityRejected("duplicate Id")

    @staticmethod
    def _check_signed_info(signature: etree._Element, expected_uris: set[str], token_uri: str | None = None) -> None:
        """Exactly ``expected_uris`` (the Body and the Timestamp) are signed, and perhaps the token too."""
        signed_info = signature.find(_q(ns.DS, "SignedInfo"))
        if signed_info is None:
            raise SecurityRejected("Signature without SignedInfo")
        c14n = signed_info.find(_q(ns.DS, "CanonicalizationMethod"))
        method = signed_info.find(_q(ns.DS, "SignatureMethod"))
        if c14n is None or c14n.get("Algorithm") != ns.EXC_C14N:
            raise SecurityRejected("canonicalisation must be exclusive c14n")
        if method is None or method.get("Algorithm") != ns.RSA_SHA256:
            raise SecurityRejected("signature method must be RSA-SHA256")
        refs = signed_info.findall(_q(ns.DS, "Reference"))
        uris = [r.get("URI") for r in refs]
        signed = set(uris) - ({token_uri} if token_uri else set())
        if len(set(uris)) != len(uris) or signed != expected_uris:
            raise SecurityRejected("references must be exactly the Body and the Timestamp (and perhaps the token)")
        for ref in refs:
            digest = ref.find(_q(ns.DS, "DigestMethod"))
            if digest is None or digest.get("Algorithm") != ns.SHA256:
                raise SecurityRejected("digest must be SHA-256")
            transforms = ref.find(_q(ns.DS, "Transforms"))
            algs = [] if transforms is None else [t.get("Algorithm") for t in transforms]
            if any(a != ns.EXC_C14N for a in algs):
                raise SecurityRejected("only the exclusive c14n transform is allowed")

    def _check_timestamp(self, stamp: etree._Element, now: dt.datetime) -> dt.datetime:
        """The Timestamp's Expires, once it is fresh and its lifetime within bounds."""
        created = _parse_time(stamp.findtext(_q(ns.WSU, "Created")))
        expires = _parse_time(stamp.findtext(_q(ns.WSU, "Expires")))
        skew = dt.timedelta(seconds=self.policy.max_clock_skew_seconds)
        if created > now + skew:
            raise SecurityRejected(f"timestamp in the future: created {_seconds(created - now)} ahead of this "
                                   f"service's clock (skew allowed: {_seconds(skew)})")
        if expires <= now:
            raise SecurityRejected(f"timestamp expired: {_seconds(now - expires)} ago")
        if expires <= created or expires - created > dt.timedelta(seconds=self.policy.max_ttl_seconds):
            raise SecurityRejected(f"timestamp lifetime out of bounds: {_seconds(expires - created)} "
                                   f"(at most {self.policy.max_ttl_seconds} s)")
        return expires

    def _key_for(self, cert: x509.Certificate) -> xmlsec.Key:
        der = cert.public_bytes(serialization.Encoding.DER)
        with self._keys_lock:
            key = self._keys.get(der)
            if key is None:
                if len(self._keys) > 1024:
                    self._keys.clear()
                key = xmlsec.Key.from_memory(der, xmlsec.constants.KeyDataFormatCertDer, None)
                self._keys[der] = key
            return key
