"""Composition: the platform's shared parts, the stub endpoints, the gateways, the sandbox."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from mycarenet_ic.clients.gateways import (
    CachingCobrha,
    CachingNationalRegister,
    ZeepAttributeAuthorityGateway,
    ZeepCobrhaGateway,
    ZeepNationalRegisterGateway,
)
from mycarenet_ic.config import Settings
from mycarenet_ic.domain.inclusions import Consent, Inclusion, Status, check_no_conflict
from mycarenet_ic.domain.tariff import Nomenclature
from mycarenet_ic.persistence.affiliations import ScenarioAffiliations
from mycarenet_ic.persistence.audit import SqlAuditLog
from mycarenet_ic.persistence.db import make_engine, migrate, reading
from mycarenet_ic.persistence.feed_cursors import SqlFeedCursors
from mycarenet_ic.persistence.inclusion_events import SqlInclusionEvents
from mycarenet_ic.persistence.inclusions import SqlInclusionStore
from mycarenet_ic.persistence.mutation_sink import SqlMutationSink
from mycarenet_ic.persistence.pseudonym import NissSealer, Pseudonymiser
from mycarenet_ic.persistence.replay import SqlReplayCache
from mycarenet_ic.security.pki import Pki
from mycarenet_ic.security.wssec import MemoryReplayCache, Signer, TrustStore, Verifier, VerifyPolicy
from mycarenet_ic.server import FrontLimits, ServedApp, server_tls, wait_ready
from mycarenet_ic.services.integrated_care import IntegratedCare
from mycarenet_ic.services.memberdata import MemberData
from mycarenet_ic.services.mutations import MutationSync
from mycarenet_ic.services.tarification import Tarification
from mycarenet_ic.soap.endpoint import EndpointDeps, SoapEndpoint

log = logging.getLogger(__name__)

STUBS = ("attribute-authority", "cobrha", "national-register")
BUSINESS = ("integrated-care", "memberdata", "tarification", "mediprima")


class Platform:
    """What every service of one data directory shares: keys, trust, database, audit."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.pki = Pki(settings.data_dir)
        if not self.pki.initialised:
            self.pki.init()
        self.trust = TrustStore.from_pem(self.pki.ca().cert_pem)
        self.policy = VerifyPolicy(settings.clock_skew_seconds, settings.max_timestamp_ttl_seconds)
        self.engine: Engine = make_engine(settings.effective_database_url)
        migrate(self.engine)
        self.pseudonymiser = Pseudonymiser.from_data_dir(settings.data_dir)
        self.audit = SqlAuditLog(self.engine, self.pseudonymiser)
        self.replay = SqlReplayCache(self.engine)
        self.sealer = NissSealer.from_data_dir(settings.data_dir)
        self.inclusions = SqlInclusionStore(self.engine, self.pseudonymiser, self.sealer, self.audit)
        self.inclusion_events = SqlInclusionEvents(self.engine, self.sealer, self.audit)
        self.feed_cursors = SqlFeedCursors(self.engine)
        self.mutation_sink = SqlMutationSink(self.inclusions)
        self.affiliations = ScenarioAffiliations(settings.data_dir / "scenario.json")
        self.nomenclature = Nomenclature.load()
        self._signers: dict[str, Signer] = {}
        # One gate for all business endpoints of this process (stubs pass: a business request holding a
        # place may be waiting on a stub served by this same process).
        self.gate: AbstractContextManager[Any] = (
            threading.BoundedSemaphore(settings.max_inflight) if settings.max_inflight > 0 else nullcontext())

    def signer(self, service: str) -> Signer:
        """The signer of one service, its key loaded once."""
        if service not in self._signers:
            self._signers[service] = Signer(self.pki.service(service), self.settings.signature_ttl_seconds)
        return self._signers[service]

    def incoming_verifier(self) -> Verifier:
        return Verifier(self.trust, self.replay, self.policy)

    def answer_verifier(self) -> Verifier:
        # Answers from upstream are checked as strictly; their replay cache is per process.
        return Verifier(self.trust, MemoryReplayCache(), self.policy)

    def endpoint_deps(self, service: str) -> EndpointDeps:
        # The business services answer as the platform ("mycarenet"); each stub as itself.
        signer = self.signer("mycarenet" if service in BUSINESS else service)
        return EndpointDeps(self.incoming_verifier(), signer, self.audit, self.settings.environment,
                            self.settings.max_body_bytes, self.gate if service in BUSINESS else nullcontext())

    def integrated_care(self, gateways: Gateways) -> IntegratedCare:
        return IntegratedCare(self.inclusions, gateways.attribute_authority, gateways.cobrha,
                              gateways.national_register)

    def memberdata(self, gateways: Gateways) -> MemberData:
        return MemberData(self.affiliations, gateways.cobrha, gateways.national_register)

    def tarification(self, gateways: Gateways) -> Tarification:
        return Tarification(self.nomenclature, self.affiliations, gateways.cobrha, gateways.national_register)

    def mutation_sync(self, gateways: Gateways) -> MutationSync:
        return MutationSync(gateways.national_register, self.mutation_sink)

    def gateways(self, urls: dict[str, str]) -> Gateways:
        signer, verifier = self.signer("mycarenet"), self.answer_verifier()
        timeout = self.settings.upstream_timeout_seconds
        ca = self.pki.ca_file  # the stubs' TLS certificates chain to the sandbox CA
        direct = ZeepCobrhaGateway(urls["cobrha"], signer, verifier, timeout, ca)
        cache = self.settings.cobrha_cache_seconds
        cobrha: ZeepCobrhaGateway | CachingCobrha = CachingCobrha(direct, cache) if cache > 0 else direct
        register = ZeepNationalRegisterGateway(urls["national-register"], signer, verifier, timeout, ca)
        nr_ttl = self.settings.nr_cache_seconds
        nr: ZeepNationalRegisterGateway | CachingNationalRegister = (
            CachingNationalRegister(register, nr_ttl) if nr_ttl > 0 else register)
        return Gateways(
            ZeepAttributeAuthorityGateway(urls["attribute-authority"], signer, verifier, timeout, ca),
            cobrha,
            nr,
        )

    def close(self) -> None:
        self.engine.dispose()


@dataclass
class Gateways:
    attribute_authority: ZeepAttributeAuthorityGateway
    cobrha: ZeepCobrhaGateway | CachingCobrha
    national_register: ZeepNationalRegisterGateway | CachingNationalRegister


def business_endpoints(platform: Platform, gateways: Gateways) -> dict[str, SoapEndpoint]:
    from mycarenet_ic.soap import integrated_care, memberdata, tarification

    return {
        "integrated-care": integrated_care.build(platform.integrated_care(gateways),
                                                 platform.endpoint_deps("integrated-care")),
        "memberdata": memberdata.build(platform.memberdata(gateways), platform.endpoint_deps("memberdata")),
        "tarification": tarification.build(platform.tarification(gateways), platform.endpoint_deps("tarification")),
        "mediprima": tarification.build(platform.tarification(gateways), platform.endpoint_deps("mediprima"),
                                        mediprima=True),
    }


def seed_demo_inclusions(platform: Platform, records: list[dict[str, Any]]) -> int:
    """Write the scenario's demo inclusions once, into an empty store, through the inclusion rules."""
    from sqlalchemy import func, select

    from mycarenet_ic.persistence.tables import ic_inclusion

    with reading(platform.engine) as conn:
        if conn.execute(select(func.count()).select_from(ic_inclusion)).scalar_one():
            return 0
    for n, rec in enumerate(records, 1):
        candidate = Inclusion(
            id="", patient="", project=rec["project"], status=Status(rec["status"]),
            declared_start=dt.date.fromisoformat(rec["start"]),
            consent=Consent(rec["consent"]) if rec.get("consent") else None,
            consent_date=dt.date.fromisoformat(rec["consent_date"]) if rec.get("consent_date") else None,
            declared_end=dt.date.fromisoformat(rec["end"]) if rec.get("end") else None,
            provider_nihii=rec.get("provider"),
        )

        def change(current: list[Inclusion], candidate: Inclusion = candidate) -> tuple[Inclusion, str]:
            check_no_conflict(candidate, current)
            return candidate, "declaration"

        platform.inclusions.write(ssin=rec["patient"], sender="platform:demo", request_id=f"demo-{n}",
                                  operation="declare", request_hash=f"demo-{n}", operator=None, change=change)
    return len(records)


class MutationFollower:
    """Reads the National Register's mutation feed now and then, in a thread, until stopped."""

    def __init__(self, sync: MutationSync, every: float) -> None:
        self.sync = sync
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mutation-sync", daemon=True)

    def run_once(self) -> Any:
        return self.sync.run()

    def start(self) -> MutationFollower:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.sync.run()
            except Exception:  # noqa: BLE001 - the next round tries again; the feed cursor keeps our place
                log.warning("mutation sync failed; will retry", exc_info=True)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)


def stub_endpoints(platform: Platform, scenario: Any) -> dict[str, SoapEndpoint]:
    from stubs import attribute_authority, cobrha, national_register

    return {
        "attribute-authority": attribute_authority.build(scenario, platform.endpoint_deps("attribute-authority")),
        "cobrha": cobrha.build(scenario, platform.endpoint_deps("cobrha")),
        "national-register": national_register.build(scenario, platform.endpoint_deps("national-register")),
    }


@dataclass
class Sandbox:
    """Every service of the sandbox on 127.0.0.1, one port each."""

    settings: Settings
    reset_scenario: bool = False
    served: dict[str, ServedApp] = field(default_factory=dict)
    stopped: threading.Event = field(default_factory=threading.Event)

    def start(self, port: int = 0) -> dict[str, str]:
        from stubs.admin import ScenarioAdmin, admin_token
        from stubs.scenario import Scenario

        self.platform = Platform(self.settings)
        self.scenario = Scenario.for_data_dir(self.settings.data_dir, reset=self.reset_scenario)
        apps: dict[str, Any] = dict(stub_endpoints(self.platform, self.scenario))
        apps["scenario-admin"] = ScenarioAdmin(self.scenario, admin_token(self.settings.data_dir))
        try:
            self._serve(apps, port, 0)
            self.gateways = self.platform.gateways(self.urls)
            self._serve(business_endpoints(self.platform, self.gateways), port, len(apps))
            seed_demo_inclusions(self.platform, self.scenario.extra.get("inclusions", []))
            self.follower = MutationFollower(self.platform.mutation_sync(self.gateways),
                                             self.settings.mutation_sync_seconds)
            self.follower.run_once()
            self.follower.start()
        except BaseException:
            self.stop()
            raise
        urls = self.urls
        state = self.settings.data_dir / "sandbox.json"
        state.write_text(json.dumps({"services": urls}, indent=1))
        return urls

    def _serve(self, apps: dict[str, Any], port: int, first_offset: int) -> None:
        tls = server_tls(*self.platform.pki.tls_server(self.settings.host)) if self.settings.tls else None
        for offset, (name, app) in enumerate(apps.items(), first_offset):
            path = "/" if name == "scenario-admin" else f"/{name}"
            served = ServedApp(name, app, self.settings.host, port + offset if port else 0,
                               self.settings.server_threads, path=path,
                               # the front reads a little past the endpoint's cap, so the endpoint answers it
                               limits=FrontLimits(max_body_bytes=self.settings.max_body_bytes + 65_536), tls=tls)
            self.served[name] = served.start()
            if isinstance(app, SoapEndpoint):
                app.address = served.url
        for name in apps:
            wait_ready(self.served[name].url + ("?wsdl" if name != "scenario-admin" else "health"),
                       ca_file=self.platform.pki.ca_file)

    @property
    def urls(self) -> dict[str, str]:
        return {name: s.url for name, s in self.served.items()}

    def stop(self) -> None:
        if getattr(self, "follower", None) is not None:
            self.follower.stop()
        # Business services first (their in-flight requests still need the stubs), then the stubs.
        for served in reversed(self.served.values()):
            try:
                served.stop()
            except Exception:  # noqa: BLE001 - stopping the rest matters more
                log.exception("stopping %s", served.name)
        self.served.clear()
        if hasattr(self, "platform"):
            self.platform.close()
        (self.settings.data_dir / "sandbox.json").unlink(missing_ok=True)
        self.stopped.set()


def read_running(data_dir: Path) -> dict[str, str]:
    """The URLs of the sandbox running on ``data_dir`` (written by :meth:`Sandbox.start`)."""
    state = Path(data_dir) / "sandbox.json"
    if not state.exists():
        raise FileNotFoundError(f"no sandbox is running on {data_dir} (no {state})")
    return dict(json.loads(state.read_text())["services"])
