"""Statistics per project (seed 000 §23): age bands from the NISS, small cells suppressed (no I/O)."""

from __future__ import annotations

import datetime as dt

import pytest

from mycarenet_ic.domain.inclusions import Consent, Inclusion, Status
from mycarenet_ic.services.statistics import SMALL, Statistics, age_band, suppress

pytestmark = pytest.mark.unit
D = dt.date


@pytest.mark.parametrize("ssin,day,band", [
    ("48031202166", D(2026, 3, 11), "75-84"),   # born 1948-03-12: 77 the day before the 78th birthday
    ("52073002225", D(2026, 12, 2), "65-74"),   # 74
    ("09101202203", D(2026, 12, 2), "0-17"),    # born 2009 (NISS of the 2000s)
    ("36122402201", D(2026, 12, 2), "85+"),     # 89
    ("44021402211", D(2009, 2, 13), "45-64"),   # 64 the day before 65
    ("44021402211", D(2009, 2, 14), "65-74"),
])
def test_age_band_on_the_day_asked_from_the_niss(ssin: str, day: dt.date, band: str) -> None:
    assert age_band(ssin, day) == band


def test_cells_under_five_are_suppressed_and_cannot_be_computed_back_from_the_total() -> None:
    a, b, c = ("principal", "agree", "65-74", "100"), ("information", "agree", "65-74", "100"), \
        ("information", "refuse", "18-44", "000")
    total, cells, hidden = suppress({a: 9, b: 6, c: 2})
    # c alone would be 17 - 9 - 6: the smallest shown cell (b) goes with it
    assert (total, dict(cells), hidden) == (17, {a: 9, b: SMALL, c: SMALL}, 2)
    total, cells, hidden = suppress({a: 9, b: 6})
    assert (total, dict(cells), hidden) == (15, {a: 9, b: 6}, 0)
    total, cells, hidden = suppress({a: 3, b: 1})  # a project under five: nothing shown, not even its total
    assert (total, dict(cells), hidden) == (SMALL, {a: SMALL, b: SMALL}, 2)
    total, cells, _ = suppress({a: 9, b: 2, c: 1})  # two hidden already: nothing more to hide
    assert (total, dict(cells)) == (12, {a: 9, b: SMALL, c: SMALL})


def test_counts_per_project_status_consent_age_band_and_insurer() -> None:
    def inc(n: int, project: str, status: Status, consent: Consent | None) -> Inclusion:
        return Inclusion(id=str(n), patient="p", project=project, status=status, declared_start=D(2025, 1, 1),
                         consent=consent, consent_date=D(2025, 1, 1) if consent else None)

    rows = [("48031202166", inc(n, "91000153", Status.PRINCIPAL, Consent.AGREE)) for n in range(6)]
    rows.append(("52073002225", inc(7, "91000153", Status.INFORMATION, None)))
    rows.append(("52073002225", inc(8, "91000252", Status.INFORMATION, Consent.REFUSE)))
    stats = Statistics(lambda day, project: [r for r in rows if project in (None, r[1].project)],
                       lambda ssin, day: "100" if ssin == "48031202166" else None)
    report = stats.run(D(2026, 12, 2))
    out = report.as_dict()
    assert [p["project"] for p in out["projects"]] == ["91000153", "91000252"]
    leuven = out["projects"][0]
    assert leuven["total"] == 7
    # the one small cell, and the only shown one with it: else 7 - 6 would give the small one back
    assert {(c["status"], c["consent"], c["age_band"], c["insurer"]): c["patients"] for c in leuven["cells"]} == {
        ("principal", "agree", "75-84", "100"): SMALL, ("information", "none", "65-74", "000"): SMALL}
    assert out["projects"][1] == {"project": "91000252", "total": SMALL, "cells": [
        {"status": "information", "consent": "refuse", "age_band": "65-74", "insurer": "000", "patients": SMALL}]}
    assert stats.run(D(2026, 12, 2), "91000252").as_dict()["project"] == "91000252"
    assert report.suppressed == 3 and report.inclusions == 8
