"""Where a caller's request departs from the official contract's shape although the sandbox answered it:
strict schema validation (the WSDL's XSD for the body, the SAML / message-services schema for the blob), the
fields production requires, stale timestamps and reused ids. Refused requests are not looked at (they were
not tolerated: the fault said why)."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from lxml import etree

from mycarenet_ic import contract
from mycarenet_ic.config import Settings
from mycarenet_ic.conformance.facts import Facts, child, text

BODY_SCHEMA = {"integrated-care": "mycarenet-integratedcare-v1.xsd", "memberdata": "mycarenet-memberdata-v1.xsd",
               "tarification": "mycarenet-tarification-v1.xsd", "mediprima": "mycarenet-tarification-v1.xsd"}
BLOB_SCHEMA = {"memberdata": "saml-protocol-2.0-subset.xsd", "tarification": "messageservices-protocol-v1.xsd",
               "mediprima": "messageservices-protocol-v1.xsd"}
# Refusals at the SOAP layer: the request was not tolerated, its fault says why.
REFUSED = frozenset({"SECURITY_ERROR", "MALFORMED_REQUEST", "REQUEST_TOO_LARGE", "MUST_UNDERSTAND",
                     "UNKNOWN_OPERATION", "INVALID_SOAP_ACTION", "INVALID_REQUEST",
                     # the refusal of a reused Id: not tolerated
                     "DUPLICATE_REQUEST_ID"})
# A WS-Security Timestamp is made just before sending (production's clients: Expires = Created + 60 s); an
# older one was kept and reused. A business IssueInstant is the moment the request was made.
TIMESTAMP_MAX_AGE_SECONDS = Settings.clock_skew_seconds
ISSUE_INSTANT_MAX_AGE_SECONDS = Settings.max_timestamp_ttl_seconds
NIHII11 = "urn:be:cin:nippin:nihii11"
Add = Callable[[str, str], None]


@dataclass(frozen=True)
class Deviation:
    exchange: str  # the exchange's reference: the inspector's id, or the scenario run's
    kind: str      # schema, required, stale, reused-id
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"exchange": self.exchange, "kind": self.kind, "message": self.message}


@functools.cache
def _schema(name: str) -> etree.XMLSchema:
    return contract.schema(name)


def _instant(raw: str | None) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromisoformat((raw or "").strip())
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@dataclass
class Checker:
    """Checks the requests of one caller in the order they arrived (the reused-id check remembers)."""

    seen: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)

    def check(self, ref: str, facts: Facts, arrived: dt.datetime) -> list[Deviation]:
        if facts.request is None or facts["code"] in REFUSED or facts["service"] not in BODY_SCHEMA:
            return []
        found: list[Deviation] = []

        def add(kind: str, message: str) -> None:
            found.append(Deviation(ref, kind, message))

        self._schemas(facts, add)
        self._required(facts, add)
        self._stale(facts, arrived, add)
        self._reused(ref, facts, add)
        return found

    @staticmethod
    def _schemas(facts: Facts, add: Add) -> None:
        service = facts["service"]
        for part, schema_name in ((facts.request, BODY_SCHEMA.get(service)),
                                  (facts.request_blob, BLOB_SCHEMA.get(service))):
            if part is None or schema_name is None:
                continue
            schema = _schema(schema_name)
            if not schema.validate(part):
                errors = "; ".join(f"line {e.line}: {e.message}" for e in list(schema.error_log)[:3])
                add("schema", f"{etree.QName(part).localname} is not valid against xsd/{schema_name}: {errors}")

    @staticmethod
    def _required(facts: Facts, add: Add) -> None:
        service, body = facts["service"], facts.request
        security = child(facts.envelope, "Header", "Security")
        stamp = child(security, "Timestamp")
        if stamp is None or child(stamp, "Expires") is None:
            add("required", "wsse:Security has no wsu:Timestamp with Expires (production requires both)")
        provider = child(body, "CommonInput", "Origin", "CareProvider")
        if service in ("memberdata", "tarification", "mediprima") or facts["role"] in ("doctor", "pharmacist"):
            if provider is None:
                add("required", "CommonInput/Origin/CareProvider is missing: production requires the care "
                    "provider (Nihii with Quality and Value)")
            elif not text(provider, "Nihii", "Value"):
                add("required", "CommonInput/Origin/CareProvider/Nihii/Value is missing")
        if service in ("memberdata", "tarification", "mediprima") and not text(body, "CommonInput", "InputReference"):
            add("required", "CommonInput/InputReference is missing: production's acceptance tests trace requests "
                "by it")
        if service in ("tarification", "mediprima") and child(body, "Routing") is None:
            add("required", "Routing (CareReceiver, ReferenceDate) is missing: production routes tariff requests "
                "by it")
        query = facts.request_blob
        if service == "memberdata" and query is not None:
            issuer = child(query, "Issuer")
            if issuer is not None and issuer.get("Format") != NIHII11:
                add("required", f"saml:Issuer Format must be {NIHII11}")
        if service in ("tarification", "mediprima") and query is not None:
            ident = child(query, "request", "id")
            if ident is None or ident.get("S") != "ID-KMEHR":
                add("required", "request/id must be S=\"ID-KMEHR\" ({nihii11}.{timestamp})")

    @staticmethod
    def _stale(facts: Facts, arrived: dt.datetime, add: Add) -> None:
        created = _instant(text(facts.envelope, "Header", "Security", "Timestamp", "Created"))
        if created is not None and (arrived - created).total_seconds() > TIMESTAMP_MAX_AGE_SECONDS:
            add("stale", f"wsu:Timestamp Created {(arrived - created).total_seconds():.0f} s before the message "
                f"arrived (make it just before sending; more than {TIMESTAMP_MAX_AGE_SECONDS} s is stale)")
        for what, element in (("the request", facts.request), ("the AttributeQuery", facts.request_blob)):
            instant = _instant(element.get("IssueInstant")) if element is not None else None
            if instant is None:
                continue
            age = (arrived - instant).total_seconds()
            if abs(age) > ISSUE_INSTANT_MAX_AGE_SECONDS:
                add("stale", f"IssueInstant of {what} is {abs(age):.0f} s {'old' if age > 0 else 'ahead'} when it "
                    f"arrived (more than {ISSUE_INSTANT_MAX_AGE_SECONDS} s: a request kept or a clock wrong)")

    def _reused(self, ref: str, facts: Facts, add: Add) -> None:
        body = facts.request
        assert body is not None
        digest = hashlib.sha256(etree.tostring(body, method="c14n")).hexdigest()
        ids = [("request Id", body.get("Id"))]
        if facts.request_blob is not None:
            ids += [("AttributeQuery ID", facts.request_blob.get("ID")),
                    ("KMEHR request id", text(facts.request_blob, "request", "id"))]
        for kind, value in ids:
            if not value:
                continue
            first = self.seen.get((kind, value))
            if first is None:
                self.seen[(kind, value)] = (ref, digest)
            elif not (facts["service"] == "integrated-care" and first[1] == digest):  # an identical retry is fine
                add("reused-id", f"{kind} {value!r} was already used by exchange {first[0]} (one new id per "
                    "request; only an identical retry may repeat it)")
