"""WSGI entry for process managers (gunicorn): every stub on one address, by path.

``gunicorn 'mycarenet_ic.wsgi:create_app()'`` with ``MYCARENET_DATA_DIR`` and
``MYCARENET_PUBLIC_URL`` (the address clients use, for ``?wsdl``).
"""

from __future__ import annotations

import os
from typing import Any

from mycarenet_ic.app import Platform, stub_endpoints
from mycarenet_ic.config import Settings


def create_app() -> Any:
    from stubs.scenario import Scenario

    settings = Settings.from_env()
    platform = Platform(settings)
    scenario = Scenario.for_data_dir(settings.data_dir)
    endpoints = stub_endpoints(platform, scenario)
    public = os.environ.get("MYCARENET_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
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
