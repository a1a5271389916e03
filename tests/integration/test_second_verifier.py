"""The sandbox's signed answers (a stub's, a business service's, a fault) hold for a second XML-DSig
implementation too: signxml, with the sandbox CA, accepts their signature over the Body and the Timestamp."""

from __future__ import annotations

import secrets

import pytest
from lxml import etree
from signxml.exceptions import InvalidDigest

from mycarenet_ic import ns
from mycarenet_ic.sandbox import Sandbox
from mycarenet_ic.security.wssec import Signer
from tests import support
from tests.second_verifier import verify_with_signxml

pytestmark = pytest.mark.integration

S = ns.SOAP11_ENV


def _consult(ssin: str) -> str:
    return (f'<ic:ConsultInclusionsRequest xmlns:ic="{ns.INTEGRATED_CARE}" Id="_{secrets.token_hex(8)}" '
            f'IssueInstant="{support.now().replace(microsecond=0).isoformat()}">'
            "<ic:CommonInput><ic:IsTest>true</ic:IsTest><ic:Origin><ic:Package><ic:Name>hand</ic:Name>"
            "</ic:Package></ic:Origin></ic:CommonInput>"
            f"<ic:Patient><ic:Ssin>{ssin}</ic:Ssin></ic:Patient></ic:ConsultInclusionsRequest>")


ANSWERS = {
    "stub": ("attribute-authority", support.aa_body, "HasTherapeuticLinkResponse"),
    "business": ("integrated-care", lambda: _consult(support.PATIENT_LINKED), "ConsultInclusionsResponse"),
    "fault": ("integrated-care", lambda: _consult("not-a-niss"), "Fault"),
}


@pytest.mark.parametrize("kind", sorted(ANSWERS))
def test_signxml_accepts_the_sandboxs_signed_answers(sandbox: Sandbox, doctor_signer: Signer, kind: str) -> None:
    service, body, answer_element = ANSWERS[kind]
    answer = support.post(sandbox.urls[service], support.to_bytes(support.signed(doctor_signer, body())))
    assert answer.root is not None, answer.body[:400]
    signed = verify_with_signxml(answer.root, sandbox.platform.pki.ca().certificate)
    assert sorted(signed) == ["Body", "Timestamp"]
    assert [etree.QName(el).localname for el in signed["Body"]] == [answer_element]
    # the same answer with its Body changed is refused by signxml as well
    first = answer.root.find(f"{{{S}}}Body")
    assert first is not None and len(first)
    first[0].append(etree.Element("{urn:example:tampered}Added"))
    with pytest.raises(InvalidDigest):
        verify_with_signxml(answer.root, sandbox.platform.pki.ca().certificate)
