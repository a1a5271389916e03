"""The request path, owned by one object: a WSGI application around a Spyne service.

:meth:`SoapEndpoint._handle` reads top to bottom: size cap and content type → hardened parse →
``mustUnderstand`` headers → WS-Security verify (incl. replay) → the caller's identity → the Body's one
element is an operation's input and the SOAPAction agrees → commons references and XSD validation →
dispatch (Spyne calls the use case with a :class:`Call`) → and then, in :meth:`SoapEndpoint._conclude`
only, the fault mapping, the audit row and the signature. ``GET ?wsdl`` serves the checked-in WSDL with
the configured address and the policy of the tokens the endpoint accepts; ``GET ?xsd=<file>`` its schemas.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from lxml import etree

from mycarenet_ic import contract, inspector, ns
from mycarenet_ic.domain.qualities import CallerIdentity
from mycarenet_ic.errors import (
    HeaderNotUnderstood,
    MalformedRequest,
    MycarenetError,
    Replayed,
    RequestTooLarge,
    SchemaViolation,
    SoapActionMismatch,
    StorageUnavailable,
    UnknownOperation,
)
from mycarenet_ic.inspector.reason import ReasonPointer
from mycarenet_ic.security.callers import caller_of
from mycarenet_ic.security.parser import ParseLimits, parse_untrusted
from mycarenet_ic.security.wssec import Signer, TokenKind, VerifiedMessage, Verifier
from mycarenet_ic.server import HttpEffect
from mycarenet_ic.services.fault_injection import Faults, NoFaults
from mycarenet_ic.services.ports import AuditEntry, AuditLog
from mycarenet_ic.soap import faults
from mycarenet_ic.soap.policy import add_token_policy
from mycarenet_ic.soap.references import substitute_references

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
_XSD_NAME = re.compile(r"^[A-Za-z0-9_.-]+\.xsd$")
_UNDERSTOOD = frozenset({f"{{{ns.WSSE}}}Security"})
_CHARSET = re.compile(r";\s*charset\s*=\s*\"?([^\";\s]+)", re.IGNORECASE)
# What a request ends as: HTTP status, the signed bytes, the headers beyond the content's.
Concluded = tuple[str, bytes, list[tuple[str, str]]]


@dataclass
class EndpointDeps:
    verifier: Verifier
    signer: Signer
    audit: AuditLog
    environment: str
    max_body_bytes: int
    # Held while a request is processed (after its body is read): bounds the requests in work at once.
    gate: AbstractContextManager[Any] = field(default_factory=nullcontext)
    # The inspector's: every concluded exchange, as it was (a sandbox tool; by default nothing is recorded).
    recorder: inspector.Recorder = field(default_factory=inspector.NoRecorder)
    # The sandbox's injected faults (services/fault_injection.py; by default none).
    faults: Faults = field(default_factory=NoFaults)
    # The sandbox's: a fault's answer names where its true reason is read (inspector/reason.py; else never).
    reason_pointer: ReasonPointer | None = None


def render_wsdl(wsdl_file: Path, address: str, accepted: frozenset[TokenKind] | None = None) -> bytes:
    """The checked-in WSDL with ``soap:address`` (and schema locations) pointing at ``address``; with
    ``accepted``, the WS-SecurityPolicy of those token kinds on every operation's input (``soap/policy.py``)."""
    tree = etree.parse(str(wsdl_file), parser=etree.XMLParser(no_network=True, resolve_entities=False))
    if accepted is not None:
        add_token_policy(tree, accepted)
    for addr in tree.iter(f"{{{ns.WSDL_SOAP}}}address"):
        addr.set("location", address)
    for imp in tree.iter(f"{{{ns.XS}}}import", f"{{{ns.XS}}}include"):
        loc = imp.get("schemaLocation")
        if loc:
            imp.set("schemaLocation", f"{address}?xsd={Path(loc).name}")
    return etree.tostring(tree, encoding="UTF-8", xml_declaration=True)


def render_xsd(name: str, address: str) -> bytes | None:
    if not _XSD_NAME.match(name) or not (contract.XSD_DIR / name).is_file():
        return None
    tree = etree.parse(str(contract.XSD_DIR / name), parser=etree.XMLParser(no_network=True, resolve_entities=False))
    for imp in tree.iter(f"{{{ns.XS}}}import", f"{{{ns.XS}}}include"):
        loc = imp.get("schemaLocation")
        if loc:
            imp.set("schemaLocation", f"{address}?xsd={Path(loc).name}")
    return etree.tostring(tree, encoding="UTF-8", xml_declaration=True)


def soap_actions(wsdl_file: Path) -> dict[str, str]:
    """``{input element (Clark name): soapAction}`` for every operation of the WSDL's bindings."""
    tree = etree.parse(str(wsdl_file), parser=etree.XMLParser(no_network=True, resolve_entities=False))
    w = f"{{{ns.WSDL}}}"

    def qname(el: etree._Element, attr: str) -> str:
        prefix, _, local = (el.get(attr) or "").rpartition(":")
        return f"{{{el.nsmap.get(prefix or None, '')}}}{local}"

    elements = {m.get("name"): qname(part, "element")
                for m in tree.iter(f"{w}message") for part in m.iter(f"{w}part") if part.get("element")}
    inputs = {op.get("name"): etree.QName(qname(op.find(f"{w}input"), "message")).localname
              for port in tree.iter(f"{w}portType") for op in port.iter(f"{w}operation")
              if op.find(f"{w}input") is not None}
    actions: dict[str, str] = {}
    for binding in tree.iter(f"{w}binding"):
        for op in binding.iter(f"{w}operation"):
            soap_op = op.find(f"{{{ns.WSDL_SOAP}}}operation")
            message = inputs.get(op.get("name"))
            if soap_op is not None and message in elements:
                actions[elements[message]] = soap_op.get("soapAction", "")
    return actions


def check_headers_understood(envelope: etree._Element, understood: frozenset[str]) -> None:
    """SOAP 1.1 §4.2.3: a header block for this node (no actor, or actor "next") with mustUnderstand="1"
    that this service does not process makes the whole message fail with a MustUnderstand fault."""
    header = envelope.find(f"{{{ns.SOAP11_ENV}}}Header")
    if header is None:
        return
    for block in header:
        if not isinstance(block.tag, str):
            continue
        must = (block.get(f"{{{ns.SOAP11_ENV}}}mustUnderstand") or "0").strip()
        actor = block.get(f"{{{ns.SOAP11_ENV}}}actor")
        if must in ("1", "true") and actor in (None, "", ns.SOAP11_NEXT_ACTOR) and block.tag not in understood:
            raise HeaderNotUnderstood(reason=f"header not understood: {etree.QName(block).localname}")


class Dispatcher(Protocol):
    """Runs the operation a validated Body element asks for; returns the (unsigned) answer envelope."""

    def dispatch(self, payload: etree._Element, call: Call) -> etree._Element: ...


@dataclass(frozen=True)
class Call:
    """What a service method may know of its call: who the verified caller is, the caller's audit label,
    the audit row it adds its facts to (the patient, a detail), and the certificate whose key signed."""

    identity: CallerIdentity
    caller: str
    audit: AuditEntry
    certificate: x509.Certificate


class SoapEndpoint:
    """One SOAP service on one address."""

    def __init__(self, name: str, dispatcher: Dispatcher, wsdl_file: Path, schema: etree.XMLSchema,
                 deps: EndpointDeps, other_actions: Iterable[str] = ()) -> None:
        """``other_actions``: SOAPAction spellings a well-known client sends for the endpoint's one operation
        that production takes too (beside the WSDL's)."""
        self.name = name
        self.deps = deps
        self.wsdl_file = wsdl_file
        self.address = ""
        self._dispatcher = dispatcher
        # The Spyne application behind the operations, where there is one (for the contract tests).
        self.spyne_app = getattr(dispatcher, "app", None)
        self._schema = schema
        self._wsdl_cache: dict[str, bytes] = {}
        self._limits = ParseLimits(max_bytes=deps.max_body_bytes)
        self._actions = soap_actions(wsdl_file)
        self._other_actions = frozenset(other_actions)

    # -- WSGI ---------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method == "GET":
            return self._get(environ, start_response)
        if method != "POST":
            start_response("405 Method Not Allowed", [("Allow", "GET, POST"), ("Content-Type", "text/plain")])
            return [b"POST a SOAP 1.1 message, or GET ?wsdl\n"]
        return self._post(environ, start_response)

    def _get(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        query = environ.get("QUERY_STRING", "")
        address = self.address or self._own_url(environ)
        body: bytes | None = None
        if query.lower() == "wsdl":
            body = self._wsdl_cache.get(address)
            if body is None:
                body = self._wsdl_cache.setdefault(address, render_wsdl(self.wsdl_file, address,
                                                                             self.deps.verifier.accepted))
        elif query.startswith("xsd="):
            body = render_xsd(query[4:], address)
        if body is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: try ?wsdl\n"]
        start_response("200 OK", [("Content-Type", "text/xml; charset=utf-8"), ("Content-Length", str(len(body)))])
        return [body]

    @staticmethod
    def _own_url(environ: dict[str, Any]) -> str:
        # Only used when no address was configured (tests mounting the app directly).
        return f"http://{environ.get('SERVER_NAME', '127.0.0.1')}:{environ.get('SERVER_PORT', '80')}" + environ.get(
            "PATH_INFO", "/"
        )

    def _read_body(self, environ: dict[str, Any]) -> bytes:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise MalformedRequest(reason="bad Content-Length") from None
        if length > self.deps.max_body_bytes:
            raise RequestTooLarge(reason=f"Content-Length {length}")
        if length < 0:
            raise MalformedRequest(reason="negative Content-Length")
        stream = environ["wsgi.input"]
        try:
            data = stream.read(length) if length else stream.read(self.deps.max_body_bytes + 1)
        except (OSError, ValueError) as exc:  # the client stopped sending (timeout, reset): its fault
            raise MalformedRequest("The request body ended before its announced length.",
                                   reason=f"body not received: {type(exc).__name__}") from None
        if len(data) > self.deps.max_body_bytes:
            raise RequestTooLarge(reason="body over the cap")
        if length and len(data) < length:
            raise MalformedRequest("The request body ended before its announced length.",
                                   reason=f"body {len(data)} of {length} bytes")
        return data

    def _post(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        sent_action = environ.get("HTTP_SOAPACTION", "").strip().strip('"').strip()
        entry = AuditEntry(service=self.name, operation=sent_action[:128] or "?")
        started = time.monotonic()
        try:
            data = self._read_request(environ)
        except Exception as exc:  # noqa: BLE001 - every failure gets a clean, signed fault
            return self._respond(self._conclude(entry, exc, b"", started), start_response)
        # Reading the body waits on the client; what follows is this process's own work.
        with self.deps.gate:
            return self._respond(self._handle(data, sent_action, entry, started), start_response)

    def _handle(self, data: bytes, sent_action: str, entry: AuditEntry, started: float) -> Concluded:
        """One request, top to bottom: parse → verify → who calls → which operation → validate →
        dispatch (the use case runs) → answer; then :meth:`_conclude` audits and signs."""
        try:
            envelope = parse_untrusted(data, self._limits)
            check_headers_understood(envelope, _UNDERSTOOD)
            verified = self.deps.verifier.verify(envelope)
            call = self._call(verified, entry)
            payload = self._operation_input(verified.body, sent_action, entry)
            self._validate(payload)
            fault = self.deps.faults.decide(self.name, entry.operation, call.identity, payload)
            fault.before()  # an injected wait, SystemError, 503 or dropped connection (the sandbox's)
            answer = self._dispatcher.dispatch(payload, call)
            fault.after(entry)  # an injected delay is said in the audit row
        except Exception as exc:  # noqa: BLE001 - every failure gets a clean, signed fault
            return self._conclude(entry, exc, data, started)
        return self._conclude(entry, answer, data, started)

    def _read_request(self, environ: dict[str, Any]) -> bytes:
        content_type = environ.get("CONTENT_TYPE", "")
        if not content_type.lower().startswith("text/xml"):
            raise MalformedRequest("SOAP 1.1 requests must be sent as text/xml.")
        charset = _CHARSET.search(content_type)
        if charset is not None and charset.group(1).lower() not in ("utf-8", "utf8"):
            raise MalformedRequest("Only UTF-8 requests are accepted.", reason=f"charset {charset.group(1)[:32]}")
        return self._read_body(environ)

    def _call(self, verified: VerifiedMessage, entry: AuditEntry) -> Call:
        entry.replay = verified.replay  # stored with the request's first row (persistence/audit.py)
        identity = caller_of(verified)
        entry.caller = self.deps.audit.caller_label(identity)
        return Call(identity, entry.caller, entry, verified.certificate)

    def _operation_input(self, body: etree._Element, sent_action: str, entry: AuditEntry) -> etree._Element:
        """The Body's one element, which must be an operation's input (else: WSDL compliance failure);
        a SOAPAction, when the client sends a non-empty one, must be that operation's."""
        elements = [child for child in body if isinstance(child.tag, str)]
        if len(elements) != 1:
            raise UnknownOperation(reason=f"the Body holds {len(elements)} elements, not one operation's input")
        payload = elements[0]
        entry.operation = etree.QName(payload).localname
        entry.request_id = payload.get("Id")
        if payload.tag not in self._actions:
            raise UnknownOperation(reason=f"no operation takes {entry.operation}")
        if sent_action and sent_action != self._actions[payload.tag] and sent_action not in self._other_actions:
            raise SoapActionMismatch(reason=f"SOAPAction is not {entry.operation}'s")
        return payload

    def _validate(self, payload: etree._Element) -> None:
        """Commons references substituted, then the checked-in schema (Spyne's generated one loses facets)."""
        substitute_references(payload)
        if not self._schema.validate(payload):
            raise SchemaViolation.from_validator("The request does not follow the service's XML schema",
                                                 self._schema.error_log.last_error)

    def _conclude(self, entry: AuditEntry, outcome: etree._Element | BaseException, request: bytes = b"",
                  started: float | None = None) -> Concluded:
        """The one place a request ends: its error mapped to a fault, its audit row written (an answer
        that cannot be audited is not given; a write's row is already in, committed with the write), the
        answer signed, the exchange handed to the inspector.
        Returns (HTTP status, signed bytes, headers: in the sandbox, a fault's says where its reason is)."""
        error = None if isinstance(outcome, etree._Element) else faults.as_mycarenet_error(outcome)
        try:
            try:
                if error is not None or entry.seq is None:  # a write's row went in with the write (one transaction)
                    entry.seq = self._audit(entry, error)
            except Replayed as replayed:  # the database had this signature (another worker took it, or before a
                error = replayed           # restart): the answer is not given, the refusal is
                entry.seq = self._audit(entry, error)
        except Exception:  # noqa: BLE001
            log.exception("audit write failed")
            if error is None:
                error = StorageUnavailable()
        answer = outcome if error is None else faults.fault_envelope(error, self.deps.environment)
        assert isinstance(answer, etree._Element)
        self.deps.signer.sign(answer)
        status = "200 OK" if error is None else faults.http_status(error)
        body = etree.tostring(answer, encoding="UTF-8", xml_declaration=True)
        # The inspector: the exchange as it was, with the true reason (never raises).
        if isinstance(error, HttpEffect):  # an injected 503 or dropped connection: the HTTP front makes it
            status, body = error.status or "000 no answer", error.body
        inspector.record(self.deps.recorder, self.name, entry, error, status, request, body, started)
        if isinstance(error, HttpEffect):
            raise error
        pointer = self.deps.reason_pointer
        return status, body, [pointer.header(entry.seq)] if pointer is not None and error is not None else []

    def _audit(self, entry: AuditEntry, error: MycarenetError | None) -> int:
        """The request's row: with the fault's outcome and reason if it failed; a replay's row does not claim
        the signature it replayed."""
        if error is not None:
            if entry.outcome == "OK":
                entry.outcome = error.audit_outcome
            reason = f"{error.code}: {error.reason}"
            entry.detail = f"after row {entry.seq}, no answer: {reason}" if entry.seq else entry.detail or reason
            if isinstance(error, Replayed):
                entry.replay, entry.detail = None, reason
        return self.deps.audit.append(entry)

    @staticmethod
    def _respond(answer: Concluded, start_response: StartResponse) -> Iterable[bytes]:
        status, body, headers = answer
        start_response(status, [("Content-Type", "text/xml; charset=utf-8"), ("Content-Length", str(len(body))),
                                *headers])
        return [body]
