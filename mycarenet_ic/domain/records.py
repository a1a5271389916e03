"""What the eHealth sources tell about people and organisations, as plain records."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


@dataclass(frozen=True)
class TherapeuticLink:
    """A therapeutic link as the AttributeAuthority reports it (None-free when it exists)."""

    link_type: str
    start: dt.date
    end: dt.date | None


@dataclass(frozen=True)
class OrganisationRole:
    """A person's role in an organisation (CSAM role management), e.g. coordinator of a PSI."""

    organisation_nihii: str
    role: str  # "administrative" | "coordinator"


@dataclass(frozen=True)
class Profession:
    code: str
    nihii: str | None
    visa_from: dt.date | None
    visa_to: dt.date | None
    workplaces: tuple[str, ...] = ()

    def visa_valid_on(self, day: dt.date) -> bool:
        return self.visa_from is not None and self.visa_from <= day and (self.visa_to is None or day <= self.visa_to)


@dataclass(frozen=True)
class Professional:
    ssin: str
    last_name: str
    first_name: str
    professions: tuple[Profession, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Organisation:
    nihii: str | None
    cbe: str | None
    type: str
    name: str
    active: bool
    active_from: dt.date | None = None
    active_to: dt.date | None = None

    def active_on(self, day: dt.date) -> bool:
        return (self.active and (self.active_from is None or self.active_from <= day)
                and (self.active_to is None or day <= self.active_to))


@dataclass(frozen=True)
class Person:
    ssin: str
    last_name: str
    first_names: tuple[str, ...]
    birth_date: dt.date | None
    sex: str
    death_date: dt.date | None = None
    replaced_by: str | None = None


@dataclass(frozen=True)
class PersonMutation:
    seq: int
    kind: str  # "SsinReplaced" | "Deceased"
    ssin: str
    date: dt.date
    new_ssin: str | None = None


@dataclass(frozen=True)
class MutationBatch:
    mutations: tuple[PersonMutation, ...]
    last_seq: int
    more: bool
