"""Scenario admin endpoint (JSON over HTTP, loopback, bearer token from the data directory).

``GET /scenario`` returns the running scenario; ``POST /scenario/changes`` with
``{"action": "add-link" | "remove-links" | "death" | "replace-ssin" | "add-person" | "add-persons", …}``
changes it for every stub at once. ``mycarenet-ic scenario …`` is its client.

A body that is not a change (not a number of bytes, not UTF-8 JSON, not an object, nested too deep, a
lone surrogate, NaN) is a 400 with a JSON ``{"error": …}`` before the scenario sees it; anything the
endpoint did not expect is a 500 with a generic JSON message, the details in the log only.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
from pathlib import Path
from typing import Any

from mycarenet_ic.config import secret_file

from .scenario import Scenario, ScenarioError

log = logging.getLogger(__name__)

MAX_BODY = 1_048_576
# A change is a flat object; ``add-persons`` is the deepest: {"persons": [{"first_names": ["…"]}]}.
# Deeper values are refused before the scenario sees them: copying or saving them could fail halfway.
MAX_DEPTH = 8


def admin_token(data_dir: Path) -> str:
    token = secret_file(Path(data_dir) / "secrets" / "admin.token", lambda: secrets.token_urlsafe(32).encode())
    return token.decode().strip()


class BadChange(ValueError):
    """A request body that is not a change: answered 400 with this message."""


def _check_value(change: dict[str, Any]) -> None:
    """Refuse what the scenario could take in but not copy or save again (without recursion here)."""
    stack: list[tuple[Any, int]] = [(change, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise BadChange(f"a change nests at most {MAX_DEPTH} levels deep")
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:  # "\ud800": a lone surrogate, no character at all
                raise BadChange("a change holds text only (no lone surrogates)") from None


def _no_constant(name: str) -> Any:
    raise BadChange(f"not JSON: {name}")


def read_change(environ: dict[str, Any]) -> dict[str, Any]:
    """The change in the request body, or :class:`BadChange` saying why it is not one."""
    raw = str(environ.get("CONTENT_LENGTH") or "0").strip()
    # int() would take "-1", "+5", "1_0" and other digits than 0-9; a length is ASCII digits only.
    if not (raw.isascii() and raw.isdigit()):
        raise BadChange("Content-Length must be a number of bytes")
    length = int(raw)
    if length > MAX_BODY:
        raise BadChange("change too large")
    body = environ["wsgi.input"].read(length) if length else b""
    if len(body) != length:
        raise BadChange("the body is shorter than its Content-Length")
    try:
        change = json.loads(body.decode("utf-8") or "{}", parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise BadChange("a change is JSON in UTF-8") from None
    except RecursionError:
        raise BadChange(f"a change nests at most {MAX_DEPTH} levels deep") from None
    except BadChange:
        raise
    except ValueError as exc:  # JSONDecodeError, and integers too long to convert
        raise BadChange(f"not JSON: {exc}") from None
    if not isinstance(change, dict):
        raise BadChange("a change is a JSON object")
    _check_value(change)
    return change


class ScenarioAdmin:
    def __init__(self, scenario: Scenario, token: str) -> None:
        self.scenario = scenario
        self._token = token

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        try:
            return self._route(environ, start_response)
        except Exception:  # noqa: BLE001 - a generic answer; the details go to the log, not to the caller
            log.exception("scenario admin: %s %s failed", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"))
            return self._json(start_response, "500 Internal Server Error",
                              {"error": "internal error in the scenario admin; see the sandbox's log"})

    def _route(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
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
                result = self.scenario.apply(read_change(environ))
            except RecursionError:
                return self._json(start_response, "400 Bad Request", {"error": "change nested too deeply"})
            except (BadChange, ScenarioError, ValueError) as exc:  # UnicodeDecodeError is a ValueError too
                return self._json(start_response, "400 Bad Request", {"error": str(exc)})
            return self._json(start_response, "200 OK", result)
        return self._json(start_response, "404 Not Found", {"error": "unknown admin path"})

    @staticmethod
    def _json(start_response: Any, status: str, payload: Any) -> list[bytes]:
        body = json.dumps(payload, ensure_ascii=False).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
