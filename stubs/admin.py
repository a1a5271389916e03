"""Scenario admin endpoint (JSON over HTTP, loopback, bearer token from the data directory).

``GET /scenario`` returns the running scenario; ``POST /scenario/changes`` with
``{"action": "add-link" | "remove-links" | "death" | "replace-ssin" | "add-person" | "add-persons", …}``
changes it for every stub at once. ``mycarenet-ic scenario …`` is its client.
"""

from __future__ import annotations

import hmac
import json
import secrets
from pathlib import Path
from typing import Any

from mycarenet_ic.config import secret_file
from stubs.scenario import Scenario, ScenarioError

MAX_BODY = 1_048_576


def admin_token(data_dir: Path) -> str:
    token = secret_file(Path(data_dir) / "secrets" / "admin.token", lambda: secrets.token_urlsafe(32).encode())
    return token.decode().strip()


class ScenarioAdmin:
    def __init__(self, scenario: Scenario, token: str) -> None:
        self.scenario = scenario
        self._token = token

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        method, path = environ.get("REQUEST_METHOD"), environ.get("PATH_INFO", "/").rstrip("/")
        if method == "GET" and path in ("", "/health"):
            return self._json(start_response, "200 OK", {"status": "ok"})
        auth = environ.get("HTTP_AUTHORIZATION", "")
        if not hmac.compare_digest(auth.encode(), f"Bearer {self._token}".encode()):
            return self._json(start_response, "401 Unauthorized", {"error": "bearer token required"})
        if method == "GET" and path == "/scenario":
            return self._json(start_response, "200 OK", self.scenario.to_dict())
        if method == "POST" and path == "/scenario/changes":
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
                if length > MAX_BODY:
                    raise ScenarioError("change too large")
                change = json.loads(environ["wsgi.input"].read(length) or b"{}")
                if not isinstance(change, dict):
                    raise ScenarioError("a change is a JSON object")
                return self._json(start_response, "200 OK", self.scenario.apply(change))
            except (ScenarioError, ValueError) as exc:
                return self._json(start_response, "400 Bad Request", {"error": str(exc)})
        return self._json(start_response, "404 Not Found", {"error": "unknown admin path"})

    @staticmethod
    def _json(start_response: Any, status: str, payload: Any) -> list[bytes]:
        body = json.dumps(payload, ensure_ascii=False).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
