"""The sandbox: every stub and business service of one data directory on 127.0.0.1, on one port with a
path each (``/memberdata``, …, ``/scenario-admin/``, ``/web/``), with the scenario's demo inclusions
seeded and the National Register's mutation feed followed."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mycarenet_ic.app import BUSINESS, STUBS, Platform, business_endpoints, stub_endpoints
from mycarenet_ic.config import Settings
from mycarenet_ic.datadir import forget_running, write_running
from mycarenet_ic.domain.inclusions import Consent, Inclusion, Status, check_no_conflict
from mycarenet_ic.inspector.reason import ReasonPointer
from mycarenet_ic.mounts import Mounts
from mycarenet_ic.persistence.db import reading
from mycarenet_ic.server import FrontLimits, ServedApp, server_tls, wait_ready
from mycarenet_ic.services.fault_injection import FaultInjector
from mycarenet_ic.services.mutations import MutationSync
from mycarenet_ic.soap.endpoint import SoapEndpoint

log = logging.getLogger(__name__)
# Not SOAP services: their URL ends with "/" (the admin API and the web application, /<name>/...).
_ROOTED = ("scenario-admin", "web")
_SERVICES = (*STUBS, *BUSINESS, *_ROOTED)
STOP_GRACE = 20.0  # seconds a stop (SIGTERM, Ctrl-C) lets the requests in flight take, as `serve` does


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




@dataclass
class Sandbox:
    """Every service of the sandbox on 127.0.0.1, on one port, one path each."""

    settings: Settings
    reset_scenario: bool = False
    apps: dict[str, Any] = field(default_factory=dict)
    stopped: threading.Event = field(default_factory=threading.Event)

    def start(self, port: int = 0) -> dict[str, str]:
        """Serve on ``port`` (0: a free port); give every service's URL."""
        from mycarenet_ic.config import owner_only_dir
        from mycarenet_ic.datadir import SandboxLock
        from mycarenet_ic.stubs.admin import ScenarioAdmin, admin_token
        from mycarenet_ic.stubs.scenario import Scenario

        # One sandbox per data directory: a second is refused before it changes anything of the first's.
        self.lock = SandboxLock(owner_only_dir(self.settings.data_dir)).acquire()
        self.platform = Platform.prepared(self.settings)
        self.scenario = Scenario.for_data_dir(self.settings.data_dir, reset=self.reset_scenario)
        # The scenario's injected faults, on every endpoint made from here on (a sandbox tool).
        self.platform.faults = faults = FaultInjector(self.scenario)
        # A fault's answer names its audit row and the inspector's page of it (X-Sandbox-Reason; the sandbox's).
        self.platform.reason_pointer = pointer = ReasonPointer()
        apps: dict[str, Any] = dict(stub_endpoints(self.platform, self.scenario))
        apps["scenario-admin"] = ScenarioAdmin(self.scenario, admin_token(self.settings.data_dir), faults)
        try:
            self._bind(port)
            self._serve(apps)
            self.gateways = self.platform.gateways(self.urls)
            self._serve(business_endpoints(self.platform, self.gateways))
            from mycarenet_ic.web import create_app  # the Integrated Care web application and the IdP, last

            self._serve({"web": create_app(self.platform, self.gateways)})
            pointer.inspector_url = self.urls["web"] if self.settings.inspector else ""
            seed_demo_inclusions(self.platform, self.scenario.extra.get("inclusions", []))
            self.follower = MutationFollower(self.platform.mutation_sync(self.gateways),
                                             self.settings.mutation_sync_seconds)
            self.follower.run_once()
            self.follower.start()
        except BaseException:
            self.stop()
            raise
        urls = self.urls
        write_running(self.settings.data_dir, urls)
        return urls

    def _bind(self, port: int) -> None:
        """The one port (bound now, serving from here on); the apps are mounted on it as they come."""
        tls = server_tls(*self.platform.pki.tls_server(self.settings.host)) if self.settings.tls else None
        self.mounts = Mounts({})
        self.mounts.draining = frozenset(STUBS)  # a stop lets requests in flight still call the stubs
        # The front reads a little past the endpoint's cap, so the endpoint answers it. Every service's
        # clients share the port: it takes as many connections per client as the ports of one service did.
        defaults = FrontLimits()
        limits = FrontLimits(max_body_bytes=self.settings.max_body_bytes + 65_536,
                             max_connections_per_client=defaults.max_connections_per_client * len(_SERVICES),
                             stop_grace=STOP_GRACE)
        self.front = ServedApp("sandbox", self.mounts, self.settings.host, port, self.settings.server_threads,
                               limits=limits, tls=tls)
        self.front.start()

    @property
    def port(self) -> int:
        return self.front.port

    def _serve(self, apps: dict[str, Any]) -> None:
        base = self.front.url.rstrip("/")
        for name, app in apps.items():
            if isinstance(app, SoapEndpoint):
                app.address = f"{base}/{name}"
            self.mounts.apps[name] = self.apps[name] = app
        for name in apps:
            wait_ready(self.urls[name] + ("health" if name in _ROOTED else "?wsdl"),
                       ca_file=self.platform.pki.ca_file)

    @property
    def urls(self) -> dict[str, str]:
        base = self.front.url.rstrip("/")
        return {name: f"{base}/{name}" + ("/" if name in _ROOTED else "") for name in self.apps}

    @property
    def soap_urls(self) -> dict[str, str]:
        """The SOAP services (each serves its WSDL): every URL but the scenario admin's and the web's."""
        return {name: url for name, url in self.urls.items() if name not in _ROOTED}

    def stop(self) -> None:
        if getattr(self, "follower", None) is not None:
            self.follower.stop()
        if hasattr(self, "front"):
            try:
                self.front.stop()  # requests being worked on are finished and answered (bounded)
            except Exception:  # noqa: BLE001 - stopping the rest matters more
                log.exception("stopping the sandbox's port")
        if hasattr(self, "platform"):
            self.platform.close()
        lock = getattr(self, "lock", None)
        if lock is not None and lock.held:  # only the sandbox serving the directory removes its state
            forget_running(self.settings.data_dir)
            lock.release()
        self.stopped.set()


def read_running(data_dir: Path) -> dict[str, str]:
    """The URLs of the sandbox running on ``data_dir`` (written by :meth:`Sandbox.start`)."""
    from mycarenet_ic.datadir import sandbox_is_running

    state = Path(data_dir) / "sandbox.json"
    if not state.exists():
        raise FileNotFoundError(f"no sandbox is running on {data_dir} (no {state})")
    if not sandbox_is_running(data_dir):
        raise FileNotFoundError(f"no sandbox is running on {data_dir} (its {state.name} was left by one that "
                                "is gone)")
    return dict(json.loads(state.read_text())["services"])
