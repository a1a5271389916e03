"""Scenario admin endpoint (JSON over HTTP, loopback, bearer token from the data directory).

``GET /scenario`` returns the running scenario; ``POST /scenario/changes`` with
``{"action": "add-link" | "remove-links" | "death" | "replace-ssin" | "add-person" | "add-persons", …}``
changes it for every stub at once. ``GET``/``POST``/``DELETE /scenario/faults`` list, add and clear the
injected faults (``services/fault_injection.py``). ``GET /openapi.json`` describes every route (OpenAPI 3).
``mycarenet-ic scenario …`` is its client.

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
from mycarenet_ic.services.fault_injection import FaultInjector

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


def route_of(routes: tuple[tuple[str, str, str, bool], ...], method: str,
             path: str) -> tuple[str, bool, dict[str, str]] | None:
    """The handler of ``method path`` in ``routes``, whether it needs the token, and its path parameters."""
    parts = path.split("/")
    for r_method, template, handler, needs_token in routes:
        wanted = template.split("/")
        if r_method != method or len(wanted) != len(parts):
            continue
        params: dict[str, str] = {}
        for want, got in zip(wanted, parts, strict=True):
            if want.startswith("{"):
                if not got:
                    break
                params[want[1:-1]] = got
            elif want != got:
                break
        else:
            return handler, needs_token, params
    return None


class ScenarioAdmin:
    # Every route: (method, path; "{id}" one segment, what it does, whether the bearer token is needed). The
    # OpenAPI document (``GET /openapi.json``, stubs/admin_openapi.py) describes exactly these.
    ROUTES: tuple[tuple[str, str, str, bool], ...] = (
        ("GET", "/", "_health", False),
        ("GET", "/health", "_health", False),
        ("GET", "/openapi.json", "_openapi", False),
        ("GET", "/scenario", "_show", True),
        ("POST", "/scenario/changes", "_change", True),
        ("GET", "/scenario/faults", "_faults", True),
        ("POST", "/scenario/faults", "_inject", True),
        ("DELETE", "/scenario/faults", "_clear_faults", True),
        ("DELETE", "/scenario/faults/{id}", "_clear_faults", True),
    )

    def __init__(self, scenario: Scenario, token: str, faults: FaultInjector | None = None) -> None:
        self.scenario = scenario
        self._token = token
        self.faults = faults if faults is not None else FaultInjector(scenario)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        try:
            return self._route(environ, start_response)
        except Exception:  # noqa: BLE001 - a generic answer; the details go to the log, not to the caller
            log.exception("scenario admin: %s %s failed", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"))
            return self._json(start_response, "500 Internal Server Error",
                              {"error": "internal error in the scenario admin; see the sandbox's log"})

    def _route(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        method, path = environ.get("REQUEST_METHOD"), environ.get("PATH_INFO", "/").rstrip("/") or "/"
        found = route_of(self.ROUTES, str(method), path)
        if found is None:
            return self._json(start_response, "404 Not Found", {"error": "unknown admin path"})
        handler, needs_token, params = found
        auth = environ.get("HTTP_AUTHORIZATION", "")
        if needs_token and not hmac.compare_digest(auth.encode(), f"Bearer {self._token}".encode()):
            return self._json(start_response, "401 Unauthorized", {"error": "bearer token required"})
        try:
            status, payload = getattr(self, handler)(environ, **params)
        except RecursionError:
            return self._json(start_response, "400 Bad Request", {"error": "change nested too deeply"})
        except (BadChange, ScenarioError, ValueError) as exc:  # UnicodeDecodeError and FaultRuleError too
            return self._json(start_response, "400 Bad Request", {"error": str(exc)})
        return self._json(start_response, status, payload)

    def _health(self, environ: dict[str, Any]) -> tuple[str, Any]:
        return "200 OK", {"status": "ok"}

    def _openapi(self, environ: dict[str, Any]) -> tuple[str, Any]:
        from .admin_openapi import document

        return "200 OK", document(environ)

    def _show(self, environ: dict[str, Any]) -> tuple[str, Any]:
        return "200 OK", self.scenario.to_dict()

    def _change(self, environ: dict[str, Any]) -> tuple[str, Any]:
        return "200 OK", self.scenario.apply(read_change(environ))

    def _faults(self, environ: dict[str, Any]) -> tuple[str, Any]:
        return "200 OK", {"faults": [rule.to_dict() for rule in self.faults.rules()]}

    def _inject(self, environ: dict[str, Any]) -> tuple[str, Any]:
        return "201 Created", {"fault": self.faults.add(read_change(environ)).to_dict()}

    def _clear_faults(self, environ: dict[str, Any], id: str | None = None) -> tuple[str, Any]:
        removed = self.faults.clear(id)
        if id is not None and not removed:
            return "404 Not Found", {"error": f"no fault rule {id}"}
        return "200 OK", {"removed": removed}

    @staticmethod
    def _json(start_response: Any, status: str, payload: Any) -> list[bytes]:
        body = json.dumps(payload, ensure_ascii=False).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
