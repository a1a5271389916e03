"""SOAP faults as the eHealth platform gives them (issue 11, item 17): the detail is valid against the
public errors schema (core ``ErrorType`` with unqualified children, ``Environment`` qualified in the SOA
namespace), its ``Code`` is the SOA catalogue's where one exists, ``Origin`` names the Consumer or the
Provider. Requests are written here by hand; the expectations are the catalogue's, not the service's."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest
from lxml import etree

from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.sandbox import Sandbox
from mycarenet_ic.security.wssec import Signer
from tests import support

pytestmark = pytest.mark.integration

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
SOA = "urn:be:fgov:ehealth:errors:soa:v1"
IC = "urn:be:fgov:ehealth:mycarenet:integratedcare:protocol:v1"
ERRORS = etree.XMLSchema(etree.parse(str(Path(__file__).parent / "xsd" / "ehealth-errors-soa.xsd")))


def _ic(operation: str, inner: str) -> str:
    return (f'<ic:{operation} xmlns:ic="{IC}" Id="_{secrets.token_hex(8)}" '
            f'IssueInstant="{support.now().replace(microsecond=0).isoformat()}">'
            "<ic:CommonInput><ic:IsTest>true</ic:IsTest><ic:Origin><ic:Package><ic:Name>fidelity</ic:Name>"
            f"</ic:Package></ic:Origin></ic:CommonInput>{inner}</ic:{operation}>")


def _signed(body: str, who: str = "doctor") -> Callable[[Sandbox], bytes]:
    def build(box: Sandbox) -> bytes:
        holder = {
            "doctor": lambda: box.platform.pki.issue_holder(Quality.DOCTOR, support.DOCTOR_SSIN, support.DOCTOR_NIHII),
            "expired": lambda: box.platform.pki.issue_holder(Quality.DOCTOR, "57120502143", support.EXPIRED_VISA_NIHII),
        }[who]()
        return support.to_bytes(support.signed(Signer(holder), body))
    return build


def _unsigned(box: Sandbox) -> bytes:
    return (f'<soap:Envelope xmlns:soap="{SOAP}"><soap:Header/><soap:Body>'
            + _ic("ConsultInclusionsRequest", "<ic:Patient><ic:Ssin>48031202166</ic:Ssin></ic:Patient>")
            + "</soap:Body></soap:Envelope>").encode()


CONSULT = "<ic:Patient><ic:Ssin>48031202166</ic:Ssin></ic:Patient>"
# case: (service, request, error element, Code on the wire, our code in the Message or None)
CASES: dict[str, tuple[str, Callable[[Sandbox], bytes], str, str, str | None]] = {
    "not signed": ("integrated-care", _unsigned, "BusinessError", "SOA-01001", "SECURITY_ERROR"),
    "not well-formed": ("integrated-care", lambda box: b"<soap:Envelope", "BusinessError", "SOA-03001",
                        "MALFORMED_REQUEST"),
    "schema violated": ("integrated-care",
                        _signed(_ic("ConsultInclusionsRequest", "<ic:Patient><ic:Ssin>123</ic:Ssin></ic:Patient>")),
                        "BusinessError", "SOA-03006", "INVALID_REQUEST"),
    "no such operation": ("integrated-care", _signed(_ic("ForgetEverythingRequest", CONSULT)), "BusinessError",
                          "SOA-03005", None),
    "not authorized": ("integrated-care", _signed(_ic("ConsultInclusionsRequest", CONSULT), "expired"),
                       "BusinessError", "SOA-01002", "ACCESS_DENIED"),
    "a business rule": ("integrated-care",
                        _signed(_ic("ModifyInclusionRequest", CONSULT + "<ic:InclusionId>nope</ic:InclusionId>"
                                    "<ic:Status>information</ic:Status>")),
                        "BusinessError", "NOT_FOUND", None),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fault_detail_is_the_platforms(sandbox: Sandbox, case: str) -> None:
    service, build, kind, code, ours = CASES[case]
    answer = support.post(sandbox.urls[service], build(sandbox))
    assert answer.status == 500 and answer.root is not None
    fault = answer.root.find(f"{{{SOAP}}}Body/{{{SOAP}}}Fault")
    assert fault is not None and fault.findtext("faultcode") == "soap:Client"
    detail = fault.find("detail")
    assert detail is not None and len(detail) == 1
    error = detail[0]
    ERRORS.assertValid(error)
    assert error.tag == f"{{{SOA}}}{kind}"
    assert error.findtext("Origin") == "Consumer"
    assert error.findtext("Code") == code
    assert error.findtext(f"{{{SOA}}}Environment") == "Simulation" and error.find("Environment") is None
    message = error.find("Message")
    assert message is not None and message.get("{http://www.w3.org/XML/1998/namespace}lang") == "en"
    if ours is not None:
        assert (message.text or "").endswith(f"[{ours}]")
    if code.startswith("SOA-"):
        assert re.fullmatch(r"SOA-\d{5}", code)
