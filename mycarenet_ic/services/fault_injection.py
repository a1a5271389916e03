"""Fault injection, a sandbox tool: integrators test their retry logic against the faults production shows.

A rule (:class:`FaultRule`, kept in the scenario under ``"faults"``, changed through the admin API or
``mycarenet-ic scenario inject``) makes a chosen operation of a chosen service — optionally only for one
patient (a NISS anywhere in the request, its ``Detail`` blobs included) or one caller (the NIHII or NISS of
the *verified* identity) — do one of:

- ``delay``: answer as usual, ``delay_ms`` later;
- ``system-error``: answer production's ``SystemError`` fault, ``SOA-02002`` with ``Retry`` true;
- ``http-503``: answer a bare HTTP 503 (what a load balancer in front of the service says);
- ``drop``: close the connection without an answer (a TCP reset).

``times`` requests (default 1), or every request ``until`` a time (``for_seconds`` from now), or both
(whichever ends first). ``delay_ms`` may precede the other effects too. Rules are tried in order; the first
that matches is used (and counted). The effect comes after the caller is verified and the operation is
known, before the operation runs: nothing is changed by a faulted request (a delayed one runs after its
delay). Each is audited (``ERROR`` and the rule's id, or for a delay the audit row's detail) and recorded by
the inspector with ``injected`` in its reason.

The rules (:func:`parse_rule`, :func:`matches`, :func:`consume`) are pure; :class:`FaultInjector` keeps them
in the scenario and decides, per request, which fault applies. The endpoint holds a :class:`NoFaults` unless
the sandbox gave it an injector: the WSGI entry never does.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from types import SimpleNamespace
from typing import Any, Protocol, TypeVar

from lxml import etree

from mycarenet_ic.domain.identifiers import InvalidIdentifier, parse_nihii, parse_niss
from mycarenet_ic.errors import MycarenetError, ServerError, TemporarilyUnavailable
from mycarenet_ic.server import HttpEffect

EFFECTS = ("delay", "system-error", "http-503", "drop")
MAX_DELAY_MS = 120_000
MAX_RULES = 100
_ID = re.compile(r"[A-Za-z0-9_.-]{1,32}")
_FIELDS = {"id", "effect", "service", "operation", "patient", "caller", "delay_ms", "times", "until", "for_seconds"}
INJECTED = "injected"  # the word the audit detail and the inspector's reason carry


class FaultRuleError(ValueError):
    """A rule that cannot be taken: the message says which field and why."""


@dataclass(frozen=True)
class FaultRule:
    id: str
    effect: str
    service: str | None = None
    operation: str | None = None
    patient: str | None = None
    caller: str | None = None
    delay_ms: int = 0
    times: int | None = 1          # requests left (None: no count, only ``until``)
    until: str | None = None       # ISO 8601 UTC; past it the rule is gone

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def describe(self) -> str:
        what = self.effect if self.effect != "delay" else f"delay {self.delay_ms} ms"
        if self.effect != "delay" and self.delay_ms:
            what = f"{what} after {self.delay_ms} ms"
        return f"{INJECTED} fault {self.id}: {what}"


@dataclass(frozen=True)
class RequestFacts:
    """What a rule may look at: the service, the operation (input element's local name), who verifiably
    calls, and whether a NISS is in the request (asked only when a rule names a patient)."""

    service: str
    operation: str
    caller_ssin: str | None
    caller_nihii: str | None
    mentions: Callable[[str], bool]


def _utc(value: str, field: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (TypeError, ValueError, AttributeError):
        raise FaultRuleError(f"{field} must be an ISO 8601 date and time, e.g. 2026-12-02T10:00:00Z") from None
    if when.tzinfo is None:
        raise FaultRuleError(f"{field} must say its time zone (Z for UTC)")
    return when.astimezone(dt.UTC)


def _int(raw: dict[str, Any], field: str, low: int, high: int) -> int | None:
    value = raw.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise FaultRuleError(f"{field} must be a whole number from {low} to {high}")
    return value


def _text(raw: dict[str, Any], field: str) -> str | None:
    value = raw.get(field)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 128 or not value.isprintable():
        raise FaultRuleError(f"{field} must be a short text")
    return value


def _identifier(value: str | None, field: str) -> str | None:
    if value is None:
        return None
    try:
        return parse_niss(value).value
    except InvalidIdentifier:
        if field == "patient":
            raise FaultRuleError("patient must be a valid NISS") from None
    try:
        return parse_nihii(value).value
    except InvalidIdentifier:
        raise FaultRuleError("caller must be a valid NIHII or NISS") from None


def parse_rule(raw: Any, now: dt.datetime) -> FaultRule:
    """A rule from its JSON form (the admin API's body, the scenario's ``faults`` entries); ``for_seconds``
    becomes ``until`` = ``now`` + that. Raises :class:`FaultRuleError`."""
    if not isinstance(raw, dict):
        raise FaultRuleError("a fault rule is a JSON object")
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise FaultRuleError(f"unknown field(s) {', '.join(unknown)}; a rule has {', '.join(sorted(_FIELDS))}")
    effect = raw.get("effect")
    if effect not in EFFECTS:
        raise FaultRuleError(f"effect must be one of {', '.join(EFFECTS)}")
    rule_id = raw.get("id") or f"f-{secrets.token_hex(4)}"
    if not isinstance(rule_id, str) or not _ID.fullmatch(rule_id):
        raise FaultRuleError("id must be 1-32 letters, digits, '.', '_' or '-'")
    delay_ms = _int(raw, "delay_ms", 0, MAX_DELAY_MS) or 0
    if effect == "delay" and not delay_ms:
        raise FaultRuleError("a delay needs delay_ms (1 to 120000)")
    times = _int(raw, "times", 1, 1_000_000)
    seconds = _int(raw, "for_seconds", 1, 7 * 86_400)
    if seconds is not None and raw.get("until") is not None:
        raise FaultRuleError("give until or for_seconds, not both")
    until = now + dt.timedelta(seconds=seconds) if seconds is not None else (
        _utc(raw["until"], "until") if raw.get("until") is not None else None)
    if until is None and times is None:
        times = 1
    return FaultRule(id=rule_id, effect=effect, service=_text(raw, "service"), operation=_text(raw, "operation"),
                     patient=_identifier(_text(raw, "patient"), "patient"),
                     caller=_identifier(_text(raw, "caller"), "caller"), delay_ms=delay_ms, times=times,
                     until=until.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if until is not None else None)


def _operation_key(name: str) -> str:
    """``memberDataConsultation`` (the WSDL's operation) and ``MemberDataConsultationRequest`` (its input
    element) name the same operation."""
    low = name.lower()
    return low.removesuffix("request") or low


def expired(rule: FaultRule, now: dt.datetime) -> bool:
    return (rule.times is not None and rule.times <= 0) or (
        rule.until is not None and _utc(rule.until, "until") <= now)


def matches(rule: FaultRule, facts: RequestFacts, now: dt.datetime) -> bool:
    """Whether ``rule`` applies to the request ``facts`` describes, at ``now``."""
    if expired(rule, now):
        return False
    if rule.service is not None and rule.service.lower() != facts.service.lower():
        return False
    if rule.operation is not None and _operation_key(rule.operation) != _operation_key(facts.operation):
        return False
    if rule.caller is not None and rule.caller not in (facts.caller_ssin, facts.caller_nihii):
        return False
    return rule.patient is None or facts.mentions(rule.patient)


def consume(rule: FaultRule) -> FaultRule:
    """The rule after one request it applied to."""
    return rule if rule.times is None else replace(rule, times=rule.times - 1)


# -- what a request gets --------------------------------------------------------------------------------------
class InjectedHttpEffect(ServerError, HttpEffect):
    """An injected 503 or dropped connection: audited and recorded as the error it is, then made by the HTTP
    front (:class:`mycarenet_ic.server.HttpEffect`)."""

    code = "INJECTED_HTTP_FAULT"

    def __init__(self, rule: FaultRule) -> None:
        super().__init__(reason=rule.describe())  # (HttpEffect's own init takes the message after ServerError's)
        if rule.effect == "http-503":
            self.status, self.body = "503 Service Unavailable", b"Service Unavailable\n"


class Fault:
    """What one request gets: :meth:`before` the operation runs (a wait, or the injected error raised), and
    :meth:`after` it (a delay noted in the audit row)."""

    def __init__(self, rule: FaultRule | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self.rule = rule
        self._sleep = sleep

    def before(self) -> None:
        rule = self.rule
        if rule is None:
            return
        if rule.delay_ms:
            self._sleep(rule.delay_ms / 1000)
        if rule.effect == "system-error":
            raise TemporarilyUnavailable(reason=rule.describe())
        if rule.effect in ("http-503", "drop"):
            raise InjectedHttpEffect(rule)

    def after(self, entry: Any) -> None:
        if self.rule is not None:
            entry.detail = f"{entry.detail} [{self.rule.describe()}]".strip()


NO_FAULT = Fault()


class Faults(Protocol):
    def decide(self, service: str, operation: str, identity: Any, payload: etree._Element) -> Fault: ...


class NoFaults:
    """No fault is ever injected (the default of every endpoint)."""

    def decide(self, service: str, operation: str, identity: Any, payload: etree._Element) -> Fault:
        return NO_FAULT


def _blob_texts(payload: etree._Element) -> Iterator[bytes]:
    """The request's text, then each commons ``Detail`` blob decoded (where a NISS of the patient hides)."""
    from mycarenet_ic.soap.commons import decode_blob  # the SOAP layer, only when a rule names a patient

    yield etree.tostring(payload, method="c14n")
    for el in payload.iter(etree.Element):
        if etree.QName(el).localname != "Detail":
            continue
        try:
            raw = base64.b64decode("".join((el.text or "").split()), validate=True)
            yield decode_blob(SimpleNamespace(value=[raw], ContentEncoding=el.get("ContentEncoding"),
                                              ContentEncryption=el.get("ContentEncryption")))
        except (binascii.Error, MycarenetError):
            continue


def mentions_niss(payload: etree._Element, niss: str) -> bool:
    """Whether ``niss`` appears in the request as a number of its own (not inside a longer one)."""
    pattern = re.compile(rb"(?<![0-9])" + niss.encode() + rb"(?![0-9])")
    return any(pattern.search(text) for text in _blob_texts(payload))


T = TypeVar("T")


class FaultInjector:
    """The scenario's fault rules, decided per request and counted. The rules are the scenario's ``faults``
    entry as last saved by any process (one ``stat`` a request while none changed); adding, clearing and
    using one up are each a change of the scenario on its newest state, so several workers (``serve
    --sandbox``) see the same rules and a rule for ``times`` requests fails exactly that many in all."""

    def __init__(self, scenario: Any, clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.scenario = scenario
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._raw: Any = None
        self._parsed: list[FaultRule] = []
        try:
            self._current()
            raw: list[Any] = self._raw or []
            if any(not isinstance(r, dict) or "id" not in r or "for_seconds" in r for r in raw):
                # A scenario source's rule without an id, or for N seconds: saved once as parsed (its id and
                # end fixed), so every later reading, in every worker, finds the same rule.
                self._change(lambda rules: (rules, None), always=True)
        except FaultRuleError as exc:
            raise FaultRuleError(f"the scenario's faults: {exc}") from None

    def _parse(self, raw: Any) -> list[FaultRule]:
        now = self._clock()
        return [r for r in (parse_rule(x, now) for x in raw or []) if not expired(r, now)]

    def _current(self) -> list[FaultRule]:
        """The rules as saved now, parsed again only when the saved list is another one."""
        raw = self.scenario.extra_now("faults")
        with self._lock:
            if raw is not self._raw:
                self._parsed, self._raw = self._parse(raw), raw
            return self._parsed

    def _change(self, change: Callable[[list[FaultRule]], tuple[list[FaultRule] | None, T]],
                always: bool = False) -> T:
        """``change`` on the newest saved rules (expired ones dropped), saved as one scenario change; a change
        that gives None for the rules changes nothing (nothing saved), unless ``always``."""
        def on_saved(raw: Any) -> tuple[Any, T]:
            rules, result = change(self._parse(raw))
            if rules is None and not always:
                return raw, result
            now = self._clock()
            return [r.to_dict() for r in (rules or []) if not expired(r, now)], result

        return self.scenario.update_extra("faults", on_saved)

    # -- the admin side ---------------------------------------------------------------------------------
    def rules(self) -> list[FaultRule]:
        now = self._clock()
        return [r for r in self._current() if not expired(r, now)]

    def add(self, raw: Any) -> FaultRule:
        rule = parse_rule(raw, self._clock())

        def added(rules: list[FaultRule]) -> tuple[list[FaultRule], FaultRule]:
            if any(r.id == rule.id for r in rules):
                raise FaultRuleError(f"a rule {rule.id} exists already; remove it first")
            if len(rules) >= MAX_RULES:
                raise FaultRuleError(f"at most {MAX_RULES} fault rules; clear some first")
            return [*rules, rule], rule

        return self._change(added)

    def clear(self, rule_id: str | None = None) -> int:
        """Remove one rule (by id) or every rule; how many were removed. Clearing every rule does not read them:
        it also clears a saved list that no longer reads (edited by hand)."""
        if rule_id is None:
            def all_gone(raw: Any) -> tuple[list[Any], int]:
                try:
                    return [], len(self._parse(raw))
                except FaultRuleError:
                    return [], len(raw or [])

            return self.scenario.update_extra("faults", all_gone)

        def cleared(rules: list[FaultRule]) -> tuple[list[FaultRule] | None, int]:
            kept = [r for r in rules if r.id != rule_id]
            return (kept if len(kept) != len(rules) else None), len(rules) - len(kept)

        return self._change(cleared)

    # -- the request side -------------------------------------------------------------------------------
    def decide(self, service: str, operation: str, identity: Any, payload: etree._Element) -> Fault:
        rules = self._current()
        if not rules:  # the usual case: one stat, no lock of the state file, no work
            return NO_FAULT
        facts = RequestFacts(service, operation, getattr(identity, "ssin", None), getattr(identity, "nihii", None),
                             functools.cache(lambda niss: mentions_niss(payload, niss)))
        now = self._clock()
        first = next((rule for rule in rules if matches(rule, facts, now)), None)
        if first is None:
            return NO_FAULT
        if first.times is None:  # a rule for a time, not a count: nothing to use up, nothing to save
            return Fault(first, self._sleep)

        def used(saved: list[FaultRule]) -> tuple[list[FaultRule] | None, FaultRule | None]:
            now = self._clock()  # on the newest rules: another worker may have used this one up meanwhile
            for index, rule in enumerate(saved):
                if matches(rule, facts, now):
                    if rule.times is None:
                        return None, rule
                    return [*saved[:index], consume(rule), *saved[index + 1:]], rule
            return None, None

        rule = self._change(used)
        return Fault(rule, self._sleep) if rule is not None else NO_FAULT
