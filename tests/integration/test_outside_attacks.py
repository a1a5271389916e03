"""The findings of the outside attack (issue 21) at the XML and WS-Security level, over HTTP against the
running sandbox: each attack is rejected with a clean fault, or answered as if it had not been tried, and
the state (audit rows, replay cache, inclusions, scenario) is what it would be without it."""

from __future__ import annotations

import base64
import datetime as dt
import os
import secrets
import threading
from pathlib import Path
from typing import Any

import pytest
import requests
from lxml import etree
from sqlalchemy import func, select

from mycarenet_ic import ns
from mycarenet_ic.app import STUBS
from mycarenet_ic.clients import messages
from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.persistence.tables import audit_log, ic_event, ic_inclusion, ic_request, replay_cache
from mycarenet_ic.sandbox import Sandbox
from mycarenet_ic.security.wssec import MemoryReplayCache, Signer, Verifier
from tests import support
from tests.ic_client import IC_NS

pytestmark = pytest.mark.integration

MD_NS = "urn:be:fgov:ehealth:mycarenet:memberdata:protocol:v1"
TAR_NS = "urn:be:fgov:ehealth:mycarenet:tarification:protocol:v1"
NURSE_SSIN, NURSE_NIHII = "86021702227", "41211142404"
OTHER_DOCTOR_SSIN = "80060102221"
TODAY = dt.date.today()


def state(box: Sandbox) -> dict[str, Any]:
    with box.platform.engine.connect() as conn:
        counts = {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                  for t in (replay_cache, ic_inclusion, ic_event, ic_request)}
        # the service's own rows: the calls it makes to the stubs are audited by the stubs
        outcomes = conn.execute(select(audit_log.c.outcome).where(audit_log.c.service.not_in(STUBS))
                                .order_by(audit_log.c.seq)).scalars().all()
    return {**counts, "audit": list(outcomes), "links": len(box.scenario.links)}


def new_audit(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return after["audit"][len(before["audit"]):]


def unchanged_but_audit(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert {k: v for k, v in after.items() if k != "audit"} == {k: v for k, v in before.items() if k != "audit"}


def post(url: str, data: bytes, **headers: str) -> support.Answer:
    resp = requests.post(url, data=data, headers={"Content-Type": "text/xml; charset=utf-8", **headers}, timeout=30)
    try:
        root = etree.fromstring(resp.content, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError:
        root = None
    return support.Answer(resp.status_code, resp.content, root)


def ic_body(operation: str, inner: str, provider: str = "") -> str:
    return (f'<ic:{operation}Request xmlns:ic="{IC_NS}" Id="_{secrets.token_hex(8)}" '
            f'IssueInstant="{support.now().replace(microsecond=0).isoformat()}">'
            "<ic:CommonInput><ic:IsTest>true</ic:IsTest><ic:Origin><ic:Package><ic:Name>hand</ic:Name>"
            f"</ic:Package>{provider}</ic:Origin></ic:CommonInput>{inner}</ic:{operation}Request>")


def consult_body(ssin: str = support.PATIENT_LINKED) -> str:
    return ic_body("ConsultInclusions", f"<ic:Patient><ic:Ssin>{ssin}</ic:Ssin></ic:Patient>")


def projects_in(answer: support.Answer) -> list[str]:
    assert answer.status == 200 and answer.fault is None, answer.error_detail()
    return sorted(p.text or "" for p in answer.root.iter(f"{{{IC_NS}}}Project"))  # type: ignore[union-attr]


# -- 1. XXE through encodings other than UTF-8 ---------------------------------------------------------------
def _doctype(target: str) -> str:
    return (f'<!DOCTYPE soap:Envelope [<!ENTITY % p SYSTEM "file://{target}"> %p;]>'
            f'<soap:Envelope xmlns:soap="{ns.SOAP11_ENV}"><soap:Body><a/></soap:Body></soap:Envelope>')


ENCODINGS = {
    "utf-16 with BOM": lambda text: ('<?xml version="1.0" encoding="UTF-16"?>' + text).encode("utf-16"),
    "utf-16le, no BOM": lambda text: ('<?xml version="1.0" encoding="UTF-16LE"?>' + text).encode("utf-16-le"),
    "utf-16be, no BOM": lambda text: ('<?xml version="1.0" encoding="UTF-16BE"?>' + text).encode("utf-16-be"),
    "utf-16le, no declaration": lambda text: text.encode("utf-16-le"),
    "utf-32 with BOM": lambda text: ('<?xml version="1.0" encoding="UTF-32"?>' + text).encode("utf-32"),
    "utf-32be, no BOM": lambda text: text.encode("utf-32-be"),
    "ebcdic": lambda text: ('<?xml version="1.0" encoding="IBM037"?>' + text).encode("cp037"),
}


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_xxe_in_any_encoding_opens_nothing_and_is_no_oracle(sandbox: Sandbox, tmp_path: Path, encoding: str) -> None:
    existing = tmp_path / "exists.txt"
    existing.write_text("<!ENTITY x 'y'>")
    answers = []
    for target in (str(existing), str(tmp_path / "missing.txt")):
        before = state(sandbox)
        answer = post(sandbox.urls["integrated-care"], ENCODINGS[encoding](_doctype(target)))
        after = state(sandbox)
        assert new_audit(before, after) == ["DENIED"]
        unchanged_but_audit(before, after)
        err = answer.error_detail()
        assert err["kind"] == "BusinessError"
        answers.append((answer.status, err["Code"], err["Message"]))
    # an existing and a missing file answer the same: no file-existence oracle
    assert answers[0] == answers[1]
    assert answers[0][1] == "MALFORMED_REQUEST"


def test_xxe_naming_fifos_does_not_block_the_service(sandbox: Sandbox, tmp_path: Path,
                                                     doctor_signer: Signer) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    results: list[int] = []

    def attack(encoding: str, target: str) -> None:
        results.append(post(sandbox.urls["integrated-care"], ENCODINGS[encoding](_doctype(target))).status)

    threads = [threading.Thread(target=attack, args=(enc, target)) for enc in ("utf-16 with BOM", "utf-32 with BOM")
               for target in (str(fifo), "/proc/self/fd/1")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads) and results == [500] * 4
    # every in-flight place is free again: a real consultation is answered
    assert "91000153" in projects_in(
        post(sandbox.urls["integrated-care"], support.to_bytes(support.signed(doctor_signer, consult_body()))))


def test_a_charset_other_than_utf8_is_refused(sandbox: Sandbox, doctor_signer: Signer) -> None:
    data = support.to_bytes(support.signed(doctor_signer, consult_body()))
    before = state(sandbox)
    answer = post(sandbox.urls["integrated-care"], data, **{"Content-Type": "text/xml; charset=utf-16"})
    after = state(sandbox)
    assert answer.error_detail()["Code"] == "MALFORMED_REQUEST"
    assert new_audit(before, after) == ["DENIED"]
    unchanged_but_audit(before, after)


# -- 2. the replay cache keys on the signature's bytes ---------------------------------------------------------
def _signature_value(root: etree._Element) -> etree._Element:
    value = root.find(f".//{{{ns.DS}}}SignatureValue")
    assert value is not None
    return value


def respellings(data: bytes) -> list[bytes]:
    """The same signature written otherwise: the 16 spellings of the last base64 character (its unused
    bits), a comment inside the value, line breaks inside the value."""
    root = etree.fromstring(data)
    text = "".join((_signature_value(root).text or "").split())
    stem, pad = text.rstrip("="), "=" * (len(text) - len(text.rstrip("=")))
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    unused = {2: 4, 1: 2, 0: 0}[len(pad)]  # bits of the last character that no byte uses
    index = alphabet.index(stem[-1])
    out = []
    for low in range(1 << unused):
        variant = stem[:-1] + alphabet[(index & ~((1 << unused) - 1)) | low] + pad
        copy = etree.fromstring(data)
        _signature_value(copy).text = variant
        out.append(etree.tostring(copy))
    commented = etree.fromstring(data)
    value = _signature_value(commented)
    value.text = text[:40]
    comment = etree.Comment("x")
    comment.tail = text[40:]
    value.append(comment)
    out.append(etree.tostring(commented))
    wrapped = etree.fromstring(data)
    _signature_value(wrapped).text = "\n".join(text[i:i + 76] for i in range(0, len(text), 76))
    out.append(etree.tostring(wrapped))
    return out


def test_every_spelling_of_a_captured_signature_is_a_replay(sandbox: Sandbox, doctor_signer: Signer) -> None:
    data = support.to_bytes(support.signed(doctor_signer, consult_body()))
    variants = respellings(data)
    assert len(set(variants)) == len(variants) >= 17
    # each variant is a valid signature on its own (a fresh verifier accepts it): the attack is real
    for variant in variants:
        Verifier(sandbox.platform.trust, MemoryReplayCache()).verify(etree.fromstring(variant))
    url = sandbox.urls["integrated-care"]
    before = state(sandbox)
    assert projects_in(post(url, data))
    answered = state(sandbox)
    codes = [post(url, v).error_detail()["Code"] for v in variants]
    after = state(sandbox)
    assert codes == ["SECURITY_ERROR"] * len(variants)
    assert new_audit(before, after) == ["OK"] + ["DENIED"] * len(variants)
    unchanged_but_audit(answered, after)  # no replay-cache entry, no change, for any of the replays


# -- 8. what is processed is what is signed ------------------------------------------------------------------
def _comment_inside(data: bytes, tag: str, at: int) -> bytes:
    root = etree.fromstring(data)
    el = next(root.iter(tag))
    text = el.text or ""
    el.text = text[:at]
    comment = etree.Comment(" inserted after signing ")
    comment.tail = text[at:]
    el.insert(0, comment)
    return etree.tostring(root)


def test_a_comment_inserted_after_signing_does_not_truncate_a_niss(sandbox: Sandbox, doctor_signer: Signer) -> None:
    plain = post(sandbox.urls["integrated-care"], support.to_bytes(support.signed(doctor_signer, consult_body())))
    data = support.to_bytes(support.signed(doctor_signer, consult_body()))
    tampered = _comment_inside(data, f"{{{IC_NS}}}Ssin", 4)
    Verifier(sandbox.platform.trust, MemoryReplayCache()).verify(etree.fromstring(tampered))  # still verifies
    answer = post(sandbox.urls["integrated-care"], tampered)
    # the service read the whole NISS the signature covers, not "4803"
    assert projects_in(answer) == projects_in(plain) and projects_in(answer)


def test_a_comment_inserted_after_signing_does_not_truncate_the_blob(sandbox: Sandbox, doctor_signer: Signer) -> None:
    query = messages.attribute_query(support.DOCTOR_NIHII, support.PATIENT_LINKED, TODAY - dt.timedelta(days=30),
                                     TODAY)
    body = messages.commons_request("MemberDataConsultationRequest", MD_NS, 3, query, support.PATIENT_LINKED, TODAY,
                                    "c-1", support.DOCTOR_NIHII, support.DOCTOR_SSIN)
    data = support.to_bytes(support.signed(doctor_signer, body))
    detail_tag = "{urn:be:fgov:ehealth:mycarenet:commons:protocol:v3}Detail"
    answer = post(sandbox.urls["memberdata"], _comment_inside(data, detail_tag, 60))
    assert answer.status == 200 and answer.fault is None, answer.body[:600]
    detail = next(answer.root.iter(detail_tag))  # type: ignore[union-attr]
    saml = etree.fromstring(base64.b64decode(detail.text or ""))
    assert saml.findall("{urn:oasis:names:tc:SAML:2.0:assertion}Assertion")


# -- 9. mustUnderstand headers the service does not understand ------------------------------------------------
def _with_header(data: bytes, must: str | None, actor: str | None = None) -> bytes:
    root = etree.fromstring(data)
    header = root.find(f"{{{ns.SOAP11_ENV}}}Header")
    assert header is not None
    block = etree.SubElement(header, "{urn:example:unknown}Routing")
    block.text = "x"
    if must is not None:
        block.set(f"{{{ns.SOAP11_ENV}}}mustUnderstand", must)
    if actor is not None:
        block.set(f"{{{ns.SOAP11_ENV}}}actor", actor)
    return etree.tostring(root)


def test_an_unknown_must_understand_header_faults(sandbox: Sandbox, doctor_signer: Signer,
                                                  answer_verifier: Verifier) -> None:
    url = sandbox.urls["integrated-care"]
    before = state(sandbox)
    answer = post(url, _with_header(support.to_bytes(support.signed(doctor_signer, consult_body())), "1"))
    after = state(sandbox)
    assert answer.status == 500
    fault = answer.fault
    assert fault is not None and fault.findtext("faultcode") == "soap:MustUnderstand"
    assert answer.error_detail()["Code"] == "MUST_UNDERSTAND"
    answer_verifier.verify(answer.root)  # signed like every answer
    assert new_audit(before, after) == ["DENIED"]
    unchanged_but_audit(before, after)
    # not for us (another actor) or not mandatory: processed
    for must, actor in (("0", None), ("1", "urn:example:someone-else"), (None, None)):
        ok = post(url, _with_header(support.to_bytes(support.signed(doctor_signer, consult_body())), must, actor))
        assert projects_in(ok), (must, actor)


# -- 13. SOAPAction must name the body's operation --------------------------------------------------------------
def test_a_soap_action_of_another_operation_is_refused(sandbox: Sandbox, doctor_signer: Signer) -> None:
    declare = ic_body("DeclareInclusion", f"<ic:Patient><ic:Ssin>{support.PATIENT_UNLINKED}</ic:Ssin></ic:Patient>"
                      "<ic:Project>91000252</ic:Project><ic:Status>information</ic:Status>"
                      f"<ic:StartDate>{TODAY}</ic:StartDate>")
    data = support.to_bytes(support.signed(doctor_signer, declare))
    before = state(sandbox)
    answer = post(sandbox.urls["integrated-care"], data, SOAPAction=f'"{IC_NS}:ConsultInclusions"')
    after = state(sandbox)
    assert answer.error_detail()["Code"] == "INVALID_SOAP_ACTION"
    assert new_audit(before, after) == ["DENIED"]
    # the signature was valid, so the message is spent (replay cache + 1); nothing else changed
    assert after["replay_cache"] == before["replay_cache"] + 1
    unchanged_but_audit({**before, "replay_cache": 0}, {**after, "replay_cache": 0})
    # the body's own action (quoted or not) and an empty one are accepted
    consult = post(sandbox.urls["integrated-care"], support.to_bytes(support.signed(doctor_signer, consult_body())),
                   SOAPAction=f"{IC_NS}:ConsultInclusions")
    assert projects_in(consult)
    empty = post(sandbox.urls["integrated-care"], support.to_bytes(support.signed(doctor_signer, consult_body())),
                 SOAPAction='""')
    assert projects_in(empty)


# -- 10. a CommonInput naming another person than the certificate ----------------------------------------------
@pytest.mark.parametrize("service", ["memberdata", "tarification"])
def test_common_input_naming_another_person_is_refused(sandbox: Sandbox, doctor_signer: Signer, service: str) -> None:
    if service == "memberdata":
        blob = messages.attribute_query(support.DOCTOR_NIHII, support.PATIENT_LINKED, TODAY - dt.timedelta(days=30),
                                        TODAY)
        element, namespace, version = "MemberDataConsultationRequest", MD_NS, 3
    else:
        blob = messages.tariff_request(support.DOCTOR_NIHII, support.DOCTOR_SSIN, support.PATIENT_LINKED, TODAY,
                                       ["101076"])
        element, namespace, version = "TarificationConsultationRequest", TAR_NS, 2

    def ask(claimed_ssin: str) -> support.Answer:
        body = messages.commons_request(element, namespace, version, blob, support.PATIENT_LINKED, TODAY, "p-1",
                                        support.DOCTOR_NIHII, claimed_ssin)
        return post(sandbox.urls[service], support.to_bytes(support.signed(doctor_signer, body)))

    before = state(sandbox)
    refused = ask(OTHER_DOCTOR_SSIN)
    after = state(sandbox)
    assert refused.error_detail()["Code"] == "ACCESS_DENIED"
    assert new_audit(before, after) == ["DENIED"]
    own = ask(support.DOCTOR_SSIN)
    assert own.status == 200 and own.fault is None, own.body[:500]


# -- the certificate's quality does not make a profession: CoBrHa decides --------------------------------------
def test_a_doctor_certificate_for_a_nurses_nihii_is_not_a_doctor(sandbox: Sandbox) -> None:
    fake = Signer(sandbox.platform.pki.issue_holder(Quality.DOCTOR, NURSE_SSIN, NURSE_NIHII))
    before = state(sandbox)
    ic = post(sandbox.urls["integrated-care"], support.to_bytes(support.signed(fake, consult_body())))
    query = messages.attribute_query(NURSE_NIHII, support.PATIENT_LINKED, TODAY - dt.timedelta(days=30), TODAY)
    md = messages.commons_request("MemberDataConsultationRequest", MD_NS, 3, query, support.PATIENT_LINKED, TODAY,
                                  "n-1", NURSE_NIHII, NURSE_SSIN)
    memberdata = post(sandbox.urls["memberdata"], support.to_bytes(support.signed(fake, md)))
    after = state(sandbox)
    assert ic.error_detail()["Code"] == "ACCESS_DENIED"
    assert memberdata.error_detail()["Code"] == "ACCESS_DENIED"
    assert new_audit(before, after) == ["DENIED", "DENIED"]
    unchanged_but_audit({**before, "replay_cache": 0}, {**after, "replay_cache": 0})
    # the same nurse with a nurse certificate is who she is
    nurse = Signer(sandbox.platform.pki.issue_holder(Quality.NURSE, NURSE_SSIN, NURSE_NIHII))
    answer = post(sandbox.urls["memberdata"], support.to_bytes(support.signed(nurse, md)))
    assert answer.status == 200 and answer.fault is None, answer.body[:500]


# -- 5. nothing from the request reaches the audit unfiltered ---------------------------------------------------
def test_a_schema_invalid_niss_is_not_copied_into_the_audit(sandbox: Sandbox, doctor_signer: Signer) -> None:
    niss = support.PATIENT_UNLINKED
    data = support.to_bytes(support.signed(doctor_signer, consult_body(niss + " ")))
    before = state(sandbox)
    answer = post(sandbox.urls["integrated-care"], data)
    after = state(sandbox)
    err = answer.error_detail()
    assert err["Code"] == "INVALID_REQUEST" and "pattern" in err["Message"]
    assert len(new_audit(before, after)) == 1
    with sandbox.platform.engine.connect() as conn:
        row = conn.execute(select(audit_log).order_by(audit_log.c.seq.desc()).limit(1)).one()
    stored = " ".join(str(v) for v in row._mapping.values())
    assert niss not in stored and niss[:6] not in stored
    assert "INVALID_REQUEST" in row.detail and "PATTERN" in row.detail.upper()


# -- 11. a client's mistakes are the client's -------------------------------------------------------------------
def test_a_huge_offset_is_a_client_error(sandbox: Sandbox) -> None:
    coordinator = Signer(sandbox.platform.pki.issue_holder(Quality.PSI_STAFF, "73080202153", None))
    body = ic_body("ListProjectPatients", "<ic:Project>91000153</ic:Project><ic:Offset>" + "9" * 40 + "</ic:Offset>")
    before = state(sandbox)
    answer = post(sandbox.urls["integrated-care"], support.to_bytes(support.signed(coordinator, body)))
    after = state(sandbox)
    err = answer.error_detail()
    assert (err["kind"], err["Code"], err["Retry"]) == ("BusinessError", "INVALID_REQUEST", "false")
    unchanged_but_audit({**before, "replay_cache": 0}, {**after, "replay_cache": 0})


class _Stalled:
    """A request body whose client stopped sending: the read times out."""

    def read(self, size: int = -1) -> bytes:
        raise TimeoutError("timed out")


def test_a_body_that_never_arrives_is_the_clients_fault(sandbox: Sandbox) -> None:
    from mycarenet_ic.stubs import cobrha

    endpoint = cobrha.build(sandbox.scenario, sandbox.platform.endpoint_deps("cobrha"))
    seen: list[str] = []
    environ = {"REQUEST_METHOD": "POST", "CONTENT_TYPE": "text/xml", "CONTENT_LENGTH": "500",
               "wsgi.input": _Stalled(), "PATH_INFO": "/cobrha"}
    body = b"".join(endpoint(environ, lambda status, headers, exc_info=None: seen.append(status)))
    root = etree.fromstring(body)
    err = support.Answer(500, body, root).error_detail()
    assert (err["kind"], err["Origin"], err["Retry"]) == ("BusinessError", "Consumer", "false")
    assert err["Code"] == "MALFORMED_REQUEST"


def test_a_body_shorter_than_its_length_is_the_clients_fault(sandbox: Sandbox) -> None:
    import io

    from mycarenet_ic.stubs import cobrha

    endpoint = cobrha.build(sandbox.scenario, sandbox.platform.endpoint_deps("cobrha"))
    environ = {"REQUEST_METHOD": "POST", "CONTENT_TYPE": "text/xml", "CONTENT_LENGTH": "500",
               "wsgi.input": io.BytesIO(b"<a/>"), "PATH_INFO": "/cobrha"}
    body = b"".join(endpoint(environ, lambda status, headers, exc_info=None: None))
    err = support.Answer(500, body, etree.fromstring(body)).error_detail()
    assert (err["Code"], err["Retry"]) == ("MALFORMED_REQUEST", "false")
