"""The conformance catalogue as data: ids unique, every scenario says what to send, what comes back and how to
handle it, its recipe names a known caller; a matcher's criteria; ``--caller`` maps a NISS to the audit's
pseudonymous label exactly as the audit makes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from mycarenet_ic.conformance import catalogue
from mycarenet_ic.conformance.catalogue import ANY, EMPTY, Scenario
from mycarenet_ic.conformance.cli import caller_labels
from mycarenet_ic.conformance.facts import Facts
from mycarenet_ic.domain.qualities import CallerIdentity, Quality
from mycarenet_ic.persistence.audit import SqlAuditLog
from mycarenet_ic.persistence.pseudonym import Pseudonymiser

pytestmark = pytest.mark.unit


def test_every_scenario_is_complete_and_unique() -> None:
    ids = [s.id for s in catalogue.SCENARIOS]
    assert len(ids) == len(set(ids))
    for s in catalogue.SCENARIOS:
        assert s.send and s.answer and s.handle and s.expect, s.id
        assert s.run["as"] in catalogue.CALLERS, s.id
        assert s.service in catalogue.SERVICES
    assert {s.service for s in catalogue.SCENARIOS} == set(catalogue.SERVICES)


def test_integrated_care_has_each_role_and_operation_and_each_refusal() -> None:
    ic = catalogue.select([catalogue.IC])
    answered = {(s.run["as"], s.run["op"]) for s in ic if s.expect.get("answered")}
    assert {("gp", "declare"), ("gp", "consult"), ("gp", "modify"), ("pharmacist", "declare"),
            ("pharmacist", "consult"), ("pharmacist", "modify"), ("psi-administrative", "declare"),
            ("psi-administrative", "modify"), ("psi-coordinator", "list"), ("patient", "consult"),
            ("patient", "modify")} <= answered
    refused = {s.expect["code"] for s in ic if "code" in s.expect}
    assert {"ACCESS_DENIED", "NOT_FOUND", "PRINCIPAL_EXISTS", "CONSENT_INCOMPLETE", "DUPLICATE_REQUEST_ID"} <= refused


def _facts(**values: object) -> Facts:
    return Facts({"service": "memberdata", "operation": "MemberDataConsultationRequest", **values})


def test_matcher_criteria() -> None:
    scenario = Scenario("x", "memberdata", "MemberDataConsultationRequest", "t", "s", "a", "h",
                        {"status": ("Success", "Requester"), "facets": frozenset({"f"}), "issuer": ANY,
                         "errors": EMPTY, "role": "doctor"})
    good = dict(status="Success", facets=frozenset({"f", "g"}), issuer="1", errors=(), role="doctor")
    assert scenario.matches(_facts(**good))
    for key, bad in (("status", "Responder"), ("facets", frozenset({"g"})), ("issuer", None), ("errors", ("1",)),
                     ("role", "nurse")):
        assert not scenario.matches(_facts(**{**good, key: bad})), key
    assert not scenario.matches(Facts({**_facts(**good).values, "service": "tarification"}))


def test_a_niss_caller_is_the_audit_label(tmp_path: Path) -> None:
    niss = catalogue.CALLERS["psi-administrative"].ssin or ""
    label = SqlAuditLog(None, Pseudonymiser.from_data_dir(tmp_path)).caller_label(  # type: ignore[arg-type]
        CallerIdentity(Quality.CITIZEN, niss, None, "CN=x", "f"))
    parts, ssin = caller_labels(tmp_path, niss)
    assert label.partition(":")[2] in parts and ssin == niss
    parts, ssin = caller_labels(tmp_path, "62103457")  # a pharmacy: with or without its 000
    assert parts == {"62103457", "62103457000"} and ssin is None
    with pytest.raises(ValueError):
        caller_labels(tmp_path, "12")
