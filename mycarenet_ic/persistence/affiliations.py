"""Insurer affiliations (the CIN/NIC affiliation database in reality): scenario data, read from the
data directory's ``scenario.json`` (key ``insurer_affiliations``) and re-read when the file changes.

One record per period: NISS, mutuality code (3 digits: the insurer union is its first digit + "00"),
registration number at the mutuality, start, end, CT1/CT2.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Affiliation:
    ssin: str
    mutuality: str
    registration_number: str
    start: dt.date
    end: dt.date | None
    ct1: str
    ct2: str

    @property
    def insurer(self) -> str:
        """The insurer union (100, 200, …, 600, 900) of the mutuality."""
        return self.mutuality[0] + "00"

    def covers(self, day: dt.date) -> bool:
        return self.start <= day and (self.end is None or day <= self.end)


class ScenarioAffiliations:
    def __init__(self, scenario_file: Path) -> None:
        self.path = Path(scenario_file)
        self._lock = threading.Lock()
        self._mtime: float | None = None
        self._by_ssin: dict[str, list[Affiliation]] = {}

    def _load(self) -> dict[str, list[Affiliation]]:
        with self._lock:
            try:
                mtime = self.path.stat().st_mtime
            except FileNotFoundError:
                return {}
            if mtime != self._mtime:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                by_ssin: dict[str, list[Affiliation]] = {}
                for rec in data.get("insurer_affiliations", []):
                    aff = Affiliation(rec["ssin"], rec["mutuality"], rec["registration_number"],
                                      dt.date.fromisoformat(rec["start"]),
                                      dt.date.fromisoformat(rec["end"]) if rec.get("end") else None,
                                      rec.get("ct1", "110"), rec.get("ct2", "110"))
                    by_ssin.setdefault(aff.ssin, []).append(aff)
                self._by_ssin, self._mtime = by_ssin, mtime
            return self._by_ssin

    def affiliation(self, ssin: str, on: dt.date) -> Affiliation | None:
        return next((a for a in self._load().get(ssin, []) if a.covers(on)), None)

    def periods(self, ssin: str) -> list[Affiliation]:
        return sorted(self._load().get(ssin, []), key=lambda a: a.start)
