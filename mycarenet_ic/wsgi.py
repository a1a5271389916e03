"""WSGI entry for process managers (gunicorn): every stub and business service and the web application
on one address, by path (``/memberdata``, …, ``/web/``), with ``/healthz`` and ``/readyz``.

``mycarenet-ic serve`` runs it under gunicorn; by hand: ``gunicorn -k gthread --threads 24
'mycarenet_ic.wsgi:create_app()'`` with ``MYCARENET_DATA_DIR``, ``DATABASE_URL`` and
``MYCARENET_PUBLIC_URL`` (the address clients use, for ``?wsdl``). The business services reach the
stubs at ``MYCARENET_UPSTREAM_URL`` (default: the public URL), i.e. through the same server: give
each worker more threads than the requests it serves at once, or they may all wait on upstream
calls. Exactly one worker follows the National Register's mutation feed (:mod:`mycarenet_ic.feedlock`;
``MYCARENET_FOLLOW_FEED=0``: none, for a cron job running ``mycarenet-ic mutations sync``). The scenario
admin API is served only with ``MYCARENET_SANDBOX_MODE=1``. The inspector (raw traffic recorded) is off
here unless ``MYCARENET_INSPECTOR=1``.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

from mycarenet_ic.app import STUBS, Platform, _check_schema, business_endpoints, stub_endpoints
from mycarenet_ic.config import Settings
from mycarenet_ic.mounts import Mounts


def wsgi_settings() -> Settings:
    """The environment's settings, the inspector off unless ``MYCARENET_INSPECTOR`` asks for it: it keeps
    raw traffic (NISS in clear), a sandbox tool."""
    return Settings.from_env(inspector=None if os.environ.get("MYCARENET_INSPECTOR") else False)


def _json(start_response: Any, status: str, payload: dict[str, Any]) -> list[bytes]:
    body = json.dumps(payload).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                            ("Cache-Control", "no-store")])
    return [body]


class Health:
    """``/healthz``: the process answers (liveness). ``/readyz``: it can serve — the database answers, its
    schema is at this version's head, every stub answers its WSDL — else 503 naming what is not."""

    def __init__(self, platform: Platform, stub_urls: dict[str, str], ready: bool) -> None:
        self.platform = platform
        self.stub_urls = stub_urls
        self.ready = ready

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if not self.ready:
            return _json(start_response, "200 OK", {"status": "ok"})
        checks = {"database": self._database(), "migrations": self._migrations(), "stubs": self._stubs()}
        ok = all(value == "ok" for value in checks.values())
        return _json(start_response, "200 OK" if ok else "503 Service Unavailable",
                     {"status": "ready" if ok else "not ready", "checks": checks})

    def _database(self) -> str:
        from sqlalchemy import text

        try:
            with self.platform.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001 - a check: the answer says so, without details
            return "unreachable"
        return "ok"

    def _migrations(self) -> str:
        try:
            _check_schema(self.platform.engine, self.platform.settings)
        except Exception:  # noqa: BLE001 - NotPrepared (an old schema) or no database at all
            return "not at head"
        return "ok"

    def _stubs(self) -> str:
        from mycarenet_ic.server import client_tls

        context = client_tls(self.platform.pki.ca_file)
        down = []
        for name, url in self.stub_urls.items():
            try:
                with urllib.request.urlopen(url + "?wsdl", timeout=5,  # noqa: S310 - our own configured URL
                                            context=context if url.startswith("https:") else None) as resp:
                    if resp.status != 200:
                        down.append(name)
            except (urllib.error.URLError, OSError):
                down.append(name)
        return "ok" if not down else "unreachable: " + ", ".join(down)


def create_app() -> Any:
    from mycarenet_ic.stubs.scenario import Scenario
    from mycarenet_ic.web import create_app as create_web

    settings = wsgi_settings()
    platform = Platform.prepared(settings)
    scenario = Scenario.for_data_dir(settings.data_dir)
    public = os.environ.get("MYCARENET_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
    sandbox_mode = os.environ.get("MYCARENET_SANDBOX_MODE") == "1"
    faults = None
    if sandbox_mode:  # the scenario's injected faults on every endpoint, as the sandbox (shared by the workers)
        from mycarenet_ic.inspector.reason import ReasonPointer
        from mycarenet_ic.services.fault_injection import FaultInjector

        platform.faults = faults = FaultInjector(scenario)
        # A fault's answer names its audit row (and the inspector's page of it, when the inspector is on).
        platform.reason_pointer = ReasonPointer(f"{public}/web/" if settings.inspector else "")
    upstream = os.environ.get("MYCARENET_UPSTREAM_URL", public).rstrip("/")
    stub_urls = {name: f"{upstream}/{name}" for name in STUBS}
    gateways = platform.gateways(stub_urls)
    endpoints = {**stub_endpoints(platform, scenario), **business_endpoints(platform, gateways)}
    for name, endpoint in endpoints.items():
        endpoint.address = f"{public}/{name}"
    apps: dict[str, Any] = {**endpoints, "web": create_web(platform, gateways),
                            "healthz": Health(platform, stub_urls, ready=False),
                            "readyz": Health(platform, stub_urls, ready=True)}
    if sandbox_mode:
        from mycarenet_ic.stubs.admin import ScenarioAdmin, admin_token

        apps["scenario-admin"] = ScenarioAdmin(scenario, admin_token(settings.data_dir), faults)
    if os.environ.get("MYCARENET_FOLLOW_FEED", "1") != "0":
        from mycarenet_ic.feedlock import FeedLock, LockedFollower

        LockedFollower(platform.mutation_sync(gateways), settings.mutation_sync_seconds,
                       FeedLock(platform.engine, settings.data_dir)).start()
    return Mounts(apps)
