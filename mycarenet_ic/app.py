"""Composition: the platform's shared parts, the gateways, the stub and business endpoints.

Building them creates nothing: :func:`prepare` makes what a data directory and its database need (once,
explicitly, from the entry points), :class:`Platform` opens what is there. The sandbox that serves them
all is :mod:`mycarenet_ic.sandbox`.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

from mycarenet_ic.clients.gateways import (
    CachingCobrha,
    CachingNationalRegister,
    ZeepAttributeAuthorityGateway,
    ZeepCobrhaGateway,
    ZeepCodingGateway,
    ZeepNationalRegisterGateway,
)
from mycarenet_ic.clients.sts import StsClient, TokenSource
from mycarenet_ic.config import Settings, token_kinds
from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.domain.tariff import Nomenclature
from mycarenet_ic.gate import FairGate
from mycarenet_ic.inspector import NoRecorder, Recorder
from mycarenet_ic.inspector.reason import ReasonPointer
from mycarenet_ic.inspector.store import InspectorStore, QueuedRecorder
from mycarenet_ic.persistence.affiliations import ScenarioAffiliations
from mycarenet_ic.persistence.audit import SqlAuditLog
from mycarenet_ic.persistence.db import alembic_config, make_engine, migrate, reading
from mycarenet_ic.persistence.feed_cursors import SqlFeedCursors
from mycarenet_ic.persistence.inclusion_events import SqlInclusionEvents
from mycarenet_ic.persistence.inclusions import SqlInclusionStore
from mycarenet_ic.persistence.mutation_sink import SqlMutationSink
from mycarenet_ic.persistence.pseudonym import NissSealer, Pseudonymiser
from mycarenet_ic.persistence.replay import SqlReplayCache
from mycarenet_ic.security.etee import TrustCheck
from mycarenet_ic.security.etk import EtkRegistry
from mycarenet_ic.security.pki import Pki
from mycarenet_ic.security.saml11 import AssertionVerifier
from mycarenet_ic.security.wssec import MemoryReplayCache, Signer, TokenKind, TrustStore, Verifier, VerifyPolicy
from mycarenet_ic.services.fault_injection import Faults, NoFaults
from mycarenet_ic.services.integrated_care import IntegratedCare
from mycarenet_ic.services.memberdata import MemberData
from mycarenet_ic.services.mutations import MutationSync
from mycarenet_ic.services.tarification import Tarification
from mycarenet_ic.soap.endpoint import EndpointDeps, SoapEndpoint
from mycarenet_ic.soap.sealed import Etee

STUBS = ("attribute-authority", "cobrha", "national-register", "sts", "coding", "etk-depot")
BUSINESS = ("integrated-care", "memberdata", "tarification", "mediprima")


class NotPrepared(RuntimeError):
    """A data directory or database that :func:`prepare` has not made ready (no CA, an old schema)."""

    def __init__(self, settings: Settings, what: str) -> None:
        super().__init__(f"{what}: prepare it first (mycarenet-ic prepare --data-dir {settings.data_dir}, "
                         "or mycarenet_ic.app.prepare(settings))")


def prepare(settings: Settings) -> None:
    """Make what a :class:`Platform` opens: the data directory, the sandbox PKI (CA and service
    certificates), the database schema at the newest revision, the pseudonym and NISS-seal keys.

    What exists is kept, so it may run at every start; several processes may run it at once.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    pki = Pki(settings.data_dir)
    pki.init()  # writes only what is missing: the CA once, a service certificate added since (the STS's)
    EtkRegistry(pki).ensure_sandbox_parties()  # the platform's and the insurers' ETKs (ETEE), once
    engine = make_engine(settings.effective_database_url)
    try:
        migrate(engine)
    finally:
        engine.dispose()
    Pseudonymiser.from_data_dir(settings.data_dir)
    NissSealer.from_data_dir(settings.data_dir)


def _check_schema(engine: Engine, settings: Settings) -> None:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    wanted = set(ScriptDirectory.from_config(alembic_config(engine)).get_heads())
    with reading(engine) as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    if current != wanted:
        raise NotPrepared(settings, f"the database schema is at {sorted(current) or 'nothing'}, "
                                    f"this version needs {sorted(wanted)}")


class Platform:
    """What every service of one data directory shares: keys, trust, database, audit.

    It opens what :func:`prepare` made (:meth:`prepared` does both) and fails with :class:`NotPrepared`
    when the CA or the schema is not there.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pki = Pki(settings.data_dir)
        if not self.pki.initialised:
            raise NotPrepared(settings, f"no sandbox CA in {self.pki.dir}")
        self.trust = TrustStore.from_pem(self.pki.ca().cert_pem)
        self.policy = VerifyPolicy(settings.clock_skew_seconds, settings.max_timestamp_ttl_seconds)
        # STS tokens are trusted when the sandbox STS signed them (its certificate pinned, not any the CA issued).
        self.sts_tokens = AssertionVerifier(self.trust, [self.pki.service("sts").certificate],
                                            max_clock_skew_seconds=settings.clock_skew_seconds)
        self.engine: Engine = make_engine(settings.effective_database_url)
        try:
            _check_schema(self.engine, settings)
        except BaseException:
            self.engine.dispose()
            raise
        self.pseudonymiser = Pseudonymiser.from_data_dir(settings.data_dir)
        self.audit = SqlAuditLog(self.engine, self.pseudonymiser)
        self.replay = SqlReplayCache(self.engine)
        self._seen = MemoryReplayCache()
        self.sealer = NissSealer.from_data_dir(settings.data_dir)
        self.inclusions = SqlInclusionStore(self.engine, self.pseudonymiser, self.sealer, self.audit)
        self.inclusion_events = SqlInclusionEvents(self.engine, self.sealer, self.audit)
        self.feed_cursors = SqlFeedCursors(self.engine)
        self.mutation_sink = SqlMutationSink(self.inclusions)
        self.affiliations = ScenarioAffiliations(settings.data_dir / "scenario.json")
        self.nomenclature = Nomenclature.load()
        self.etks = EtkRegistry(self.pki)  # the ETK depot's registry: the keys that open sealed requests
        self._signers: dict[str, Signer] = {}
        self._recorder: Recorder | None = None
        # Injected faults: none, unless the sandbox gives the scenario's (services/fault_injection.py).
        self.faults: Faults = NoFaults()
        # Where a fault's true reason is read, said in its answer: none, unless the sandbox gives one.
        self.reason_pointer: ReasonPointer | None = None
        # One gate for all business endpoints of this process (stubs pass: a business request holding a
        # place may be waiting on a stub served by this same process).
        self.gate: AbstractContextManager[Any] = (
            FairGate(settings.max_inflight) if settings.max_inflight > 0 else nullcontext())

    @classmethod
    def prepared(cls, settings: Settings) -> Platform:
        """:func:`prepare`, then open: what the entry points (sandbox, WSGI, command line) start with."""
        prepare(settings)
        return cls(settings)

    def signer(self, service: str) -> Signer:
        """The signer of one service, its key loaded once."""
        if service not in self._signers:
            self._signers[service] = Signer(self.pki.service(service), self.settings.signature_ttl_seconds)
        return self._signers[service]

    def incoming_verifier(self, service: str) -> Verifier:
        """What ``service`` accepts: the business services the token kinds of the settings; the STS, as
        production's, an identity certificate; the other stubs either kind."""
        if service == "sts":
            accepted = frozenset({TokenKind.X509})
        elif service in BUSINESS:
            accepted = frozenset(TokenKind(kind) for kind in token_kinds(self.settings.accepted_tokens))
        else:
            accepted = frozenset(TokenKind)
        # This process's look first (what it saw); the database's, where each signature's key goes in with its
        # request's audit row (one commit per request), decides for every worker and across restarts.
        return Verifier(self.trust, self._seen, self.policy, assertions=self.sts_tokens, accepted=accepted)

    def answer_verifier(self) -> Verifier:
        # Answers from upstream are checked as strictly; their replay cache is per process.
        return Verifier(self.trust, MemoryReplayCache(), self.policy)

    def endpoint_deps(self, service: str) -> EndpointDeps:
        # The business services answer as the platform ("mycarenet"); each stub as itself.
        signer = self.signer("mycarenet" if service in BUSINESS else service)
        return EndpointDeps(self.incoming_verifier(service), signer, self.audit, self.settings.environment,
                            self.settings.max_body_bytes, self.gate if service in BUSINESS else nullcontext(),
                            self.recorder, self.faults, reason_pointer=self.reason_pointer)

    @property
    def recorder(self) -> Recorder:
        """The inspector's recorder shared by every endpoint (made with the first): a queue and one writer
        into the data directory's inspector.sqlite3 when ``Settings.inspector``, else nothing recorded."""
        if self._recorder is None:
            self._recorder = (QueuedRecorder(InspectorStore.of(self.settings)) if self.settings.inspector
                              else NoRecorder())
        return self._recorder

    def etee(self) -> Etee:
        """Opening sealed (ETEE) requests with the keys of the platform's and the insurers' ETKs; answers
        sealed by the platform."""
        return Etee(self.etks, TrustCheck([self.pki.ca().certificate]), self.pki.service("mycarenet"))

    def integrated_care(self, gateways: Gateways) -> IntegratedCare:
        return IntegratedCare(self.inclusions, gateways.attribute_authority, gateways.cobrha,
                              gateways.national_register)

    def memberdata(self, gateways: Gateways) -> MemberData:
        return MemberData(self.affiliations, gateways.cobrha, gateways.national_register)

    def tarification(self, gateways: Gateways) -> Tarification:
        return Tarification(self.nomenclature, self.affiliations, gateways.cobrha, gateways.national_register)

    def mutation_sync(self, gateways: Gateways) -> MutationSync:
        return MutationSync(gateways.national_register, self.mutation_sink)

    def platform_token(self, sts_url: str) -> TokenSource:
        """The platform's own STS token (it calls the eHealth services as a platform component does:
        a holder-of-key token fetched once, renewed before it expires)."""
        own = self.pki.service("mycarenet")
        client = StsClient(sts_url, own, self.trust, self.pki.service("sts").certificate, ca_file=self.pki.ca_file,
                           timeout=self.settings.upstream_timeout_seconds)
        return TokenSource(client, Quality.PLATFORM)

    def gateways(self, urls: dict[str, str]) -> Gateways:
        tokens = self.platform_token(urls["sts"])
        signer = Signer(self.pki.service("mycarenet"), self.settings.signature_ttl_seconds,
                        token=lambda: tokens.token().assertion)
        verifier = self.answer_verifier()
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
            tokens,
        )

    def coding(self, urls: dict[str, str]) -> ZeepCodingGateway:
        """The intermediary's coding service (seed 003), called as the insurers are, which the platform
        plays in the sandbox: signed as its holder-of-key with its own STS token."""
        tokens = self.platform_token(urls["sts"])
        signer = Signer(self.pki.service("mycarenet"), self.settings.signature_ttl_seconds,
                        token=lambda: tokens.token().assertion)
        return ZeepCodingGateway(urls["coding"], signer, self.answer_verifier(),
                                 self.settings.upstream_timeout_seconds, self.pki.ca_file)

    def close(self) -> None:
        if isinstance(self._recorder, QueuedRecorder):
            self._recorder.close()  # what is queued is stored first
        self.engine.dispose()


@dataclass
class Gateways:
    attribute_authority: ZeepAttributeAuthorityGateway
    cobrha: ZeepCobrhaGateway | CachingCobrha
    national_register: ZeepNationalRegisterGateway | CachingNationalRegister
    tokens: TokenSource | None = None  # the platform's STS token, which every gateway call carries


def business_endpoints(platform: Platform, gateways: Gateways) -> dict[str, SoapEndpoint]:
    from mycarenet_ic.soap import integrated_care, memberdata, tarification

    return {
        "integrated-care": integrated_care.build(platform.integrated_care(gateways),
                                                 platform.endpoint_deps("integrated-care")),
        "memberdata": memberdata.build(platform.memberdata(gateways), platform.endpoint_deps("memberdata"),
                                       platform.etee()),
        "tarification": tarification.build(platform.tarification(gateways), platform.endpoint_deps("tarification")),
        "mediprima": tarification.build(platform.tarification(gateways), platform.endpoint_deps("mediprima"),
                                        mediprima=True),
    }


def stub_endpoints(platform: Platform, scenario: Any) -> dict[str, SoapEndpoint]:
    from mycarenet_ic.stubs import attribute_authority, cobrha, coding, etk_depot, national_register, sts

    return {
        "attribute-authority": attribute_authority.build(scenario, platform.endpoint_deps("attribute-authority")),
        "cobrha": cobrha.build(scenario, platform.endpoint_deps("cobrha")),
        "national-register": national_register.build(scenario, platform.endpoint_deps("national-register")),
        # The STS signs its answers and its assertions with its own key ("sts"); callers pin that certificate.
        "sts": sts.build(scenario, platform.endpoint_deps("sts"), platform.trust, platform.pki.service("sts"),
                         platform.settings),
        # The intermediary's second coding (seed 003), with its own key in the data directory.
        "coding": coding.build(platform.settings.data_dir, platform.endpoint_deps("coding")),
        # The ETK depot (ETEE): the encryption tokens of the platform, the insurers and the issued holders.
        "etk-depot": etk_depot.build(platform.etks, platform.endpoint_deps("etk-depot")),
    }
