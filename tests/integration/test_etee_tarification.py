"""ETEE and Tarification / Mediprima over HTTP: their contract (MyCareNet commons **v2**) has no sealed
``Detail``: its ``BlobType`` carries neither ``ContentEncryption`` nor ``Etk`` (the official
``mycarenet-commons-core-2_0``/``2_1`` schemas; ``3_0`` adds ``ContentEncryption`` for MemberData), and the
public clients send Tarification blobs plain (freehealth-connector builds them with the default blob
properties: no content encryption). So a Detail sealed the MemberData way, or naming an ETK, is refused as
the eHealth platform refuses a message off its schema: the XSD compliance failure ``SOA-03006``, audited,
nothing stored; the same request unsealed is answered."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable

import pytest
import requests
from lxml import etree

from mycarenet_ic import ns
from mycarenet_ic.clients.messages import tariff_request
from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.sandbox import Sandbox
from mycarenet_ic.security import etee
from mycarenet_ic.security.etk import issue_etk
from mycarenet_ic.security.pki import KeyPair
from mycarenet_ic.security.wssec import Signer
from mycarenet_ic.soap.sealed import FOR_INSURER, FOR_PLATFORM
from tests import attacks, support

pytestmark = pytest.mark.integration

TAR = "urn:be:fgov:ehealth:mycarenet:tarification:protocol:v1"
DAY = dt.date.today() - dt.timedelta(days=2)
SERVICES = {"tarification": "tariff", "mediprima": "tariffmediprima"}
Doctor = tuple[Signer, KeyPair, bytes]  # the demo GP's signer, identity key pair, ETK


def _body(service: str, blob: bytes, **attributes: str) -> str:
    """A TarificationConsultationRequest of the demo GP, its Detail with ``attributes`` added (a ``ContentType``
    replaces the plain one)."""
    body = support.commons_request("TarificationConsultationRequest", TAR, 2, blob, support.PATIENT_LINKED, DAY,
                                   f"etee-{service}")
    if "ContentType" in attributes:
        body = body.replace('ContentType="text/xml"', f'ContentType="{attributes.pop("ContentType")}"', 1)
    extra = "".join(f' {name}="{value}"' for name, value in attributes.items())
    return body.replace("<p:Detail ", f"<p:Detail{extra} ", 1)


def _kmehr(service: str) -> bytes:
    return tariff_request(support.DOCTOR_NIHII, support.DOCTOR_SSIN, support.PATIENT_LINKED, DAY, ["101010"],
                          transaction=SERVICES[service])


@pytest.fixture(scope="module")
def doctor(sandbox: Sandbox) -> Doctor:
    """The demo GP's signer, identity key pair and ETK (registered in the depot, as ``certs issue --etk``)."""
    pki = sandbox.platform.pki
    identity = pki.issue_holder(Quality.DOCTOR, support.DOCTOR_SSIN, support.DOCTOR_NIHII)
    _, etk = issue_etk(pki, Quality.DOCTOR, support.DOCTOR_SSIN, support.DOCTOR_NIHII)
    return Signer(identity), identity, etk


def _sealed(sandbox: Sandbox, doctor: Doctor, service: str, keys: str) -> bytes:
    """The KMEHR request sealed as a MemberData client seals its query: for the platform's (or an insurer's)
    ETK, naming the doctor's ETK to answer to."""
    _, identity, etk = doctor
    recipient = sandbox.platform.etks.held_keys(keys)[0].certificate
    return etee.seal(etee.known_content(_kmehr(service), etk), identity, [recipient])


CASES: dict[str, tuple[Callable[[Sandbox, Doctor, str], tuple[bytes, dict[str, str]]], str]] = {
    # case: (the Detail's bytes and its extra attributes, the attribute the schema refuses)
    "sealed for the platform": (lambda box, doc, svc: (_sealed(box, doc, svc, "platform"),
                                                       {"ContentEncryption": FOR_PLATFORM}), "ContentEncryption"),
    "sealed for an insurer": (lambda box, doc, svc: (_sealed(box, doc, svc, "insurer"),
                                                     {"ContentEncryption": FOR_INSURER}), "ContentEncryption"),
    "a broken seal": (lambda box, doc, svc: (_sealed(box, doc, svc, "platform")[:-40],
                                             {"ContentEncryption": FOR_PLATFORM}), "ContentEncryption"),
    "sealed, another content type": (lambda box, doc, svc: (_sealed(box, doc, svc, "platform"),
                                                            {"ContentEncryption": FOR_PLATFORM,
                                                             "ContentType": "application/pkcs7-mime"}),
                                     "ContentEncryption"),
    "plain, naming the caller's ETK for a sealed answer": (
        lambda box, doc, svc: (_kmehr(svc), {"Etk": base64.b64encode(doc[2]).decode()}), "Etk"),
}


@pytest.mark.parametrize("service", list(SERVICES))
@pytest.mark.parametrize("case", list(CASES))
def test_a_sealed_detail_is_refused_as_off_the_schema(sandbox: Sandbox, doctor: Doctor, service: str,
                                                      case: str) -> None:
    make, refused = CASES[case]
    blob, attributes = make(sandbox, doctor, service)
    body = _body(service, blob, **attributes)
    before = attacks.state(sandbox)
    answer = support.post(sandbox.urls[service], support.to_bytes(support.signed(doctor[0], body)))
    err = attacks.refused(answer, sandbox.platform.answer_verifier(), codes=("INVALID_REQUEST",))
    assert err["SoaCode"] == "SOA-03006", err  # XSD compliance failure, as the platform's schema check answers
    assert refused in err["Message"] and "not allowed" in err["Message"], err["Message"]
    after = attacks.state(sandbox)
    new_rows = after["audit"][len(before["audit"]):]
    assert [r.outcome for r in new_rows] == ["ERROR"], new_rows  # every schema refusal's outcome
    assert "INVALID_REQUEST" in new_rows[0].detail and "Detail" in new_rows[0].detail, new_rows[0].detail
    assert after["stored"] == before["stored"] and after["links"] == before["links"]


@pytest.mark.parametrize("service", list(SERVICES))
def test_the_same_request_unsealed_is_answered(sandbox: Sandbox, doctor: Doctor, service: str) -> None:
    body = _body(service, _kmehr(service))
    answer = support.post(sandbox.urls[service], support.to_bytes(support.signed(doctor[0], body)))
    assert answer.status == 200 and answer.fault is None, answer.body[:500]
    assert answer.root is not None
    detail = answer.root.find(f".//{{{ns.SOAP11_ENV}}}Body//{{*}}Return/{{*}}Detail")
    assert detail is not None and detail.get("ContentEncryption") is None


@pytest.mark.parametrize("service", list(SERVICES))
def test_the_published_schema_has_no_sealed_detail(sandbox: Sandbox, service: str) -> None:
    """What a vendor's generated client sees: the v2 Detail the service publishes, without the ETEE fields
    (MemberData's v3 one has ContentEncryption)."""
    def blob_attributes(url: str, name: str) -> set[str]:
        xsd = etree.fromstring(requests.get(f"{url}?xsd={name}", timeout=10).content)
        blob = xsd.find(f"{{{ns.XS}}}complexType[@name='BlobType']")
        assert blob is not None
        return {a.get("name") or "" for a in blob.iter(f"{{{ns.XS}}}attribute")}

    v2 = blob_attributes(sandbox.urls[service], "mycarenet-commons-core-v2.xsd")
    assert {"ContentType", "ContentEncoding"} <= v2 and not v2 & {"ContentEncryption", "Etk"}, v2
    assert "ContentEncryption" in blob_attributes(sandbox.urls["memberdata"], "mycarenet-commons-core-v3.xsd")
