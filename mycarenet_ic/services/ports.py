"""Ports the use cases depend on; adapters live in ``clients/`` and ``persistence/``."""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from mycarenet_ic.domain.records import (
    MutationBatch,
    Organisation,
    OrganisationRole,
    Person,
    Professional,
    TherapeuticLink,
)


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
