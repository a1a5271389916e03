"""Fault injection's rules (services/fault_injection.py): parsing, matching, counting, periods, the injector."""

from __future__ import annotations

import base64
import datetime as dt
import zlib
from types import SimpleNamespace
from typing import Any

import pytest
from lxml import etree

from mycarenet_ic.errors import TemporarilyUnavailable
from mycarenet_ic.server import HttpEffect
from mycarenet_ic.services.fault_injection import (
    NO_FAULT,
    FaultInjector,
    FaultRule,
    FaultRuleError,
    RequestFacts,
    consume,
    matches,
    mentions_niss,
    parse_rule,
)

pytestmark = pytest.mark.unit

NOW = dt.datetime(2026, 12, 2, 9, 0, tzinfo=dt.UTC)
PATIENT = "48031202166"
OTHER_PATIENT = "82112502158"
DOCTOR_NIHII = "11200035003"
DOCTOR_SSIN = "74030902123"


def facts(service: str = "memberdata", operation: str = "MemberDataConsultationRequest", ssin: str | None = DOCTOR_SSIN,
          nihii: str | None = DOCTOR_NIHII, patients: tuple[str, ...] = ()) -> RequestFacts:
    return RequestFacts(service, operation, ssin, nihii, lambda niss: niss in patients)


def test_a_rule_defaults_to_once_and_gets_an_id() -> None:
    rule = parse_rule({"effect": "system-error"}, NOW)
    assert rule.times == 1 and rule.until is None and rule.id.startswith("f-") and rule.delay_ms == 0


@pytest.mark.parametrize(("raw", "says"), [
    ({}, "effect must be one of"),
    ({"effect": "explode"}, "effect must be one of"),
    ({"effect": "delay"}, "a delay needs delay_ms"),
    ({"effect": "delay", "delay_ms": 10**9}, "delay_ms must be"),
    ({"effect": "drop", "times": 0}, "times must be"),
    ({"effect": "drop", "times": True}, "times must be"),
    ({"effect": "drop", "until": "tomorrow"}, "until must be an ISO 8601"),
    ({"effect": "drop", "until": "2026-12-02T10:00:00"}, "time zone"),
    ({"effect": "drop", "until": "2026-12-02T10:00:00Z", "for_seconds": 5}, "not both"),
    ({"effect": "drop", "patient": "48031202167"}, "patient must be a valid NISS"),
    ({"effect": "drop", "caller": "12345"}, "caller must be a valid NIHII or NISS"),
    ({"effect": "drop", "id": "a b"}, "id must be"),
    ({"effect": "drop", "colour": "red"}, "unknown field(s) colour"),
    (["drop"], "a fault rule is a JSON object"),
])
def test_bad_rules_are_refused_saying_why(raw: Any, says: str) -> None:
    with pytest.raises(FaultRuleError) as caught:
        parse_rule(raw, NOW)
    assert says in str(caught.value)


def test_for_seconds_becomes_until_and_a_period_has_no_count() -> None:
    rule = parse_rule({"effect": "http-503", "for_seconds": 60}, NOW)
    assert rule.times is None and rule.until == "2026-12-02T09:01:00.000000Z"
    assert matches(rule, facts(), NOW + dt.timedelta(seconds=59))
    assert not matches(rule, facts(), NOW + dt.timedelta(seconds=60))


def test_times_count_down_to_nothing() -> None:
    rule = parse_rule({"effect": "drop", "times": 2}, NOW)
    once = consume(rule)
    assert matches(once, facts(), NOW) and once.times == 1
    assert not matches(consume(once), facts(), NOW)


def test_times_and_until_whichever_ends_first() -> None:
    rule = parse_rule({"effect": "drop", "times": 5, "until": "2026-12-02T09:00:10Z"}, NOW)
    assert matches(rule, facts(), NOW)
    assert not matches(rule, facts(), NOW + dt.timedelta(seconds=10))


@pytest.mark.parametrize("operation", ["memberDataConsultation", "MemberDataConsultationRequest",
                                       "memberdataconsultation"])
def test_the_operation_is_its_wsdl_name_or_its_input_element(operation: str) -> None:
    rule = parse_rule({"effect": "drop", "service": "memberdata", "operation": operation}, NOW)
    assert matches(rule, facts(), NOW)
    assert not matches(rule, facts(operation="TarificationConsultationRequest"), NOW)
    assert not matches(rule, facts(service="tarification"), NOW)


def test_a_patient_rule_needs_that_niss_in_the_request() -> None:
    rule = parse_rule({"effect": "drop", "patient": PATIENT}, NOW)
    assert matches(rule, facts(patients=(PATIENT,)), NOW)
    assert not matches(rule, facts(patients=(OTHER_PATIENT,)), NOW)


def test_a_caller_rule_takes_the_verified_nihii_or_niss() -> None:
    by_nihii = parse_rule({"effect": "drop", "caller": DOCTOR_NIHII}, NOW)
    by_ssin = parse_rule({"effect": "drop", "caller": DOCTOR_SSIN}, NOW)
    assert matches(by_nihii, facts(), NOW) and matches(by_ssin, facts(nihii=None), NOW)
    assert not matches(by_nihii, facts(nihii="19999922003", ssin=None), NOW)
    assert not matches(by_ssin, facts(ssin=OTHER_PATIENT), NOW)


def _payload(blob_text: bytes | None = None, body_text: str = "") -> etree._Element:
    root = etree.Element("{urn:x}Request")
    etree.SubElement(root, "{urn:x}Ssin").text = body_text
    if blob_text is not None:
        packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        detail = etree.SubElement(root, "{urn:be:fgov:ehealth:mycarenet:commons:protocol:v3}Detail")
        detail.text = base64.b64encode(packer.compress(blob_text) + packer.flush()).decode()
    return root


def test_the_patient_is_found_in_the_body_or_in_a_deflated_detail_blob_as_a_whole_number() -> None:
    assert mentions_niss(_payload(body_text=PATIENT), PATIENT)
    assert mentions_niss(_payload(b"<q><Ssin>" + PATIENT.encode() + b"</Ssin></q>"), PATIENT)
    assert not mentions_niss(_payload(b"<q>" + OTHER_PATIENT.encode() + b"</q>"), PATIENT)
    assert not mentions_niss(_payload(body_text="9" + PATIENT), PATIENT)  # inside a longer number


class _Scenario:
    def __init__(self, faults: list[dict[str, Any]] | None = None) -> None:
        self.extra: dict[str, Any] = {"faults": faults} if faults is not None else {}
        self.saved = 0

    def extra_now(self, key: str) -> Any:
        return self.extra.get(key)

    def update_extra(self, key: str, change: Any) -> Any:
        self.extra[key], result = change(self.extra.get(key))
        self.saved += 1
        return result


def _injector(scenario: _Scenario, now: list[dt.datetime], slept: list[float]) -> FaultInjector:
    return FaultInjector(scenario, clock=lambda: now[0], sleep=slept.append)


IDENTITY = SimpleNamespace(ssin=DOCTOR_SSIN, nihii=DOCTOR_NIHII)


def test_the_injector_applies_the_first_matching_rule_counts_it_and_saves_the_scenario() -> None:
    scenario, now, slept = _Scenario(), [NOW], list[float]()
    injector = _injector(scenario, now, slept)
    injector.add({"id": "other", "effect": "drop", "service": "tarification"})
    injector.add({"id": "err", "effect": "system-error", "service": "memberdata", "times": 2, "delay_ms": 250})
    payload = _payload()
    for _ in range(2):
        fault = injector.decide("memberdata", "MemberDataConsultationRequest", IDENTITY, payload)
        with pytest.raises(TemporarilyUnavailable) as caught:
            fault.before()
        assert caught.value.retry and caught.value.soa_code == "SOA-02002"
        assert "injected fault err" in caught.value.reason
    assert slept == [0.25, 0.25]
    assert injector.decide("memberdata", "MemberDataConsultationRequest", IDENTITY, payload) is NO_FAULT
    assert [r["id"] for r in scenario.extra["faults"]] == ["other"] and scenario.saved >= 4


def test_http_effects_are_raised_for_the_front_and_a_delay_is_noted() -> None:
    scenario, now, slept = _Scenario(), [NOW], list[float]()
    injector = _injector(scenario, now, slept)
    injector.add({"effect": "http-503"})
    injector.add({"effect": "drop"})
    injector.add({"effect": "delay", "delay_ms": 1500})
    with pytest.raises(HttpEffect) as first:
        injector.decide("x", "Op", IDENTITY, _payload()).before()
    assert first.value.status == "503 Service Unavailable"
    with pytest.raises(HttpEffect) as second:
        injector.decide("x", "Op", IDENTITY, _payload()).before()
    assert second.value.status is None
    delay = injector.decide("x", "Op", IDENTITY, _payload())
    delay.before()
    entry = SimpleNamespace(detail="found=yes")
    delay.after(entry)
    assert slept == [1.5] and entry.detail.startswith("found=yes [injected fault ") and "delay 1500 ms" in entry.detail


def test_rules_of_the_scenario_file_are_taken_expired_ones_dropped_and_bad_ones_refused() -> None:
    injector = _injector(_Scenario([{"id": "a", "effect": "drop", "until": "2026-12-02T08:00:00Z"},
                                    {"id": "b", "effect": "drop"}]), [NOW], [])
    assert [r.id for r in injector.rules()] == ["b"]
    with pytest.raises(FaultRuleError, match="the scenario's faults: effect"):
        _injector(_Scenario([{"effect": "nope"}]), [NOW], [])


def test_clearing_one_rule_or_all_and_no_two_rules_of_one_id() -> None:
    injector = _injector(_Scenario(), [NOW], [])
    injector.add({"id": "a", "effect": "drop"})
    injector.add({"id": "b", "effect": "drop"})
    with pytest.raises(FaultRuleError, match="exists already"):
        injector.add({"id": "a", "effect": "http-503"})
    assert injector.clear("a") == 1 and injector.clear("a") == 0
    assert [r.id for r in injector.rules()] == ["b"] and injector.clear() == 1 and injector.rules() == []


def test_a_rule_round_trips_through_its_json_form() -> None:
    rule = parse_rule({"id": "x", "effect": "delay", "delay_ms": 5, "patient": PATIENT, "for_seconds": 9}, NOW)
    assert parse_rule(rule.to_dict(), NOW) == rule
    assert isinstance(rule, FaultRule)
