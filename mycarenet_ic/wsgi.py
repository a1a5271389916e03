"""WSGI entry for process managers (gunicorn): every stub and business service on one address, by path.

``gunicorn -k gthread --threads 24 'mycarenet_ic.wsgi:create_app()'`` with ``MYCARENET_DATA_DIR`` and
``MYCARENET_PUBLIC_URL`` (the address clients use, for ``?wsdl``). The business services reach the
stubs at ``MYCARENET_UPSTREAM_URL`` (default: the public URL), i.e. through the same server: give
each worker more threads than the requests it serves at once, or they may all wait on upstream
calls. The mutation feed is read by ``mycarenet-ic mutations sync`` (a cron job), not by workers. The
inspector (raw traffic recorded) is off here unless ``MYCARENET_INSPECTOR=1``.
"""

from __future__ import annotations

import os
from typing import Any

from mycarenet_ic.app import STUBS, Platform, business_endpoints, stub_endpoints
from mycarenet_ic.config import Settings


def wsgi_settings() -> Settings:
    """The environment's settings, the inspector off unless ``MYCARENET_INSPECTOR`` asks for it: it keeps
    raw traffic (NISS in clear), a sandbox tool."""
    return Settings.from_env(inspector=None if os.environ.get("MYCARENET_INSPECTOR") else False)


def create_app() -> Any:
    from mycarenet_ic.stubs.scenario import Scenario

    settings = wsgi_settings()
    platform = Platform.prepared(settings)
    scenario = Scenario.for_data_dir(settings.data_dir)
    public = os.environ.get("MYCARENET_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
    upstream = os.environ.get("MYCARENET_UPSTREAM_URL", public).rstrip("/")
    gateways = platform.gateways({name: f"{upstream}/{name}" for name in STUBS})
    endpoints = {**stub_endpoints(platform, scenario), **business_endpoints(platform, gateways)}
    for name, endpoint in endpoints.items():
        endpoint.address = f"{public}/{name}"

    def application(environ: dict[str, Any], start_response: Any) -> Any:
        name = environ.get("PATH_INFO", "/").strip("/").split("/")[0]
        endpoint = endpoints.get(name)
        if endpoint is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [("services: " + ", ".join(f"/{n}" for n in endpoints) + "\n").encode()]
        return endpoint(environ, start_response)

    return application
