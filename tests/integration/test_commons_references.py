"""What the official MyCareNet commons schema allows is accepted, and read as MyCareNet reads it (issue 11,
item 18): ``Id``/``Ref`` on the self-referring types and ``ValueRef`` on value strings (substituted before
the service reads the message), ``xmime:contentType`` on ``Xades``. A reference that names nothing is the
client's error and changes nothing."""

from __future__ import annotations

import base64
import datetime as dt
import secrets

import pytest
from sqlalchemy import func, select

from mycarenet_ic.clients import messages
from mycarenet_ic.persistence.tables import audit_log
from mycarenet_ic.sandbox import Sandbox
from mycarenet_ic.security.wssec import Signer
from tests import support

pytestmark = pytest.mark.integration

TODAY = dt.date.today()
OTHER_DOCTOR_SSIN = "80060102221"
SERVICES = {
    # service: (request element, its namespace, commons version)
    "memberdata": ("MemberDataConsultationRequest", "urn:be:fgov:ehealth:mycarenet:memberdata:protocol:v1", 3),
    "tarification": ("TarificationConsultationRequest", "urn:be:fgov:ehealth:mycarenet:tarification:protocol:v1", 2),
}


def blob(service: str) -> bytes:
    if service == "memberdata":
        return messages.attribute_query(support.DOCTOR_NIHII, support.PATIENT_LINKED, TODAY - dt.timedelta(days=30),
                                        TODAY)
    return messages.tariff_request(support.DOCTOR_NIHII, support.DOCTOR_SSIN, support.PATIENT_LINKED, TODAY,
                                   ["101076"])


def request(service: str, care_provider: str, sender: str = "", xades: str = "") -> str:
    element, namespace, version = SERVICES[service]
    return (f'<x:{element} xmlns:x="{namespace}" xmlns:p="urn:be:fgov:ehealth:mycarenet:commons:protocol:v{version}" '
            f'xmlns:c="urn:be:fgov:ehealth:mycarenet:commons:core:v{version}" '
            'xmlns:xmime="http://www.w3.org/2005/05/xmlmime" '
            f'Id="_{secrets.token_hex(8)}" IssueInstant="{support.now().replace(microsecond=0).isoformat()}">'
            "<p:CommonInput><c:Request><c:IsTest>true</c:IsTest></c:Request><c:Origin>"
            '<c:Package Id="pkg"><c:Name>refs</c:Name><c:License><c:Username>u</c:Username>'
            "<c:Password>p</c:Password></c:License></c:Package>"
            f"<c:CareProvider>{care_provider}</c:CareProvider>{sender}</c:Origin>"
            "<c:InputReference>refs-1</c:InputReference></p:CommonInput>"
            f"<p:Routing><c:CareReceiver><c:Ssin>{support.PATIENT_LINKED}</c:Ssin></c:CareReceiver>"
            f"<c:ReferenceDate>{TODAY}</c:ReferenceDate></p:Routing>"
            f'<p:Detail ContentEncoding="none" ContentType="text/xml">{base64.b64encode(blob(service)).decode()}'
            f"</p:Detail>{xades}</x:{element}>")


NIHII = f'<c:Nihii Id="nihii"><c:Quality>doctor</c:Quality><c:Value>{support.DOCTOR_NIHII}</c:Value></c:Nihii>'


def rows(box: Sandbox) -> int:
    with box.platform.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(audit_log)).scalar_one())


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_references_and_xades_content_type_are_accepted(sandbox: Sandbox, doctor_signer: Signer,
                                                         service: str) -> None:
    provider = (NIHII + '<c:PhysicalPerson Id="me"><c:Nihii Ref="#nihii"/>'
                f"<c:Ssin>{support.DOCTOR_SSIN}</c:Ssin></c:PhysicalPerson>")
    sender = ("<c:Sender><c:PhysicalPerson Ref=\"#xpointer(id('me'))\"/>"
              "<c:Organization><c:Ssin ValueRef=\"#xpointer(id('me')/c:Ssin)\"/></c:Organization></c:Sender>")
    xades = '<p:Xades xmime:contentType="text/xml">PFhhZGVzLz4=</p:Xades>'
    answer = support.post(sandbox.urls[service],
                          support.to_bytes(support.signed(doctor_signer, request(service, provider, sender, xades))))
    assert answer.status == 200 and answer.fault is None, answer.error_detail()


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_a_ref_is_read_as_what_it_names(sandbox: Sandbox, doctor_signer: Signer, service: str) -> None:
    # the CareProvider's person is a reference to the Sender's, who is another doctor: the claim the
    # service checks is the one the reference names, so it is refused as naming another person
    provider = NIHII + '<c:PhysicalPerson Ref="#other"/>'
    sender = (f'<c:Sender><c:PhysicalPerson Id="other"><c:Ssin>{OTHER_DOCTOR_SSIN}</c:Ssin></c:PhysicalPerson>'
              "</c:Sender>")
    refused = support.post(sandbox.urls[service],
                           support.to_bytes(support.signed(doctor_signer, request(service, provider, sender))))
    err = refused.error_detail()
    assert (err["Code"], err["SoaCode"]) == ("ACCESS_DENIED", "SOA-01002")


@pytest.mark.parametrize("pointer", ["#nothing", "#xpointer(id('pkg'))", "#xpointer(//c:Nihii)", "#xpointer(id('me'))"])
def test_a_reference_that_names_nothing_of_its_kind_is_refused(sandbox: Sandbox, doctor_signer: Signer,
                                                               pointer: str) -> None:
    provider = NIHII + f'<c:PhysicalPerson Id="me"><c:Nihii Ref="{pointer}"/></c:PhysicalPerson>'
    before = rows(sandbox)
    answer = support.post(sandbox.urls["memberdata"],
                          support.to_bytes(support.signed(doctor_signer, request("memberdata", provider))))
    err = answer.error_detail()
    assert (err["kind"], err["Code"], err["SoaCode"]) == ("BusinessError", "MALFORMED_REQUEST", "SOA-03001")
    assert rows(sandbox) == before + 1  # the refusal's own audit row, nothing else
