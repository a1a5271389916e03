"""``conformance run``: the catalogue played as a client against an endpoint that speaks these contracts.

Each scenario's ``run`` recipe is written as the public contract spells it (hand-built bodies, the same
builders as the tests: :mod:`mycarenet_ic.clients.messages`), signed as production signs (an STS
holder-of-key token by default, or the simple mode's certificate), posted, the answer's signature checked;
the scenario's own matcher then says whether the exchange is the one it describes (passed), and the
deviation checks look at the request sent. The callers are the demo scenario's: their certificates are
issued from the target sandbox's CA (its data directory), their tokens asked from its STS.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mycarenet_ic import ns
from mycarenet_ic.clients.messages import attribute_query, commons_request, tariff_request
from mycarenet_ic.clients.raw import RawExchange, RawSoapClient
from mycarenet_ic.clients.sts import StsClient, TokenSource
from mycarenet_ic.conformance.catalogue import CALLERS, IC, MD, MP, TAR, Caller, Scenario
from mycarenet_ic.conformance.deviations import Checker
from mycarenet_ic.conformance.facts import NAME_FORMATS, facts_of, local, parse, payload, text
from mycarenet_ic.conformance.report import Report, Result, held_against
from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.security.pki import Pki
from mycarenet_ic.security.wssec import MemoryReplayCache, Signer, TrustStore, Verifier

MD_NS = "urn:be:fgov:ehealth:mycarenet:memberdata:protocol:v1"
TAR_NS = "urn:be:fgov:ehealth:mycarenet:tarification:protocol:v1"
ACTIONS = {MD: f"{MD_NS}:MemberDataConsultation", TAR: f"{TAR_NS}:TarificationConsult",
           MP: f"{TAR_NS}:TarificationConsult"}
FORMATS = {short: long for long, short in NAME_FORMATS.items()}
TOKEN_KINDS = ("sts", "x509")


class RunError(Exception):
    """The run cannot start (what to do is the message)."""


def target_urls(values: Sequence[str], running: Callable[[], dict[str, str]] | None = None) -> dict[str, str]:
    """``--target`` values: ``NAME=URL`` for one service (``sts`` too), a base URL under which every service
    is ``<base>/<name>`` (a staging proxy), or ``running``: the sandbox running on the data directory."""
    urls: dict[str, str] = {}
    for value in values:
        name, sep, url = value.partition("=")
        if value == "running":
            if running is None:
                raise RunError("--target running needs the sandbox's --data-dir")
            urls.update(running())
        elif sep and "://" not in name:
            urls[name.strip()] = url.strip()
        elif value.startswith(("http://", "https://")):
            for service in (IC, MD, TAR, MP, "sts"):
                urls.setdefault(service, f"{value.rstrip('/')}/{service}")
        else:
            raise RunError(f"--target {value!r}: give NAME=URL, a base URL (https://host:port) or 'running'")
    return urls


@dataclass
class Credentials:
    """The demo callers' signers, made from the target sandbox's CA (``data_dir``): an identity certificate
    and an STS token (``tokens="sts"``, production's way), or the simple mode's certificate (``"x509"``)."""

    data_dir: Path
    tokens: str = "sts"
    sts_url: str | None = None
    pki: Pki = field(init=False)
    _signers: dict[tuple[str, str], Signer] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.pki = Pki(self.data_dir)
        if not self.pki.initialised:
            raise RunError(f"no sandbox PKI in {self.pki.dir}: give the target sandbox's --data-dir")
        if self.tokens not in TOKEN_KINDS:
            raise RunError(f"--tokens {self.tokens!r}: sts or x509")
        if self.tokens == "sts" and not self.sts_url:
            raise RunError("STS tokens need the target's STS: --target sts=URL (or --tokens x509)")
        self.trust = TrustStore.from_pem(self.pki.ca().cert_pem)

    @property
    def ca_file(self) -> Path:
        return self.pki.ca_file

    def verifier(self) -> Verifier:
        return Verifier(self.trust, MemoryReplayCache())

    def signer(self, name: str, tokens: str | None = None) -> Signer:
        """``name``'s signer; ``tokens`` overrides the run's kind for a scenario only one kind reaches."""
        kind = tokens or self.tokens
        if (name, kind) not in self._signers:
            caller = CALLERS[name]
            quality = Quality(caller.quality)
            if kind == "x509":
                self._signers[(name, kind)] = Signer(self.pki.issue_holder(quality, caller.ssin, caller.nihii))
            else:
                # an organisation's certificate names its 8-digit NIHII, as eHealth's do
                holder = self.pki.issue_identity(quality, caller.ssin,
                                                 caller.nihii[:8] if quality.is_organisation and caller.nihii
                                                 else None)
                assert self.sts_url is not None
                source = TokenSource(StsClient(self.sts_url, holder, self.trust, self.pki.service("sts").certificate,
                                               ca_file=self.ca_file),
                                     Quality.CITIZEN if quality is Quality.PSI_STAFF else quality)
                source.token()  # asked now: a refusal is this caller's problem, told before any scenario
                self._signers[(name, kind)] = Signer(holder, token=lambda: source.token().assertion)
        return self._signers[(name, kind)]


def _day(value: int | str) -> dt.date:
    return dt.date.today() + dt.timedelta(days=value) if isinstance(value, int) else dt.date.fromisoformat(value)


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def _ic_common(caller: Caller) -> str:
    provider = ""
    if caller.nihii and caller.quality in ("doctor", "pharmacist"):
        provider = (f"<ic:CareProvider><ic:Nihii><ic:Quality>{caller.quality}</ic:Quality><ic:Value>{caller.nihii}"
                    f"</ic:Value></ic:Nihii><ic:Ssin>{caller.ssin}</ic:Ssin></ic:CareProvider>")
    return ("<ic:CommonInput><ic:IsTest>true</ic:IsTest><ic:Origin><ic:Package><ic:Name>mycarenet-ic conformance"
            f"</ic:Name></ic:Package>{provider}</ic:Origin><ic:InputReference>conf-{secrets.token_hex(4)}"
            "</ic:InputReference></ic:CommonInput>")


def _consent(value: tuple[str, int] | None) -> str:
    if value is None:
        return ""
    return f"<ic:Consent><ic:Agreement>{value[0]}</ic:Agreement><ic:Date>{_day(value[1])}</ic:Date></ic:Consent>"


def ic_body(operation: str, caller: Caller, recipe: dict[str, Any], inclusion_id: str | None = None,
            request_id: str | None = None) -> str:
    """An Integrated Care request as the contract spells it (elements in the XSD's order)."""
    op = recipe["op"]
    parts = [_ic_common(caller)]
    if op in ("declare", "consult", "modify"):
        parts.append(f"<ic:Patient><ic:Ssin>{recipe['patient']}</ic:Ssin></ic:Patient>")
    if op == "declare":
        parts += [f"<ic:Project>{recipe['project']}</ic:Project><ic:Status>{recipe['status']}</ic:Status>"
                  f"<ic:StartDate>{_day(recipe.get('start', 0))}</ic:StartDate>", _consent(recipe.get("consent"))]
    elif op == "modify":
        changes = recipe.get("changes", {})
        parts.append(f"<ic:InclusionId>{inclusion_id}</ic:InclusionId>")
        parts += [f"<ic:{name}>{changes[name]}</ic:{name}>" for name in ("Status", "StartDate", "EndDate")
                  if name in changes]
        if "Consent" in changes:
            parts.append(_consent(changes["Consent"]))
    elif op == "list":
        parts.append(f"<ic:Project>{recipe['project']}</ic:Project><ic:Offset>0</ic:Offset>"
                     "<ic:MaxResults>20</ic:MaxResults>")
    return (f'<ic:{operation} xmlns:ic="{ns.INTEGRATED_CARE}" Id="{request_id or "_" + secrets.token_hex(16)}" '
            f'IssueInstant="{_now()}">{"".join(parts)}</ic:{operation}>')


def md_body(caller: Caller, recipe: dict[str, Any]) -> str:
    start, end = (_day(v) for v in recipe.get("period", (-30, -1)))
    query = attribute_query(recipe.get("issuer", caller.nihii or ""), recipe["subject"], start, end,
                            recipe.get("facets"), FORMATS[recipe.get("format", "ssin")], recipe.get("extra", ""))
    if "not_before" in recipe:
        query = query.replace(f'NotBefore="{start}T00:00:00"'.encode(), f'NotBefore="{recipe["not_before"]}"'.encode())
    return commons_request("MemberDataConsultationRequest", MD_NS, 3, query, None, dt.date.today(),
                           f"conf-{secrets.token_hex(4)}", caller.nihii or "", caller.ssin if caller.nihii and
                           caller.ssin else None, quality=caller.quality)


def tariff_body(service: str, caller: Caller, recipe: dict[str, Any]) -> str:
    day = _day(recipe.get("day", -2))
    author = recipe.get("author", caller.nihii or "")
    blob = tariff_request(author, caller.ssin or "", recipe["patient"], day, recipe["codes"],
                          recipe.get("justification"), recipe.get("gmd_manager"),
                          recipe.get("transaction", "tariffmediprima" if service == MP else "tariff"),
                          request_id=f"{author}.{dt.datetime.now():%Y%m%d%H%M%S%f}")
    return commons_request("TarificationConsultationRequest", TAR_NS, 2, blob, recipe["patient"], day,
                           f"conf-{secrets.token_hex(4)}", caller.nihii or author, caller.ssin,
                           quality=caller.quality)


def _inclusion_id(answer: bytes, project: str) -> str | None:
    body = payload(parse(answer))
    for el in body.iter() if body is not None else []:
        if isinstance(el.tag, str) and local(el) == "Inclusion" and text(el, "Project") == project:
            return text(el, "InclusionId")
    return None


class Runner:
    """Plays scenarios against ``urls`` with ``credentials``; ``progress(done, total, result)`` after each."""

    def __init__(self, urls: dict[str, str], credentials: Credentials, timeout: float = 30.0) -> None:
        self.urls = urls
        self.credentials = credentials
        self.timeout = timeout
        self._clients: dict[tuple[str, str, str], RawSoapClient] = {}

    def client(self, caller: str, service: str, tokens: str | None = None) -> RawSoapClient:
        key = (caller, service, tokens or "")
        if key not in self._clients:
            if service not in self.urls:
                raise RunError(f"no address for {service}: --target {service}=URL")
            self._clients[key] = RawSoapClient(self.urls[service], self.credentials.signer(caller, tokens),
                                               self.credentials.verifier(), self.credentials.ca_file, self.timeout)
        return self._clients[key]

    def play(self, scenario: Scenario) -> RawExchange:
        """Send what the scenario's recipe says (and what it needs first); the last exchange is its own."""
        recipe, caller = dict(scenario.run), scenario.caller
        client = self.client(recipe["as"], scenario.service, recipe.get("tokens"))
        if scenario.service == MD:
            return client.send(md_body(caller, recipe), ACTIONS[MD])
        if scenario.service in (TAR, MP):
            return client.send(tariff_body(scenario.service, caller, recipe), ACTIONS[scenario.service])
        action = f"{ns.INTEGRATED_CARE}:{scenario.operation.removesuffix('Request')}"
        inclusion = None
        if recipe["op"] == "modify":
            consult = client.send(ic_body("ConsultInclusionsRequest", caller, {**recipe, "op": "consult"}),
                                  f"{ns.INTEGRATED_CARE}:ConsultInclusions")
            inclusion = _inclusion_id(consult.answer, recipe["inclusion"])
            if inclusion is None:
                return RawExchange(consult.request, consult.status, consult.answer, False,
                                   f"no inclusion of {recipe['patient']} in {recipe['inclusion']} to modify "
                                   "(is the target a fresh demo scenario?)")
        request_id = None
        if "after" in recipe:  # first another request under the same Id
            request_id = f"_{secrets.token_hex(16)}"
            client.send(ic_body(scenario.operation, caller, {**recipe, **recipe["after"]}, request_id=request_id),
                        action)
        return client.send(ic_body(scenario.operation, caller, recipe, inclusion, request_id), action)

    def run(self, scenarios: Sequence[Scenario], subject: str,
            progress: Callable[[int, int, Result], None] | None = None) -> Report:
        checker = Checker()
        results = []
        for n, scenario in enumerate(scenarios, 1):
            result = Result(scenario, run=True)
            try:
                exchange = self.play(scenario)
            except RunError:
                raise
            except Exception as exc:  # noqa: BLE001 - one scenario's failure (a refused STS token…) is reported
                exchange = RawExchange(b"", 0, b"", False, f"{type(exc).__name__}: {exc}")
            ref = f"{scenario.id}#1"
            facts = facts_of(scenario.service, scenario.caller.quality, exchange.request, exchange.answer,
                             scenario.caller.ssin)
            if not exchange.verified:
                result.problem = exchange.problem
            elif scenario.matches(facts):
                result.exercised = True
                result.exchanges.append(ref)
            else:
                result.problem = "the answer is not the expected one: " + describe(facts)
            if exchange.request:
                result.deviations = held_against(scenario, checker.check(ref, facts, dt.datetime.now(dt.UTC)))
            results.append(result)
            if progress is not None:
                progress(n, len(scenarios), result)
        for client in self._clients.values():
            client.close()
        return Report("run", subject, results, exchanges=len(results))


def describe(facts: Any) -> str:
    """The facts a matcher looked at, for a failure's message."""
    keys = ("code", "status", "substatus", "detail_code", "errors", "priced", "assertions")
    shown = {k: facts[k] for k in keys if facts[k] not in (None, (), frozenset())}
    return ", ".join(f"{k}={sorted(v) if isinstance(v, frozenset) else v}" for k, v in shown.items()) or \
        "no readable answer"

