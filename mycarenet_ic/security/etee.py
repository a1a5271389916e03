"""eHealth end-to-end encryption (ETEE): the sealed message and the ETK, with ``cryptography`` (CMS signing
and enveloping) and ``asn1crypto`` (reading CMS structures and their signed attributes, which
``cryptography`` only writes).

Facts, from the public sources:

- **The sealed message** ("triple wrap"): the content is signed (a CMS ``SignedData``, the content
  embedded, by the sender's authentication key), that ``SignedData`` is encrypted (a CMS ``EnvelopedData``,
  AES-128, one key-transport ``RecipientInfo`` per recipient's ETK certificate: "known recipients"), and
  the ``EnvelopedData`` is signed again (an outer ``SignedData``, the same sender). egelke/eHI
  ``etee-crypto/TripleWrapper.cs`` (``Seal``: inner ``SignDetached`` + embed, ``Encrypt`` with
  ``AddKeyTransRecipient`` per ETK certificate and ``AddKekRecipient`` for unknown recipients, outer
  ``SignDetached`` by the authentication certificate + embed); its ``SealActiveConfig``: SHA-256,
  RSASSA-PSS, AES128 (``2.16.840.1.101.3.4.1.2``). freehealth-connector calls the same with
  ``Crypto.seal(SigningPolicySelector.WITH_NON_REPUDIATION, etks, bytes)`` and opens answers with
  ``Crypto.unseal(SigningPolicySelector.WITHOUT_NON_REPUDIATION, bytes)``
  (``MemberDataServiceImpl``, ``ResponseObjectBuilderImpl``).
- **The ETK** (encryption token): a CMS ``SignedData`` whose encapsulated content is the DER of the holder's
  encryption certificate (an RSA key whose key usage allows key and data encipherment), the issuing
  certificates beside it. egelke/eHI ``etee-crypto/EncryptionToken.cs`` (``new CmsSignedData(data)``,
  ``ToCertificate`` from the signed content, ``Verify`` with key usages 2 and 3, RSA only);
  simpleidserver/medikit ``ETKService.cs`` (``SignedCms.Decode`` then ``new X509Certificate2(ContentInfo.Content)``).

What the sandbox does: it seals with SHA-256 and RSA PKCS#1 v1.5 signatures (what ``cryptography`` writes)
and AES-128-CBC with RSA PKCS#1 v1.5 key transport; it opens either signature padding (PKCS#1 v1.5 or PSS
with SHA-256, eHI's). An unsealed message tells who signed inside and outside (:class:`Unsealed`); whether
that signer is the caller is for the caller of :func:`unseal` to decide. Each refusal is a
:class:`SealRefused` whose ``kind`` says which: ``not-for-us`` (no ``RecipientInfo`` for any key held),
``broken`` (not a sealed message, a signature or digest that does not verify, a key that does not open it),
``signer`` (a signer certificate not trusted).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import hashlib
import secrets
from dataclasses import dataclass

from asn1crypto import cms
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from lxml import etree

from mycarenet_ic.errors import MalformedRequest, MycarenetError
from mycarenet_ic.security.parser import ParseLimits, parse_untrusted
from mycarenet_ic.security.pki import KeyPair

_SIGN_OPTIONS = [pkcs7.PKCS7Options.Binary, pkcs7.PKCS7Options.NoCapabilities]
_DIGESTS = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}
MAX_SEALED = 1_048_576


class SealRefused(ValueError):
    """A sealed message (or an ETK) that cannot be opened or trusted; ``kind`` is ``not-for-us``, ``broken``,
    ``signer`` or ``etk``; the text is for the audit."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


@dataclass(frozen=True)
class Unsealed:
    """What a sealed message held, and who signed it inside (the sender) and outside."""

    content: bytes
    inner_signer: x509.Certificate
    outer_signer: x509.Certificate


def _key(pair: KeyPair) -> rsa.RSAPrivateKey:
    return _load_key(pair.key_pem)


@functools.lru_cache(maxsize=64)
def _load_key(pem: bytes) -> rsa.RSAPrivateKey:
    """A private key loaded once (loading checks the RSA key, which costs more than a signature)."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("ETEE keys are RSA keys")
    return key


def _signed(content: bytes, signer: KeyPair, extra: list[x509.Certificate] | None = None) -> bytes:
    builder = pkcs7.PKCS7SignatureBuilder().set_data(content).add_signer(signer.certificate, _key(signer),
                                                                         hashes.SHA256())
    for cert in extra or []:
        builder = builder.add_certificate(cert)
    return builder.sign(serialization.Encoding.DER, _SIGN_OPTIONS)


def seal(content: bytes, sender: KeyPair, recipients: list[x509.Certificate]) -> bytes:
    """``content`` signed by ``sender``, encrypted for ``recipients`` (their ETK certificates), signed again."""
    if not recipients:
        raise ValueError("a sealed message needs at least one recipient")
    inner = _signed(content, sender)
    envelope = pkcs7.PKCS7EnvelopeBuilder().set_data(inner)  # AES-128-CBC: cryptography's default (a test checks)
    for cert in recipients:
        envelope = envelope.add_recipient(cert)
    return _signed(envelope.encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary]), sender)


def unseal(sealed: bytes, keys: list[KeyPair], trusted: TrustCheck, now: dt.datetime | None = None) -> Unsealed:
    """Open ``sealed`` with one of ``keys`` (ETK key pairs): the outer signature checked, the envelope opened,
    the inner signature checked; both signers pass ``trusted``. :class:`SealRefused` otherwise."""
    if len(sealed) > MAX_SEALED:
        raise SealRefused("broken", f"sealed message of {len(sealed)} bytes")
    when = now or dt.datetime.now(dt.UTC)
    enveloped, outer = _verify_signed(sealed, "outer")
    trusted(outer, when)
    inner_bytes = _open_envelope(enveloped, keys)
    content, inner = _verify_signed(inner_bytes, "inner")
    trusted(inner, when)
    return Unsealed(content, inner, outer)


class TrustCheck:
    """What a signer certificate must pass (a callable raising :class:`SealRefused`): by default issued by
    one of ``cas`` directly and valid now."""

    def __init__(self, cas: list[x509.Certificate]) -> None:
        self._cas = {ca.subject.public_bytes(): ca for ca in cas}

    def __call__(self, cert: x509.Certificate, now: dt.datetime) -> None:
        ca = self._cas.get(cert.issuer.public_bytes())
        if ca is None:
            raise SealRefused("signer", f"signer from an unknown issuer: {cert.subject.rfc4514_string()}")
        try:
            cert.verify_directly_issued_by(ca)
        except Exception:  # noqa: BLE001 - any failure means "not issued by this CA"
            raise SealRefused("signer", f"signer not issued by the CA: {cert.subject.rfc4514_string()}") from None
        if not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
            raise SealRefused("signer", f"signer outside its validity period: {cert.subject.rfc4514_string()}")


# -- reading CMS ------------------------------------------------------------------------------------------
def _content_info(data: bytes, kind: str, what: str) -> cms.ContentInfo:
    try:
        info = cms.ContentInfo.load(data, strict=True)
        if info["content_type"].native != kind:
            raise SealRefused("broken", f"{what}: a {info['content_type'].native}, not {kind}")
        info["content"].native  # noqa: B018 - parse it all now, so that a broken part fails here
    except SealRefused:
        raise
    except Exception as exc:  # noqa: BLE001 - asn1crypto raises ValueError, TypeError, …
        raise SealRefused("broken", f"{what}: not a CMS {kind} ({type(exc).__name__})") from None
    return info


def _signer_certificate(signed: cms.SignedData, sid: cms.SignerIdentifier, what: str) -> x509.Certificate:
    for choice in signed["certificates"] or []:
        if choice.name != "certificate":
            continue
        cert = choice.chosen
        if sid.name == "issuer_and_serial_number":
            match = (cert.issuer == sid.chosen["issuer"]
                     and cert.serial_number == sid.chosen["serial_number"].native)
        else:
            match = cert.key_identifier == sid.chosen.native
        if match:
            return x509.load_der_x509_certificate(cert.dump())
    raise SealRefused("broken", f"{what}: the signer's certificate is not in the message")


def _verify_signed(data: bytes, what: str) -> tuple[bytes, x509.Certificate]:
    """The content of a ``SignedData`` with one signer whose signature and digest hold, and its certificate."""
    signed = _content_info(data, "signed_data", what)["content"]
    encap = signed["encap_content_info"]
    if encap["content_type"].native != "data" or encap["content"].native is None:
        raise SealRefused("broken", f"{what}: the signed content is not embedded data")
    content: bytes = encap["content"].native
    infos = list(signed["signer_infos"])
    if len(infos) != 1:
        raise SealRefused("broken", f"{what}: {len(infos)} signers, not one")
    info = infos[0]
    cert = _signer_certificate(signed, info["sid"], what)
    digest_name = info["digest_algorithm"]["algorithm"].native
    if digest_name not in _DIGESTS:
        raise SealRefused("broken", f"{what}: digest {digest_name} refused")
    attrs = info["signed_attrs"]
    if not attrs:
        raise SealRefused("broken", f"{what}: no signed attributes")
    values = {a["type"].native: a["values"] for a in attrs}
    digests, types = values.get("message_digest"), values.get("content_type")
    if not digests or len(digests) != 1 or not types or types[0].native != "data":
        raise SealRefused("broken", f"{what}: message digest or content type missing from the signed attributes")
    if digests[0].native != _DIGESTS[digest_name](content).digest():
        raise SealRefused("broken", f"{what}: the content does not match its signed digest")
    _check_signature(cert, info, attrs.untag().dump(), digest_name, what)
    return content, cert


def _check_signature(cert: x509.Certificate, info: cms.SignerInfo, signed_bytes: bytes, digest_name: str,
                     what: str) -> None:
    algorithm = info["signature_algorithm"]
    name = algorithm["algorithm"].native
    hash_algorithm = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}[digest_name]
    pad: padding.AsymmetricPadding
    if name == "rsassa_pss":
        params = algorithm["parameters"]
        if params["hash_algorithm"]["algorithm"].native != digest_name:
            raise SealRefused("broken", f"{what}: PSS hash is not the digest algorithm")
        pad = padding.PSS(padding.MGF1(hash_algorithm), params["salt_length"].native)
    elif name in ("rsassa_pkcs1v15", f"{digest_name}_rsa"):
        pad = padding.PKCS1v15()
    else:
        raise SealRefused("broken", f"{what}: signature algorithm {name} refused")
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < 2048:
        raise SealRefused("signer", f"{what}: the signer's key is not an RSA key of 2048 bits or more")
    try:
        key.verify(info["signature"].native, signed_bytes, pad, hash_algorithm)
    except InvalidSignature:
        raise SealRefused("broken", f"{what}: the signature does not verify") from None


def _open_envelope(data: bytes, keys: list[KeyPair]) -> bytes:
    enveloped = _content_info(data, "enveloped_data", "envelope")["content"]
    for pair in keys:
        cert = pair.certificate
        for recipient in enveloped["recipient_infos"]:
            if recipient.name != "ktri":
                continue
            rid = recipient.chosen["rid"]
            if rid.name == "issuer_and_serial_number":
                ours = (rid.chosen["serial_number"].native == cert.serial_number
                        and rid.chosen["issuer"].dump() == cert.issuer.public_bytes())
            else:
                ours = _ski(cert) == rid.chosen.native
            if ours:
                try:
                    return pkcs7.pkcs7_decrypt_der(data, cert, _key(pair), [])
                except Exception:  # noqa: BLE001 - a recipient entry for us that our key does not open
                    raise SealRefused("broken", "the envelope does not open with the recipient's key") from None
    raise SealRefused("not-for-us", "the envelope is sealed for none of the keys held")


def _ski(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return None


# -- the ETK ------------------------------------------------------------------------------------------------
def make_etk(encryption_certificate: x509.Certificate, signer: KeyPair, chain: list[x509.Certificate]) -> bytes:
    """An ETK: a ``SignedData`` holding the DER of ``encryption_certificate``, signed by ``signer`` (in the
    sandbox, the ETK depot), ``chain`` beside it."""
    return _signed(encryption_certificate.public_bytes(serialization.Encoding.DER), signer,
                   [encryption_certificate, *chain])


def etk_certificate(etk: bytes, trusted: TrustCheck | None = None, now: dt.datetime | None = None) -> x509.Certificate:
    """The encryption certificate of an ETK; with ``trusted``, the ETK's signature checked, the certificate
    issued by a trusted CA, valid now, an RSA key allowed to encipher keys."""
    try:
        content, _ = _verify_signed(etk, "ETK")
        cert = x509.load_der_x509_certificate(content)
    except SealRefused as exc:
        raise SealRefused("etk", exc.reason) from None
    except ValueError:
        raise SealRefused("etk", "ETK: its content is not a certificate") from None
    if trusted is not None:
        try:
            trusted(cert, now or dt.datetime.now(dt.UTC))
        except SealRefused as exc:
            raise SealRefused("etk", f"ETK: {exc.reason}") from None
    key = cert.public_key()
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        enciphers = usage.key_encipherment
    except x509.ExtensionNotFound:
        enciphers = False
    if not isinstance(key, rsa.RSAPublicKey) or not enciphers:
        raise SealRefused("etk", "ETK: not an RSA certificate for key encipherment")
    return cert


# -- the MyCareNet commons' sealed content --------------------------------------------------------------
# What a commons Detail blob seals: an ``EncryptedKnownContent`` (``urn:be:cin:encrypted``): ``Reply-to-Etk?``
# (the asker's ETK), ``BusinessContent`` (the business message, base64; ``@id``, ``@ContentType?``,
# ``@ContentEncoding?``), ``Xades?``. freehealth-connector ``be.cin.encrypted.EncryptedKnownContent``.
ENCRYPTED = "urn:be:cin:encrypted"


def _q(local: str) -> str:
    return f"{{{ENCRYPTED}}}{local}"


def known_content(business: bytes, reply_to_etk: bytes | None = None, content_encoding: str = "none") -> bytes:
    """An ``EncryptedKnownContent`` holding ``business`` (and the asker's ETK to answer to)."""
    root = etree.Element(_q("EncryptedKnownContent"), nsmap={None: ENCRYPTED})
    if reply_to_etk is not None:
        etree.SubElement(root, _q("Reply-to-Etk")).text = base64.b64encode(reply_to_etk).decode()
    content = etree.SubElement(root, _q("BusinessContent"), id=f"_{secrets.token_hex(16)}",
                               ContentEncoding=content_encoding)
    content.text = base64.b64encode(business).decode()
    return etree.tostring(root, encoding="UTF-8", xml_declaration=True)


def read_known_content(data: bytes, limits: ParseLimits) -> tuple[bytes, str, bytes | None]:
    """``(business bytes, their ContentEncoding, reply-to ETK)`` of an ``EncryptedKnownContent``."""
    try:
        root = parse_untrusted(data, limits)
    except MycarenetError:
        raise MalformedRequest("The sealed Detail blob holds no well-formed XML.") from None
    content = root.find(_q("BusinessContent")) if root.tag == _q("EncryptedKnownContent") else None
    if content is None:
        raise MalformedRequest("The sealed Detail blob must hold an EncryptedKnownContent (urn:be:cin:encrypted) "
                               "with its BusinessContent.")
    reply = root.find(_q("Reply-to-Etk"))
    try:
        business = base64.b64decode("".join(content.itertext()), validate=False)
        reply_etk = base64.b64decode("".join(reply.itertext())) if reply is not None else None
    except (binascii.Error, ValueError):
        raise MalformedRequest("The EncryptedKnownContent holds invalid base64.") from None
    return business, (content.get("ContentEncoding") or "none").lower(), reply_etk
