"""The inspector: every exchange of the sandbox's services as it was (a sandbox tool: it holds raw traffic).

The endpoint hands each concluded exchange to its :class:`Recorder` through :func:`record` (one call in
``SoapEndpoint._conclude``, which never fails the exchange); the sandbox's recorder queues it for one
writer thread (:mod:`mycarenet_ic.inspector.store`), bounded by count and age. The reading side —
listing, one exchange with its decoded blobs, a diff — is :mod:`~mycarenet_ic.inspector.views`, used by the
command line (``mycarenet-ic inspect``) and the browser view alike.

This module is light on purpose (the endpoint imports it): no database, no XML.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from mycarenet_ic.errors import MycarenetError
    from mycarenet_ic.services.ports import AuditEntry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Exchange:
    """One request and its answer as the service saw them. ``reason`` is the true reason of a refusal or a
    failure (``error.reason``: never sent to the client, who got the fault's generic text); ``code`` is the
    fault's code (None: answered). ``caller`` is the audit's label of the verified caller ("unknown" when
    no token verified). ``id`` is the store's, once stored; ``audit_seq`` the exchange's audit row (what the
    sandbox's ``X-Sandbox-Reason`` header names: inspector/reason.py)."""

    at: dt.datetime
    service: str
    operation: str
    caller: str
    outcome: str
    status: int
    duration_ms: float
    request: bytes
    answer: bytes
    code: str | None = None
    reason: str | None = None
    request_id: str | None = None
    id: int | None = None
    audit_seq: int | None = None


class Recorder(Protocol):
    def record(self, exchange: Exchange) -> None: ...


class NoRecorder:
    """Records nothing (the default: the inspector off)."""

    def record(self, exchange: Exchange) -> None:
        return None


# Of a request refused before its sender was identified, only this much is kept: enough to see why, and no way
# for anyone who can reach a port to fill the disk with megabyte bodies.
UNVERIFIED_KEPT_BYTES = 16_384


def record(recorder: Recorder, service: str, entry: AuditEntry, error: MycarenetError | None, status: str,
           request: bytes, answer: bytes, started: float | None) -> None:
    """Hand one concluded exchange to ``recorder``; whatever goes wrong is logged, never raised: recording
    must not fail the exchange. ``started``: the ``time.monotonic()`` at which the request came in."""
    if isinstance(recorder, NoRecorder):
        return
    try:
        if entry.caller == "unknown":  # refused before anyone was identified: anyone can send that much
            request = request[:UNVERIFIED_KEPT_BYTES]
        elapsed = time.monotonic() - started if started is not None else 0.0
        recorder.record(Exchange(
            at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=elapsed), service=service,
            operation=entry.operation, caller=entry.caller,
            # the audit's outcome, or the error's when the audit row itself failed (StorageUnavailable)
            outcome=error.audit_outcome if error is not None and entry.outcome == "OK" else entry.outcome,
            status=int(status.split()[0]),
            duration_ms=elapsed * 1000, request=request, answer=answer,
            code=error.code if error is not None else None,
            # an answer delayed on purpose (the sandbox's fault injection) says so, as the audit row does
            reason=error.reason if error is not None else entry.detail if "[injected " in entry.detail else None,
            request_id=entry.request_id, audit_seq=entry.seq))
    except Exception:  # noqa: BLE001 - the inspector is a debugging aid: the exchange goes on
        log.exception("the inspector could not record an exchange of %s", service)
