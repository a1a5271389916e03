"""A care provider's side of ETEE: get an ETK from the depot, seal a commons Detail blob for MyCareNet, open
a sealed answer. What the blobs look like is in :mod:`mycarenet_ic.soap.sealed`; the cryptography in
:mod:`mycarenet_ic.security.etee`.

    depot = EtkDepotClient(urls["etk-depot"], signer, verifier, ca_file=ca)
    platform_etk = depot.get_etk("CBE", PLATFORM_CBE, APPLICATION)      # what MemberData is sealed for
    detail = sealed_detail(query_bytes, my_identity, platform_etk, my_etk)  # zeep's Detail, sealed
    …
    saml = open_answer(answer.Return.Detail, my_encryption_keypair, TrustCheck([ca_certificate]))
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from mycarenet_ic.config import Settings
from mycarenet_ic.errors import NotFound, UpstreamFault
from mycarenet_ic.security import etee
from mycarenet_ic.security.parser import ParseLimits
from mycarenet_ic.security.pki import KeyPair
from mycarenet_ic.security.wssec import Signer, Verifier

from .base import SignedSoapClient

ETKDEPOT = "urn:be:fgov:ehealth:etkdepot:1_0:protocol"
FOR_PLATFORM = "encryptedForKnownBED"
FOR_RECIPIENT = "encryptedForKnownRecipient"


class _Bare(SignedSoapClient):
    """The depot's request is a commons 1.0 ``RequestType``: no Id or IssueInstant."""

    @staticmethod
    def header() -> dict[str, Any]:
        return {}


class EtkDepotClient:
    """``GetEtk`` of the ETK depot, signed as every sandbox call is."""

    def __init__(self, address: str, signer: Signer, verifier: Verifier,
                 timeout: float = Settings.upstream_timeout_seconds, ca_file: str | Path | None = None) -> None:
        self._client = _Bare("sandbox-etkdepot-v1.wsdl", f"{{{ETKDEPOT}}}EtkDepotSoapBinding", address, signer,
                             verifier, timeout, ca_file=ca_file)

    def get_etk(self, type_: str, value: str, application: str = "") -> bytes:
        """The ETK of the party ``type_``/``value`` (and ``application``); :class:`NotFound` with the depot's
        error codes when there is none (or several, for want of an application)."""
        identifier = {"Type": type_, "Value": value} | ({"ApplicationID": application} if application else {})
        answer = self._client.call("GetEtk", SearchCriteria={"Identifier": [identifier]})
        if answer.ETK:
            return bytes(answer.ETK)
        codes = [e.Code for e in (answer.Error or [])] or ["MATCHING_ETK" if answer.MatchingEtk else "NO_ETK"]
        raise NotFound(f"No ETK for {type_} {value}: {', '.join(codes)} (status {answer.Status.Code}).")


def sealed_detail(business: bytes, sender: KeyPair, recipient_etk: bytes, reply_to_etk: bytes,
                  content_encryption: str = FOR_PLATFORM) -> dict[str, Any]:
    """zeep's ``Detail`` for ``business`` sealed by ``sender`` (the caller's identity key pair) for the owner of
    ``recipient_etk``, naming ``reply_to_etk`` (the caller's ETK) for the answer."""
    content = etee.known_content(business, reply_to_etk)
    sealed = etee.seal(content, sender, [etee.etk_certificate(recipient_etk)])
    return {"_value_1": sealed, "ContentType": "text/xml", "ContentEncoding": "none",
            "ContentEncryption": content_encryption}


def open_answer(detail: Any, own: KeyPair, trusted: etee.TrustCheck) -> bytes:
    """The business answer of a zeep ``Detail``: unsealed with ``own`` (the caller's ETK key pair) when it is
    sealed ``encryptedForKnownRecipient``, else as it came."""
    value = bytes(detail._value_1 if not isinstance(detail._value_1, str) else base64.b64decode(detail._value_1))
    if not detail.ContentEncryption:
        return value
    if detail.ContentEncryption != FOR_RECIPIENT:
        raise UpstreamFault(reason=f"answer sealed {detail.ContentEncryption!r}")
    opened = etee.unseal(value, [own], trusted)
    business, encoding, _ = etee.read_known_content(opened.content, ParseLimits(max_bytes=etee.MAX_SEALED))
    if encoding != "none":
        raise UpstreamFault(reason=f"answer's BusinessContent encoded {encoding!r}")
    return business
