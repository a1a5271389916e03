"""Who is asking: the verified caller, what the request claims about them, resolved once.

Shared by the business services: each one decides what the requester may do; here is the one claim check
(a request may name the caller, never someone else) and what CoBrHa must know of the requester (a provider
with a valid VISA, an active organisation).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from mycarenet_ic.domain.inclusions import Role
from mycarenet_ic.domain.qualities import CallerIdentity
from mycarenet_ic.domain.records import Organisation, Profession
from mycarenet_ic.errors import AccessDenied
from mycarenet_ic.services.ports import AuditEntry, Cobrha


@dataclass(frozen=True)
class Claim:
    """Who the request says the care provider is (a CommonInput's NIHII and SSIN)."""

    nihii: str | None = None
    ssin: str | None = None


@dataclass(frozen=True)
class Requester:
    """The caller of one request: the verified identity (from the certificate or the STS token), what the
    request claims, and how the audit names them. Retries are recognised by ``identity.holder``, never by
    the audit label. ``audit``: the request's audit row, which a write stores in its own transaction."""

    identity: CallerIdentity
    claim: Claim = field(default_factory=Claim)
    audit_label: str = ""
    audit: AuditEntry | None = None
    # The roles the caller chose to act in (the web's sign-in profile: a PSI administrative who signs in as
    # a citizen is a patient there, nothing more); None: every role the identity gives.
    acting_as: frozenset[Role] | None = None

    def check_claim(self, may_act_for: Iterable[str | None]) -> None:
        """The one claim check: a claimed person must be the holder, a claimed NIHII one the holder may act
        for (its own, or where it works)."""
        if self.claim.ssin and self.claim.ssin != self.identity.ssin:
            raise AccessDenied("The CommonInput names another person than the certificate.")
        if self.claim.nihii and self.claim.nihii not in set(may_act_for):
            raise AccessDenied("The CommonInput names another care provider than the certificate.")


def checked_profession(cobrha: Cobrha, identity: CallerIdentity, today: dt.date) -> Profession:
    """The profession behind the caller's NIHII, if CoBrHa knows it with a VISA valid today.

    CoBrHa decides what the holder is: the caller's quality must be the profession CoBrHa records for
    that NIHII (a certificate for a nurse's NIHII that says "doctor" does not make a doctor)."""
    pro = cobrha.professional(nihii=identity.nihii) if identity.nihii else None
    profession = None
    if pro is not None and (identity.ssin is None or pro.ssin == identity.ssin):
        profession = next((p for p in pro.professions
                           if p.nihii == identity.nihii and p.code == identity.quality.hcparty_code), None)
    if profession is None or not profession.visa_valid_on(today):
        raise AccessDenied("The care provider is not known in CoBrHa with a valid VISA.")
    return profession


def active_organisation(cobrha: Cobrha, nihii: str | None, kind: str | None, today: dt.date,
                        what: str = "organisation") -> Organisation:
    """The organisation ``nihii`` of CoBrHa type ``kind``, if CoBrHa knows it and it is active today."""
    org = cobrha.organisation(nihii=nihii) if nihii and kind else None
    if org is None or org.type != kind or not org.active_on(today):
        raise AccessDenied(f"The {what} is not known and active in CoBrHa.")
    return org
