"""The sandbox: every stub and business service of one data directory on 127.0.0.1, one port each,
with the scenario's demo inclusions seeded and the National Register's mutation feed followed."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mycarenet_ic.app import Platform, business_endpoints, stub_endpoints
from mycarenet_ic.config import Settings
from mycarenet_ic.domain.inclusions import Consent, Inclusion, Status, check_no_conflict
from mycarenet_ic.inspector.reason import ReasonPointer
from mycarenet_ic.persistence.db import reading
from mycarenet_ic.server import FrontLimits, ServedApp, server_tls, wait_ready
from mycarenet_ic.services.fault_injection import FaultInjector
from mycarenet_ic.services.mutations import MutationSync
from mycarenet_ic.soap.endpoint import SoapEndpoint

log = logging.getLogger(__name__)
# Served at the root of their own port (the others at /<name>): the admin API and the web application.
_ROOTED = ("scenario-admin", "web")


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
    """Every service of the sandbox on 127.0.0.1, one port each."""

    settings: Settings
    reset_scenario: bool = False
    served: dict[str, ServedApp] = field(default_factory=dict)
    stopped: threading.Event = field(default_factory=threading.Event)

    def start(self, port: int = 0) -> dict[str, str]:
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
            self._serve(apps, port, 0)
            self.gateways = self.platform.gateways(self.urls)
            self._serve(business_endpoints(self.platform, self.gateways), port, len(apps))
            from mycarenet_ic.web import create_app  # the Integrated Care web application and the IdP, last

            self._serve({"web": create_app(self.platform, self.gateways)}, port, len(self.served))
            pointer.inspector_url = self.served["web"].url if self.settings.inspector else ""
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
            path = "/" if name in _ROOTED else f"/{name}"
            served = ServedApp(name, app, self.settings.host, port + offset if port else 0,
                               self.settings.server_threads, path=path,
                               # the front reads a little past the endpoint's cap, so the endpoint answers it
                               limits=FrontLimits(max_body_bytes=self.settings.max_body_bytes + 65_536), tls=tls)
            self.served[name] = served.start()
            if isinstance(app, SoapEndpoint):
                app.address = served.url
        for name in apps:
            wait_ready(self.served[name].url + ("health" if name in _ROOTED else "?wsdl"),
                       ca_file=self.platform.pki.ca_file)

    @property
    def urls(self) -> dict[str, str]:
        return {name: s.url for name, s in self.served.items()}

    @property
    def soap_urls(self) -> dict[str, str]:
        """The SOAP services (each serves its WSDL): every URL but the scenario admin's and the web's."""
        return {name: url for name, url in self.urls.items() if name not in _ROOTED}

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
        lock = getattr(self, "lock", None)
        if lock is not None and lock.held:  # only the sandbox serving the directory removes its state
            (self.settings.data_dir / "sandbox.json").unlink(missing_ok=True)
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
