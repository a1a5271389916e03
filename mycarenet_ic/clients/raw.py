"""A signed SOAP exchange written by hand: the body as the public contract spells it, put in an envelope,
signed (WS-Security: Timestamp, token, RSA-SHA256 over Body and Timestamp), posted, and the answer's signature
checked. For clients that need the exact bytes sent and received (the conformance kit, the tests), where zeep
would write its own."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import requests
from lxml import etree

from mycarenet_ic import ns
from mycarenet_ic.errors import MycarenetError
from mycarenet_ic.security.parser import ParseLimits, parse_untrusted
from mycarenet_ic.security.wssec import Signer, Verifier


def envelope(body_xml: str) -> etree._Element:
    """A SOAP 1.1 envelope with an empty Header around ``body_xml``."""
    return etree.fromstring(
        f'<soap:Envelope xmlns:soap="{ns.SOAP11_ENV}"><soap:Header/><soap:Body>{body_xml}</soap:Body></soap:Envelope>'
        .encode()
    )


def to_bytes(root: etree._Element) -> bytes:
    return etree.tostring(root, encoding="UTF-8", xml_declaration=True)


@dataclass
class RawExchange:
    """What was sent and what came back; ``verified`` says whether the answer's signature held (``problem``
    says why not, or why there was no answer)."""

    request: bytes
    status: int
    answer: bytes
    verified: bool
    problem: str | None = None


class RawSoapClient:
    """Posts hand-written bodies to one address, signed by ``signer``; answers checked by ``verifier``."""

    def __init__(self, address: str, signer: Signer, verifier: Verifier, ca_file: str | Path | None = None,
                 timeout: float = 30.0) -> None:
        self.address = address
        self.signer = signer
        self.verifier = verifier
        self.timeout = timeout
        self.session = requests.Session()
        self.session.verify = str(ca_file) if ca_file else os.environ.get("REQUESTS_CA_BUNDLE") or True
        self.session.trust_env = False

    def send(self, body_xml: str, action: str | None = None) -> RawExchange:
        request = to_bytes(self.signer.sign(envelope(body_xml)))
        headers = {"Content-Type": "text/xml; charset=utf-8"}
        if action:
            headers["SOAPAction"] = f'"{action}"'
        try:
            resp = self.session.post(self.address, data=request, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            return RawExchange(request, 0, b"", False, f"{self.address}: {type(exc).__name__}")
        try:
            root = parse_untrusted(resp.content, ParseLimits(max_bytes=max(len(resp.content), 1)))
            self.verifier.verify(root)
        except MycarenetError as exc:
            return RawExchange(request, resp.status_code, resp.content, False, f"answer refused: {exc.reason}")
        except Exception as exc:  # noqa: BLE001 - whatever the answer is, it is reported, not raised
            return RawExchange(request, resp.status_code, resp.content, False, f"answer unreadable: {exc}")
        return RawExchange(request, resp.status_code, resp.content, True)

    def close(self) -> None:
        self.session.close()
