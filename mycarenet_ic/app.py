"""Composition: the platform's shared parts, the stub endpoints, the gateways, the sandbox."""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from mycarenet_ic.clients.gateways import (
    ZeepAttributeAuthorityGateway,
    ZeepCobrhaGateway,
    ZeepNationalRegisterGateway,
)
from mycarenet_ic.config import Settings
from mycarenet_ic.persistence.audit import SqlAuditLog
from mycarenet_ic.persistence.db import make_engine, migrate
from mycarenet_ic.persistence.pseudonym import Pseudonymiser
from mycarenet_ic.persistence.replay import SqlReplayCache
from mycarenet_ic.security.pki import Pki
from mycarenet_ic.security.wssec import MemoryReplayCache, Signer, TrustStore, Verifier, VerifyPolicy
from mycarenet_ic.server import ServedApp, wait_ready
from mycarenet_ic.soap.endpoint import EndpointDeps, SoapEndpoint

log = logging.getLogger(__name__)

STUBS = ("attribute-authority", "cobrha", "national-register")


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
        self._signers: dict[str, Signer] = {}

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
        return EndpointDeps(self.incoming_verifier(), self.signer(service), self.audit, self.settings.environment,
                            self.settings.max_body_bytes)

    def gateways(self, urls: dict[str, str]) -> Gateways:
        signer, verifier = self.signer("mycarenet"), self.answer_verifier()
        timeout = self.settings.upstream_timeout_seconds
        return Gateways(
            ZeepAttributeAuthorityGateway(urls["attribute-authority"], signer, verifier, timeout),
            ZeepCobrhaGateway(urls["cobrha"], signer, verifier, timeout),
            ZeepNationalRegisterGateway(urls["national-register"], signer, verifier, timeout),
        )

    def close(self) -> None:
        self.engine.dispose()


@dataclass
class Gateways:
    attribute_authority: ZeepAttributeAuthorityGateway
    cobrha: ZeepCobrhaGateway
    national_register: ZeepNationalRegisterGateway


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
            for offset, (name, app) in enumerate(apps.items()):
                path = "/" if name == "scenario-admin" else f"/{name}"
                served = ServedApp(name, app, self.settings.host, port + offset if port else 0,
                                   self.settings.server_threads, path=path)
                self.served[name] = served.start()
                if isinstance(app, SoapEndpoint):
                    app.address = served.url
            for name, served in self.served.items():
                wait_ready(served.url + ("?wsdl" if name != "scenario-admin" else "health"))
        except BaseException:
            self.stop()
            raise
        urls = self.urls
        state = self.settings.data_dir / "sandbox.json"
        state.write_text(json.dumps({"services": urls}, indent=1))
        return urls

    @property
    def urls(self) -> dict[str, str]:
        return {name: s.url for name, s in self.served.items()}

    def stop(self) -> None:
        for served in self.served.values():
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
