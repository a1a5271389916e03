"""Use case: the home-nurse incentive premium report (seed 002), one line per provider.

INAMI crosses the CIN's billed home nursing with INASTI's independent status, the Maribel Social funds'
salaried FTE and the bank accounts of its web application (§16) and computes each provider's gross amount
(the rules: :mod:`mycarenet_ic.domain.nurse_premium`). Each run is audited (§24: "vérifier quelles données ont
été communiquées par qui, à quel moment, et à propos de quel dispensateur de soins"): who ran it, for which
year and which providers, and the total.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from mycarenet_ic.domain.identifiers import parse_nihii
from mycarenet_ic.domain.nurse_premium import (
    ROUNDS,
    HomeNursingActivity,
    PremiumRound,
    ProviderPremium,
    account_deadline,
    half_up,
    premiums,
)
from mycarenet_ic.services.ports import AuditEntry, AuditLog

AUDIT_SERVICE = "premium"
CSV_COLUMNS = ("nihii", "patients", "patient_contacts", "theoretical_fte", "salaried_fte", "fte_due",
               "independent", "account_registered", "entitled", "reason", "gross_eur")


class PremiumError(ValueError):
    """A report that cannot be made as asked (a year without a premium, a provider without data)."""


class HomeNursingData(Protocol):
    def activity(self) -> HomeNursingActivity: ...


@dataclass(frozen=True)
class PremiumReport:
    rules: PremiumRound
    decree_published: dt.date
    providers: list[ProviderPremium]

    @property
    def account_deadline(self) -> dt.date:
        return account_deadline(self.decree_published, self.rules)

    @property
    def paid(self) -> list[ProviderPremium]:
        return [p for p in self.providers if p.gross > 0]

    @property
    def total(self) -> Decimal:
        return sum((p.gross for p in self.providers), Decimal("0.00"))

    def rows(self) -> list[dict[str, str]]:
        """One row per provider, the columns of :data:`CSV_COLUMNS`, as text (FTEs to 4 decimals)."""
        return [{"nihii": p.nihii, "patients": str(p.patients), "patient_contacts": str(p.patient_contacts),
                 "theoretical_fte": str(half_up(p.theoretical_fte, 4)), "salaried_fte": str(half_up(p.salaried_fte, 4)),
                 "fte_due": str(half_up(p.fte_due, 4)), "independent": p.independent.value,
                 "account_registered": p.account_registered.isoformat() if p.account_registered else "",
                 "entitled": "no" if p.refusal else "yes", "reason": p.refusal.value if p.refusal else "",
                 "gross_eur": str(p.gross)} for p in self.providers]


class NursePremium:
    """The report for one year's round, of every provider or of one; audited as ``caller``'s."""

    def __init__(self, data: HomeNursingData, audit: AuditLog, caller: str = "platform:premium") -> None:
        self.data = data
        self.audit = audit
        self.caller = caller

    def run(self, year: int, nihii: str | None = None) -> PremiumReport:
        rules = ROUNDS.get(year)
        if rules is None:
            known = ", ".join(str(y) for y in sorted(ROUNDS))
            raise PremiumError(f"no home-nurse premium for {year}: seed 002 sets one, for {known}")
        wanted = parse_nihii(nihii, person=True).value if nihii is not None else None
        activity = self.data.activity()
        report = PremiumReport(rules, activity.decree_published, premiums(activity, rules, wanted))
        if wanted is not None and not report.providers:
            raise PremiumError(f"no billed home nursing and no status for provider {wanted}")
        self.audit.append(AuditEntry(AUDIT_SERVICE, "NursePremium", caller=self.caller,
                                     detail=self.audit_detail(report, wanted)))
        return report

    @staticmethod
    def audit_detail(report: PremiumReport, nihii: str | None) -> str:
        providers = " ".join(p.nihii for p in report.providers)
        return (f"premium {report.rules.year} provider={nihii or 'all'}: {len(report.providers)} provider(s), "
                f"{len(report.paid)} paid, {report.total} EUR gross; providers {providers}")
