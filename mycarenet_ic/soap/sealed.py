"""Sealed (ETEE) commons ``Detail`` blobs: a request's opened, an answer's sealed for its asker.

How the commons mark and carry them (facts):

- ``Detail/@ContentEncryption`` names who the blob is sealed for (``urn:be:cin:types:v1``
  ``ContentEncryptionType``: ``encryptedForKnownRecipient``, ``encryptedForKnownIO``, ``encryptedForKnownHCP``,
  ``encryptedForKnownBED``, ``encryptedForKnownCINNIC``; freehealth-connector ``be.cin.types.v1``). A
  MemberData request is sealed ``encryptedForKnownBED`` for the platform's ETK (CBE 0820563481, application
  ``MYCARENET``), ``ContentEncoding`` ``none``, ``ContentType`` ``text/xml`` (freehealth-connector
  ``MemberDataServiceImpl``: ``crypto.seal(…, mbEtk, EncryptedKnownContent)`` then
  ``blobBuilder.build(it, "none", detailId, "text/xml", "MDA", "encryptedForKnownBED")``; egelke/eHI
  ``EncryptForBed`` sends ``text/plain``). The sandbox also opens ``encryptedForKnownIO``: sealed for an
  insurer's ETK.
- What is sealed is an ``EncryptedKnownContent`` (namespace ``urn:be:cin:encrypted``): ``Reply-to-Etk?``
  (the asker's ETK, base64), ``BusinessContent`` (base64 of the business message; ``@id``,
  ``@ContentType?``, ``@ContentEncoding?`` ``none`` | ``deflate``), ``Xades?``
  (freehealth-connector ``be.cin.encrypted.EncryptedKnownContent`` and ``BusinessContent``).
- The answer comes back ``ContentEncryption="encryptedForKnownRecipient"``, ``ContentType`` ``text/plain``,
  sealed for the asker's ETK, holding an ``EncryptedKnownContent`` whose ``BusinessContent`` is the answer
  (egelke/eHI ``McnMdaClient``: ``case "encryptedForKnownRecipient": DecryptForKnown`` then
  ``/e:EncryptedKnownContent/e:BusinessContent``; its newer client checks ``text/plain``;
  freehealth-connector ``ResponseObjectBuilderImpl`` unseals any ``contentEncryption``). eHI also sends its
  ETK in ``Detail/@Etk`` of a plain request and reads a sealed answer: the sandbox seals for that ETK too.
- Only the commons v3 ``Detail`` (MemberData) has ``ContentEncryption``; Tarification and Mediprima take
  commons v2, whose ``BlobType`` has neither it nor ``Etk`` (official ``mycarenet-commons-core-2_0``/``2_1``
  schemas; freehealth-connector's ``TarificationServiceImpl`` builds the blob with the default blob properties,
  no content encryption). A sealed Tarification Detail is refused by the schema check (``SOA-03006``).

What is refused, each as production would before the business message is read (no public catalogue code
exists for these, so the sandbox answers the eHealth SOA fault for content, ``SOA-03007``, with its own
texts; the sender check is an authentication failure, ``SOA-01001``): a blob sealed for a key the sandbox
does not hold (another recipient), a broken seal (bad structure, digest, signature or key), a signer the
sandbox CA did not issue, an inner signer who is not the authenticated caller, a reply-to ETK the depot
does not know, a ``ContentEncryption`` value not for this service, a content type or encoding a sealed
blob never has, a sealed content that is no ``EncryptedKnownContent``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from mycarenet_ic.errors import MalformedRequest, SealRejected, SecurityRejected
from mycarenet_ic.security import etee
from mycarenet_ic.security.etee import known_content, read_known_content
from mycarenet_ic.security.etk import EtkRegistry
from mycarenet_ic.security.parser import ParseLimits
from mycarenet_ic.security.pki import KeyPair, identity_from_certificate
from mycarenet_ic.soap.commons import Blob, pack
from mycarenet_ic.soap.endpoint import Call

FOR_PLATFORM = "encryptedForKnownBED"
FOR_INSURER = "encryptedForKnownIO"
FOR_RECIPIENT = "encryptedForKnownRecipient"
SEALED_CONTENT_TYPES = frozenset({"text/xml", "text/plain"})
_REFUSALS = {
    "not-for-us": "The Detail blob is not sealed for this service's encryption key (ETK).",
    "broken": "The sealed Detail blob is broken: it does not open or its signature does not verify.",
    "signer": "The sealed Detail blob is signed with a certificate the platform does not trust.",
    "etk": "The reply-to ETK is not an encryption token the ETK depot knows.",
}


@dataclass
class Etee:
    """What a business service needs to open sealed requests and seal its answers: the ETK registry (whose
    keys the platform holds), the trust in signers, the platform's signing key pair."""

    registry: EtkRegistry
    trust: etee.TrustCheck
    sender: KeyPair
    limits: ParseLimits = ParseLimits(max_bytes=etee.MAX_SEALED)

    def open(self, blob: Any, call: Call) -> tuple[Any, x509.Certificate | None]:
        """The request's Detail as a plain blob, and the ETK certificate to seal the answer for (None: answer
        in the clear). A plain blob is given back as it is."""
        if blob is None or not blob.ContentEncryption:
            named = getattr(blob, "Etk", None) if blob is not None else None
            return blob, self.reply_certificate(_b64(named)) if named else None
        keys = {FOR_PLATFORM: "platform", FOR_INSURER: "insurer"}.get(blob.ContentEncryption)
        if keys is None:
            raise MalformedRequest(f"This service opens Detail blobs sealed {FOR_PLATFORM} or {FOR_INSURER}, "
                                   "not " + repr(blob.ContentEncryption)[:80] + ".")
        if (blob.ContentType or "").lower() not in SEALED_CONTENT_TYPES:
            raise MalformedRequest("A sealed Detail blob has ContentType text/xml or text/plain.")
        if (blob.ContentEncoding or "none").lower() != "none":
            raise MalformedRequest("A sealed Detail blob has ContentEncoding none.")
        try:
            opened = etee.unseal(b"".join(blob.value or []), self.registry.held_keys(keys), self.trust)
        except etee.SealRefused as exc:
            raise SealRejected(_REFUSALS[exc.kind], reason=f"ETEE {exc.kind}: {exc.reason}") from None
        self.check_sender(opened.inner_signer, call)
        business, encoding, reply_etk = read_known_content(opened.content, self.limits)
        named = reply_etk if reply_etk is not None else (_b64(blob.Etk) if blob.Etk else None)
        if named is None:
            raise MalformedRequest("A sealed request names the ETK to seal its answer for (Reply-to-Etk).")
        plain = Blob([business], ContentType=blob.ContentType, ContentEncoding=encoding)
        return plain, self.reply_certificate(named)

    def reply_certificate(self, etk: bytes) -> x509.Certificate:
        """The encryption certificate of a reply-to ETK the depot knows."""
        try:
            cert = etee.etk_certificate(etk, self.trust)
        except etee.SealRefused as exc:
            raise SealRejected(_REFUSALS["etk"], reason=exc.reason) from None
        if not self.registry.knows(cert):
            raise SealRejected(_REFUSALS["etk"], reason=f"ETK not in the depot: {cert.subject.rfc4514_string()}")
        return cert

    @staticmethod
    def check_sender(signer: x509.Certificate, call: Call) -> None:
        """The seal's inner signer must be the authenticated caller: the certificate that signed the message,
        or another the CA issued to the same holder (a person by NISS, an organisation by type and NIHII)."""
        if signer == call.certificate:
            return
        caller = call.identity
        try:
            who = identity_from_certificate(signer)
        except ValueError:
            raise SecurityRejected("ETEE inner signer names no holder") from None
        if caller.quality.is_organisation:
            same = who.quality is caller.quality and who.nihii == caller.nihii and (
                caller.nihii is not None or who.subject == caller.subject)
        else:
            same = who.ssin is not None and who.ssin == caller.ssin
        if not same:
            raise SecurityRejected(f"ETEE inner signer is not the caller: {signer.subject.rfc4514_string()}")

    def seal_answer(self, body: bytes, reply_to: x509.Certificate) -> Blob:
        """``body`` as an answer's Detail, sealed ``encryptedForKnownRecipient`` for ``reply_to``."""
        sealed = etee.seal(known_content(body), self.sender, [reply_to])
        return Blob([sealed], ContentType="text/plain", ContentEncoding="none", ContentEncryption=FOR_RECIPIENT)


def _b64(value: Any) -> bytes:
    """An attribute read as text (``Etk`` is xs:base64Binary)."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raise MalformedRequest("The Detail's Etk attribute is not base64.") from None


def open_detail(etee_: Etee | None, blob: Any, call: Call) -> tuple[Any, x509.Certificate | None]:
    """:meth:`Etee.open` where the service has ETEE, else the blob as it is (a sealed one is then refused by
    the commons' decoding)."""
    return etee_.open(blob, call) if etee_ is not None else (blob, None)


def answer_blob(etee_: Etee | None, body: bytes, encoding: str, reply_to: x509.Certificate | None) -> Blob:
    """The answer's Detail: ``body`` sealed for ``reply_to`` when the request asked for a sealed answer, else
    encoded as ``encoding``."""
    if etee_ is not None and reply_to is not None:
        return etee_.seal_answer(body, reply_to)
    return Blob([pack(body, encoding)], ContentEncoding=encoding)
