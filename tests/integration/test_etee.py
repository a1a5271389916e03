"""ETEE over HTTP: the ETK depot stub answers GetEtk as the public contract says; MemberData opens a Detail
sealed for the platform's ETK, checks the seal's sender is the caller, and seals its answer for the caller's
ETK; each bad seal is refused with its fault, audited DENIED with its reason, nothing else stored."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import zeep.exceptions
from lxml import etree

from mycarenet_ic.clients.base import SignedSoapClient
from mycarenet_ic.clients.etee import EtkDepotClient, open_answer, sealed_detail
from mycarenet_ic.clients.messages import attribute_query
from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.errors import NotFound
from mycarenet_ic.sandbox import Sandbox
from mycarenet_ic.security import etee
from mycarenet_ic.security.etk import APPLICATION, PLATFORM_CBE, insurer_cbe, issue_etk
from mycarenet_ic.security.pki import KeyPair, Pki
from mycarenet_ic.security.wssec import Signer
from mycarenet_ic.soap.faults import descriptive_code
from tests import attacks, support

pytestmark = pytest.mark.integration

MD = "urn:be:fgov:ehealth:mycarenet:memberdata:protocol:v1"
STATUS = "urn:oasis:names:tc:SAML:2.0:status"
LAST_MONTH = (dt.date.today() - dt.timedelta(days=30), dt.date.today() - dt.timedelta(days=1))


class Vendor:
    """A doctor's software: its certificate (the simple X.509 mode), its ETK, MemberData and the depot."""

    def __init__(self, box: Sandbox, ssin: str = support.DOCTOR_SSIN, nihii: str = support.DOCTOR_NIHII) -> None:
        pki = box.platform.pki
        self.identity = pki.issue_holder(Quality.DOCTOR, ssin, nihii)
        self.encryption, self.etk = issue_etk(pki, Quality.DOCTOR, ssin, nihii)
        self.nihii = nihii
        self.stranger: KeyPair | None = None  # the caller's name from another CA (the fixture makes it)
        signer, verifier = Signer(self.identity), box.platform.answer_verifier()
        self.trust = etee.TrustCheck([pki.ca().certificate])
        self.depot = EtkDepotClient(box.urls["etk-depot"], signer, verifier, ca_file=pki.ca_file)
        self.md = SignedSoapClient("mycarenet-memberdata-v1.wsdl", f"{{{MD}}}MycarenetMemberDataSOAPBinding",
                                   box.urls["memberdata"], signer, verifier, ca_file=pki.ca_file)

    def query(self) -> bytes:
        return attribute_query(self.nihii, support.PATIENT_LINKED, *LAST_MONTH)

    def ask(self, detail: dict[str, Any]) -> Any:
        common = {"Request": {"IsTest": True}, "InputReference": "etee-1",
                  "Origin": {"Package": {"Name": {"_value_1": "tests"}, "License": {"Username": "u", "Password": "p"}},
                             "CareProvider": {"Nihii": {"Quality": "doctor", "Value": {"_value_1": self.nihii}}}}}
        try:
            return self.md._service.memberDataConsultation(**self.md.header(), CommonInput=common, Detail=detail)
        except zeep.exceptions.Fault as exc:
            err = exc.detail[0]
            return {"kind": etree.QName(err).localname, "faultcode": exc.code,
                    "Code": descriptive_code(err.findtext("Code") or "", err.findtext("Message") or ""),
                    "Message": err.findtext("Message") or ""}

    def sealed(self, sender: KeyPair | None = None, reply_to: bytes | None = None, **changes: Any) -> dict[str, Any]:
        platform_etk = self.depot.get_etk("CBE", PLATFORM_CBE, APPLICATION)
        detail = sealed_detail(self.query(), sender or self.identity, platform_etk, reply_to or self.etk)
        return detail | changes


@pytest.fixture(scope="module")
def vendor(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Vendor:
    vendor = Vendor(sandbox)
    foreign = Pki(tmp_path_factory.mktemp("foreign-ca"))
    foreign.init()
    # the caller's own SSIN and NIHII, certified by a CA that is not the sandbox's
    vendor.stranger = foreign.issue_identity(Quality.DOCTOR, support.DOCTOR_SSIN, support.DOCTOR_NIHII)
    return vendor


def _status(saml: bytes) -> str:
    code = etree.fromstring(saml).find("{*}Status/{*}StatusCode")
    assert code is not None
    return code.get("Value") or ""


def test_the_depot_gives_the_platform_the_insurers_and_an_issued_holder(vendor: Vendor, sandbox: Sandbox) -> None:
    platform = etee.etk_certificate(vendor.depot.get_etk("CBE", PLATFORM_CBE, APPLICATION), vendor.trust)
    assert platform == sandbox.platform.etks.held_keys("platform")[0].certificate
    insurer = etee.etk_certificate(vendor.depot.get_etk("CBE", insurer_cbe("500"), APPLICATION), vendor.trust)
    assert insurer in [k.certificate for k in sandbox.platform.etks.held_keys("insurer")]
    assert vendor.depot.get_etk("SSIN", support.DOCTOR_SSIN) == vendor.etk
    assert vendor.depot.get_etk("NIHII", support.DOCTOR_NIHII) == vendor.etk


@pytest.mark.parametrize(("identifier", "code"), [
    (("SSIN", support.PATIENT_LINKED), "NO_MATCHING_ETK"),
    (("SSIN", "12345678901"), "INVALID_SSIN_NUMBER"),
    (("CBE", "0123456789"), "INVALID_CBE_NUMBER"),
    (("NIHII", "123"), "INVALID_NIHII_NUMBER"),
    (("EHP", "1"), "UNKNOWN_IDENTIFIER_TYPE"),
    (("CBE", PLATFORM_CBE), "MATCHING_ETK"),  # the platform's ETK is for an application: named, not given
])
def test_the_depot_says_why_there_is_no_etk(vendor: Vendor, identifier: tuple[str, str], code: str) -> None:
    with pytest.raises(NotFound, match=code):
        vendor.depot.get_etk(*identifier)


def test_a_sealed_request_is_opened_and_answered_sealed_for_the_caller(vendor: Vendor, sandbox: Sandbox) -> None:
    before = support.service_rows_since(sandbox, "memberdata", 0)
    answer = vendor.ask(vendor.sealed())
    detail = answer.Return.Detail
    assert (detail.ContentEncryption, detail.ContentType, detail.ContentEncoding) == (
        "encryptedForKnownRecipient", "text/plain", "none")
    assert b"urn:oasis:names:tc:SAML" not in bytes(detail._value_1)  # nothing readable on the wire
    assert _status(open_answer(detail, vendor.encryption, vendor.trust)) == f"{STATUS}:Success"
    with pytest.raises(etee.SealRefused):  # only the caller's ETK key opens it
        open_answer(detail, sandbox.platform.etks.held_keys("platform")[0], vendor.trust)
    rows = support.service_rows_since(sandbox, "memberdata", len(before))
    assert [(r["caller"], r["outcome"]) for r in rows] == [(f"doctor:{support.DOCTOR_NIHII}", "OK")]


def test_a_plain_request_naming_its_etk_gets_a_sealed_answer(vendor: Vendor) -> None:
    answer = vendor.ask({"_value_1": vendor.query(), "ContentType": "text/xml", "ContentEncoding": "none",
                         "Etk": vendor.etk})
    assert answer.Return.Detail.ContentEncryption == "encryptedForKnownRecipient"
    assert _status(open_answer(answer.Return.Detail, vendor.encryption, vendor.trust)) == f"{STATUS}:Success"


def test_a_plain_request_is_answered_plain(vendor: Vendor) -> None:
    answer = vendor.ask({"_value_1": vendor.query(), "ContentType": "text/xml", "ContentEncoding": "none"})
    assert answer.Return.Detail.ContentEncryption is None
    assert _status(bytes(answer.Return.Detail._value_1)) == f"{STATUS}:Success"


def _flip(data: bytes, at: int) -> bytes:
    out = bytearray(data)
    out[at] ^= 1
    return bytes(out)


BAD: dict[str, tuple[Any, str, str]] = {
    # case: (how the vendor's Detail is spoiled, the fault's code, the audit's reason)
    "sealed for someone else": (lambda v, box: v.sealed() | {"_value_1": etee.seal(
        etee.known_content(v.query(), v.etk), v.identity, [etee.etk_certificate(v.etk)])},
        "INVALID_SEAL", "ETEE not-for-us"),
    "sealed for an insurer, marked for the platform": (lambda v, box: v.sealed() | {"_value_1": etee.seal(
        etee.known_content(v.query(), v.etk), v.identity, [box.platform.etks.held_keys("insurer")[0].certificate])},
        "INVALID_SEAL", "ETEE not-for-us"),
    "broken seal": (lambda v, box: (d := v.sealed()) | {"_value_1": _flip(d["_value_1"], len(d["_value_1"]) - 30)},
                    "INVALID_SEAL", "ETEE broken"),
    "inner signer not the caller": (lambda v, box: v.sealed(sender=box.platform.pki.issue_holder(
        Quality.DOCTOR, "78111302143", None)),
        "SECURITY_ERROR", "inner signer is not the caller"),
    "unknown reply-to ETK": (lambda v, box: v.sealed(reply_to=etee.make_etk(
        box.platform.pki.issue_identity(Quality.DOCTOR, support.DOCTOR_SSIN, None).certificate,
        box.platform.pki.service("etk-depot"), [])), "INVALID_SEAL", "ETK not in the depot"),
    "wrong content type": (lambda v, box: v.sealed(ContentType="application/pkcs7-mime"),
                           "MALFORMED_REQUEST", "ContentType"),
    "not for this service": (lambda v, box: v.sealed(ContentEncryption="encryptedForKnownHCP"),
                             "MALFORMED_REQUEST", "encryptedForKnownHCP"),
    "no EncryptedKnownContent inside": (lambda v, box: v.sealed() | {"_value_1": etee.seal(
        v.query(), v.identity, [box.platform.etks.held_keys("platform")[0].certificate])},
        "MALFORMED_REQUEST", "EncryptedKnownContent"),
    "marked for an insurer, sealed for the platform": (lambda v, box: v.sealed(ContentEncryption="encryptedForKnownIO"),
                                                       "INVALID_SEAL", "ETEE not-for-us"),
    "signed by a certificate of another CA": (lambda v, box: v.sealed(sender=v.stranger), "INVALID_SEAL",
                                              "ETEE signer"),
    "reply-to ETK that is no ETK": (lambda v, box: v.sealed(reply_to=b"0\x03\x02\x01\x00"), "INVALID_SEAL", "ETK:"),
    "no reply-to ETK": (lambda v, box: v.sealed() | {"_value_1": etee.seal(
        etee.known_content(v.query()), v.identity, [box.platform.etks.held_keys("platform")[0].certificate])},
        "MALFORMED_REQUEST", "Reply-to-Etk"),
    "wrong content encoding": (lambda v, box: v.sealed(ContentEncoding="deflate"), "MALFORMED_REQUEST",
                               "ContentEncoding"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_seal_is_refused_audited_and_stores_nothing(vendor: Vendor, sandbox: Sandbox, case: str) -> None:
    spoil, code, reason = BAD[case]
    detail = spoil(vendor, sandbox)
    before = attacks.state(sandbox)
    answer = vendor.ask(detail)
    assert isinstance(answer, dict), answer
    assert (answer["kind"], answer["Code"]) == ("BusinessError", code), answer
    after = attacks.state(sandbox)
    new_rows = after["audit"][len(before["audit"]):]
    assert [r.outcome for r in new_rows] == ["DENIED"] and reason in new_rows[0].detail, new_rows
    assert after["stored"] == before["stored"] and after["links"] == before["links"]
