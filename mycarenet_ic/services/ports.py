"""Ports the use cases depend on, and the values they pass; adapters live in ``clients/`` and
``persistence/``.

Gateways: the AttributeAuthority, CoBrHa and the National Register (``clients/``). Stores
(``persistence/``): the inclusions, kept with the first answer per (sender, request Id); the
insurers' member files; the sink the National Register's mutations are applied to, with the feed
cursor it moves in the same transaction; the audit log.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from mycarenet_ic.domain.assurability import MemberFile
from mycarenet_ic.domain.inclusions import Inclusion
from mycarenet_ic.domain.qualities import CallerIdentity
from mycarenet_ic.domain.records import (
    MutationBatch,
    Organisation,
    OrganisationRole,
    Person,
    Professional,
    TherapeuticLink,
)

# -- gateways -----------------------------------------------------------------------------------------


class AttributeAuthority(Protocol):
    def therapeutic_link(self, patient_ssin: str, hcparty_nihii: str, hcparty_type: str,
                         on: dt.date) -> TherapeuticLink | None: ...

    def roles(self, ssin: str) -> tuple[OrganisationRole, ...]: ...


class Cobrha(Protocol):
    def professional(self, *, ssin: str | None = None, nihii: str | None = None) -> Professional | None: ...

    def organisation(self, *, nihii: str | None = None, cbe: str | None = None) -> Organisation | None: ...


class NationalRegister(Protocol):
    def person(self, ssin: str) -> Person | None: ...

    def mutations_after(self, seq: int, max_results: int = 100) -> MutationBatch: ...


# -- inclusions ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class WriteOutcome:
    inclusion: Inclusion
    answer_id: str
    answered_at: dt.datetime
    replayed: bool = False

    @property
    def audit_detail(self) -> str:
        """What the request's audit row says of it."""
        inc = self.inclusion
        return (f"inclusion={inc.id} project={inc.project} status={inc.status.value} v{inc.version}"
                + (" (retry: first answer)" if self.replayed else ""))


# Decides, on the patient's current inclusions, what to store: (the inclusion, the event's kind).
ChangeFn = Callable[[list[Inclusion]], tuple[Inclusion, str]]


class InclusionStore(Protocol):
    def inclusions_of(self, ssin: str) -> list[Inclusion]: ...

    def get(self, inclusion_id: str) -> Inclusion | None: ...

    def belongs_to(self, inclusion: Inclusion, ssin: str) -> bool: ...

    def project_page(self, project: str, on: dt.date, offset: int,
                     limit: int) -> tuple[list[tuple[str, Inclusion]], int]: ...

    def replayed(self, sender: str, request_id: str, request_hash: str) -> WriteOutcome | None: ...

    def write(self, *, ssin: str, sender: str, request_id: str, operation: str, request_hash: str,
              operator: str | None, change: ChangeFn, audit: AuditEntry | None = None) -> WriteOutcome:
        """``audit``: the request's row, written in the write's own transaction (both or neither)."""

    def close_project(self, project: str, day: dt.date, detail: str) -> int: ...


# -- the insurers' data -------------------------------------------------------------------------------

class MemberFiles(Protocol):
    """What the insurers know of a person (insurability periods and member facts)."""

    def member_file(self, ssin: str) -> MemberFile | None: ...

    def ssin_of(self, mutuality: str, registration_number: str) -> str | None: ...


# -- the National Register's mutation feed ------------------------------------------------------------

class FeedCursors(Protocol):
    """Named positions in a feed, moved only from where the reader found them."""

    def cursor(self, name: str) -> int: ...

    def move_cursor(self, name: str, expected: int, position: int) -> bool: ...


class MutationSink(Protocol):
    """Applies one mutation and moves the cursor past it in one transaction; None (or False) when the
    cursor was no longer at ``expected`` (another reader applied it)."""

    def cursor(self, name: str) -> int: ...

    def apply_ssin_change(self, cursor: str, seq: int, expected: int, old: str, new: str) -> int | None: ...

    def apply_death(self, cursor: str, seq: int, expected: int, ssin: str, death: dt.date) -> int | None: ...

    def skip(self, cursor: str, seq: int, expected: int) -> bool: ...


# -- audit --------------------------------------------------------------------------------------------

@dataclass
class AuditEntry:
    """One call as the audit records it. ``patient`` is a NISS; it is stored as a pseudonym."""

    service: str
    operation: str
    caller: str = "unknown"
    outcome: str = "OK"
    patient: str | None = None
    request_id: str | None = None
    detail: str = ""
    # Its number once written: a writing request's row is written in the write's transaction, and the
    # endpoint then writes no second one.
    seq: int | None = None
    # The verified signature's replay-cache key and expiry: stored in the transaction of the request's first
    # row, which fails (Replayed) if the key is already there, so no other write of it commits either.
    replay: tuple[str, dt.datetime] | None = None


class AuditLog(Protocol):
    def caller_label(self, caller: CallerIdentity) -> str: ...

    def append(self, entry: AuditEntry) -> int: ...
