"""Statistics and stratification per integrated-care project (seed 000 §23): aggregates only.

§23 gives the application three purposes: know which patients are in which PSI (billing, by date and
status), record the consents for statistics, and stratify the patients per PSI. This use case counts
the inclusions in effect on a day (started, not ended) per project, in cells of

    project × status × consent (agree | refuse | none) × age band × insurer (union code, "000" unknown)

and publishes nothing else: no patient, no NISS, no date but the day asked. A cell under
``THRESHOLD`` patients is shown as ``"<5"``; so that a suppressed cell cannot be computed back from
the project's total minus the cells shown, a project whose shown total has exactly one suppressed cell
also has its smallest shown cell suppressed. A project's total under the threshold is suppressed too
(then every cell of it is). There is no total over all projects (it would give a suppressed project
total back). Age is counted on the day asked from the birth date the NISS carries (wide bands, as
seed 004 does for linked data); the insurer is the one the CIN affiliation data names on that day.

Runs on different days or for one project at a time can still be compared with each other; that is
a property of publishing counts at all, and why the run is audited.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from mycarenet_ic.domain.identifiers import InvalidIdentifier, parse_niss
from mycarenet_ic.domain.inclusions import Inclusion

THRESHOLD = 5
SMALL = f"<{THRESHOLD}"
UNKNOWN_INSURER = "000"
# (lowest age, label); the last band is open-ended.
AGE_BANDS = ((0, "0-17"), (18, "18-44"), (45, "45-64"), (65, "65-74"), (75, "75-84"), (85, "85+"))
DIMENSIONS = ("status", "consent", "age_band", "insurer")

CellKey = tuple[str, str, str, str]
Count = int | str  # a number, or SMALL


def age_on(birth: dt.date, day: dt.date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def age_band(ssin: str, day: dt.date) -> str:
    """The patient's age band on ``day``, from the birth date in the NISS ("unknown" when it has none)."""
    try:
        birth = parse_niss(ssin).birth_date
    except InvalidIdentifier:
        birth = None
    if birth is None or birth > day:
        return "unknown"
    age = age_on(birth, day)
    return [label for low, label in AGE_BANDS if age >= low][-1]


@dataclass(frozen=True)
class ProjectCounts:
    project: str
    total: Count
    cells: list[tuple[CellKey, Count]]


@dataclass
class StatisticsReport:
    as_of: dt.date
    project: str | None
    projects: list[ProjectCounts] = field(default_factory=list)
    inclusions: int = 0
    suppressed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(), "project": self.project, "threshold": THRESHOLD,
            "dimensions": list(DIMENSIONS),
            "projects": [{"project": p.project, "total": p.total,
                          "cells": [dict(zip(DIMENSIONS, key, strict=True)) | {"patients": n} for key, n in p.cells]}
                         for p in self.projects],
        }


def suppress(counts: dict[CellKey, int]) -> tuple[Count, list[tuple[CellKey, Count]], int]:
    """One project's cells with small ones hidden: (total, cells in a fixed order, cells hidden)."""
    total = sum(counts.values())
    order = sorted(counts)
    if total < THRESHOLD:
        return SMALL, [(k, SMALL) for k in order], len(order)
    hidden = {k for k, n in counts.items() if n < THRESHOLD}
    if len(hidden) == 1:
        # total − shown cells would give the one hidden cell back: hide the smallest shown cell too.
        shown = sorted((n, k) for k, n in counts.items() if k not in hidden)
        if shown:
            hidden.add(shown[0][1])
    return total, [(k, SMALL if k in hidden else counts[k]) for k in order], len(hidden)


class Statistics:
    """Counts per project from the inclusions in effect on a day; the caller audits the run."""

    def __init__(self, effective_on: Callable[[dt.date, str | None], Iterable[tuple[str, Inclusion]]],
                 insurer_of: Callable[[str, dt.date], str | None]) -> None:
        self.effective_on = effective_on
        self.insurer_of = insurer_of

    def run(self, as_of: dt.date, project: str | None = None) -> StatisticsReport:
        per_project: dict[str, Counter[CellKey]] = {}
        report = StatisticsReport(as_of, project)
        for ssin, inc in self.effective_on(as_of, project):
            key = (inc.status.value, inc.consent.value if inc.consent else "none", age_band(ssin, as_of),
                   self.insurer_of(ssin, as_of) or UNKNOWN_INSURER)
            per_project.setdefault(inc.project, Counter())[key] += 1
            report.inclusions += 1
        for nihii in sorted(per_project):
            total, cells, hidden = suppress(dict(per_project[nihii]))
            report.projects.append(ProjectCounts(nihii, total, cells))
            report.suppressed += hidden
        return report

    @staticmethod
    def audit_detail(report: StatisticsReport) -> str:
        cells = sum(len(p.cells) for p in report.projects)
        return (f"statistics as of {report.as_of} project={report.project or 'all'}: {report.inclusions} "
                f"inclusion(s) in {len(report.projects)} project(s), {cells} cell(s), {report.suppressed} suppressed")
