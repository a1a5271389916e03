"""Research export with double coding (seed 000 §23 2°, seeds 003 and 004).

§23 2° records the patients' consents "so as to know which patients' data may be used for statistics and
scientific studies"; seed 000 §20: a written consent that may be withdrawn at any time. Seed 003 art. 1:
the data are "coded first by the insurer and sent to an intermediary, which codes them a second time";
art. 2: characteristics only at a level of aggregation where identification is excluded, or so few
variables that their combination cannot identify; an access journal of who ran which processing, when,
with which data and for which purpose (art. 6: with no content); art. 4: the sample of a year is destroyed
after the thirtieth year following it. Seed 004 §4 and §6: the NISS replaced by a meaningless number,
personal characteristics removed or given in wide classes.

What one extraction holds, one row per exported inclusion (``FIELDS``): the research code, sex, age band
(the statistics' bands, on the extraction's date), region (Brussels-Capital, Flanders, Wallonia: from the
domicile's postal code), the PSI, the status and the inclusion's period in months. Nothing else: no NISS,
no name, no birth date, no day of any date (a death or a stopped project closes an inclusion on a day).

Who is in it (:func:`consenting`): a patient with an agreement recorded on an inclusion and no refusal on
any (a refusal, wherever registered, is the withdrawal §20 allows); only the inclusions with the agreement,
started by the extraction's date. A patient without an insurer on that date is left out: no insurer can
code them (the sample is of insured persons).

Classes too small are generalised (seed 003 art. 2): when fewer than ``THRESHOLD`` patients of the
extraction share a (sex, age band, region), those three are written ``*`` for them.

Double coding, and why neither party alone can link a code back to a person:

1. the insurer codes its member's NISS with its own secret key: ``<insurer>-HMAC(K_insurer, NISS)``
   (:class:`InsurerCoding`; the sandbox plays the insurers, one key file each in ``secrets/insurers/``);
2. the intermediary (the coding stub, ``stubs/coding.py``) codes that value again with its own key, per
   research project: ``HMAC(HMAC(K_coding, project), first code)`` as 20 digits.

The insurer knows NISS → first code but not ``K_coding``, so it cannot compute a research code; the
intermediary knows first code → research code, but the first code is keyed (not a hash a NISS could be
tried against: there are only about 10⁹ NISS) and it never sees a NISS. The researcher holds research codes
only. Two projects' codes share nothing (the project is in the second key), so two exports for different
projects cannot be joined; an extraction without a project is coded for itself alone. In the sandbox the
one process plays the insurers and writes the file: the first codes live in memory for one batch and are
written nowhere, the journal holds no code.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import re
import secrets
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mycarenet_ic.config import secret_file
from mycarenet_ic.domain.identifiers import InvalidIdentifier, Sex, parse_niss
from mycarenet_ic.domain.inclusions import Consent, Inclusion
from mycarenet_ic.services.statistics import THRESHOLD, age_band

FIELDS = ("research_id", "sex", "age_band", "region", "project", "status", "start_month", "end_month")
SUPPRESSED = "*"
RETENTION_YEARS = 30
PROJECT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_PURPOSE = 500

# Belgian postal codes by region (bpost's ranges): Brussels-Capital 1000-1299, Walloon Brabant 1300-1499,
# Flemish Brabant 1500-1999 and 3000-3499, Antwerp 2000-2999, Limburg 3500-3999, Liège, Namur, Hainaut and
# Luxembourg 4000-7999, West and East Flanders 8000-9999.
_REGIONS = ((1000, "brussels"), (1300, "wallonia"), (1500, "flanders"), (4000, "wallonia"), (8000, "flanders"))


def region_of(postal_code: str | None) -> str:
    """The region of a Belgian postal code: brussels | flanders | wallonia | unknown."""
    if postal_code is None or not re.fullmatch(r"[1-9][0-9]{3}", postal_code):
        return "unknown"
    code = int(postal_code)
    return [name for low, name in _REGIONS if code >= low][-1]


def sex_of(ssin: str) -> str:
    """male | female | unknown, as the NISS says it (a BIS number may not)."""
    try:
        sex = parse_niss(ssin).sex
    except InvalidIdentifier:
        return "unknown"
    return {Sex.MALE: "male", Sex.FEMALE: "female"}.get(sex, "unknown")


def month(day: dt.date | None) -> str:
    return f"{day.year:04d}-{day.month:02d}" if day else ""


def consenting(inclusions: Sequence[Inclusion], as_of: dt.date) -> list[Inclusion]:
    """The inclusions of one patient that may be exported on ``as_of`` (see the module's rule)."""
    if any(inc.consent is Consent.REFUSE for inc in inclusions):
        return []
    return [inc for inc in inclusions if inc.consent is Consent.AGREE and inc.start <= as_of]


def destroy_after(reference_year: int) -> dt.date:
    """Seed 003 art. 4: accessible until 31 December of the thirtieth year after the reference year."""
    return dt.date(reference_year + RETENTION_YEARS, 12, 31)


def check_project(project: str) -> str:
    if not PROJECT_NAME.fullmatch(project):
        raise ValueError("a research project is named by 1 to 64 letters, digits, '.', '_' or '-'")
    return project


def check_purpose(purpose: str) -> str:
    text = " ".join(purpose.split())
    if not text:
        raise ValueError("the purpose of the extraction is required (seed 003: the journal says why)")
    if len(text) > MAX_PURPOSE or not text.isprintable():
        raise ValueError(f"the purpose is at most {MAX_PURPOSE} printable characters")
    return text


class InsurerCoding:
    """The insurers' first coding: each insurer's own key (HMAC-SHA256 of the NISS)."""

    def __init__(self, key_of: Callable[[str], bytes]) -> None:
        self._key_of = key_of
        self._keys: dict[str, bytes] = {}

    def code(self, insurer: str, ssin: str) -> str:
        if not re.fullmatch(r"[0-9]{3}", insurer):
            raise ValueError(f"not an insurer code: {insurer!r}")
        key = self._keys.get(insurer)
        if key is None:
            key = self._keys[insurer] = self._key_of(insurer)
        return f"{insurer}-{hmac.new(key, ssin.encode(), hashlib.sha256).hexdigest()}"

    @classmethod
    def from_data_dir(cls, data_dir: Path) -> InsurerCoding:
        """One key per insurer in ``<data-dir>/secrets/insurers/<code>.key`` (made once)."""
        return cls(lambda insurer: secret_file(Path(data_dir) / "secrets" / "insurers" / f"{insurer}.key",
                                               lambda: secrets.token_bytes(32)))


class CodingService(Protocol):
    """The intermediary's second coding (the coding stub's gateway)."""

    BATCH: int

    def encode(self, project: str, values: Sequence[str]) -> list[str]: ...


@dataclass(frozen=True)
class JournalEntry:
    """One line of the access journal: who, when, which extraction, on which data, why; no content."""

    extraction: str
    at: dt.datetime
    caller: str
    purpose: str
    project: str
    as_of: dt.date
    fields: tuple[str, ...]
    scope: str
    file: str
    file_sha256: str

    @property
    def reference_year(self) -> int:
        return self.as_of.year

    @property
    def destroy_after(self) -> dt.date:
        return destroy_after(self.reference_year)


class ResearchJournal(Protocol):
    def record(self, entry: JournalEntry) -> None: ...


# (NISS, every inclusion of that patient), patient by patient.
PatientSource = Callable[[], Iterable[tuple[str, list[Inclusion]]]]


@dataclass
class ResearchReport:
    extraction: str
    project: str
    file: Path | None = None
    patients: int = 0
    rows: int = 0
    generalised: int = 0
    without_insurer: int = 0
    fields: tuple[str, ...] = FIELDS

    def scope(self, as_of: dt.date) -> str:
        return (f"consenting patients as of {as_of}: {self.patients} patient(s), {self.rows} inclusion row(s), "
                f"{self.generalised} with characteristics generalised, {self.without_insurer} left out "
                "(no insurer)")


@dataclass
class _Patient:
    ssin: str
    insurer: str
    characteristics: tuple[str, str, str]
    inclusions: list[Inclusion] = field(default_factory=list)


class ResearchExport:
    """One extraction: consenting patients, classed characteristics, double-coded, journaled."""

    def __init__(self, patients: PatientSource, insurer_of: Callable[[str, dt.date], str | None],
                 postal_code_of: Callable[[str], str | None], first: InsurerCoding, second: CodingService,
                 journal: ResearchJournal) -> None:
        self.patients = patients
        self.insurer_of = insurer_of
        self.postal_code_of = postal_code_of
        self.first = first
        self.second = second
        self.journal = journal

    def _selected(self, as_of: dt.date, report: ResearchReport | None = None) -> Iterator[_Patient]:
        for ssin, inclusions in self.patients():
            chosen = consenting(inclusions, as_of)
            if not chosen:
                continue
            insurer = self.insurer_of(ssin, as_of)
            if insurer is None:
                if report is not None:
                    report.without_insurer += 1
                continue
            classes = (sex_of(ssin), age_band(ssin, as_of), region_of(self.postal_code_of(ssin)))
            yield _Patient(ssin, insurer, classes, chosen)

    def run(self, out_dir: Path, *, purpose: str, as_of: dt.date, caller: str, project: str | None = None,
            progress: Callable[[int, int], None] | None = None) -> ResearchReport:
        purpose = check_purpose(purpose)
        extraction = uuid.uuid4().hex
        report = ResearchReport(extraction, check_project(project) if project else f"extraction-{extraction}")
        # First pass: how many patients, and how many share each class of characteristics.
        classes: Counter[tuple[str, str, str]] = Counter(p.characteristics for p in self._selected(as_of))
        total = sum(classes.values())
        out_dir.mkdir(parents=True, exist_ok=True)
        final = out_dir / f"research-{report.project}-{as_of.isoformat()}-{extraction[:12]}.csv"
        tmp = out_dir / f".{final.name}.tmp"
        digest = hashlib.sha256()
        try:
            with tmp.open("w", encoding="utf-8", newline="") as out:
                writer = csv.writer(out, lineterminator="\n")
                writer.writerow(FIELDS)
                batch: list[_Patient] = []
                for patient in self._selected(as_of, report):
                    batch.append(patient)
                    if len(batch) == self.second.BATCH:
                        self._write(writer, batch, classes, report, total, progress)
                        batch = []
                self._write(writer, batch, classes, report, total, progress)
            if progress and total == 0:
                progress(0, 0)
            with tmp.open("rb") as written:
                for chunk in iter(lambda: written.read(1 << 16), b""):
                    digest.update(chunk)
            tmp.replace(final)
            report.file = final
            self.journal.record(JournalEntry(
                extraction, dt.datetime.now(dt.UTC), caller, purpose, report.project, as_of, FIELDS,
                report.scope(as_of), str(final.resolve()), digest.hexdigest()))
        except BaseException:
            final.unlink(missing_ok=True)  # no extraction outside the journal
            raise
        finally:
            tmp.unlink(missing_ok=True)
        return report

    def _write(self, writer: Any, batch: list[_Patient], classes: Counter[tuple[str, str, str]],
               report: ResearchReport, total: int, progress: Callable[[int, int], None] | None) -> None:
        if not batch:
            return
        first_codes = [self.first.code(p.insurer, p.ssin) for p in batch]
        codes = self.second.encode(report.project, first_codes)
        rows = []
        for patient, code in zip(batch, codes, strict=True):
            shown = patient.characteristics
            if classes[shown] < THRESHOLD:
                shown = (SUPPRESSED, SUPPRESSED, SUPPRESSED)
                report.generalised += 1
            for inc in patient.inclusions:
                rows.append((code, *shown, inc.project, inc.status.value, month(inc.start), month(inc.end)))
        rows.sort()  # the order of the store (its pseudonyms) says nothing either
        writer.writerows(rows)
        report.patients += len(batch)
        report.rows += len(rows)
        if progress:
            progress(report.patients, total)


@dataclass(frozen=True)
class DueSample:
    """An extraction whose retention is over: its journal line's id, file and last day."""

    extraction: str
    file: str
    destroy_after: dt.date


class RetentionJournal(Protocol):
    def due(self, on: dt.date) -> list[DueSample]: ...

    def purged(self, extractions: Sequence[str], on: dt.date, *, caller: str, files_deleted: int) -> None: ...


def purge_research(journal: RetentionJournal, on: dt.date, *, caller: str) -> list[DueSample]:
    """Destroy the samples whose thirty years are over on ``on`` (seed 003 art. 4): their files are deleted
    and their journal lines say when; the journal lines stay (they hold no content)."""
    due = journal.due(on)
    deleted = 0
    for sample in due:
        path = Path(sample.file)
        if path.exists():
            path.unlink()
            deleted += 1
    journal.purged([s.extraction for s in due], on, caller=caller, files_deleted=deleted)
    return due
