"""The scenario admin API described as OpenAPI 3.0 (served at ``GET /openapi.json``).

Every route of :attr:`stubs.admin.ScenarioAdmin.ROUTES` is here and nothing else (a contract test holds both
to it). The fault rule's fields and limits are :mod:`mycarenet_ic.services.fault_injection`'s.
"""

from __future__ import annotations

from typing import Any

from mycarenet_ic.services.fault_injection import EFFECTS, MAX_DELAY_MS

_ERROR = {"description": "refused: the reason in `error`",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_UNAUTHORIZED = {"description": "no or wrong bearer token",
                 "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _admin(summary: str, responses: dict[str, Any], body: dict[str, Any] | None = None,
           parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "security": [{"adminToken": []}],
                          "responses": {**responses, "401": _UNAUTHORIZED}}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if parameters:
        op["parameters"] = parameters
    return op


_HEALTH = {"summary": "the admin API is up (no token)", "security": [],
           "responses": {"200": _json("up", {"type": "object", "properties": {"status": {"type": "string"}}})}}
_FAULT_LIST = _json("the fault rules in force", {"type": "object", "properties": {
    "faults": {"type": "array", "items": {"$ref": "#/components/schemas/FaultRule"}}}})
_REMOVED = _json("how many rules were removed", {"type": "object", "properties": {"removed": {"type": "integer"}}})

FAULT_RULE: dict[str, Any] = {
    "type": "object",
    "required": ["effect"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,32}$",
               "description": "the rule's name (default: generated)"},
        "effect": {"type": "string", "enum": list(EFFECTS),
                   "description": "delay: the usual answer, delay_ms later; system-error: the SystemError fault "
                   "SOA-02002 with Retry true; http-503: a bare HTTP 503; drop: the connection reset, no answer"},
        "service": {"type": "string", "example": "memberdata",
                    "description": "the service's name as in sandbox.json (default: any)"},
        "operation": {"type": "string", "example": "memberDataConsultation",
                      "description": "the WSDL operation or its input element (default: any)"},
        "patient": {"type": "string", "pattern": "^[0-9]{11}$",
                    "description": "only requests that carry this NISS (in the body or a Detail blob)"},
        "caller": {"type": "string", "pattern": "^[0-9]{8}([0-9]{3})?$",
                   "description": "only requests whose verified caller has this NIHII or NISS"},
        "delay_ms": {"type": "integer", "minimum": 0, "maximum": MAX_DELAY_MS,
                     "description": "wait first (required for delay; optional before the other effects)"},
        "times": {"type": "integer", "minimum": 1,
                  "description": "how many requests (default 1 when no period is given)"},
        "until": {"type": "string", "format": "date-time", "description": "in force until then (UTC)"},
        "for_seconds": {"type": "integer", "minimum": 1, "writeOnly": True,
                        "description": "in force for so many seconds from now (instead of until)"},
    },
}


def document(environ: dict[str, Any] | None = None) -> dict[str, Any]:
    """The OpenAPI 3.0 document; ``environ``: the request it answers (its address becomes the server's)."""
    servers = []
    if environ is not None:
        host = environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME', '127.0.0.1')}:{environ.get('SERVER_PORT')}"
        servers = [{"url": f"{environ.get('wsgi.url_scheme', 'http')}://{host}{environ.get('SCRIPT_NAME', '')}"}]
    return {
        "openapi": "3.0.3",
        "info": {"title": "mycarenet-ic scenario admin", "version": "1",
                 "description": "Changes the running sandbox's scenario and injects faults (a sandbox tool). "
                 "The bearer token is the data directory's secrets/admin.token."},
        "servers": servers,
        "paths": {
            "/": {"get": _HEALTH},
            "/health": {"get": _HEALTH},
            "/openapi.json": {"get": {"summary": "this document (no token)", "security": [],
                                      "responses": {"200": _json("OpenAPI 3.0", {"type": "object"})}}},
            "/scenario": {"get": _admin("the running scenario", {"200": _json("the scenario", {"type": "object"})})},
            "/scenario/changes": {"post": _admin(
                "change the scenario for every stub at once",
                {"200": _json("what the change did", {"type": "object"}), "400": _ERROR},
                body={"$ref": "#/components/schemas/Change"})},
            "/scenario/faults": {
                "get": _admin("the injected fault rules in force", {"200": _FAULT_LIST}),
                "post": _admin("inject a fault", {
                    "201": _json("the rule as taken", {"type": "object", "properties": {
                        "fault": {"$ref": "#/components/schemas/FaultRule"}}}),
                    "400": _ERROR}, body={"$ref": "#/components/schemas/FaultRule"}),
                "delete": _admin("remove every fault rule", {"200": _REMOVED}),
            },
            "/scenario/faults/{id}": {"delete": _admin(
                "remove one fault rule", {"200": _REMOVED, "404": _ERROR},
                parameters=[{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}])},
        },
        "components": {
            "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "properties": {"error": {"type": "string"}}},
                "FaultRule": FAULT_RULE,
                "Change": {"type": "object", "required": ["action"], "properties": {
                    "action": {"type": "string", "enum": ["add-link", "remove-links", "death", "replace-ssin",
                                                          "add-person", "add-persons"]}},
                    "additionalProperties": True},
            },
        },
    }
