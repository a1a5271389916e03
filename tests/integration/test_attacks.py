"""Every attack of the foundation issue, over HTTP: a clean SOAP fault, and no trace but one DENIED
audit row (nothing else written: no OK row, no replay-cache entry, no scenario change)."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable

import pytest
import requests
import xmlsec
from lxml import etree

from mycarenet_ic.domain.identifiers import make_niss
from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.sandbox import Sandbox
from mycarenet_ic.security import pki
from mycarenet_ic.security.wssec import Signer, Verifier
from tests import attacks, support
from tests.ic_client import IC_NS
from tests.unit import test_wssec as tamper

pytestmark = pytest.mark.integration


def _signed(signer: Signer, **kw: object) -> etree._Element:
    return tamper.reparse(support.signed(signer, support.aa_body(), **kw))  # type: ignore[arg-type]


def _tampered(fn: Callable[[etree._Element], None]) -> Callable[[Signer], bytes]:
    def build(signer: Signer) -> bytes:
        root = _signed(signer)
        fn(root)
        return support.to_bytes(root)
    return build


def _rogue(_signer: Signer) -> bytes:
    rogue = pki.issue(pki.create_ca(), pki.holder_name(Quality.DOCTOR, support.DOCTOR_SSIN, support.DOCTOR_NIHII))
    return support.to_bytes(_signed(Signer(rogue)))


def _sha1(signer: Signer) -> bytes:
    keypair = signer._test_keypair  # type: ignore[attr-defined]
    sha1 = Signer(keypair, signature_method=xmlsec.constants.TransformRsaSha1,
                  digest_method=xmlsec.constants.TransformSha1)
    return support.to_bytes(_signed(sha1))


def _at(delta: dt.timedelta) -> Callable[[Signer], bytes]:
    return lambda signer: support.to_bytes(support.signed(signer, support.aa_body(), when=support.now() + delta))


def _env(body: bytes) -> bytes:
    return (b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
            + body + b"</soap:Body></soap:Envelope>")


def _xxe(_signer: Signer) -> bytes:
    return b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>' + _env(b"<a>&e;</a>")


def _laughs(_signer: Signer) -> bytes:
    ents = b"".join(b'<!ENTITY l%d "%s">' % (i, (b"&l%d;" % (i - 1)) * 10) for i in range(1, 10))
    return b'<!DOCTYPE x [<!ENTITY l0 "lol">' + ents + b"]>" + _env(b"<a>&l9;</a>")


ATTACKS: dict[str, Callable[[Signer], bytes]] = {
    "no signature": _tampered(tamper.no_signature),
    "no security header": _tampered(tamper.no_security),
    "body changed after signing": _tampered(tamper.body_changed),
    "signed body wrapped, same id": _tampered(tamper.wrapped_same_id),
    "signed body wrapped, changed id": _tampered(tamper.wrapped_other_id),
    "second body": _tampered(tamper.second_body),
    "second security header": _tampered(tamper.second_security),
    "duplicate id": _tampered(tamper.duplicate_id),
    "certificate not from the sandbox CA": _rogue,
    "RSA-SHA1": _sha1,
    "expired timestamp": _at(dt.timedelta(minutes=-5)),
    "timestamp 2 minutes ahead": _at(dt.timedelta(minutes=2)),
    "DOCTYPE with an external entity": _xxe,
    "billion laughs": _laughs,
    "nesting 10,000 deep": lambda s: _env(b"<a>" * 10_000 + b"</a>" * 10_000),
    "100,000 attributes": lambda s: _env(b"<a " + b" ".join(b'a%d="1"' % i for i in range(100_000)) + b"/>"),
    "body over the cap": lambda s: _env(b"<a>" + b"x" * (1_048_576 + 10) + b"</a>"),
    "invalid UTF-8": lambda s: _env(b"<a>\xff\xfe\xfd</a>"),
}


@pytest.fixture(scope="module")
def attacker_signer(sandbox: Sandbox, doctor: pki.KeyPair) -> Signer:
    signer = Signer(doctor)
    signer._test_keypair = doctor  # type: ignore[attr-defined]
    return signer


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_is_rejected_with_only_a_denied_audit_row(name: str, sandbox: Sandbox, attacker_signer: Signer,
                                                         answer_verifier: Verifier) -> None:
    before = attacks.state(sandbox)
    answer = support.post(sandbox.urls["attribute-authority"], ATTACKS[name](attacker_signer))
    after = attacks.state(sandbox)

    attacks.refused(answer, answer_verifier, {"SECURITY_ERROR", "MALFORMED_REQUEST", "REQUEST_TOO_LARGE"})
    attacks.only_denied(before, after)


def test_security_rejections_answer_one_generic_text(sandbox: Sandbox, attacker_signer: Signer) -> None:
    texts = set()
    for name in ("no signature", "duplicate id", "RSA-SHA1", "expired timestamp",
                 "certificate not from the sandbox CA"):
        texts.add(support.post(sandbox.urls["attribute-authority"], ATTACKS[name](attacker_signer))
                  .error_detail()["Message"])
    assert len(texts) == 1


def test_the_same_message_twice_is_processed_once(sandbox: Sandbox, attacker_signer: Signer) -> None:
    data = support.to_bytes(support.signed(attacker_signer, support.aa_body()))
    before = attacks.state(sandbox)
    first = support.post(sandbox.urls["attribute-authority"], data)
    second = support.post(sandbox.urls["attribute-authority"], data)
    after = attacks.state(sandbox)
    assert first.status == 200 and first.fault is None
    assert second.error_detail()["Code"] == "SECURITY_ERROR"
    assert [r.outcome for r in after["audit"][len(before["audit"]):]] == ["OK", "DENIED"]
    assert after["replay"] == before["replay"] + 1


def _forget_what_this_process_saw(sandbox: Sandbox) -> None:
    """As if the next request reached another worker, or the sandbox after a restart: only the database knows."""
    sandbox.platform._seen._seen.clear()


def test_a_replay_this_process_did_not_see_is_refused_when_its_row_is_committed(sandbox: Sandbox,
                                                                              attacker_signer: Signer,
                                                                              answer_verifier: Verifier) -> None:
    data = support.to_bytes(support.signed(attacker_signer, support.aa_body()))
    first = support.post(sandbox.urls["attribute-authority"], data)
    assert first.status == 200 and first.fault is None
    _forget_what_this_process_saw(sandbox)
    before = attacks.state(sandbox)
    second = support.post(sandbox.urls["attribute-authority"], data)
    after = attacks.state(sandbox)
    attacks.refused(second, answer_verifier)  # the answer it had worked out is not given
    attacks.only_denied(before, after, "message replayed")


def test_a_replayed_declaration_another_worker_took_first_stores_nothing(sandbox: Sandbox, attacker_signer: Signer,
                                                                         answer_verifier: Verifier) -> None:
    """The write claims the signature first thing in its transaction: the replay commits no inclusion."""
    patient = next(ssin for n in range(400) if sandbox.scenario.person(ssin := make_niss(dt.date(1951, 7, 7), 600 + n))
                   is None)
    sandbox.scenario.add_persons([{"ssin": patient, "last_name": "Replay", "first_names": ["Test"],
                                   "birth_date": "1951-07-07", "sex": "unknown"}])
    declare = (f'<ic:DeclareInclusionRequest xmlns:ic="{IC_NS}" Id="_{secrets.token_hex(8)}" '
               f'IssueInstant="{support.now().replace(microsecond=0).isoformat()}">'
               "<ic:CommonInput><ic:IsTest>true</ic:IsTest><ic:Origin><ic:Package><ic:Name>t</ic:Name>"
               "</ic:Package></ic:Origin></ic:CommonInput>"
               f"<ic:Patient><ic:Ssin>{patient}</ic:Ssin></ic:Patient><ic:Project>91000252</ic:Project>"
               "<ic:Status>information</ic:Status><ic:StartDate>2026-10-01</ic:StartDate>"
               "<ic:Consent><ic:Agreement>agree</ic:Agreement><ic:Date>2026-10-01</ic:Date></ic:Consent>"
               "</ic:DeclareInclusionRequest>")
    data = support.to_bytes(support.signed(attacker_signer, declare))
    first = support.post(sandbox.urls["integrated-care"], data)
    assert first.fault is None, first.body[:800]
    _forget_what_this_process_saw(sandbox)
    before = attacks.state(sandbox)
    second = support.post(sandbox.urls["integrated-care"], data)
    after = attacks.state(sandbox)
    attacks.refused(second, answer_verifier)
    attacks.only_denied(before, after, "message replayed")


def test_wrong_content_type_and_method(sandbox: Sandbox, attacker_signer: Signer) -> None:
    data = support.to_bytes(support.signed(attacker_signer, support.aa_body()))
    wrong_type = support.post(sandbox.urls["cobrha"], data, "application/json")
    assert wrong_type.error_detail()["Code"] == "MALFORMED_REQUEST"
    assert requests.put(sandbox.urls["cobrha"], data=data, timeout=10).status_code == 405


def test_schema_violation_is_a_business_error_that_changes_nothing(sandbox: Sandbox, attacker_signer: Signer) -> None:
    before = attacks.state(sandbox)
    bad = support.aa_body(patient="not-a-niss")
    answer = support.post(sandbox.urls["attribute-authority"], support.to_bytes(support.signed(attacker_signer, bad)))
    err = answer.error_detail()
    assert (err["kind"], err["Code"]) == ("BusinessError", "INVALID_REQUEST")
    assert "pattern" in err["Message"]
    after = attacks.state(sandbox)
    assert [r.outcome for r in after["audit"][len(before["audit"]):]] == ["ERROR"]
    assert after["links"] == before["links"]


def test_unknown_operation_is_a_clean_fault(sandbox: Sandbox, attacker_signer: Signer) -> None:
    body = f'<aa:Nothing xmlns:aa="{support.AA_NS}" Id="_x" IssueInstant="2026-11-01T00:00:00Z"/>'
    answer = support.post(sandbox.urls["attribute-authority"],
                          support.to_bytes(support.signed(attacker_signer, body)))
    assert answer.error_detail()["kind"] == "BusinessError"


@pytest.mark.parametrize("body", ["", "two"], ids=["empty Body", "two operations in one Body"])
def test_a_signed_body_that_is_not_one_operation_input_is_refused(body: str, sandbox: Sandbox,
                                                                   attacker_signer: Signer) -> None:
    # Signed and fresh, so it passes WS-Security: the Body itself must then hold exactly one operation's
    # input (an empty Body used to crash the dispatcher; a second request rode along unseen).
    xml = "" if body == "" else support.aa_body() + support.aa_body(patient=support.PATIENT_UNLINKED)
    before = attacks.state(sandbox)
    answer = support.post(sandbox.urls["attribute-authority"], support.to_bytes(support.signed(attacker_signer, xml)))
    after = attacks.state(sandbox)
    err = answer.error_detail()
    assert answer.status == 500 and err["Code"] == "UNKNOWN_OPERATION" and err["SoaCode"] == "SOA-03005"
    new_rows = after["audit"][len(before["audit"]):]
    assert [r.outcome for r in new_rows] == ["ERROR"] and after["links"] == before["links"]
