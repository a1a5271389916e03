"""The one exception tree of the layer.

Every leaf carries, as class attributes, our descriptive error ``code``, the
eHealth SOA catalogue code the platform answers for it (``soa_code``: SOA-01001
not authenticated, SOA-01002 not authorized, SOA-03001 malformed, SOA-03005 WSDL,
SOA-03006 XSD, SOA-03007 content, SOA-02002 temporarily unavailable, SOA-00001
service error; none for a service's own business rules), the ``origin``
(Consumer or Provider), whether a ``retry`` can help, a default ``message``, and how the audit
trail records a call that ends in it (``audit_outcome``: DENIED for a refusal, else ERROR).
``soap/faults.py`` is the only place that turns them into SOAP
faults: ``ClientError`` → ``soap:Client`` + ``BusinessError`` detail,
``ServerError`` → ``soap:Server`` + ``SystemError`` detail; anything else →
a generic ``SystemError``.

    MycarenetError
    ├── ClientError                      soap:Client / BusinessError
    │   ├── SecurityRejected             one generic text, reason kept for the audit
    │   ├── RequestTooLarge
    │   ├── MalformedRequest
    │   │   ├── HeaderNotUnderstood      soap:MustUnderstand
    │   │   └── SoapActionMismatch
    │   ├── SchemaViolation
    │   ├── InvalidIdentifierError
    │   ├── UnknownOperation
    │   ├── NotFound
    │   │   └── ConcealedNotFound        same fault as NotFound; audited as DENIED
    │   ├── AccessDenied
    │   ├── SealRejected                 a sealed (ETEE) blob that cannot be opened
    │   └── BusinessRuleViolation
    └── ServerError                      soap:Server / SystemError
        ├── UpstreamUnavailable          retry
        ├── UpstreamFault
        ├── StorageUnavailable           retry
        ├── TemporarilyUnavailable       retry (the sandbox's injected SystemError)
        └── InternalError
"""

from __future__ import annotations

from typing import Any, ClassVar


class MycarenetError(Exception):
    # Not a ClassVar: a business rule may name itself per instance (BusinessRuleViolation).
    code: str = "SYSTEM_ERROR"
    # eHealth SOA errors name who is at fault: the Consumer (the caller) or the Provider (the service).
    origin: ClassVar[str] = "Provider"
    retry: ClassVar[bool] = False
    message: ClassVar[str] = "An unexpected error occurred."
    is_client_error: ClassVar[bool] = False
    # The SOAP faultcode when it is not the plain soap:Client / soap:Server of the error's side.
    faultcode: ClassVar[str | None] = None
    # The eHealth SOA catalogue code the platform answers for this kind of error (the fault's Code);
    # None where the catalogue has none (a service's own business rule): then ``code`` is the Code.
    soa_code: ClassVar[str | None] = "SOA-00001"
    # How the audit trail records a call that ends in this error: DENIED (the caller was refused: security,
    # size, shape, access) or ERROR (the request was heard and failed).
    audit_outcome: ClassVar[str] = "ERROR"

    def __init__(self, message: str | None = None, *, reason: str | None = None) -> None:
        self.text = message or self.message
        # ``reason`` is for logs and the audit trail only; it never reaches a client.
        self.reason = reason or self.text
        super().__init__(self.text)


class ClientError(MycarenetError):
    code = "INVALID_REQUEST"
    origin = "Consumer"
    soa_code: ClassVar[str | None] = "SOA-03001"
    message = "The request is not valid."
    is_client_error = True


class SecurityRejected(ClientError):
    audit_outcome = "DENIED"
    code = "SECURITY_ERROR"
    soa_code = "SOA-01001"  # service call not authenticated
    message = "The message was rejected by the security policy."

    def __init__(self, reason: str) -> None:
        # Whatever the reason, the client sees the same text.
        super().__init__(None, reason=reason)


class Replayed(SecurityRejected):
    """A signature already taken by an earlier request: found by this process at verification, or by the
    database when the request's audit row is committed (another worker, or before a restart, took it)."""

    def __init__(self) -> None:
        super().__init__("message replayed")


class RequestTooLarge(ClientError):
    audit_outcome = "DENIED"
    code = "REQUEST_TOO_LARGE"
    message = "The request is larger than allowed."


class MalformedRequest(ClientError):
    audit_outcome = "DENIED"
    code = "MALFORMED_REQUEST"
    message = "The request is not a well-formed SOAP 1.1 message."


class HeaderNotUnderstood(MalformedRequest):
    """A header block addressed to this service with ``mustUnderstand="1"`` that it does not process."""

    code = "MUST_UNDERSTAND"
    faultcode = "soap:MustUnderstand"
    message = "A SOAP header marked mustUnderstand is not understood by this service."


class SoapActionMismatch(MalformedRequest):
    code = "INVALID_SOAP_ACTION"
    soa_code = "SOA-03005"  # WSDL compliance failure
    message = "The SOAPAction header names another operation than the message body."


class SchemaViolation(ClientError):
    code = "INVALID_REQUEST"
    soa_code = "SOA-03006"  # XSD compliance failure
    message = "The request does not follow the service's XML schema."

    @classmethod
    def from_validator(cls, prefix: str, last: Any) -> SchemaViolation:
        """From an lxml schema error: the validator's words for the client (who sent the value), and for
        the audit only which rule failed where, never the value (a NISS that misses its pattern by a space
        is still a NISS)."""
        if last is None:
            return cls(f"{prefix}.")
        return cls(f"{prefix}: {last.message}",
                   reason=f"schema: {last.type_name} at {last.path or '?'} line {last.line}")


class InvalidIdentifierError(ClientError):
    code = "INVALID_IDENTIFIER"
    soa_code = "SOA-03007"  # message content validation failure
    message = "An identifier in the request is not valid."


class UnknownOperation(ClientError):
    code = "UNKNOWN_OPERATION"
    soa_code = "SOA-03005"
    message = "The service has no such operation."


class NotFound(ClientError):
    code = "NOT_FOUND"
    soa_code = None
    message = "Nothing was found for the request."


class ConcealedNotFound(NotFound):
    """Answered exactly like :class:`NotFound` (another PSI's patient), but audited as DENIED."""

    audit_outcome = "DENIED"


class AccessDenied(ClientError):
    audit_outcome = "DENIED"
    code = "ACCESS_DENIED"
    soa_code = "SOA-01002"  # service call not authorized
    message = "The caller may not perform this operation."


class SealRejected(ClientError):
    """A sealed (ETEE) business blob that cannot be opened: sealed for another recipient, broken, naming an
    encryption token (ETK) the depot does not know. Its text says which; the audit the details."""

    audit_outcome = "DENIED"
    code = "INVALID_SEAL"
    soa_code = "SOA-03007"  # message content validation failure
    message = "The sealed Detail blob cannot be opened."


class BusinessRuleViolation(ClientError):
    code = "BUSINESS_RULE"
    soa_code = None
    message = "The request breaks a business rule."

    def __init__(self, message: str | None = None, *, code: str | None = None, reason: str | None = None) -> None:
        super().__init__(message, reason=reason)
        if code:
            self.code = code


class ServerError(MycarenetError):
    code = "SYSTEM_ERROR"
    origin = "Server"


class UpstreamUnavailable(ServerError):
    code = "UPSTREAM_UNAVAILABLE"
    soa_code = "SOA-02002"  # service temporarily not available
    retry = True
    message = "A service this one depends on did not answer in time."


class UpstreamFault(ServerError):
    code = "UPSTREAM_ERROR"
    message = "A service this one depends on answered with an error."


class StorageUnavailable(ServerError):
    code = "STORAGE_UNAVAILABLE"
    soa_code = "SOA-02002"
    retry = True
    message = "The storage is temporarily unavailable."


class TemporarilyUnavailable(ServerError):
    """The service itself cannot answer now (production's overload or maintenance; in the sandbox, a fault
    injected by the scenario: ``services/fault_injection.py``)."""

    code = "TEMPORARILY_UNAVAILABLE"
    soa_code = "SOA-02002"
    retry = True
    message = "The service is temporarily unavailable; try again later."


class InternalError(ServerError):
    code = "SYSTEM_ERROR"
    message = "An unexpected error occurred."
